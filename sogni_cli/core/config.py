"""Settings: command-line flag > environment > profile in config.yaml > built-in default (contract §2).

Also the ``credentials`` file (mode 0600). Nothing here imports typer, rich or httpx.
"""

from __future__ import annotations

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
TOKEN_TYPES = ("spark", "sogni", "auto")

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


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SOGNI_CONFIG_DIR"):
        return Path(env["SOGNI_CONFIG_DIR"]).expanduser()
    if sys.platform == "win32":  # pragma: no cover - platform specific
        base = env.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "sogni"
    if sys.platform == "darwin":  # pragma: no cover - platform specific
        return Path.home() / "Library" / "Application Support" / "sogni"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
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


def check_key(key: str, source: str) -> None:
    """A key must be one printable ASCII token: anything else cannot go in a header (and is never echoed)."""
    if not key or any(not (0x21 <= ord(c) <= 0x7E) for c in key):
        raise UsageError(f"The API key from {source} is not valid: it must be one word of printable ASCII "
                         "characters (no spaces, line breaks or other characters).",
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


def load_config_file(directory: Path) -> dict[str, Any]:
    path = directory / "config.yaml"
    if not path.exists():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise UsageError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with a 'profiles' key.")
    return data


def save_config_file(directory: Path, data: dict[str, Any]) -> Path:
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    from .filewrite import write_atomic

    return write_atomic(path, yaml.safe_dump(data, sort_keys=True))


def profile_values(data: dict[str, Any], profile: str) -> dict[str, Any]:
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        return {}
    values = profiles.get(profile) or {}
    return values if isinstance(values, dict) else {}


def _checked_profile(directory: Path, profile: str, values: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """Profile values of the right type (a hand-edited config.yaml is checked before anything is sent).
    Not strict: a bad value is left out instead of being an error."""
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
    if stat.S_IMODE(path.lstat().st_mode) & 0o077:
        os.chmod(path, 0o600)


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
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}") from None


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
        path.unlink(missing_ok=True)
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
    data = load_config_file(directory)
    # The config and auth commands must still work on a broken profile, to mend it: bad values are skipped.
    pvals = _checked_profile(directory, prof, profile_values(data, prof), strict=not (lenient or new_profile_ok))
    if profile and not new_profile_ok and profile != "default" and profile not in (data.get("profiles") or {}):
        # An explicitly named profile that does not exist is a mistake, not an empty profile.
        if stored_key(directory, prof) is None:
            raise UsageError(f"Unknown profile {profile!r}.", hint="Create it with `sogni --profile NAME config set KEY VALUE`.")
    s = Settings(config_dir=directory, profile=prof, profile_data=pvals, quiet=quiet, verbose=verbose,
                 dry_run=dry_run, emulator=emulator)
    src = s.sources

    # base URL
    if base_url:
        s.base_url, src["base_url"] = validate_base_url(base_url), "flag"
    elif env.get("SOGNI_BASE_URL") or env.get("SOGNI_API_BASE_URL"):
        name = "SOGNI_BASE_URL" if env.get("SOGNI_BASE_URL") else "SOGNI_API_BASE_URL"
        s.base_url, src["base_url"] = validate_base_url(env[name]), f"env {name}"
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
        if tt not in TOKEN_TYPES:
            raise UsageError(f"Invalid token type {tt!r}: one of {', '.join(TOKEN_TYPES)}.")
        s.token_type = tt

    # output folder
    od = env.get("SOGNI_OUTPUT_DIR") or pvals.get("output_dir")
    if od:
        s.output_dir = Path(str(od)).expanduser()

    # timeout
    t: Any = timeout if timeout is not None else (env.get("SOGNI_TIMEOUT") or pvals.get("timeout"))
    if t not in (None, ""):
        tv = _parse_float("timeout", t)
        s.connect_timeout = s.read_timeout = tv
        s.timeout_set = True

    # retries
    r: Any = max_retries if max_retries is not None else env.get("SOGNI_MAX_RETRIES", pvals.get("max_retries"))
    if r not in (None, ""):
        s.max_retries = _parse_int("max retries", r, 0)

    # colour: --no-color / NO_COLOR off, FORCE_COLOR on, else auto
    if no_color or env.get("NO_COLOR"):
        s.color = False
    elif env.get("FORCE_COLOR"):
        s.color = True
    return s
