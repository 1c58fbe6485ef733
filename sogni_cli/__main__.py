"""Entry point: the one place that turns exceptions into exit codes (contract §4)."""

from __future__ import annotations

import os
import signal
import sys


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so clean-up (workflow cancel, .part files) runs like Ctrl-C."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in subprocess tests
    raise Terminated()


def _debug() -> bool:
    return os.environ.get("SOGNI_DEBUG", "") not in ("", "0") or any(a in ("-v", "--verbose") for a in sys.argv[1:3])


def _secrets(argv: list[str]) -> list[str]:
    found = [os.environ.get("SOGNI_API_KEY", "").strip()]
    for i, a in enumerate(argv):
        if a == "--api-key" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif a.startswith("--api-key="):
            found.append(a.split("=", 1)[1])
    return [s for s in found if len(s) >= 4]


def _print_error(message: str, hint: str | None = None) -> None:
    from .core.term import clean_text
    from .core.secrets import redact

    message = clean_text(redact(message))
    hint = clean_text(redact(hint)) if hint else hint
    try:
        sys.stderr.write(f"Error: {message}\n")
        if hint:
            sys.stderr.write(f"Hint: {hint}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # pragma: no cover - stderr gone
        pass


def _quiet_stdout() -> None:
    """After a closed stdout: point fd 1 at /dev/null so the interpreter's final flush stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover
        pass


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code; what the command logged is written once the code is known."""
    code = _run(argv)
    history = sys.modules.get("sogni_cli.core.history")  # imported only by commands that log
    if history is not None:
        history.flush(code)
    return code


def _run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code. Exceptions never escape except SystemExit from click internals."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--version"]:  # prints nothing but the version: answered before anything else is imported
        from . import __version__

        sys.stdout.write(f"sogni {__version__}\n")
        return 0
    from .core import secrets

    for secret in _secrets(args):
        secrets.register(secret)

    from .core.errors import DryRunDone, ExitCode, SogniError

    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer.exceptions import Abort, Exit as ClickExit

    import typer.main

    from .app import StdoutClosed, app

    try:
        command = typer.main.get_command(app)
        rv = command.main(args=args, prog_name="sogni", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else 0
    except DryRunDone:
        return 0
    except SogniError as exc:
        _print_error(exc.message, exc.hint)
        if _debug():
            import traceback

            from .core.secrets import redact

            sys.stderr.write(redact(traceback.format_exc()))
        return int(exc.exit_code)
    except ClickExit as exc:
        return int(exc.exit_code or 0)
    except NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 0
    except ClickException as exc:
        msg = exc.format_message()
        ctx = getattr(exc, "ctx", None)
        hint = None
        if ctx is not None:
            hint = f"See `{ctx.command_path} --help`."
        _print_error(msg, hint)
        return int(getattr(exc, "exit_code", 2) or 2)
    except (KeyboardInterrupt, Abort):
        try:
            sys.stderr.write("\nInterrupted.\n")
        except (OSError, ValueError):  # pragma: no cover
            pass
        return int(ExitCode.INTERRUPTED)
    except Terminated:
        return int(ExitCode.TERMINATED)
    except (BrokenPipeError, StdoutClosed):
        _quiet_stdout()
        return 141
    except SystemExit as exc:  # pragma: no cover - click internals
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:  # a bug
        _print_error(f"Internal error: {exc.__class__.__name__}: {exc}",
                     "This is a bug in sogni; run again with SOGNI_DEBUG=1 for a traceback and report it.")
        if _debug():
            import traceback

            from .core.secrets import redact

            sys.stderr.write(redact(traceback.format_exc()))
        return int(ExitCode.INTERNAL)


def main(argv: list[str] | None = None) -> None:
    # Started with a closed stdin/stdout/stderr (`sogni … >&-`): read nothing, write nowhere, never crash.
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - not the main thread
        pass
    code = run(argv)
    import gc

    gc.freeze()  # what is left is freed by the process exit: skip the final collections over it
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = 141 if code == 0 else code
    except (OSError, ValueError):  # pragma: no cover
        pass
    sys.exit(code)


if __name__ == "__main__":
    main()
