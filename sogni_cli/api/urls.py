"""Which media links may be fetched at all: https anywhere, plain http only to this machine."""

from __future__ import annotations

def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in ipaddress.IPv4Network("127.0.0.0/8")
    return ip == ipaddress.IPv6Address("::1")

def media_url_problem(url: str) -> str | None:
    """Why ``url`` may not be fetched (None when it may): https anywhere; http only to this machine
    (127.0.0.0/8, ::1, localhost); no other scheme; no credentials in the URL."""
    import httpx

    try:
        u = httpx.URL(url)
        _ = u.port
    except Exception:  # httpx.InvalidURL and friends
        return "malformed URL"
    scheme = u.scheme.lower()
    if not u.host:
        return "URL has no host"
    if u.userinfo:
        return "URL carries credentials"
    if scheme == "https":
        return None
    if scheme == "http":
        if _is_loopback(u.host):
            return None
        return "plain http:// is allowed only to this machine (127.0.0.1, ::1, localhost); https is required"
    return f"unsupported URL scheme {scheme + ':' if scheme else '(none)'}"
