"""`sogni emulator`: serve the local stand-in for the API in the foreground (contract §10)."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.errors import UsageError
from ..render.output import out
from ._common import make_app

app = make_app(
    help="Serve the local stand-in for the Sogni API in the foreground (loopback only, no key).",
    epilog="""\b
Examples:
  sogni emulator                       # then, in another shell:
  export SOGNI_BASE_URL=http://127.0.0.1:8787 SOGNI_API_KEY=any
  sogni chat "hello"
  sogni emulator --port 0 --step-seconds 0.1 --latency 0.05
  sogni emulator --rate-429 0.2 --rate-reset 0.05 --seed 7   (a flaky API, repeatably)
  sogni emulator --max-active 4          (an account that runs 4 workflows at once)

\b
The first line on stdout is the SOGNI_BASE_URL to use. Requests are logged
on stderr (-q for none). Test hooks: POST /_emulator/faults, GET
/_emulator/requests, POST /_emulator/reset.""",
)


@app.command()
def emulator(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to bind (127.0.0.1, ::1 or localhost)."),
    port: int = typer.Option(8787, "--port", help="Port (0: any free port)."),
    latency: float = typer.Option(0.0, "--latency", help="Seconds added to every response."),
    step_seconds: float = typer.Option(0.5, "--step-seconds", help="Seconds each workflow step takes."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Accept requests without an API key."),
    rate_429: float = typer.Option(0.0, "--rate-429", help="Fraction of API requests answered 429 (Retry-After: 1)."),
    rate_503: float = typer.Option(0.0, "--rate-503", help="Fraction of API requests answered 503 (Retry-After: 1)."),
    rate_reset: float = typer.Option(0.0, "--rate-reset", help="Fraction of answers cut off mid-stream or mid-body."),
    retry_after: float = typer.Option(1.0, "--retry-after", help="Seconds of Retry-After on the random 429/503 answers."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random faults (the same seed, the same faults)."),
    max_active: Optional[int] = typer.Option(None, "--max-active", show_default=False,
                                             help="Account limit on workflows running at once (more: 409)."),
    tool_names: str = typer.Option("prefixed", "--tool-names", help="Default hosted tools as the brief names them (prefixed: sogni_generate_image) or as the SDK does (flat: generate_image)."),
    balance: float = typer.Option(10000.0, "--balance", help="Starting balance per token type, in capacity units."),
    quiet_flag: bool = typer.Option(False, "-q", "--quiet", help="Do not log requests on stderr."),
) -> None:
    """Serve the emulator until Ctrl-C; prints the base URL on stdout."""
    import sys

    from .. import emulator as emu
    from ._common import settings

    if latency < 0 or step_seconds < 0 or retry_after < 0:
        raise UsageError("--latency, --step-seconds and --retry-after must be 0 or more.")
    rates = {"429": rate_429, "503": rate_503, "reset": rate_reset}
    if any(not 0 <= r <= 1 for r in rates.values()) or sum(rates.values()) > 1:
        raise UsageError("Fault rates are fractions between 0 and 1 (and add up to at most 1).")
    if max_active is not None and max_active < 1:
        raise UsageError("--max-active must be 1 or more.")
    if tool_names not in ("prefixed", "flat"):
        raise UsageError(f"Invalid --tool-names {tool_names!r}: prefixed or flat.")
    if balance < 0:
        raise UsageError("--balance must be 0 or more.")
    if not 0 <= port <= 65535:
        raise UsageError(f"Invalid --port {port}.")
    quiet = quiet_flag or settings(ctx).quiet

    def ready(base_url: str) -> None:
        out(f"SOGNI_BASE_URL={base_url}")

    try:
        emu.serve(host, port, latency=latency, step_seconds=step_seconds, out=sys.stderr, quiet=quiet,
                  require_auth=not no_auth, on_ready=ready, fault_rates=rates, seed=seed, tool_names=tool_names,
                  balance=balance, max_active=max_active, retry_after=retry_after)
    except OSError as exc:
        raise UsageError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
