"""Which outages an area shows: one rule for ``byflyt outages``, the API, the live page, the report.

A counter's outage belongs to the kommune of its point; a feed's outage (a GTFS-RT or SIRI feed
gone stale or empty) has no kommune and is shown for every area, since a region's public
transport figures depend on the feed as a whole.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime, timedelta
from typing import Any

from byflyt.models.base import iso_z
from byflyt.models.kommuner import kommune_name
from byflyt.store import Outage, Store

OUTAGE_FIELDS = (
    "source",
    "point_id",
    "kommune_nr",
    "kommune",
    "kind",
    "started",
    "ended",
    "open",
    "duration_seconds",
    "details",
)
"""An outage's fields, in order (``byflyt outages`` CSV and JSON; a contract: scripts read them
by name)."""


def in_area(kommuner: Container[str] | None, kommune_nr: str | None) -> bool:
    """True when a record of ``kommune_nr`` (None: a feed's, of no kommune) shows for the area."""
    return kommuner is None or kommune_nr is None or kommune_nr in kommuner


def area_outages(
    store: Store, kommuner: Container[str] | None, *, open_only: bool = False
) -> list[Outage]:
    """The outages of an area (None: everywhere) by start time: its counters' and every feed's."""
    return [o for o in store.query_outages(open_only=open_only) if in_area(kommuner, o.kommune_nr)]


def duration(outage: Outage, now: datetime) -> timedelta:
    """How long the outage lasted (an open one: until ``now``)."""
    return (outage.ended or now) - outage.started


def outage_record(outage: Outage, now: datetime) -> dict[str, Any]:
    """One outage as :data:`OUTAGE_FIELDS` (UTC times; None where it has no kommune or end)."""
    return {
        "source": outage.source,
        "point_id": outage.point_id,
        "kommune_nr": outage.kommune_nr,
        "kommune": kommune_name(outage.kommune_nr) if outage.kommune_nr else None,
        "kind": outage.kind,
        "started": iso_z(outage.started),
        "ended": iso_z(outage.ended) if outage.ended else None,
        "open": outage.is_open,
        "duration_seconds": int(duration(outage, now).total_seconds()),
        "details": outage.details,
    }
