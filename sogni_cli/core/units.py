"""Capacity units given on the command line (``--budget``, ``--approve-up-to``, ``--max-cost``).

An amount must be a finite number greater than zero; anything else is a usage error (exit 2) raised before
any request is sent. :func:`fmt_units` prints amounts without noise (``7``, ``2.5``).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import UsageError


def parse_units(value: Any, flag: str) -> float | None:
    """``value`` (text or number) as a positive amount of capacity units; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"{flag} must be a positive number of capacity units, got {value!r}.")
    try:
        amount = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (ValueError, OverflowError):
        raise UsageError(f"{flag} must be a positive number of capacity units, got {value!r}.",
                         hint=f"For example {flag} 50.") from None
    if not math.isfinite(amount) or amount <= 0:
        raise UsageError(f"{flag} must be a positive number of capacity units, got {value!r}.",
                         hint=f"For example {flag} 50.")
    return amount


def number(value: Any) -> float | None:
    """A finite number from an API answer (numbers or decimal strings), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        f = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            f = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def fmt_units(value: float | None) -> str:
    """``7`` for 7.0, ``2.5`` for 2.5, ``?`` for unknown."""
    if value is None:
        return "?"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")
