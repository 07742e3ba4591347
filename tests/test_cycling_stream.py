"""The cycling agents on the real broker and store: exact, idempotent, crash-safe, scalable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from byflyt.kafka import create_topics
from byflyt.models.counts import CountObservation
from byflyt.models.envelope import Rejected
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from tests.cycling_expect import expected_rows
from tests.helpers import drain, run, send, stored_rows, synthetic_hour, wait_until, worker
from tests.kafka_util import produce, read_all

pytestmark = pytest.mark.kafka
# 2025-10-26 01:00Z is the second 02:00 local hour (the autumn change): both UTC hours must stay.
START = datetime(2025, 10, 25, 20, tzinfo=UTC)
POINTS = {"A1": "3403", "A2": "3403", "B1": "3407", "C1": "0301"}


def synthetic_observations(hours: int, seed: int = 3) -> list[CountObservation]:
    """Synthetic counts for four points; some null hours, some partial coverage."""
    rng = random.Random(seed)
    out = []
    for h in range(hours):
        start = START + timedelta(hours=h)
        for point, kommune in POINTS.items():
            out.append(
                synthetic_hour(
                    *(rng, "synthetic", point, kommune, start),
                    null_share=0.1,
                    most=60,
                    coverages=[100.0, 100.0, 100.0, 87.5],
                )
            )
    return out


def test_exact_table_replay_and_correction(settings: Settings, worker_env: dict[str, str]) -> None:
    create_topics(settings)
    observations = synthetic_observations(30)
    send(settings, observations)
    drain(worker_env)
    expected = expected_rows(observations)
    assert stored_rows(settings) == expected
    hours = {row[3] for row in expected}
    assert datetime(2025, 10, 26, 0, tzinfo=UTC) in hours
    assert datetime(2025, 10, 26, 1, tzinfo=UTC) in hours

    # A replay of everything changes nothing.
    send(settings, observations)
    drain(worker_env)
    assert stored_rows(settings) == expected

    # Corrections replace: raise A1's volumes, and null every point of 0301 in one hour.
    corrected = [
        o.model_copy(update={"volume": (o.volume or 0) + 1000, "coverage": 100.0})
        for o in observations
        if o.point_id == "A1"
    ]
    first_hour = min(o.start for o in observations)
    nulled = [
        o.model_copy(update={"volume": None, "coverage": 0.0})
        for o in observations
        if o.kommune_nr == "0301" and o.start == first_hour
    ]
    send(settings, corrected + nulled)
    drain(worker_env)
    after = expected_rows(observations + corrected + nulled)
    assert stored_rows(settings) == after
    assert not any(r[0] == "0301" and r[3] == first_hour for r in after)

    # The compacted output topic converges to the same table (latest record per key).
    latest: dict[bytes | None, bytes | None] = {}
    for key, value in read_all(settings, settings.topic("volumes.hourly")):
        latest[key] = value
    topic_rows = sorted(
        (v.kommune_nr, v.mode, v.metric, v.hour_start, v.value, v.coverage, v.n_sources)
        for v in (HourlyVolume.from_bytes(raw) for raw in latest.values() if raw is not None)
    )
    assert topic_rows == after


def test_bad_records_go_to_the_dlq_and_the_stream_goes_on(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    create_topics(settings)
    good = synthetic_observations(3)
    naive = good[0].to_bytes().replace(b'Z"', b'"')
    negative = good[1].to_bytes().replace(b'"volume":', b'"volume":-5,"x":')
    bad_kommune = good[4].to_bytes().replace(b'"3403"', b'"34O3"')
    topic = settings.topic("bike.counts")
    produce(
        settings,
        topic,
        [(b"x", b"not json {"), (b"x", naive), (b"x", negative), (b"x", bad_kommune)]
        + [(o.key.encode(), o.to_bytes()) for o in good if o is not good[4]],
    )
    drain(worker_env)
    assert stored_rows(settings) == expected_rows([o for o in good if o is not good[4]])
    rejected = [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected"))
    ]
    assert len(rejected) == 4
    assert {r.code for r in rejected} == {"invalid_observation"}
    assert any("timezone" in r.reason for r in rejected)
    assert any("greater than or equal to 0" in r.reason for r in rejected)
    assert any("not json" in r.raw for r in rejected)


@pytest.mark.slow
def test_sigkill_mid_run_gives_the_same_table(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    create_topics(settings)
    observations = synthetic_observations(400, seed=11)
    send(settings, observations)
    proc = worker(worker_env, "--web-port", "0")
    try:
        with Store(settings.database_url) as store:
            wait_until(
                lambda: len(store.query_hourly(mode="bicycle")),
                120,
                "the worker to store more than 50 hourly rows",
                until=lambda rows: rows > 50,
                every=0.05,
            )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    partial = stored_rows(settings)
    expected = expected_rows(observations)
    assert len(partial) > 0
    drain(worker_env)
    assert stored_rows(settings) == expected


@pytest.mark.slow
def test_two_workers_give_the_same_table_as_one(settings_factory, tmp_path: Path) -> None:
    settings = settings_factory(topic_partitions=4)
    env = dict(os.environ)
    env.update(
        {
            "BYFLYT_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "BYFLYT_TOPIC_PREFIX": settings.topic_prefix,
            "BYFLYT_APP_ID": settings.app_id,
            "BYFLYT_TOPIC_PARTITIONS": "4",
            "BYFLYT_DATA_DIR": str(settings.data_dir),
            "BYFLYT_STORE_URL": settings.database_url,
        }
    )
    create_topics(settings)
    observations = synthetic_observations(200, seed=5)
    send(settings, observations)
    first, second = worker(env, "--drain"), worker(env, "--drain")
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    assert stored_rows(settings) == expected_rows(observations)


RUN_DRAIN = """
import sys

from byflyt.cli.commands import main
sys.argv = ["byflyt", "worker", "--drain"]
main()
"""


def patched_drain(
    settings: Settings, env: dict[str, str], script: Path, source: str, timeout: float = 180
) -> tuple[list[CountObservation], subprocess.CompletedProcess[str]]:
    """Twelve hours of counts sent, then ``source`` (a fault patched into byflyt) written to
    ``script`` with ``worker --drain`` after it and run to its end: the counts and how it went."""
    create_topics(settings)
    observations = synthetic_observations(12)
    send(settings, observations)
    script.write_text(source + RUN_DRAIN)
    return observations, run([sys.executable, script], env=env, timeout=timeout)


BROKEN_WRITE = """
import sys
from byflyt.store import Store

def broken(self, *args, **kwargs):
    raise RuntimeError("injected write failure")

Store.write_counts = broken
"""


def test_a_failing_write_stops_the_worker_and_a_restart_loses_nothing(
    settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """A batch that cannot be written (a bug, not an outage) stops the worker with an error
    instead of hanging or skipping the batch; the next worker writes it from the committed
    offsets."""
    observations, done = patched_drain(settings, worker_env, tmp_path / "broken.py", BROKEN_WRITE)
    assert done.returncode != 0, done.stderr[-3000:]
    assert "injected write failure" in done.stderr
    assert stored_rows(settings) == []
    drain(worker_env)
    assert stored_rows(settings) == expected_rows(observations)


BROKER_GONE_AT_START = """
import os
import sys
from pathlib import Path

from aiokafka.errors import KafkaConnectionError
from faust.tables.manager import TableManager

marker = Path(os.environ["BROKER_GONE_MARKER"])
original = TableManager.on_start


async def on_start(self):
    if not marker.exists():  # the first start only: the broker "goes away" as faust starts
        marker.write_text("gone once")
        raise KafkaConnectionError("injected: the broker went away during start-up")
    await original(self)


TableManager.on_start = on_start
"""


def test_a_broker_lost_during_start_up_starts_the_worker_again(
    settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """faust stops when Kafka fails while it starts (after the worker's wait for the broker);
    the worker waits for the broker and starts itself again, and the drain is exact."""
    marker = tmp_path / "gone"
    env = {**worker_env, "BROKER_GONE_MARKER": str(marker)}
    observations, done = patched_drain(
        settings, env, tmp_path / "broker_gone.py", BROKER_GONE_AT_START, timeout=240
    )
    assert marker.exists()
    assert "starting again" in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    assert stored_rows(settings) == expected_rows(observations)
