"""The global options given before (or after) the command, as parsed once by the root command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class GlobalOptions:
    api_key: Optional[str] = None
    base_url: Optional[str] = None
    profile: Optional[str] = None
    timeout: Optional[float] = None
    max_retries: Optional[int] = None
    quiet: bool = False
    verbose: bool = False
    no_color: bool = False
    emulator: bool = False
    dry_run: bool = False
