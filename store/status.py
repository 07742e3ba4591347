"""Outages and freshness: what the status agents write and the operators read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, func, select

from byflyt.store.base import StoreBase
from byflyt.store.filters import aggregate_time, filtered
from byflyt.store.rows import (
    Outage,
)
from byflyt.store.schema import (
    kommune_hourly,
    outages,
    point_hourly,
    to_utc,
)


class StatusStore(StoreBase):
    """``outages``, and the newest hour per source and mode."""

    def upsert_outage(
        self,
        source: str,
        point_id: str,
        kind: str,
        started: datetime,
        ended: datetime | None,
        kommune_nr: str | None = None,
        details: str = "",
    ) -> None:
        """Open (``ended`` None) or close an outage, keyed by source, point, kind and start."""
        row = {
            "source": source,
            "point_id": point_id,
            "kind": kind,
            "started": to_utc(started),
            "ended": None if ended is None else to_utc(ended),
            "kommune_nr": kommune_nr,
            "details": details,
        }
        self._write_rows(outages, [row])

    def query_outages(
        self, *, kommuner: Sequence[str] | None = None, open_only: bool = False
    ) -> list[Outage]:
        """Outages by start time; ``open_only`` keeps those not ended yet."""
        c = outages.c
        query = select(
            c.source, c.point_id, c.kind, c.started, c.ended, c.kommune_nr, c.details
        ).order_by(c.started, c.source, c.point_id, c.kind)
        query = filtered(query, outages, kommuner)
        if open_only:
            query = query.where(c.ended.is_(None))
        return [Outage(**row._mapping) for row in self._read(query)]

    def query_freshness(self, *, kommuner: Sequence[str] | None = None) -> list[Freshness]:
        """The newest hour with data per counter source and per transit mode (``departures``).

        ``n`` counts the points (counters) or kommuner (transit) that have data at all.
        """
        ph, kh = point_hourly.c, kommune_hourly.c
        counters = _newest(point_hourly, ph.source, ph.point_id, ph.volume.is_not(None), kommuner)
        departures = kh.metric == "departures"
        transit = _newest(kommune_hourly, kh.mode, kh.kommune_nr, departures, kommuner)
        found = [
            Freshness(kind, row[0], aggregate_time(row[1]), int(row[2]))
            for kind, query in (("counter", counters), ("transit", transit))
            for row in self._read(query)
        ]
        return sorted(found, key=lambda f: (f.kind, f.name))


def _newest(
    table: Table,
    group: ColumnElement[Any],
    counted: ColumnElement[Any],
    where: ColumnElement[bool],
    kommuner: Sequence[str] | None,
) -> Select[*tuple[Any, ...]]:
    """Per ``group``: the newest ``hour_start`` where ``where`` holds, and distinct ``counted``."""
    query = select(
        group,
        func.max(table.c.hour_start).label("newest"),
        func.count(func.distinct(counted)).label("n"),
    ).where(where)
    return filtered(query, table, kommuner).group_by(group)


@dataclass(frozen=True)
class Freshness:
    """The newest hour with data of a counter source or a transit mode."""

    kind: str
    """``counter`` (``name`` is a source) or ``transit`` (``name`` is a mode)."""
    name: str
    newest_hour: datetime | None
    n: int
    """Points (counters) or kommuner (transit) with data."""
