"""Which kommuner and which hours a question is about: regions, ``kommune`` filters, time ranges.

The rules are the same for every caller; the wording of the hint (``--region`` or ``region``)
is the caller's, so a :class:`SelectionError` names the parameter without its dashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from byflyt.clock import OSLO, parse_when
from byflyt.errors import ConfigError
from byflyt.models.kommuner import get_region, kommune_names, normalise_kommune_nr


class SelectionError(ValueError):
    """A parameter of a question that cannot be answered: ``parameter`` names it (no dashes)."""

    def __init__(self, parameter: str, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message
        self.fix = fix


def kommune_number(text: str, *, known_only: bool = True) -> str:
    """A kommune number from ``3403`` or ``301`` (spreadsheets drop the leading zero)."""
    value = text.strip()
    try:
        nr = normalise_kommune_nr(int(value) if value.isdigit() else value)
    except ValueError as exc:
        raise SelectionError("kommune", str(exc)) from None
    if known_only and nr not in kommune_names():
        raise SelectionError(
            "kommune", f"{nr} is not a kommune in the 2024 numbering (e.g. 3403 Hamar)"
        )
    return nr


def select_kommuner(
    region: str | None,
    kommuner: Sequence[str] | None,
    regions_file: Path | None,
    *,
    known_only: bool = True,
) -> list[str] | None:
    """The kommuner to read: the region's, narrowed by ``kommuner``; None means all of Norway."""
    chosen = [kommune_number(k, known_only=known_only) for k in kommuner] if kommuner else None
    if not region:
        return chosen
    try:
        members = get_region(region, regions_file).kommuner
    except ConfigError as exc:
        raise SelectionError("region", exc.problem, exc.fix) from None
    if chosen is None:
        return list(members)
    outside = [k for k in chosen if k not in members]
    if outside:
        raise SelectionError("kommune", f"{', '.join(outside)} is not in region {region!r}")
    return chosen


def time_range(from_: str, to: str, *, max_days: int | None = None) -> tuple[datetime, datetime]:
    """``[from, to)`` as aware UTC datetimes (:func:`byflyt.clock.parse_when`).

    ``from`` must be before ``to``; with ``max_days`` the range may span at most that many
    Europe/Oslo calendar days (a range across a clock change may have 25 hours a day).
    """
    bounds = []
    for name, text in (("from", from_), ("to", to)):
        try:
            bounds.append(parse_when(text))
        except (ValueError, OverflowError) as exc:
            message = str(exc) if isinstance(exc, ValueError) else f"{text!r} is out of range"
            raise SelectionError(name, message) from None
    start, end = bounds
    if start >= end:
        raise SelectionError(
            "from", f"{from_} is not before {to}: the range [from, to) would be empty"
        )
    if max_days is not None:
        local_end = end.astimezone(OSLO).replace(tzinfo=None)
        wall = local_end - start.astimezone(OSLO).replace(tzinfo=None)
        if wall > timedelta(days=max_days):
            raise SelectionError(
                "to",
                f"[{from_}, {to}) is longer than {max_days} days",
                "ask for the range in parts",
            )
    return start, end
