"""The offset a worker commits, from the offsets its sinks acknowledged (no broker needed).

``SeekSafeConsumer._new_offset`` answers the common case (one run of acknowledged offsets, no
gaps) without faust's per-offset walk; on random acknowledgements, with holes, repeats and
committed offsets ahead or behind, it must answer and leave its bookkeeping as faust's does.
"""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from intervaltree import IntervalTree

from byflyt.streams.consumer import SeekSafeConsumer

TP0 = TP("bike.counts", 0)


def _acks(rng: random.Random) -> tuple[list[int], int | None]:
    committed = rng.choice([None, 0, 99, 100, 101, 150])
    start = rng.choice([100, 101, 102, 130])
    offsets = list(range(start, start + rng.randrange(1, 300)))
    if rng.random() < 0.4:  # a hole
        del offsets[rng.randrange(len(offsets))]
    if rng.random() < 0.2:  # a repeat
        offsets.append(rng.choice(offsets))
    rng.shuffle(offsets)
    return offsets, committed


@pytest.fixture
def consumer() -> SeekSafeConsumer:
    """A worker's consumer, bare: only the offset bookkeeping these tests use (no loop)."""
    consumer = SeekSafeConsumer.__new__(SeekSafeConsumer)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._gap = defaultdict(IntervalTree)
    consumer._committed_offset = defaultdict(lambda: None)
    return consumer


@pytest.mark.parametrize("seed", range(40))
def test_the_committed_offset_is_fausts(consumer: SeekSafeConsumer, seed: int) -> None:
    offsets, committed = _acks(random.Random(seed))
    results = []
    for new_offset in (
        consumer._new_offset,
        lambda tp: aiokafka_driver.Consumer._new_offset(consumer, tp),
    ):
        consumer._acked[TP0] = list(offsets)
        consumer._acked_index[TP0] = set(offsets)
        consumer._committed_offset[TP0] = committed
        results.append((new_offset(TP0), sorted(consumer._acked[TP0]), consumer._acked_index[TP0]))
    assert results[0] == results[1]


def test_one_run_commits_past_its_end(consumer: SeekSafeConsumer) -> None:
    consumer._acked[TP0] = list(range(500, 25_500))
    consumer._acked_index[TP0] = set(range(500, 25_500))
    consumer._committed_offset[TP0] = 499
    assert consumer._new_offset(TP0) == 25_500
    assert consumer._acked[TP0] == []
    assert consumer._acked_index[TP0] == set()
