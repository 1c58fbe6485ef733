"""`sogni image PROMPT`: generate images with exact parameters (workflow step ``generate_image``)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._common import make_app
from ._media import PREVIEW_HELP, MediaFlags, media_flags, preview, run_job

app = make_app(
    help="Generate images with exact parameters.",
    epilog="""\b
Examples:
  sogni image "a lighthouse at dusk" --width 1024 --height 768 -n 2 -o out/
  sogni image "a red fox" --model z-turbo --seed 42 --format png
  sogni image "portrait" --lora film-grain:0.7 --arg gptImageQuality=high
  sogni image "a red fox" --dry-run        (print the request; no key needed)""",
)


@app.command()
@media_flags
def image(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What to create."),
    width: Optional[int] = typer.Option(None, "--width", help="Width in pixels.", show_default=False),
    height: Optional[int] = typer.Option(None, "--height", help="Height in pixels.", show_default=False),
    negative: Optional[str] = typer.Option(None, "--negative", help="What to keep out (negativePrompt).", show_default=False),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="How strongly to follow the prompt.", show_default=False),
    format: Optional[str] = typer.Option(None, "--format", help="png, jpg or webp (outputFormat).", show_default=False),
    aspect_ratio: Optional[str] = typer.Option(None, "--aspect-ratio", help="For example 16:9 (aspectRatio).", show_default=False),
    lora: Optional[List[str]] = typer.Option(None, "--lora", metavar="NAME[:STRENGTH]", help="A LoRA, repeatable.", show_default=False),
    show_preview: bool = typer.Option(False, "--preview", help=PREVIEW_HELP),
    flags: MediaFlags = None,  # type: ignore[assignment]
) -> None:
    """Generate images with exact parameters."""
    result = run_job(ctx, "image", {"prompt": prompt, "width": width, "height": height, "negative": negative,
                                    "guidance": guidance, "format": format, "aspect_ratio": aspect_ratio,
                                    "loras": lora}, flags)
    if show_preview:
        preview(result)
