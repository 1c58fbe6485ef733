"""`sogni music PROMPT`: music with lyrics, bpm, key and duration (workflow step ``generate_music``)."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import make_app
from ._media import MediaFlags, media_flags, read_text_arg, run_job

app = make_app(
    help="Generate music, with lyrics, bpm, key and duration.",
    epilog="""\b
Examples:
  sogni music "lo-fi beat for studying" --duration 60 --bpm 80
  sogni music "a folk song" --lyrics lyrics.txt --key "D major" --time-signature 3
  cat lyrics.txt | sogni music "ballad" --lyrics -""",
)


@app.command()
@media_flags
def music(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="Style, mood, instruments."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds.", show_default=False),
    bpm: Optional[int] = typer.Option(None, "--bpm", help="Beats per minute.", show_default=False),
    key: Optional[str] = typer.Option(None, "--key", help="Key and scale, e.g. 'C minor' (keyscale).", show_default=False),
    lyrics: Optional[str] = typer.Option(None, "--lyrics", metavar="FILE|-", help="Lyrics from a file or stdin.", show_default=False),
    time_signature: Optional[int] = typer.Option(None, "--time-signature", help="2, 3, 4 or 6 (timesig).", show_default=False),
    flags: MediaFlags = None,  # type: ignore[assignment]
) -> None:
    """Generate music, with lyrics, bpm, key and duration."""
    text = read_text_arg(lyrics, "lyrics") if lyrics is not None else None
    run_job(ctx, "music", {"prompt": prompt, "duration": duration, "bpm": bpm, "key": key, "lyrics": text,
                           "time_signature": time_signature}, flags)
