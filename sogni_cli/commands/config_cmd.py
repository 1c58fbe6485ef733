"""`sogni config path|list|get|set|unset` (contract §2)."""

from __future__ import annotations

import typer

from ..core.config import PROFILE_KEYS, coerce_profile_value, load_config_file, save_config_file
from ..core.errors import UsageError
from ..render.output import out
from ..core.term import err
from ._common import make_app, settings

app = make_app(
    help="Show and change settings in config.yaml (per profile).",
    no_args_is_help=True,
    epilog="""\b
Examples:
  sogni config path
  sogni config set model qwen3.6-35b-a3b-gguf-iq4xs
  sogni --profile staging config set base_url https://api-staging.sogni.ai
  sogni config list""",
)


@app.command("path")
def path_cmd(ctx: typer.Context) -> None:
    """Print the config folder."""
    out(str(settings(ctx, lenient=True).config_dir))


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the effective settings and where each comes from."""
    s = settings(ctx, lenient=True)
    rows = [
        ("profile", s.profile, ""),
        ("base_url", s.base_url, s.sources.get("base_url", "")),
        ("api_key", "set" if s.api_key else "not set", s.api_key_source or ""),
        ("token_type", s.token_type or "(server default)", ""),
        ("output_dir", str(s.output_dir) if s.output_dir else "(current folder)", ""),
        ("timeout", f"{s.read_timeout:g}" if s.timeout_set else "connect 10, read 300", ""),
        ("max_retries", str(s.max_retries), ""),
    ]
    for key, value in sorted(s.profile_data.items()):
        if key not in {r[0] for r in rows}:
            rows.append((key, str(value), f"profile {s.profile}"))
    width = max(len(r[0]) for r in rows)
    for key, value, source in rows:
        out(f"{key.ljust(width)}  {value}" + (f"  ({source})" if source else ""))


@app.command("get")
def get_cmd(ctx: typer.Context, key: str = typer.Argument(..., help="Setting name.")) -> None:
    """Print one setting of the current profile."""
    s = settings(ctx, lenient=True)
    if key not in PROFILE_KEYS:
        coerce_profile_value(key, "")  # raises the 'unknown setting' error with suggestions
    value = s.profile_data.get(key)
    if value is None:
        raise UsageError(f"{key} is not set in profile {s.profile!r}.", hint=f"sogni config set {key} VALUE")
    out(str(value))


@app.command("set")
def set_cmd(ctx: typer.Context, key: str = typer.Argument(...), value: str = typer.Argument(...)) -> None:
    """Set a setting in the current profile."""
    s = settings(ctx, new_profile_ok=True)
    coerced = coerce_profile_value(key, value)
    data = load_config_file(s.config_dir)
    profiles = data.setdefault("profiles", {})
    profiles.setdefault(s.profile, {})[key] = coerced
    if s.dry_run:
        out(f"Would set {key} in profile {s.profile!r} ({s.config_dir / 'config.yaml'}); nothing written (--dry-run).")
        return
    path = save_config_file(s.config_dir, data)
    err(f"Set {key} in profile {s.profile!r} ({path}).")


@app.command("unset")
def unset_cmd(ctx: typer.Context, key: str = typer.Argument(...)) -> None:
    """Remove a setting from the current profile."""
    s = settings(ctx, lenient=True)
    data = load_config_file(s.config_dir)
    prof = (data.get("profiles") or {}).get(s.profile) or {}
    if key not in prof:
        raise UsageError(f"{key} is not set in profile {s.profile!r}.")
    del prof[key]
    if s.dry_run:
        out(f"Would remove {key} from profile {s.profile!r}; nothing written (--dry-run).")
        return
    save_config_file(s.config_dir, data)
    err(f"Removed {key} from profile {s.profile!r}.")
