"""A backfill far longer than the hour state's retention stays exact, and so do old corrections.

Points on one partition arrive one after another (the connector backfills point by point), so
the first point's newest hour moves the kommune's event-time horizon while every later point's
hours are still to come. Expiry may evict state from memory; it must never delete a result,
and an observation for an evicted hour is recomputed from the stored point-hours.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from byflyt.kafka import create_topics
from byflyt.models.counts import CountObservation
from byflyt.models.envelope import Rejected
from byflyt.settings import Settings
from tests.cycling_expect import expected_rows
from tests.helpers import drain, send, stored_rows, synthetic_hour
from tests.kafka_util import read_all

pytestmark = pytest.mark.kafka
START = datetime(2024, 6, 1, tzinfo=UTC)
DAYS = 400
STEP_HOURS = 5  # every fifth hour: 1,920 hours a point, all 24 hours of day over the run
POINTS = {"A1": "3403", "A2": "3403", "A3": "3403", "B1": "3407", "B2": "3407"}


def backfill(seed: int = 17) -> list[CountObservation]:
    """Each point's whole 400 days, point after point, as a backfilling connector sends them."""
    rng = random.Random(seed)
    out = []
    for point, kommune in POINTS.items():
        for h in range(0, DAYS * 24, STEP_HOURS):
            start = START + timedelta(hours=h)
            out.append(
                synthetic_hour(
                    *(rng, "synthetic", point, kommune, start),
                    null_share=0.05,
                    most=90,
                    coverages=[100.0, 100.0, 95.83],
                )
            )
    return out


@pytest.fixture
def env(store_env: dict[str, str]) -> dict[str, str]:
    return {**store_env, "BYFLYT_TOPIC_PARTITIONS": "1"}


def _settings(settings: Settings, env: dict[str, str]) -> Settings:
    return settings.model_copy(update={"topic_partitions": 1, "store_url": env["BYFLYT_STORE_URL"]})


def test_400_day_backfill_and_a_300_day_old_correction_equal_the_truth(
    settings: Settings, env: dict[str, str]
) -> None:
    assert settings.hour_retention_days < DAYS
    settings = _settings(settings, env)
    create_topics(settings)
    observations = backfill()
    send(settings, observations)
    drain(env, timeout=300)
    expected = expected_rows(observations)
    assert len(expected) > 0.95 * 2 * DAYS * 24 // STEP_HOURS  # a few all-null cells: no row
    assert stored_rows(settings) == expected

    # A correction to one point's hour 300 days before the newest, long evicted from memory:
    # recomputed from the stored point-hours of the other points, nothing else moves.
    newest = max(o.start for o in observations)
    old_hour = START + timedelta(hours=((newest - START).days - 300) * 24 // STEP_HOURS * 5)
    target = next(o for o in observations if o.point_id == "A2" and o.start == old_hour)
    corrected = target.model_copy(update={"volume": (target.volume or 0) + 5000})
    send(settings, [corrected])
    drain(env, timeout=300)
    after = expected_rows([*observations, corrected])
    assert after != expected
    assert stored_rows(settings) == after
    rejected = [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected"))
    ]
    assert rejected == []


def test_a_count_beyond_the_grace_is_too_late_and_leaves_the_store_untouched(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    env = dict(worker_env)
    env["BYFLYT_LATE_GRACE_DAYS"] = "30"
    create_topics(settings)

    def obs(point: str, start: datetime, volume: int) -> CountObservation:
        return CountObservation(
            source="synthetic",
            point_id=point,
            kommune_nr="3403",
            start=start,
            end=start + timedelta(hours=1),
            volume=volume,
            coverage=100.0,
        )

    old, new = START, START + timedelta(days=100)
    # In order of arrival: the old hour comes before the kommune has seen anything newer.
    first = [obs("A1", old, 5), obs("A2", old, 7), obs("A1", new, 11)]
    send(settings, first)
    drain(env)
    expected = expected_rows(first)
    assert stored_rows(settings) == expected

    within = obs("A2", new - timedelta(days=29), 3)  # 29 days behind: recomputed, stored
    late = obs("A2", old, 700)  # 100 days behind the newest hour: beyond the grace
    send(settings, [within, late])
    drain(env)
    assert stored_rows(settings) == expected_rows([*first, within])
    rejected = [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected"))
    ]
    assert [(r.code, r.source, r.stage) for r in rejected] == [
        ("too_late", "bike.counts", "aggregate_counts")
    ]
    assert "30 days" in rejected[0].reason
    assert CountObservation.from_bytes(rejected[0].raw) == late
