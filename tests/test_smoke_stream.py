"""Platform smoke test: 1,000 records through a real faust agent on the real broker."""

from __future__ import annotations

import sys

import pytest

from byflyt.kafka import create_topics
from byflyt.topics import TopicSpec
from tests.helpers import REPO, run
from tests.kafka_util import produce, read_all

pytestmark = pytest.mark.kafka


def test_thousand_records_through_an_agent_and_drain(settings, worker_env) -> None:
    source = settings.topic("smoke.in")
    target = settings.topic("smoke.out")
    create_topics(settings, [TopicSpec("smoke.in", "k", "v"), TopicSpec("smoke.out", "k", "v")])
    sent = [(f"k{i % 17}".encode(), f"message-{i}".encode()) for i in range(1000)]
    produce(settings, source, sent)

    done = run(
        [sys.executable, REPO / "tests" / "smoke_worker.py", source, target],
        env=worker_env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    received = read_all(settings, target)
    assert len(received) == 1000
    assert sorted(v for _, v in received) == sorted(v.upper() for _, v in sent)
    # Keys keep their partitioning: every key's values arrive in the order they were sent.
    by_key: dict[bytes | None, list[bytes | None]] = {}
    for key, value in received:
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        expected = [v.upper() for k, v in sent if k == key]
        assert values == expected
