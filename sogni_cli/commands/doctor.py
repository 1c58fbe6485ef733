"""`sogni doctor`: check the installation, the settings, the key and the API, one line per check."""

from __future__ import annotations

import typer

from ..core.errors import SogniError
from ..render.output import out, out_json
from ._common import make_app, settings

app = make_app(
    help="Check the installation, settings, key and API connection (one line per check).",
    epilog="""\b
Examples:
  sogni doctor
  sogni doctor --json
  sogni doctor --emulator      (also run the network checks against a local emulator, for comparison)
  sogni --emulator doctor      (check everything against the local emulator)""",
)

MAX_WAIT = 10.0


@app.command()
def doctor(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="One JSON document."),
    emulator: bool = typer.Option(False, "--emulator", help="Also run the network checks against a local emulator, for comparison."),
) -> None:
    """Versions, config folder and credentials permissions, the key (masked) and where it comes from, whether
    the API accepts it, how fast the base URL answers, clock skew, models cache age. Exit 1 when a check fails."""
    from ..api.client import make_client
    from ..api.doctor import env_note, failed, run_checks

    s = settings(ctx, lenient=True)
    s.max_retries = 0
    s.connect_timeout = min(s.connect_timeout, MAX_WAIT)
    s.read_timeout = min(s.read_timeout, MAX_WAIT)
    api = make_client(s, require_key=False)
    ctx.find_root().call_on_close(api.close)
    checks = run_checks(s, api, compare_emulator=emulator and not s.emulator)
    bad = failed(checks)
    if json_out:
        out_json({"ok": not bad, "checks": [c.to_json() for c in checks],
                  "failed": [c.name for c in bad]})
    else:
        from ..core.term import clean_text

        width = max(len(c.name) for c in checks)
        for c in checks:
            out(clean_text(f"{c.verdict:<4}  {c.name:<{width}}  {c.detail}"))
    if bad:
        note = env_note() if any(c.name == "base URL" for c in bad) else None
        raise SogniError("doctor: " + ", ".join(c.name for c in bad) + (" check failed" if len(bad) == 1
                                                                         else " checks failed"),
                         hint=note, exit_code=_exit_code(bad[0].name))


def _exit_code(name: str) -> int:
    """The exit code of the first failed check: the key 3, the connection 5, the local setup 2."""
    from ..core.errors import ExitCode

    if name.startswith("key"):
        return int(ExitCode.AUTH)
    if name.startswith(("base URL", "clock")):
        return int(ExitCode.UNAVAILABLE)
    return int(ExitCode.USAGE)
