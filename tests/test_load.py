"""The load benchmark's clients against a real ``byflyt serve``, small and bounded; and reuse.

The smoke test runs 20 keep-alive clients for 5 s over a real SQLite store and asserts only that
every request was answered and every kind of call was made. How fast is the benchmark's question
(``python -m bench load``), never a test's.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench import loadgen
from bench.cycling import KOMMUNER
from bench.load import points, start_serve
from byflyt.models.counts import CountObservation
from byflyt.models.volumes import HourlyVolume
from byflyt.store import Store
from byflyt.web.reuse import Reuse
from tests.conftest import free_port

HOUR = timedelta(hours=1)
FIRST = datetime(2025, 5, 1, tzinfo=UTC)
KINDS = {
    "live_state",
    "hourly_kommune",
    "hourly_region",
    "hourly_csv",
    "index",
    "points",
    "outages",
    "registry",
}


def _fill(url: str) -> None:
    """Two days of May 2025 and May 2024 for a few points, and their kommune-hours."""
    registered = points()[: len(KOMMUNER)]
    with Store(url) as store:
        store.upsert_points(registered)
        for first in (FIRST.replace(year=2024), FIRST):
            hours = [first + h * HOUR for h in range(48)]
            store.upsert_point_hourly(
                CountObservation(
                    source=p.source,
                    point_id=p.point_id,
                    kommune_nr=p.kommune_nr,
                    start=hour,
                    end=hour + HOUR,
                    volume=10 + h % 7,
                    coverage=100.0,
                )
                for p in registered
                for h, hour in enumerate(hours)
            )
            store.upsert_kommune_hourly(
                HourlyVolume(
                    kommune_nr=p.kommune_nr,
                    mode="bicycle",
                    metric="volume",
                    hour_start=hour,
                    value=10 + h % 7,
                    coverage=100.0,
                    n_sources=1,
                )
                for p in registered
                for h, hour in enumerate(hours)
            )
        store.upsert_outage("synthetic-load", "L000", "silent", FIRST, None, KOMMUNER[0])


@pytest.mark.slow
def test_twenty_clients_for_five_seconds_are_all_answered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    _fill(url)
    env = {**os.environ, "BYFLYT_DATA_DIR": str(tmp_path), "BYFLYT_STORE_URL": url}
    port = free_port()
    serve = start_serve(env, port, tmp_path / "serve.log", "--no-topics")
    try:
        figures = asyncio.run(
            loadgen.run(f"http://127.0.0.1:{port}", clients=20, seconds=5, first_day=FIRST, days=2)
        )
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert figures["errors"] == 0, figures["error_kinds"]
    assert set(figures["by_kind"]) == KINDS
    assert figures["requests"] == sum(k["requests"] for k in figures["by_kind"].values())


def test_loadgen_refuses_anything_but_loopback() -> None:
    loadgen.check_loopback("http://127.0.0.1:8066")
    loadgen.check_loopback("http://localhost:8066")
    loadgen.check_loopback("http://[::1]:8066")
    for url in ("http://10.0.0.5:8066", "http://192.168.1.2/", "http://example.org/"):
        with pytest.raises(SystemExit, match="not a loopback address"):
            loadgen.check_loopback(url)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reuse_keeps_an_answer_for_its_seconds_then_computes_again() -> None:
    clock = _Clock()
    reuse: Reuse[int] = Reuse(30, clock=clock)
    computed: list[str] = []

    def compute(key: str) -> int:
        computed.append(key)
        return len(computed)

    assert reuse.get("a", lambda: compute("a")) == (1, 0.0)
    clock.now += 29
    assert reuse.get("a", lambda: compute("a")) == (1, 29.0)
    assert reuse.get("b", lambda: compute("b"))[0] == 2  # another question, its own answer
    clock.now += 1
    assert reuse.get("a", lambda: compute("a"))[0] == 3
    assert computed == ["a", "b", "a"]


def test_reuse_keeps_no_failure_and_zero_seconds_reuses_nothing() -> None:
    reuse: Reuse[int] = Reuse(30)

    def fail() -> int:
        raise RuntimeError("store away")

    with pytest.raises(RuntimeError, match="store away"):
        reuse.get("a", fail)
    assert reuse.get("a", lambda: 7) == (7, pytest.approx(0.0, abs=1))
    never: Reuse[int] = Reuse(0)
    answers = iter((1, 2))
    assert never.get("a", lambda: next(answers))[0] == 1
    assert never.get("a", lambda: next(answers))[0] == 2


def test_reuse_computes_once_for_callers_asking_at_the_same_time() -> None:
    reuse: Reuse[int] = Reuse(30)
    calls: list[int] = []
    release = threading.Event()

    def slow() -> int:
        calls.append(1)
        release.wait(10)
        return 42

    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(reuse.get("k", slow)[0])) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every thread is now waiting for the first one's answer
    release.set()
    for thread in threads:
        thread.join(10)
    assert answers == [42] * 8
    assert calls == [1]


def test_reuse_gives_the_last_answer_while_a_new_one_is_computed() -> None:
    clock = _Clock()
    reuse: Reuse[int] = Reuse(30, clock=clock)
    assert reuse.get("k", lambda: 1)[0] == 1
    clock.now += 31
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        release.wait(10)
        return 2

    renewing = threading.Thread(target=lambda: reuse.get("k", slow))
    renewing.start()
    assert started.wait(10)
    assert reuse.get("k", lambda: 3) == (1, 31.0)  # not computed again, not waited for
    release.set()
    renewing.join(10)
    assert reuse.get("k", lambda: 4)[0] == 2
