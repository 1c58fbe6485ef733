"""A local stand-in for the Sogni API, for tests and offline use.

It speaks the shapes of the Sogni HTTP API (chat completions, models, creative-agent workflows with
SSE progress, synchronous composition tools, presigned uploads, media downloads with ``Range``) on
loopback only, with real media made on the fly and scriptable faults.

    from sogni_cli import emulator
    with emulator.start(step_seconds=0.05) as emu:
        ...  # point the client at emu.base_url; inspect emu.requests; emu.script([...])

Admin routes for other processes: ``POST /_emulator/faults`` (``{"faults": [...]}``),
``GET /_emulator/requests`` (``{"requests": [...]}``), ``POST /_emulator/reset``, ``POST /_emulator/config``
(``{"tool_names": "flat", "balance": 50, "subscription": {...}}``).
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, TextIO

if TYPE_CHECKING:  # pragma: no cover
    from .server import Emulator

__all__ = ["Emulator", "start", "serve"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    raise AttributeError(name)


def start(host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0, step_seconds: float = 0.5,
          quiet: bool = True, require_auth: bool = True, keepalive: float = 1.0,
          out: TextIO | None = None, fault_rates: dict[str, float] | None = None, seed: int = 0,
          max_active: int | None = None, tool_names: str = "prefixed", balance: float | None = None) -> "Emulator":
    """Start an emulator in a daemon thread and return it (``port=0``: a free port). ``max_active`` limits the
    workflows queued or running at once (a start beyond it is a 409 "too many active workflows").

    Raises :class:`~sogni_cli.core.errors.UsageError` (also a ``ValueError``) for a non-loopback host.
    """
    from .server import Emulator

    emu = Emulator(host, port, latency=latency, step_seconds=step_seconds, quiet=quiet, require_auth=require_auth,
                   keepalive=keepalive, out=out, fault_rates=fault_rates, seed=seed, tool_names=tool_names,
                   balance=balance)
    emu.store.max_active = max_active
    return emu.start()


def serve(host: str = "127.0.0.1", port: int = 8787, *, latency: float = 0.0, step_seconds: float = 0.5,
          out: TextIO = sys.stderr, quiet: bool = False, require_auth: bool = True,
          fault_rates: dict[str, float] | None = None, seed: int = 0, max_active: int | None = None,
          on_ready: Callable[[str], None] | None = None, stop: threading.Event | None = None,
          tool_names: str = "prefixed", balance: float | None = None, retry_after: float = 1.0) -> None:
    """Serve in the foreground until Ctrl-C (or until the emulator is stopped).

    Writes a start line and (unless ``quiet``) one line per request to ``out``; nothing to stdout.
    ``on_ready(base_url)`` is called once the port is bound, so a caller can print the URL; setting
    ``stop`` (a ``threading.Event``) ends serving like Ctrl-C does.
    """
    from .server import Emulator

    emu = Emulator(host, port, latency=latency, step_seconds=step_seconds, quiet=quiet, require_auth=require_auth,
                   out=out, fault_rates=fault_rates, seed=seed, tool_names=tool_names, balance=balance,
                   retry_after=retry_after)
    emu.store.max_active = max_active
    emu.start()
    try:
        print(f"Sogni emulator listening on {emu.base_url} (Ctrl-C to stop)", file=out, flush=True)
        if on_ready is not None:
            on_ready(emu.base_url)
        while not emu.stopping.wait(0.2):
            if stop is not None and stop.is_set():
                break
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
