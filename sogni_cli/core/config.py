"""Settings: command-line flag > environment > profile in config.yaml > built-in default (contract §2).

Also the ``credentials`` file (mode 0600). Nothing here imports typer, rich or httpx.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .errors import AuthError, UsageError

if TYPE_CHECKING:
    import configparser

DEFAULT_BASE_URL = "https://api.sogni.ai"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 300.0
DEFAULT_MAX_RETRIES = 2
from .choices import TOKEN_TYPES  # noqa: E402 - re-exported

# Keys a profile in config.yaml may hold, with the type each is parsed to.
PROFILE_KEYS: dict[str, type] = {
    "base_url": str,
    "model": str,
    "image_model": str,
    "token_type": str,
    "output_dir": str,
    "timeout": float,
    "max_retries": int,
    "name": str,
    "on_exists": str,
    "concurrency": int,
    "media_hosts": str,  # extra hosts chat may fetch media links from (comma-separated)
    "logs": bool,  # off: nothing is written to logs.db
}


def _home() -> Path:
    try:
        return Path.home()
    except (RuntimeError, KeyError, OSError):
        raise UsageError("Cannot find the home folder (HOME is not set), so there is no config folder.",
                         hint="Set SOGNI_CONFIG_DIR to a folder for sogni's settings.") from None


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SOGNI_CONFIG_DIR"):
        try:
            return Path(env["SOGNI_CONFIG_DIR"]).expanduser()
        except RuntimeError:  # "~/x" without a home folder
            return _home() / env["SOGNI_CONFIG_DIR"]
    if sys.platform == "win32":  # pragma: no cover - platform specific
        base = env.get("APPDATA") or str(_home() / "AppData" / "Roaming")
        return Path(base) / "sogni"
    if sys.platform == "darwin":  # pragma: no cover - platform specific
        return _home() / "Library" / "Application Support" / "sogni"
    base = env.get("XDG_CONFIG_HOME") or str(_home() / ".config")
    return Path(base) / "sogni"


def validate_base_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"Invalid base URL {url!r}: it must start with http:// or https:// and name a host.",
            hint="For example --base-url https://api.sogni.ai",
        )
    url = url.strip().rstrip("/")
    if parts.path.rstrip("/").lower().endswith("/v1"):
        # The OpenAI-style base (https://api.sogni.ai/v1): the routes already start with /v1.
        url = url[: url.lower().rfind("/v1")]
        if url not in _V1_WARNED:
            _V1_WARNED.add(url)
            from .term import warn

            warn(f"the base URL ends in /v1; using {url} (the CLI adds /v1 to every route itself).")
    return url


_V1_WARNED: set[str] = set()


#: Sogni API keys are long random tokens; anything shorter is a mistake (and could not be redacted without
#: blanking out ordinary words, header names and paths that happen to contain it).
MIN_KEY_LENGTH = 8


def check_key(key: str, source: str) -> None:
    """A key must be one printable ASCII token: anything else cannot go in a header (and is never echoed)."""
    if not key or any(not (0x21 <= ord(c) <= 0x7E) for c in key):
        raise UsageError(f"The API key from {source} is not valid: it must be one word of printable ASCII "
                         "characters (no spaces, line breaks or other characters).",
                         hint="Copy the key again from the dashboard; `sogni auth login` reads it from stdin.")
    if len(key) < MIN_KEY_LENGTH:
        raise UsageError(f"The API key from {source} is not a Sogni API key: it is {len(key)} characters long "
                         f"(keys have at least {MIN_KEY_LENGTH}).",
                         hint="Copy the key again from the dashboard; `sogni auth login` reads it from stdin.")


def _parse_float(name: str, value: Any) -> float:
    import math

    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"Invalid {name} {value!r}: expected a number of seconds.") from None
    if not math.isfinite(f):
        raise UsageError(f"Invalid {name} {value!r}: expected a finite number of seconds.")
    if f <= 0:
        raise UsageError(f"Invalid {name} {value!r}: must be greater than 0.")
    return f


def _parse_int(name: str, value: Any, minimum: int = 0) -> int:
    try:
        i = int(str(value).strip())
    except (TypeError, ValueError):
        raise UsageError(f"Invalid {name} {value!r}: expected a whole number.") from None
    if i < minimum:
        raise UsageError(f"Invalid {name} {value!r}: must be at least {minimum}.")
    return i


# ----------------------------------------------------------------------------- config.yaml


def read_config_text(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ENOENT):
            return None
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text (byte {exc.start + 1} cannot be decoded).",
                         hint="Save the file as UTF-8, or move it away and use `sogni config set`.") from None


_warned: set[str] = set()


def reset_warnings() -> None:
    """Forget which warnings were given (each is given once per process; tests run many commands in one)."""
    _warned.clear()


def _warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        from .term import warn

        warn(text)


def parse_config(path: Path, text: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise UsageError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with a 'profiles' key.")
    return data


def _suggest(key: str, known: Any) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _warn_unknown_keys(path: Path, data: dict[str, Any]) -> None:
    """A misspelled key in config.yaml is not silently ignored: a warning names it (once per process)."""
    for key in data:
        if key != "profiles":
            _warn_once(f"{path}: unknown top-level key {key!r}{_suggest(key, ['profiles'])}; it is ignored.")
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        return
    for name, values in profiles.items():
        if not isinstance(values, dict):
            continue
        for key in values:
            if key not in PROFILE_KEYS:
                _warn_once(f"{path}: profile {name!r}: unknown setting {key!r}{_suggest(key, PROFILE_KEYS)}; "
                           "it is ignored.")


def load_config_file(directory: Path) -> dict[str, Any]:
    path = directory / "config.yaml"
    text = read_config_text(path)
    if text is None:
        return {}
    data = parse_config(path, text)
    _warn_unknown_keys(path, data)
    return data


def profile_values(data: dict[str, Any], profile: str) -> dict[str, Any]:
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        return {}
    values = profiles.get(profile) or {}
    return values if isinstance(values, dict) else {}


def _checked_profile(directory: Path, profile: str, values: dict[str, Any], *, strict: bool = True,
                     invalid: dict[str, tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """Profile values of the right type (a hand-edited config.yaml is checked before anything is sent).
    Not strict: a bad value is left out instead of being an error (and noted in ``invalid``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in PROFILE_KEYS or value is None:
            out[key] = value
            continue
        kind = PROFILE_KEYS[key]
        try:
            if kind is str and not isinstance(value, str):
                raise UsageError(f"{directory / 'config.yaml'}: profile {profile!r}: {key} must be text, "
                                 f"got {value!r}.", hint=f"sogni config set {key} VALUE")
            out[key] = coerce_profile_value(key, str(value)) if kind is not str or key in ("base_url", "token_type") \
                else value
        except UsageError as exc:
            if invalid is not None:
                invalid[key] = (str(value), f"profile {profile}", exc.message)
            if strict:
                if not exc.message.startswith(str(directory)):
                    exc.message = f"{directory / 'config.yaml'}: profile {profile!r}: {exc.message}"
                    exc.hint = exc.hint or f"sogni config set {key} VALUE"
                raise
    return out


def coerce_profile_value(key: str, value: str) -> Any:
    if key not in PROFILE_KEYS:
        import difflib

        close = difflib.get_close_matches(key, PROFILE_KEYS, n=1)
        raise UsageError(
            f"Unknown setting {key!r}.",
            hint=(f"Did you mean {close[0]!r}? " if close else "") + "Settings: " + ", ".join(sorted(PROFILE_KEYS)),
        )
    kind = PROFILE_KEYS[key]
    if key == "base_url":
        return validate_base_url(value)
    if key == "token_type" and value not in TOKEN_TYPES:
        raise UsageError(f"Invalid token_type {value!r}: one of {', '.join(TOKEN_TYPES)}.")
    if kind is bool:
        low = value.strip().lower()
        if low not in ("on", "off", "true", "false", "yes", "no", "1", "0"):
            raise UsageError(f"Invalid {key} {value!r}: on or off.")
        return low in ("on", "true", "yes", "1")
    if kind is float:
        return _parse_float(key, value)
    if kind is int:
        return _parse_int(key, value)
    return value


# ----------------------------------------------------------------------------- credentials


def credentials_path(directory: Path) -> Path:
    return directory / "credentials"


def _check_regular(path: Path) -> bool:
    """True when ``path`` is a regular file (not a link, folder or device); False when it does not exist."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else \
            "not a regular file"
        raise UsageError(f"{path} is {kind}; the credentials file must be a plain file.",
                         hint="Move it away, then `sogni auth login` creates a new one.")
    return True


def _secure(path: Path) -> None:
    """Tighten an existing credentials file to 0600 (never widen; never through a link)."""
    if not _check_regular(path):
        return
    mode = stat.S_IMODE(path.lstat().st_mode)
    if mode & 0o077:
        try:
            os.chmod(path, 0o600)
        except OSError as exc:
            # A read-only mount (a Kubernetes or Docker secret): the key is still the user's to use.
            _warn_once(f"{path} can be read by other users (mode {mode:04o}) and cannot be made private "
                       f"({exc.strerror or exc}); using it anyway.")


def read_credentials(directory: Path) -> configparser.ConfigParser:
    import configparser  # not on the start-up path of a key given in the environment

    parser = configparser.ConfigParser(interpolation=None)
    path = credentials_path(directory)
    if path.exists():
        _secure(path)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise UsageError(f"{path}: unreadable credentials file ({exc.__class__.__name__}).") from None
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not UTF-8 text.", hint="Move it away, then `sogni auth login` "
                             "creates a new one.") from None
        except OSError as exc:
            raise UsageError(f"Cannot read {path}: {exc.strerror or exc}") from None
    return parser


def stored_key(directory: Path, profile: str) -> str | None:
    parser = read_credentials(directory)
    if parser.has_option(profile, "api_key"):
        return parser.get(profile, "api_key").strip() or None
    return None


def write_credentials(directory: Path, parser: configparser.ConfigParser) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot create the config folder {directory}: {exc.strerror or exc}") from None
    path = credentials_path(directory)
    _check_regular(path)
    import io

    from .filewrite import write_atomic

    text = io.StringIO()
    parser.write(text)
    try:
        return write_atomic(path, text.getvalue(), mode=0o600)
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}",
                         hint="Point SOGNI_CONFIG_DIR at a writable folder, or use SOGNI_API_KEY.") from None


def store_key(directory: Path, profile: str, key: str) -> Path:
    parser = read_credentials(directory)
    if not parser.has_section(profile):
        parser.add_section(profile)
    parser.set(profile, "api_key", key)
    return write_credentials(directory, parser)


def remove_key(directory: Path, profile: str) -> bool:
    parser = read_credentials(directory)
    if not parser.has_option(profile, "api_key"):
        return False
    parser.remove_option(profile, "api_key")
    if not parser.options(profile):
        parser.remove_section(profile)
    path = credentials_path(directory)
    if parser.sections():
        write_credentials(directory, parser)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise UsageError(f"Cannot remove {path}: {exc.strerror or exc}",
                             hint="The config folder is read-only (a mounted secret?): remove the key where it "
                                  "is managed.") from None
    return True


# ----------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """Everything a command needs to know about where and how to talk to the API."""

    config_dir: Path
    profile: str = "default"
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    api_key_source: str | None = None
    token_type: str | None = None
    output_dir: Path | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    timeout_set: bool = False
    max_retries: int = DEFAULT_MAX_RETRIES
    quiet: bool = False
    verbose: bool = False
    color: bool | None = None
    dry_run: bool = False
    emulator: bool = False
    profile_data: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    #: settings whose value is not valid: key -> (value, where it comes from, why) (only when resolved leniently)
    invalid: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def require_key(self) -> str:
        if not self.api_key:
            raise AuthError(
                "No API key found.",
                hint="Set SOGNI_API_KEY, or store one with `sogni auth login` (reads the key from standard input).",
            )
        return self.api_key

    def default(self, key: str) -> Any:
        """A profile default (e.g. ``model``); a profile's value counts as set by the user."""
        return self.profile_data.get(key)

    def out_dir(self, flag: Path | None = None) -> Path:
        if flag is not None:
            return flag
        if self.output_dir is not None:
            return self.output_dir
        return Path(".")

    @property
    def secrets(self) -> list[str]:
        return [self.api_key] if self.api_key else []


def resolve(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    profile: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    quiet: bool = False,
    verbose: bool = False,
    no_color: bool = False,
    dry_run: bool = False,
    emulator: bool = False,
    env: Mapping[str, str] | None = None,
    new_profile_ok: bool = False,
    lenient: bool = False,
) -> Settings:
    env = os.environ if env is None else env
    directory = config_dir(env)
    prof = profile or env.get("SOGNI_PROFILE") or "default"
    prof_source = "--profile" if profile else "SOGNI_PROFILE" if env.get("SOGNI_PROFILE") else ""
    data = load_config_file(directory)
    invalid: dict[str, tuple[str, str, str]] = {}
    # The config and auth commands must still work on a broken profile, to mend it: bad values are skipped.
    pvals = _checked_profile(directory, prof, profile_values(data, prof), strict=not (lenient or new_profile_ok),
                             invalid=invalid)
    if prof_source and not new_profile_ok and prof != "default" and prof not in (data.get("profiles") or {}):
        # A named profile that does not exist is a mistake, not an empty profile (from the flag or the variable).
        if stored_key(directory, prof) is None:
            raise UsageError(f"Unknown profile {prof!r} (from {prof_source}).",
                             hint="Create it with `sogni --profile NAME config set KEY VALUE`.")
    s = Settings(config_dir=directory, profile=prof, profile_data=pvals, quiet=quiet, verbose=verbose,
                 dry_run=dry_run, emulator=emulator, invalid=invalid)
    src = s.sources

    def checked(key: str, value: Any, source: str, parse: Any) -> Any:
        """``parse(value)``; for the config commands (lenient) a bad value is noted, not raised."""
        try:
            return parse(value)
        except UsageError as exc:
            if not lenient:
                raise
            invalid[key] = (str(value), source, exc.message)
            return None

    # base URL
    if base_url:
        s.base_url, src["base_url"] = validate_base_url(base_url), "flag"
    elif env.get("SOGNI_BASE_URL") or env.get("SOGNI_API_BASE_URL"):
        name = "SOGNI_BASE_URL" if env.get("SOGNI_BASE_URL") else "SOGNI_API_BASE_URL"
        url = checked("base_url", env[name], f"env {name}", validate_base_url)
        if url:
            s.base_url, src["base_url"] = url, f"env {name}"
    elif pvals.get("base_url"):
        s.base_url, src["base_url"] = validate_base_url(str(pvals["base_url"])), f"profile {prof}"
    else:
        src["base_url"] = "default"

    # API key
    if api_key:
        s.api_key, s.api_key_source = api_key.strip(), "--api-key flag"
    elif env.get("SOGNI_API_KEY", "").strip():
        s.api_key, s.api_key_source = env["SOGNI_API_KEY"].strip(), "environment (SOGNI_API_KEY)"
    else:
        key = stored_key(directory, prof)
        if key:
            s.api_key, s.api_key_source = key, f"credentials file ({credentials_path(directory)}, profile {prof})"

    if s.api_key:
        from . import secrets

        secrets.register(s.api_key)

    # token type
    tt = env.get("SOGNI_TOKEN_TYPE") or pvals.get("token_type")
    if tt:
        s.token_type = checked("token_type", tt, "env SOGNI_TOKEN_TYPE" if env.get("SOGNI_TOKEN_TYPE")
                               else f"profile {prof}", lambda v: coerce_profile_value("token_type", str(v)))

    # output folder
    od = env.get("SOGNI_OUTPUT_DIR") or pvals.get("output_dir")
    if od:
        s.output_dir = Path(str(od)).expanduser()

    # timeout
    t: Any = timeout if timeout is not None else (env.get("SOGNI_TIMEOUT") or pvals.get("timeout"))
    if t not in (None, ""):
        tsrc = "--timeout" if timeout is not None else "env SOGNI_TIMEOUT" if env.get("SOGNI_TIMEOUT") \
            else f"profile {prof}"
        tv = checked("timeout", t, tsrc, lambda v: _parse_float("--timeout" if timeout is not None else "timeout", v))
        if tv is not None:
            s.connect_timeout = s.read_timeout = tv
            s.timeout_set = True

    # retries
    r: Any = max_retries if max_retries is not None else env.get("SOGNI_MAX_RETRIES", pvals.get("max_retries"))
    if r not in (None, ""):
        rsrc = "--max-retries" if max_retries is not None else "env SOGNI_MAX_RETRIES" \
            if env.get("SOGNI_MAX_RETRIES") is not None else f"profile {prof}"
        rv = checked("max_retries", r, rsrc, lambda v: _parse_int(
            "--max-retries" if max_retries is not None else "max_retries", v, 0))
        if rv is not None:
            s.max_retries = rv

    # colour: --no-color / NO_COLOR off, FORCE_COLOR on, else auto
    if no_color or env.get("NO_COLOR"):
        s.color = False
    elif env.get("FORCE_COLOR"):
        s.color = True
    return s
