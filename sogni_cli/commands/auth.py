"""`sogni auth login|status|logout` (contract §2)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ..core.config import credentials_path, remove_key, store_key
from ..core.errors import UsageError
from ..render.output import out
from ..core.term import err, stdin_is_tty
from ._common import make_app, settings

app = make_app(
    help="Store, show and remove the API key.",
    no_args_is_help=True,
    epilog="""\b
Examples:
  printf '%s' "$KEY" | sogni auth login
  sogni auth login            (asks for the key on a terminal, without echo)
  sogni auth status
  sogni auth logout""",
)


@app.command()
def login(ctx: typer.Context,
          key_arg: Optional[str] = typer.Argument(None, hidden=True, show_default=False)) -> None:
    """Read the API key from standard input and store it in the credentials file (mode 0600)."""
    if key_arg is not None:
        raise UsageError("The API key is never taken from the command line (it would show in `ps` and history).",
                         hint="printf '%s' \"$KEY\" | sogni auth login")
    s = settings(ctx, new_profile_ok=True)
    if stdin_is_tty():
        import getpass

        key = getpass.getpass("Sogni API key: ", stream=sys.stderr)
    else:
        key = sys.stdin.read()
    key = key.strip()
    if not key:
        raise UsageError("No API key given on standard input.", hint="printf '%s' \"$KEY\" | sogni auth login")
    from ..core.config import check_key

    check_key(key, "standard input")
    if s.dry_run:
        out(f"Would save the API key for profile {s.profile!r} in {credentials_path(s.config_dir)}; "
            "nothing written (--dry-run).")
        return
    path = store_key(s.config_dir, s.profile, key)
    err(f"Saved the API key for profile {s.profile!r} in {path}")


@app.command()
def status(ctx: typer.Context,
           check: bool = typer.Option(False, "--check", help="Ask the API whether it accepts the key (exit 3 when refused) and whose it is.")) -> None:
    """Show where the API key comes from, masked (--check: verify it against the API)."""
    from ..core.redact import mask_key

    s = settings(ctx)
    if not s.api_key:
        from ..core.errors import AuthError

        raise AuthError(f"No API key found (looked at --api-key, SOGNI_API_KEY and {credentials_path(s.config_dir)}).",
                        hint="Store one with `sogni auth login`, or set SOGNI_API_KEY.")
    out(f"Key:     {mask_key(s.api_key)}")
    out(f"Source:  {s.api_key_source}")
    out(f"Profile: {s.profile}")
    out(f"API:     {s.base_url}")
    if check:
        from ..core.term import clean_text

        out(clean_text(f"Account: {_check_key(ctx)}"))


def _check_key(ctx: typer.Context) -> str:
    """Whose the key is, per the API; AuthError (exit 3) when the API refuses it."""
    from ..api.billing import account_me, display_name
    from ..core.errors import ApiError, AuthError
    from ._common import client

    try:
        me = account_me(client(ctx))
    except ApiError as exc:
        if exc.status in (401, 403):
            raise AuthError(f"The API refused the key ({exc.message}).",
                            hint="Store a valid key with `sogni auth login`, or set SOGNI_API_KEY.") from None
        raise
    return display_name(me)


@app.command()
def logout(ctx: typer.Context) -> None:
    """Remove the stored API key of the current profile."""
    s = settings(ctx)
    if s.dry_run:
        out(f"Would remove the stored API key for profile {s.profile!r} from {credentials_path(s.config_dir)}; "
            "nothing written (--dry-run).")
        return
    if remove_key(s.config_dir, s.profile):
        err(f"Removed the stored API key for profile {s.profile!r}.")
    else:
        err(f"No stored API key for profile {s.profile!r}.")
