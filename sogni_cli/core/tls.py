"""One TLS context for the whole process, with its CA bundle loaded on the first TLS connection.

Every HTTP client the CLI makes (the API client, the media downloader, uploads) is given :func:`context`
instead of letting httpx build its own: httpx loads a CA bundle whenever a client is created (tens of
milliseconds), even for a plain ``http://`` base URL that never uses TLS, and once more for every client.

Verification is never weakened: the context requires a certificate and checks the host name from the start;
until its CA bundle is loaded it trusts nothing, and the bundle is loaded (once, under a lock) just before the
first socket or memory BIO is wrapped. The bundle is the one httpx would use: ``SSL_CERT_FILE`` or
``SSL_CERT_DIR`` when set, otherwise certifi's.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_LOCK = threading.Lock()
_CONTEXT: Any = None


def _load(ctx: Any) -> None:
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = None if cafile else (os.environ.get("SSL_CERT_DIR") or None)
    if cafile or capath:
        ctx.load_verify_locations(cafile=cafile, capath=capath)
        return
    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx brings certifi
        ctx.load_default_certs()
        return
    ctx.load_verify_locations(cafile=certifi.where())


def _make() -> Any:
    import ssl

    class LazyContext(ssl.SSLContext):
        """An ``SSLContext`` that loads its CA bundle just before its first use."""

        loaded = False

        def ensure_loaded(self) -> None:
            if self.loaded:
                return
            with _LOCK:
                if not self.loaded:
                    _load(self)
                    self.loaded = True

        def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
            self.ensure_loaded()
            return super().wrap_socket(*args, **kwargs)

        def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
            self.ensure_loaded()
            return super().wrap_bio(*args, **kwargs)

    ctx = LazyContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname, as the default context
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    return ctx


def context() -> Any:
    """The process's TLS context (made on the first call; its CA bundle loaded on its first use)."""
    global _CONTEXT
    if _CONTEXT is None:
        with _LOCK:
            if _CONTEXT is None:
                _CONTEXT = _make()
    return _CONTEXT


def loaded() -> Any:
    """The process's TLS context with its CA bundle loaded now (for code that hands it on where the lazy
    load cannot follow)."""
    ctx = context()
    ctx.ensure_loaded()
    return ctx


def ca_loaded() -> bool:
    """Whether this process has loaded its CA bundle yet."""
    return _CONTEXT is not None and bool(_CONTEXT.loaded)
