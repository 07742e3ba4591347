"""Eviction of the count aggregation's kommune-hours from memory (pure: no Kafka, no store).

A kommune-hour behind its kommune's newest hour minus the retention leaves memory once it is
stored; one the flush at hand writes (``unstored``) stays until a later flush. Eviction finds
the old ones from a heap of hours per kommune; here it must leave exactly what the rule says.
"""

from __future__ import annotations

import random

import pytest

from byflyt.streams.cycling import Cell, CountAggregator

RETENTION = 10 * 3600


def _aggregator() -> CountAggregator:
    """The aggregation's memory alone (eviction touches nothing else)."""
    agg = CountAggregator.__new__(CountAggregator)
    agg.cells, agg.newest, agg.loaded, agg.hours_held = {}, {}, {}, {}
    agg.retention = RETENTION
    return agg


def _expected(agg: CountAggregator, before: set[Cell], unstored: set[Cell]) -> set[Cell]:
    return {
        c for c in before if c in unstored or c[2] >= agg.newest.get((c[0], c[1]), c[2]) - RETENTION
    }


@pytest.mark.parametrize("seed", range(10))
def test_eviction_leaves_what_the_rule_keeps(seed: int) -> None:
    rng = random.Random(seed)
    agg = _aggregator()
    groups = [("3403", "bicycle"), ("3405", "bicycle"), ("3403", "foot")]
    hour = {group: 0 for group in groups}
    evicted = 0
    for _ in range(30):
        unstored: set[Cell] = set()
        for _ in range(rng.randrange(1, 40)):
            group = rng.choice(groups)
            if rng.random() < 0.1:  # a correction, or a kommune-hour loaded again
                at = hour[group] - rng.randrange(0, 30) * 3600
            else:
                hour[group] += rng.randrange(0, 3) * 3600
                at = hour[group]
            cell = (*group, at)
            if cell not in agg.cells:
                agg.cells[cell] = {}
                agg._hold(cell)
            unstored.add(cell)
            agg.newest[group] = max(agg.newest.get(group, at), at)
        if rng.random() < 0.2:
            del agg.newest[rng.choice(groups)]  # a kommune not seen since a restart
        before = set(agg.cells)
        agg._evict(unstored)
        assert set(agg.cells) == _expected(agg, before, unstored)
        evicted += len(before) - len(agg.cells)
    assert evicted > 0
