"""The API's query parameters, checked by the same rules as ``byflyt query`` (:mod:`.queries`).

Every check raises a 400 :class:`~byflyt.web.problems.Problem` that names the parameter and
what to send instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query

from byflyt.models.base import Mode
from byflyt.queries import selection as queries
from byflyt.web.problems import Problem, bad_parameter

RegionParam = Annotated[
    str | None,
    Query(description="Region key, e.g. mjosbyen (see /api/v1/regions).", max_length=64),
]
KommuneParam = Annotated[
    list[str] | None,
    Query(description="Kommune number, e.g. 3403; repeat for more.", max_length=20),
]
ModeParam = Annotated[Mode | None, Query(description="Mode, e.g. bicycle (default: all).")]
OffsetParam = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]


def limit_query(max_limit: int) -> Any:
    """The rule of a ``limit`` parameter (``Annotated[int, rule]``): 1 to ``max_limit`` items."""
    return Query(ge=1, le=max_limit, description=f"Items per page (at most {max_limit}).")


def kommune_number(text: str) -> str:
    """A known kommune number from ``3403`` or ``301``; a 400 says what is wrong."""
    try:
        return queries.kommune_number(text)
    except queries.SelectionError as exc:
        raise _problem(exc) from None


def kommuner_for(
    region: str | None, kommuner: Sequence[str] | None, regions_file: Path | None
) -> list[str] | None:
    """The kommuner to read: the region's, narrowed by ``kommune``; None means all."""
    try:
        return queries.select_kommuner(region, kommuner, regions_file)
    except queries.SelectionError as exc:
        raise _problem(exc) from None


def time_range(from_: str, to: str, max_days: int) -> tuple[datetime, datetime]:
    """``[from, to)`` as aware UTC datetimes; ``from`` before ``to``, at most ``max_days``."""
    try:
        return queries.time_range(from_, to, max_days=max_days)
    except queries.SelectionError as exc:
        raise _problem(exc) from None


_HINTS = {
    "region": "see /api/v1/regions for the keys",
    "kommune": "see /api/v1/kommuner for the numbers; drop region to use a kommune outside it",
    "from": "swap from and to, or move from earlier",
    "to": "(BYFLYT_SERVE_MAX_RANGE_DAYS); ask for the range in parts",
}


def _problem(exc: queries.SelectionError) -> Problem:
    hint = _HINTS[exc.parameter]
    return bad_parameter(exc.parameter, f"{exc.message}{'' if hint[0] == '(' else ';'} {hint}")
