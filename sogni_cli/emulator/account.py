"""The emulated account: who it is, its balances, its subscription.

Balances are kept in capacity units (one unit costs one token of the chosen type). Media cost what the
workflow's preview says (image 1, audio 3, model 5, video 10 units per variation); the debit grows as each
artifact is made, so a balance read during a workflow goes down step by step. A workflow whose estimate is
more than what is left (after what running workflows will still take) waits with ``insufficient_credit``.

Routes: ``GET /v1/account/me``, ``GET /v4/account/balance``, ``GET /v1/subscriptions/status``,
``GET /v1/subscriptions/usage``. Shapes follow the official SDKs (``data`` envelope; balance amounts are
decimal strings).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .common import ApiFailure, iso

if TYPE_CHECKING:  # pragma: no cover
    from .server import Handler

TOKEN_TYPES = ("spark", "sogni")
DEFAULT_BALANCE = 10000.0


def _amount(value: float) -> str:
    return f"{value:.2f}"


class Account:
    """Balances per token type and the subscription. ``spent`` returns (made, still to make) per token type."""

    def __init__(self, balance: float = DEFAULT_BALANCE, wall: Callable[[], float] = time.time):
        self._lock = threading.RLock()
        self._wall = wall
        self.start_balance = float(balance)
        self.credit = {t: float(balance) for t in TOKEN_TYPES}
        self.subscription: dict[str, Any] = {"active": False, "status": "none", "capabilities": {}}
        self.usage: dict[str, Any] = {}
        self.spent: Callable[[], dict[str, tuple[float, float]]] = lambda: {}
        self.max_active: Callable[[], int | None] = lambda: None  # the limit on workflows running at once
        self.created = wall()

    def reset(self, balance: float | None = None) -> None:
        with self._lock:
            if balance is not None:
                self.start_balance = float(balance)
            self.credit = {t: self.start_balance for t in TOKEN_TYPES}
            self.subscription = {"active": False, "status": "none", "capabilities": {}}
            self.usage = {}

    def configure(self, cfg: dict[str, Any]) -> None:
        """Test hook: ``balance`` (both token types), ``credit`` ({type: amount}), ``subscription``, ``usage``."""
        with self._lock:
            if "balance" in cfg:
                self.start_balance = float(cfg["balance"])
                self.credit = {t: self.start_balance for t in TOKEN_TYPES}
            for t, v in (cfg.get("credit") or {}).items():
                if t in TOKEN_TYPES:
                    self.credit[t] = float(v)
            if isinstance(cfg.get("subscription"), dict):
                self.subscription = dict(cfg["subscription"])
            if isinstance(cfg.get("usage"), dict):
                self.usage = dict(cfg["usage"])

    @staticmethod
    def token(token_type: Any) -> str:
        """The token type a request pays with (``auto`` and unset pay with spark)."""
        return token_type if token_type in TOKEN_TYPES else "spark"

    def available(self, token_type: Any) -> float:
        """What is left to spend: credit minus what was made and what running work will still make."""
        t = self.token(token_type)
        made, pending = self.spent().get(t, (0.0, 0.0))
        with self._lock:
            return self.credit[t] - made - pending

    def balance(self) -> dict[str, Any]:
        spent = self.spent()
        out: dict[str, Any] = {}
        with self._lock:
            for t in TOKEN_TYPES:
                made, _ = spent.get(t, (0.0, 0.0))
                net = self.credit[t] - made
                out[t] = {"credit": _amount(self.credit[t]), "debit": _amount(made), "net": _amount(net),
                          "settled": _amount(net)}
            out["spark"]["premiumCredit"] = _amount(0)
        return out

    def me(self) -> dict[str, Any]:
        return {"id": "acct_emulator", "username": "emulator", "email": "emulator@example.invalid",
                "currentEmail": "emulator@example.invalid",
                "walletAddress": "0x000000000000000000000000000000000000e0e0",
                "createdAt": iso(self.created), "emailVerified": True, "role": "artist"}

    def subscription_status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.subscription)

    def subscription_usage(self) -> dict[str, Any]:
        spent = self.spent()
        with self._lock:
            usage: dict[str, Any] = {"periodStart": iso(self.created), "capacityUnitsUsed": sum(m for m, _ in spent.values()),
                     "fairUse": {"limited": False}}
            limit = self.max_active()
            if limit is not None:
                usage["limits"] = {"maxConcurrentWorkflows": limit}
            usage.update(self.usage)
            return usage


def route(h: "Handler", method: str, path: str) -> bool:
    """Answer an account route; False when ``path`` is not one."""
    acct: Account = h.emu.account
    answers: dict[str, Callable[[], dict[str, Any]]] = {
        "/v1/account/me": acct.me,
        "/v4/account/balance": acct.balance,
        "/v1/subscriptions/status": lambda: {"subscription": acct.subscription_status()},
        "/v1/subscriptions/usage": lambda: {"usage": acct.subscription_usage()},
    }
    answer = answers.get(path)
    if answer is None:
        return False
    if method != "GET":
        raise ApiFailure(405, f"{method} is not allowed on {path}", code=405)
    h.send_json(200, {"status": "success", "data": answer()})
    return True
