"""`sogni edit PROMPT -i IMG…`: edit or combine 1-6 reference images (workflow step ``edit_image``)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._common import make_app
from ._media import PREVIEW_HELP, MediaFlags, media_flags, preview, run_job

app = make_app(
    help="Edit or combine reference images.",
    epilog="""\b
Examples:
  sogni edit "make it night time" -i photo.jpg -o out/
  sogni edit "put the cat on the sofa" -i cat.png -i sofa.jpg --model qwen
  sogni edit "warmer colours" -i photo.jpg --dry-run""",
)


@app.command()
@media_flags
def edit(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What to change."),
    image: List[str] = typer.Option(..., "-i", "--image", help="Reference image (1-6), uploaded first.", show_default=False),
    width: Optional[int] = typer.Option(None, "--width", help="Width in pixels.", show_default=False),
    height: Optional[int] = typer.Option(None, "--height", help="Height in pixels.", show_default=False),
    format: Optional[str] = typer.Option(None, "--format", help="png, jpg or webp (outputFormat).", show_default=False),
    aspect_ratio: Optional[str] = typer.Option(None, "--aspect-ratio", help="For example 16:9 (aspectRatio).", show_default=False),
    lora: Optional[List[str]] = typer.Option(None, "--lora", metavar="NAME[:STRENGTH]", help="A LoRA, repeatable.", show_default=False),
    show_preview: bool = typer.Option(False, "--preview", help=PREVIEW_HELP),
    flags: MediaFlags = None,  # type: ignore[assignment]
) -> None:
    """Edit or combine reference images."""
    result = run_job(ctx, "edit", {"prompt": prompt, "images": image, "width": width, "height": height,
                                   "format": format, "aspect_ratio": aspect_ratio, "loras": lora}, flags)
    if show_preview:
        preview(result)
