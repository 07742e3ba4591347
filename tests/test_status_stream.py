"""Sensor status on the real broker and store: a counter stops mid-week, then comes back.

The worker runs as ``byflyt worker --drain`` (twice: the second run is a restart, whose state is
rebuilt from the table's changelog), and ``byflyt outages`` lists what the test caused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from byflyt.clock import OSLO
from byflyt.kafka import create_topics
from byflyt.models.counts import CountObservation, FetchedWindow
from byflyt.models.status import SensorStatus
from byflyt.settings import Settings
from byflyt.store import Store
from tests.helpers import byflyt, drain, send
from tests.kafka_util import produce, read_all

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parent.parent
MONDAY = datetime(2025, 10, 6, tzinfo=UTC)
STOP = datetime(2025, 10, 9, 10, tzinfo=UTC)  # Thursday, 12:00 in Oslo
RESUME = datetime(2025, 10, 10, 8, tzinfo=UTC)
# One kommune, so every point is on one partition and shares its source clock.
POINTS = ("A1", "A2", "A3", "S1")


def hours_of_counts(
    start: datetime, hours: int, off: Callable[[datetime, str], bool], *, local: bool = False
) -> list[CountObservation]:
    """Every point's counts, hour by hour from ``start``: nothing (null, coverage 0) where
    ``off(hour, point)``, else a volume made from the hour of the day (UTC, or Oslo's)."""
    out = []
    for n in range(hours):
        hour = start + timedelta(hours=n)
        of_day = hour.astimezone(OSLO).hour if local else hour.hour
        for point in POINTS:
            silent = off(hour, point)
            out.append(
                CountObservation(
                    source="synthetic",
                    point_id=point,
                    kommune_nr="3403",
                    start=hour,
                    end=hour + timedelta(hours=1),
                    volume=None if silent else 3 + (of_day * 7 + n) % 11,
                    coverage=0.0 if silent else 100.0,
                )
            )
    return out


def counts(start: datetime, hours: int, *, stopped: bool = False) -> list[CountObservation]:
    """S1 stops between ``STOP`` and ``RESUME`` when ``stopped``."""
    return hours_of_counts(
        start, hours, lambda hour, point: point == "S1" and stopped and STOP <= hour < RESUME
    )


def statuses(settings: Settings) -> dict[str, SensorStatus]:
    latest: dict[str, SensorStatus] = {}
    for key, value in read_all(settings, settings.topic("sensors.status")):
        assert key is not None
        assert value is not None
        latest[key.decode()] = SensorStatus.from_bytes(value)
    return latest


def outages_cli(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    done = byflyt(env, "outages", "--format", "json", *args, timeout=60)
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def test_a_stopped_counter_is_an_outage_until_it_resumes(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    create_topics(settings)
    before = RESUME - MONDAY
    first = counts(MONDAY, int(before.total_seconds() // 3600), stopped=True)
    send(settings, first)
    drain(worker_env)

    with Store(settings.database_url) as store:
        (outage,) = store.query_outages(open_only=True)
    assert (outage.source, outage.point_id, outage.kind) == ("synthetic", "S1", "silent")
    assert (outage.started, outage.ended, outage.kommune_nr) == (STOP, None, "3403")
    status = statuses(settings)
    assert status["synthetic:S1"].state == "silent"
    assert status["synthetic:S1"].since == STOP
    assert {status[f"synthetic:{p}"].state for p in ("A1", "A2", "A3")} == {"up"}
    listed = outages_cli(worker_env, "--open", "--region", "mjosbyen")
    assert [(r["point_id"], r["kind"], r["started"], r["open"]) for r in listed] == [
        ("S1", "silent", "2025-10-09T10:00:00Z", True)
    ]

    # The counter comes back; the restarted worker rebuilds its state and closes the outage.
    send(settings, counts(RESUME, 6) + first[-40:])  # a replayed tail changes nothing
    drain(worker_env)
    with Store(settings.database_url) as store:
        assert store.query_outages(open_only=True) == []
        (closed,) = store.query_outages()
    assert (closed.point_id, closed.started, closed.ended) == ("S1", STOP, RESUME)
    assert statuses(settings)["synthetic:S1"].state == "up"
    assert outages_cli(worker_env, "--open") == []
    assert [r["duration_seconds"] for r in outages_cli(worker_env)] == [
        int((RESUME - STOP).total_seconds())
    ]


WEEK_2024 = datetime(2024, 10, 21, tzinfo=UTC)
WEEK_2025 = datetime(2025, 10, 20, tzinfo=UTC)
STOP_2025 = WEEK_2025 + timedelta(days=4, hours=10)  # Friday, 12:00 in Oslo


def fetched_week(start: datetime, days: int) -> list[FetchedWindow]:
    """What a connector asked for: every point over ``[start, start + days)``."""
    return [
        FetchedWindow(
            source="synthetic",
            point_id=point,
            kommune_nr="3403",
            since=start,
            until=start + timedelta(days=days),
        )
        for point in POINTS
    ]


def week(start: datetime, days: int, stop: datetime | None = None) -> list[CountObservation]:
    """Daytime counts of every point; S1 sends nothing from ``stop`` on (fetched, no data)."""

    def off(hour: datetime, point: str) -> bool:
        night = not 6 <= hour.astimezone(OSLO).hour < 22
        return night or (point == "S1" and stop is not None and hour >= stop)

    return hours_of_counts(start, days * 24, off, local=True)


def test_the_year_between_fetched_weeks_is_not_ingested_not_silent(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    create_topics(settings)
    windows = fetched_week(WEEK_2024, 7) + fetched_week(WEEK_2025, 6)
    produce(
        settings, settings.topic("bike.fetched"), [(w.key.encode(), w.to_bytes()) for w in windows]
    )
    send(settings, week(WEEK_2024, 7) + week(WEEK_2025, 6, stop=STOP_2025))
    drain(worker_env)
    with Store(settings.database_url) as store:
        found = [(o.point_id, o.kind, o.ended) for o in store.query_outages()]
        opened = [o.started for o in store.query_outages()]
        gap = [(w.since, w.until) for w in store.query_fetched(point_ids=["S1"])]
    assert gap == [(w.since, w.until) for w in windows if w.point_id == "S1"]
    # Nobody asked for the year between the weeks: no outage spans it. Only the counter that
    # stopped inside the fetched 2025 week is silent, from its first daytime hour without data.
    assert found == [("S1", "silent", None)]
    assert STOP_2025 <= opened[0] < STOP_2025 + timedelta(hours=12)
