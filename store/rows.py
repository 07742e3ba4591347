"""What goes into the store's tables and what comes out: row types and row shaping."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Table

from byflyt.models.volumes import VolumeFields
from byflyt.store.schema import to_utc

VolumeKey = tuple[str, str, str, datetime]
"""The natural key of a kommune-hour: ``(kommune_nr, mode, metric, hour_start)``."""

Row = dict[str, Any]
"""Column name → value, as ``executemany`` takes it."""


@dataclass(frozen=True)
class PointHour:
    """One counting point's stored hour: its latest volume (None: no count) and coverage."""

    source: str
    point_id: str
    hour_start: datetime
    kommune_nr: str
    mode: str
    volume: int | None
    coverage: float


@dataclass(frozen=True)
class Fetched:
    """Hours ``[since, until)`` a point's source was asked for (merged with its neighbours)."""

    source: str
    point_id: str
    since: datetime
    until: datetime
    kommune_nr: str
    mode: str


@dataclass(frozen=True)
class Outage:
    """A period when a point or feed was silent, flat or short of coverage."""

    source: str
    point_id: str
    kind: str
    started: datetime
    ended: datetime | None
    kommune_nr: str | None
    details: str

    @property
    def is_open(self) -> bool:
        """True while the outage has not ended."""
        return self.ended is None


POINT_FIELDS: Final[set[str]] = {  # a set, not a frozenset: pydantic's include= is typed so
    "source",
    "point_id",
    "name",
    "kommune_nr",
    "mode",
    "lat",
    "lon",
    "first_data",
    "latest_data",
    "operational_status",
}
"""The ``points`` columns that come from a :class:`CountPoint` (the rest is bookkeeping)."""


def volume_row(row: VolumeFields, now: datetime) -> Row:
    """The ``kommune_hourly`` row of ``row``, written at ``now``."""
    return {
        "kommune_nr": row.kommune_nr,
        "mode": row.mode,
        "metric": row.metric,
        "hour_start": row.hour_start,
        "value": row.value,
        "coverage": row.coverage,
        "n_sources": row.n_sources,
        "updated_at": now,
    }


def latest_by_key(table: Table, rows: Iterable[Row]) -> list[Row]:
    """One row per primary key (the last given), in key order."""
    keys = [c.name for c in table.primary_key]
    latest = {tuple(row[k] for k in keys): row for row in rows}
    return [latest[key] for key in sorted(latest)]


def unique_keys(keys: Iterable[VolumeKey]) -> list[VolumeKey]:
    """Distinct kommune-hour keys in UTC, sorted (a naive hour raises)."""
    return sorted({(k, mode, metric, to_utc(hour)) for k, mode, metric, hour in keys})
