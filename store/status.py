"""Outages and freshness: what the status agents write and the operators read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

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
        query = filtered(query, outages, kommuner, None, None, None)
        if open_only:
            query = query.where(c.ended.is_(None))
        return [Outage(**row._mapping) for row in self._read(query)]

    def query_freshness(self, *, kommuner: Sequence[str] | None = None) -> list[Freshness]:
        """The newest hour with data per counter source and per transit mode (``departures``).

        ``n`` counts the points (counters) or kommuner (transit) that have data at all.
        """
        ph = point_hourly.c
        counters = filtered(
            select(
                ph.source,
                func.max(ph.hour_start).label("newest"),
                func.count(func.distinct(ph.point_id)).label("n"),
            ).where(ph.volume.is_not(None)),
            point_hourly,
            kommuner,
            None,
            None,
            None,
        ).group_by(ph.source)
        kh = kommune_hourly.c
        transit = filtered(
            select(
                kh.mode,
                func.max(kh.hour_start).label("newest"),
                func.count(func.distinct(kh.kommune_nr)).label("n"),
            ).where(kh.metric == "departures"),
            kommune_hourly,
            kommuner,
            None,
            None,
            None,
        ).group_by(kh.mode)
        found = [
            Freshness("counter", row[0], aggregate_time(row[1]), int(row[2]))
            for row in self._read(counters)
        ]
        found += [
            Freshness("transit", row[0], aggregate_time(row[1]), int(row[2]))
            for row in self._read(transit)
        ]
        return sorted(found, key=lambda f: (f.kind, f.name))


@dataclass(frozen=True)
class Freshness:
    """The newest hour with data of a counter source or a transit mode."""

    kind: str
    """``counter`` (``name`` is a source) or ``transit`` (``name`` is a mode)."""
    name: str
    newest_hour: datetime | None
    n: int
    """Points (counters) or kommuner (transit) with data."""
