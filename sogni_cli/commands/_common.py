"""What every command shares: resolved settings on the context, the API client, the emulator switch."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ..core.config import Settings, resolve
from ..core.term import err


if TYPE_CHECKING:
    import typer


def make_app(help: str, epilog: str | None = None, **kw: Any) -> "typer.Typer":
    """A command module's Typer app with the project's defaults (plain help, no completion flags)."""
    import typer

    return typer.Typer(help=help, epilog=epilog, rich_markup_mode=None, add_completion=False,
                       pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]}, **kw)


def _root_obj(ctx: typer.Context) -> Any:
    root = ctx.find_root()
    return root.obj


def settings(ctx: typer.Context, *, dry_run: bool = False, new_profile_ok: bool = False,
             lenient: bool = False) -> Settings:
    """Resolve (once) the settings from global options, environment and profile."""
    obj = _root_obj(ctx)
    cached = getattr(obj, "_settings", None) if obj is not None else None
    if cached is not None:
        if dry_run:
            cached.dry_run = True
        return cached
    from ..core.options import GlobalOptions

    g = obj if isinstance(obj, GlobalOptions) else GlobalOptions()
    s = resolve(
        api_key=g.api_key, base_url=g.base_url, profile=g.profile, timeout=g.timeout,
        max_retries=g.max_retries, quiet=g.quiet, verbose=g.verbose, no_color=g.no_color,
        dry_run=g.dry_run or dry_run, emulator=g.emulator, new_profile_ok=new_profile_ok, lenient=lenient,
    )
    if s.color is False:
        # Rich reads NO_COLOR when a console is made: every progress bar and table of this process obeys it.
        os.environ["NO_COLOR"] = "1"
    if g.emulator and not s.dry_run:
        _start_emulator(ctx, s)
    elif g.emulator:
        s.base_url = "http://127.0.0.1:8787"
        s.api_key = s.api_key or "emulator"
        s.api_key_source = s.api_key_source or "emulator"
    if obj is not None:
        try:
            obj._settings = s
        except AttributeError:  # pragma: no cover - defensive
            pass
    return s


def _start_emulator(ctx: typer.Context, s: Settings) -> None:
    from .. import emulator

    emu = emulator.start("127.0.0.1", 0)
    ctx.find_root().call_on_close(emu.stop)
    s.base_url = emu.base_url
    if not s.api_key:
        s.api_key = "emulator-key"
        s.api_key_source = "emulator"
    if not s.quiet:
        err(f"Using the local emulator at {emu.base_url}")


def _print_dry_run(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def client(ctx: typer.Context, *, dry_run: bool = False, require_key: bool = True):
    """An API client for the resolved settings; closed when the command ends."""
    from ..api.client import make_client

    s = settings(ctx, dry_run=dry_run)
    c = make_client(
        s,
        log=err,
        dry_run_out=_print_dry_run,
        require_key=require_key,
    )
    ctx.find_root().call_on_close(c.close)
    return c
