"""Time as byflyt handles it: UTC inside, Europe/Oslo for people, one rule for times people type.

Every ``--from``/``--to``, API ``from``/``to`` and similar value goes through :func:`parse_when`:
a date means midnight Europe/Oslo (so a day is 23, 24 or 25 hours long), a time must carry a UTC
offset (naive times are refused: which 02:00 on the last Sunday of October would they mean?).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Final
from zoneinfo import ZoneInfo

OSLO: Final = ZoneInfo("Europe/Oslo")
"""Norway's zone: how times are shown to people, and what a typed date means."""

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME_FIX: Final = (
    "write YYYY-MM-DD (midnight Europe/Oslo) or ISO 8601 with an offset, "
    "e.g. 2025-10-26T02:00+01:00 or 2025-10-26T01:00Z"
)
"""What to write instead, for error messages about a time."""


def utc_now() -> datetime:
    """Now, aware, in UTC: the default clock of everything that can be given another."""
    return datetime.now(UTC)


def parse_when(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601 with an offset, or a date (Europe/Oslo midnight).

    Raises :class:`ValueError` with a message fit for the user.
    """
    value = text.strip()
    if _DATE.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a date: {exc}") from None
        return datetime(day.year, day.month, day.day, tzinfo=OSLO).astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date (2025-10-26) nor an ISO 8601 time "
            "(2025-10-26T02:00+01:00, 2025-10-26T01:00Z)"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no UTC offset, so it is ambiguous: add one, "
            f"e.g. {value}+01:00 or {value}Z"
        )
    return parsed.astimezone(UTC)
