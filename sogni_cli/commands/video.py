"""`sogni video PROMPT [-i IMG] [--audio A] [--video V]`: text/image-to-video, sound-to-video, video-to-video.

The tool follows from the inputs: ``--video`` → ``video_to_video``, ``--audio`` → ``sound_to_video``,
``-i`` → ``animate_photo``, none → ``generate_video``.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from ._common import make_app
from ._media import MediaFlags, media_flags, run_job

app = make_app(
    help="Text/image-to-video, sound-to-video, video-to-video.",
    epilog="""\b
Examples:
  sogni video "waves at sunset" --duration 5 --ratio 16:9
  sogni video "she smiles" -i portrait.jpg              (animate_photo)
  sogni video "dancing lights" --audio song.mp3         (sound_to_video)
  sogni video "as a watercolour" --video clip.mp4       (video_to_video)
  sogni video "rain" --with-audio --model ltx23""",
)


@app.command()
@media_flags
def video(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What to make."),
    image: Optional[List[str]] = typer.Option(None, "-i", "--image", help="Image to animate or start from.", show_default=False),
    audio: Optional[str] = typer.Option(None, "--audio", metavar="FILE", help="Audio to sync to (sound_to_video).", show_default=False),
    video_file: Optional[str] = typer.Option(None, "--video", metavar="FILE", help="Video to transform (video_to_video).", show_default=False),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds.", show_default=False),
    ratio: Optional[str] = typer.Option(None, "--ratio", help="adaptive, 16:9, 4:3, 1:1, 3:4, 9:16.", show_default=False),
    with_audio: Optional[bool] = typer.Option(None, "--with-audio/--no-audio", help="Generate a soundtrack (generateAudio).", show_default=False),
    negative: Optional[str] = typer.Option(None, "--negative", help="What to keep out (negativePrompt).", show_default=False),
    width: Optional[int] = typer.Option(None, "--width", help="Width in pixels.", show_default=False),
    height: Optional[int] = typer.Option(None, "--height", help="Height in pixels.", show_default=False),
    aspect_ratio: Optional[str] = typer.Option(None, "--aspect-ratio", help="aspectRatio.", show_default=False),
    format: Optional[str] = typer.Option(None, "--format", help="mp4 or mov (outputFormat).", show_default=False),
    flags: MediaFlags = None,  # type: ignore[assignment]
) -> None:
    """Text/image-to-video, sound-to-video, video-to-video."""
    run_job(ctx, "video", {"prompt": prompt, "image": image, "audio": audio, "video": video_file,
                           "duration": duration, "ratio": ratio, "with_audio": with_audio, "negative": negative,
                           "width": width, "height": height, "aspect_ratio": aspect_ratio, "format": format}, flags)
