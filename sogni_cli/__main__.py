"""Entry point: the one place that turns exceptions into exit codes (contract §4)."""

from __future__ import annotations

import errno
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
    return [s for s in found if len(s) >= 8]


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


#: errno values of an ordinary environment problem (a full disk, a read-only or missing folder, no
#: permission), reported as one error line with exit 2, never as a bug.
_ENVIRONMENT_ERRNOS = frozenset(getattr(errno, n) for n in (
    "ENOSPC", "EDQUOT", "EFBIG", "EIO", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EISDIR", "ENAMETOOLONG", "ENOENT",
    "EEXIST", "ELOOP", "ENXIO", "ENODEV", "EBUSY", "ETXTBSY", "EXDEV", "EMFILE", "ENFILE", "EINVAL",
) if hasattr(errno, n))


def _stdout_failing() -> bool:
    """Whether standard output itself cannot take what was written to it (a full disk, a dead device)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return True
    return False


def _environment_error(exc: OSError) -> tuple[str, str | None]:
    reason = exc.strerror or str(exc)
    if exc.filename:
        hint = None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "Choose a folder you can write to."
        return f"Cannot use {exc.filename}: {reason}", hint
    return f"Cannot write the output: {reason}", None


def _undecodable_argument(args: list[str]) -> str | None:
    """The command-line argument that is not valid UTF-8 (the system decodes it with lone surrogates) and is
    not the name of an existing file (file names on POSIX are bytes, and are used as they are)."""
    for i, arg in enumerate(args):
        if any("\udc80" <= ch <= "\udcff" for ch in arg):
            value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
            if os.path.lexists(value):
                continue
            prev = args[i - 1] if i > 0 else ""
            shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            if value is not arg:
                return f"the value of {arg.split('=', 1)[0]} ('{shown}')"
            if prev.startswith("-") and prev != "--" and "=" not in prev:
                return f"the value of {prev} ('{shown}')"
            return f"argument {i + 1} ('{shown}')"
    return None


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

    from .core.errors import DryRunDone, ExitCode, ExitStatus, SogniError, StdoutClosed

    undecodable = _undecodable_argument(args)
    if undecodable is not None:
        # Checked before anything runs: such text cannot be sent, and must not be sent mangled.
        _print_error(f"{undecodable[:1].upper()}{undecodable[1:]} is not valid UTF-8 text.",
                     "Pass text as UTF-8 (check the terminal's or the script's encoding).")
        return int(ExitCode.USAGE)

    try:
        from . import fastlane

        code = fastlane.run(args)
        return code if code is not None else _framework(args)
    except ExitStatus as exc:
        return exc.code
    except DryRunDone:
        return 0
    except SogniError as exc:
        _print_error(exc.message, exc.hint)
        if _debug():
            import traceback

            from .core.secrets import redact

            sys.stderr.write(redact(traceback.format_exc()))
        return int(exc.exit_code)
    except KeyboardInterrupt:
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
    except UnicodeError as exc:
        _print_error(f"Text that is not valid UTF-8 ({exc.__class__.__name__}: {getattr(exc, 'reason', exc)}).",
                     "Files, arguments and standard input are read as UTF-8.")
        return int(ExitCode.USAGE)
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            return _bug(exc)
        stdout_broken = not exc.filename and _stdout_failing()
        message, hint = _environment_error(exc)
        _print_error(message, hint)
        if stdout_broken:
            _quiet_stdout()
        return int(ExitCode.USAGE)
    except SystemExit as exc:  # pragma: no cover - click internals
        status = exc.code
        return status if isinstance(status, int) else (0 if status is None else 1)
    except Exception as exc:  # a bug
        return _bug(exc)


def _framework(args: list[str]) -> int:
    """Parse and run ``args`` with the command-line framework; its own outcomes (an exit, a usage error, help
    asked for by giving no arguments, an interruption) become exit codes or our exceptions here."""
    import typer.main

    from .app import app
    from .cli_errors import Abort, ClickException, Exit, is_no_args_help

    try:
        rv = typer.main.get_command(app).main(args=args, prog_name="sogni", standalone_mode=False)
    except Exit as exc:
        return int(exc.exit_code or 0)
    except ClickException as exc:
        if is_no_args_help(exc):
            sys.stdout.write(exc.ctx.get_help() + "\n")
            return 0
        ctx = getattr(exc, "ctx", None)
        _print_error(exc.format_message(), f"See `{ctx.command_path} --help`." if ctx is not None else None)
        return int(getattr(exc, "exit_code", 2) or 2)
    except Abort:
        raise KeyboardInterrupt() from None
    return int(rv) if isinstance(rv, int) else 0


def _bug(exc: BaseException) -> int:
    _print_error(f"Internal error: {exc.__class__.__name__}: {exc}",
                 "This is a bug in sogni; run again with SOGNI_DEBUG=1 for a traceback and report it.")
    if _debug():
        import traceback

        from .core.secrets import redact

        sys.stderr.write(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))
    return 1


def _survive_code_pages() -> None:
    """A console or pipe in a legacy code page (cp1252, cp437…) cannot show every character: what it cannot
    show is written as an escape (``\\u65e5``) instead of ending the run with an encoding error."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
        if encoding in ("utf-8", "utf8", "utf-8-sig") or not hasattr(stream, "reconfigure"):
            continue
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # pragma: no cover - a stream that cannot be changed
            pass


def main(argv: list[str] | None = None) -> None:
    # Started with a closed stdin/stdout/stderr (`sogni … >&-`): read nothing, write nowhere, never crash.
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))
    _survive_code_pages()
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
    except OSError as exc:  # a full disk behind stdout: what was written is lost, and the run says so
        _print_error(f"Cannot write to standard output: {exc.strerror or exc}")
        _quiet_stdout()
        code = 2 if code == 0 else code
    except ValueError:  # pragma: no cover - stdout closed by the program
        pass
    sys.exit(code)


if __name__ == "__main__":
    main()
