"""The live page's state: latest hours per kommune and mode, sensor states, feed freshness.

Built on every request from the store (``kommune_hourly``, ``points``, ``outages``,
``point_hourly``) with what :class:`~byflyt.web.follow.TopicFollower` has read from
``volumes.hourly`` and ``sensors.status`` laid over it: a topic record is newer than the sink's
write of it, so it wins. "Latest hour" is the newest hour that has data (counters publish hours
late), "hour before" the one before it; both are UTC hours shown in Europe/Oslo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from byflyt.i18n import hour_label, local_time
from byflyt.models.base import iso_z
from byflyt.models.counts import CountPoint
from byflyt.models.kommuner import Region, kommune_name
from byflyt.models.status import SensorStatus
from byflyt.models.volumes import HourlyVolume
from byflyt.queries.hourly import number
from byflyt.queries.outages import area_outages, in_area
from byflyt.store import Store
from byflyt.store.rows import Outage
from byflyt.web.follow import FollowedState, TopicFollower

HOUR = timedelta(hours=1)
HEADLINE = {"volume", "departures"}
"""The metric shown per mode: counted passages for counters, served departures for transit."""
SYNTHETIC_MARKS = ("synthetic", "syntetisk")


def is_synthetic(*names: str | None) -> bool:
    """Whether a source or point name marks made-up data (the samples name themselves so)."""
    return any(mark in (n or "").lower() for n in names for mark in SYNTHETIC_MARKS)


@dataclass(frozen=True)
class LiveView:
    """Which part of the data the page shows."""

    region: Region | None
    kommuner: list[str] | None


def _cell(row: HourlyVolume | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "value": number(row.value),
        "coverage": number(round(row.coverage, 2)),
        "n_sources": row.n_sources,
    }


def _hour(start: datetime | None) -> dict[str, str] | None:
    if start is None:
        return None
    return {"start": iso_z(start), "label": hour_label(start)}


def volumes_section(
    store: Store, view: LiveView, followed: FollowedState
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The two newest hours and one row per kommune, mode and headline metric.

    Each mode has its own newest hour (Trafikkdata publishes 2–3 hours late, transit feeds are
    current), so a row's cells are its mode's newest and previous hour; the header shows the
    newest hour of all, and a row whose hours differ carries them (``hours``).
    """
    topic_rows = [
        v
        for v in followed.volumes.values()
        if v.metric in HEADLINE and in_area(view.kommuner, v.kommune_nr)
    ]
    newest_by_mode: dict[str, datetime] = {}
    for mode in sorted({*store.modes(kommuner=view.kommuner), *(v.mode for v in topic_rows)}):
        hour = store.newest_hour(kommuner=view.kommuner, mode=mode)
        if hour is not None:
            newest_by_mode[mode] = hour
    for row in topic_rows:
        if row.mode not in newest_by_mode or row.hour_start > newest_by_mode[row.mode]:
            newest_by_mode[row.mode] = row.hour_start
    if not newest_by_mode:
        return {"current": None, "previous": None}, []
    newest = max(newest_by_mode.values())
    cells: dict[tuple[str, str, str, datetime], HourlyVolume] = {}
    for mode, hour in newest_by_mode.items():
        window = store.query_hourly(
            kommuner=view.kommuner, mode=mode, start=hour - HOUR, end=hour + HOUR
        )
        for row in window:
            if row.metric in HEADLINE:
                cells[(row.kommune_nr, row.mode, row.metric, row.hour_start)] = row
    for row in topic_rows:
        if newest_by_mode[row.mode] - HOUR <= row.hour_start <= newest_by_mode[row.mode]:
            cells[(row.kommune_nr, row.mode, row.metric, row.hour_start)] = row
    series = sorted({key[:3] for key in cells})
    rows = []
    for kommune_nr, mode, metric in series:
        current = newest_by_mode[mode]
        rows.append(
            {
                "kommune_nr": kommune_nr,
                "kommune": kommune_name(kommune_nr),
                "mode": mode,
                "metric": metric,
                "current": _cell(cells.get((kommune_nr, mode, metric, current))),
                "previous": _cell(cells.get((kommune_nr, mode, metric, current - HOUR))),
                "hours": None
                if current == newest
                else {"current": _hour(current), "previous": _hour(current - HOUR)},
            }
        )
    return {"current": _hour(newest), "previous": _hour(newest - HOUR)}, rows


def sensors_section(
    points: list[CountPoint], outages: list[Outage], statuses: list[SensorStatus]
) -> list[dict[str, Any]]:
    """Every known counter point and feed with its state, problems first.

    A point is ``up`` unless an outage is open for it; a closed outage says since when it is up
    again. A ``sensors.status`` record is the status agent's own word and wins over both.
    """
    sensors: dict[tuple[str, str], dict[str, Any]] = {}

    def put(source: str, point_id: str, **values: Any) -> None:
        entry = sensors.setdefault(
            (source, point_id),
            {"source": source, "point_id": point_id, "name": "", "kommune_nr": None},
        )
        entry.update({k: v for k, v in values.items() if v is not None})

    for p in points:
        put(p.source, p.point_id, name=p.name, kommune_nr=p.kommune_nr, state="up", since=None)
    for o in outages:  # by start time: the last one of a point decides
        if o.ended is None:
            put(o.source, o.point_id, kommune_nr=o.kommune_nr, state=o.kind, since=o.started)
        else:
            put(o.source, o.point_id, kommune_nr=o.kommune_nr, state="up", since=o.ended)
    for s in statuses:
        put(s.source, s.point_id, kommune_nr=s.kommune_nr, state=s.state, since=s.since)
    rows = []
    for entry in sensors.values():
        since = entry.get("since")
        kommune_nr = entry["kommune_nr"]
        rows.append(
            {
                **entry,
                "kommune": kommune_name(kommune_nr) if kommune_nr else "",
                "state": entry.get("state", "up"),
                "since": iso_z(since) if since else None,
                "since_local": local_time(since) if since else None,
            }
        )
    return sorted(
        rows,
        key=lambda r: (r["state"] == "up", r["kommune_nr"] or "", r["name"], r["point_id"]),
    )


def freshness_section(
    store: Store, view: LiveView, statuses: list[SensorStatus], now: datetime
) -> list[dict[str, Any]]:
    """Per counter source and transit mode, the newest hour with data and how old it is."""
    rows = []
    for f in store.query_freshness(kommuner=view.kommuner):
        if f.newest_hour is None:
            continue
        end = f.newest_hour + HOUR
        rows.append(
            {
                "kind": f.kind,
                "name": f.name,
                "newest_hour": iso_z(f.newest_hour),
                "newest_label": hour_label(f.newest_hour),
                "age_seconds": max(0, int((now - end).total_seconds())),
                "n": f.n,
            }
        )
    for s in statuses:
        if s.sensor == "feed":
            rows.append(
                {
                    "kind": "feed",
                    "name": f"{s.source} {s.point_id}",
                    "newest_hour": iso_z(s.as_of),
                    "newest_label": local_time(s.as_of),
                    "age_seconds": max(0, int((now - s.as_of).total_seconds())),
                    "n": None,
                }
            )
    return rows


def live_state(
    store: Store, view: LiveView, follower: TopicFollower | None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the live page shows, as JSON-ready data."""
    now = now or datetime.now(UTC)
    followed = follower.state() if follower is not None else FollowedState()
    statuses = [s for s in followed.statuses.values() if in_area(view.kommuner, s.kommune_nr)]
    hours, volumes = volumes_section(store, view, followed)
    points = store.query_points(kommuner=view.kommuner)
    outages = area_outages(store, view.kommuner)
    freshness = freshness_section(store, view, statuses, now)
    synthetic = is_synthetic(*(p.source for p in points), *(p.name for p in points)) or (
        is_synthetic(*(s.source for s in statuses), *(f["name"] for f in freshness))
    )
    return {
        "generated_at": iso_z(now.replace(microsecond=0)),
        "generated_local": local_time(now),
        "region": None
        if view.region is None
        else {"key": view.region.key, "name": view.region.name},
        "synthetic": synthetic,
        "hours": hours,
        "volumes": volumes,
        "sensors": sensors_section(points, outages, statuses),
        "freshness": freshness,
        "topics": {
            "followed": follower is not None,
            "connected": followed.connected,
            "records": followed.records,
            "error": followed.error,
        },
    }
