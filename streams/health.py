"""Liveness and readiness in the shape orchestrators probe: ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves requests at all. ``/readyz`` answers 200 only
when every check passes (the store answers a query, Kafka answers, the records not yet
processed are at most ``BYFLYT_READY_MAX_LAG``) and 503 otherwise; either way the JSON body
names each check and, when not ready, the reasons::

    {"status": "not ready", "reasons": ["kafka: KafkaTimeoutError"],
     "checks": {"store": {"ok": true, "detail": "sqlite …"}, "kafka": {"ok": false, …}}}

Details never carry credentials: errors are named by type, the store by its password-free URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from byflyt.errors import RetriableError
from byflyt.store import Store
from byflyt.store.engine import describe


@dataclass(frozen=True)
class Check:
    """One readiness check's outcome."""

    ok: bool
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


def store_check(store: Store | None) -> Check:
    """Whether the store answers ``SELECT 1``."""
    if store is None:
        return Check(False, "the store is not open yet")
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, RetriableError, OSError) as exc:
        return Check(False, f"{describe(store.url)}: {type(exc).__name__}")
    return Check(True, describe(store.url))


def lag_check(lag: int, max_lag: int) -> Check:
    """Whether ``lag`` records behind is within ``max_lag`` (``BYFLYT_READY_MAX_LAG``)."""
    extra = {"records": lag, "max": max_lag}
    if lag > max_lag:
        return Check(False, f"{lag} records behind, more than {max_lag}", extra)
    return Check(True, f"{lag} records behind", extra)


def readiness(checks: dict[str, Check]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of ``/readyz`` for ``checks``."""
    reasons = [f"{name}: {check.detail}" for name, check in checks.items() if not check.ok]
    body = {
        "status": "not ready" if reasons else "ready",
        "reasons": reasons,
        "checks": {
            name: {"ok": check.ok, "detail": check.detail, **check.extra}
            for name, check in checks.items()
        },
    }
    return (503 if reasons else 200), body


ALIVE: dict[str, Any] = {"status": "ok"}
"""The body of ``/healthz``."""
