"""The API's query parameters, checked the way ``byflyt query`` checks its options.

Times use :func:`byflyt.clock.parse_when` (ISO 8601 with an offset, or a date meaning
Europe/Oslo midnight); kommuner and regions come from :mod:`byflyt.models.kommuner`. Every
check raises a 400 :class:`~byflyt.web.problems.Problem` that names the parameter and what to
send instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from byflyt.clock import OSLO, parse_when
from byflyt.errors import ConfigError
from byflyt.models.kommuner import get_region, kommune_names, normalise_kommune_nr
from byflyt.web.problems import bad_parameter


def kommune_number(text: str) -> str:
    """A known kommune number from ``3403`` or ``301``; a 400 says what is wrong."""
    value = text.strip()
    try:
        nr = normalise_kommune_nr(int(value) if value.isdigit() else value)
    except ValueError as exc:
        raise bad_parameter("kommune", str(exc)) from None
    if nr not in kommune_names():
        raise bad_parameter(
            "kommune",
            f"{nr} is not a kommune in the 2024 numbering; "
            "see /api/v1/kommuner for the numbers (e.g. 3403 Hamar)",
        )
    return nr


def kommuner_for(
    region: str | None, kommuner: Sequence[str] | None, regions_file: Path | None
) -> list[str] | None:
    """The kommuner to read: the region's, narrowed by ``kommune``; None means all."""
    chosen = [kommune_number(k) for k in kommuner] if kommuner else None
    if region is None:
        return chosen
    try:
        members = get_region(region, regions_file).kommuner
    except ConfigError as exc:
        message = f"unknown region {region!r}" if "unknown region" in str(exc) else str(exc)
        raise bad_parameter("region", f"{message}; see /api/v1/regions for the keys") from None
    if chosen is None:
        return list(members)
    outside = [k for k in chosen if k not in members]
    if outside:
        raise bad_parameter(
            "kommune",
            f"{', '.join(outside)} is not in region {region!r}; drop region to use it",
        )
    return chosen


def time_range(from_: str, to: str, max_days: int) -> tuple[datetime, datetime]:
    """``[from, to)`` as aware UTC datetimes; ``from`` before ``to``, at most ``max_days``."""
    bounds = []
    for name, text in (("from", from_), ("to", to)):
        try:
            bounds.append(parse_when(text))
        except (ValueError, OverflowError) as exc:
            message = str(exc) if isinstance(exc, ValueError) else f"{text!r} is out of range"
            raise bad_parameter(name, message) from None
    start, end = bounds
    if start >= end:
        raise bad_parameter(
            "from",
            f"{from_} is not before to={to}: the range [from, to) would be empty; "
            "swap them or move from earlier",
        )
    # Days as the calendar counts them in Oslo: a range across a clock change may have 25 hours.
    wall = end.astimezone(OSLO).replace(tzinfo=None) - start.astimezone(OSLO).replace(tzinfo=None)
    if wall > timedelta(days=max_days):
        raise bad_parameter(
            "to",
            f"[{from_}, {to}) is longer than {max_days} days (BYFLYT_SERVE_MAX_RANGE_DAYS); "
            "ask for the range in parts",
        )
    return start, end
