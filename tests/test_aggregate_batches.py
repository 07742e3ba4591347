"""A batch of counts aggregated at once equals the same batch aggregated a count at a time.

The count aggregation takes a batch in one loop when no count in it can be late (the usual
case) and a count at a time, each checked against the newest hour before it, otherwise. On
random batches (several kommuner and modes, repeats, corrections, and counts beyond the
grace), both must keep the same values, newest hours and point-hours, and reject the same
counts for the same reason. Pure: no Kafka, no store.
"""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest

from byflyt.models.codec_counts import Count
from byflyt.streams.cycling import CountAggregator

GRACE_DAYS = 3


def _aggregator() -> tuple[CountAggregator, list[tuple[str, str, str]]]:
    agg = CountAggregator.__new__(CountAggregator)
    agg.newest, agg.point_hours, agg._point_keys = {}, [], {}
    agg.grace = GRACE_DAYS * 86400
    agg.settings = SimpleNamespace(late_grace_days=GRACE_DAYS)
    rejected: list[tuple[str, str, str]] = []

    async def reject(source: str, code: str, raw: bytes | None, reason: str, stage: str) -> None:
        rejected.append((code, reason, stage))

    agg.reject = reject
    return agg, rejected


def _batch(rng: random.Random, base: int) -> list[Count]:
    counts = []
    for _ in range(rng.randrange(1, 400)):
        hour = base + rng.randrange(0, 48) * 3600
        if rng.random() < 0.003:
            hour -= rng.randrange(2, 8) * 86400  # may be beyond the grace
        counts.append(
            Count(
                source=rng.choice(["trafikkdata", "eco-counter"]),
                point_id=f"P{rng.randrange(12)}",
                kommune_nr=rng.choice(["3403", "3405"]),
                mode=rng.choice(["bicycle", "pedestrian"]),
                start=hour + rng.choice([0, 900]),
                end=hour + 3600,
                volume=rng.choice([None, *range(50)]),
                coverage=rng.choice([0.0, 50.0, 100.0]),
            )
        )
    return counts


@pytest.mark.parametrize("seed", range(20))
def test_a_batch_at_once_equals_a_count_at_a_time(seed: int) -> None:
    rng = random.Random(seed)
    fast, fast_rejected = _aggregator()
    slow, slow_rejected = _aggregator()
    base = 1_735_689_600  # 2025-01-01
    paths = set()
    for _ in range(15):
        batch = _batch(rng, base)
        base += rng.randrange(0, 72) * 3600
        paths.add(fast._aggregate_within_grace(list(batch)) is None)
        fast.newest, fast.point_hours = dict(slow.newest), list(slow.point_hours)
        got = asyncio.run(fast.aggregate(batch))
        want = asyncio.run(slow._aggregate_in_order(batch))
        assert got == want
        assert fast.newest == slow.newest
        assert fast.point_hours == slow.point_hours
        assert fast_rejected == slow_rejected
    assert paths == {True, False}  # both ways were taken
    assert slow_rejected  # and counts were late
