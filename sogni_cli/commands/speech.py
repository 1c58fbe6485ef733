"""`sogni speech TEXT`: text to speech (workflow step ``generate_speech``)."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import make_app
from ._media import MediaFlags, media_flags, run_job

app = make_app(
    help="Text to speech.",
    epilog="""\b
Examples:
  sogni speech "Hello and welcome" --voice serena --format mp3
  sogni speech "Bonjour" --language french
  sogni speech "Deep and calm" --model design --voice-description "a calm, low voice\"""",
)


@app.command()
@media_flags
def speech(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="What to say."),
    voice: Optional[str] = typer.Option(None, "--voice", help="A preset voice (see `sogni tools show generate_speech`).", show_default=False),
    voice_description: Optional[str] = typer.Option(None, "--voice-description", help="Describe the voice (voiceDescription).", show_default=False),
    language: Optional[str] = typer.Option(None, "--language", help="auto, english, french, …", show_default=False),
    format: Optional[str] = typer.Option(None, "--format", help="wav, mp3 or flac (outputFormat).", show_default=False),
    flags: MediaFlags = None,  # type: ignore[assignment]
) -> None:
    """Text to speech."""
    run_job(ctx, "speech", {"text": text, "voice": voice, "voice_description": voice_description,
                            "language": language, "format": format}, flags)
