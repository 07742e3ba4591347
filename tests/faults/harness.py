"""The fault tests' machinery, shared by the pytest fixtures and ``make chaos``.

A private broker and a private PostgreSQL that a test may stop and start again (the session's
ones stay untouched), a fixed synthetic workload with its ground truth computed independently
of the agents, real ``byflyt`` processes with their logs, and the two views that must equal the
ground truth at the end: the store and the compacted ``volumes.hourly`` topic.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from byflyt.broker import LocalBroker
from byflyt.kafka import admin
from byflyt.models.counts import CountObservation
from byflyt.models.kommuner import get_region
from byflyt.models.volumes import HourlyVolume
from byflyt.samples.trafikkdata import TrafikkdataDataset
from byflyt.settings import Settings
from tests.cycling_expect import Row
from tests.helpers import free_port, kafka_libs, stored_rows, synthetic_hour, wait_until
from tests.kafka_util import produce, read_all
from tests.pg import LocalPostgres, PgServer, pg_bin_dir

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


# -- a broker and a PostgreSQL we may stop ---------------------------------------------------
class PrivateBroker:
    """A single-node Kafka of our own: stopped and started again on the same port and data."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.local = LocalBroker(folder, kafka_libs(), self.port)
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the broker; returns once it answers."""
        self.local.start()

    def stop(self) -> None:
        """Stop the broker cleanly; its data stays."""
        self.local.stop()


class PrivatePostgres(LocalPostgres):
    """A PostgreSQL cluster of our own, which a test may ``halt`` and ``resume``."""

    def __init__(self) -> None:
        super().__init__(pg_bin_dir())

    def start(self) -> PgServer:
        """initdb and start; the server (also kept as ``server``)."""
        self.server = super().start()
        return self.server


# -- processes -------------------------------------------------------------------------------
@dataclass
class Proc:
    """A ``byflyt`` process of a test, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process."""
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for its exit; its exit code (fails with its log when it does not exit)."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGUSR1)  # mode prints every task's stack
            time.sleep(2)
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(
                f"{self.name} did not exit in {timeout:.0f}s:\n{self.output()[-4000:]}"
            ) from None


@dataclass
class Run:
    """Settings, environment and processes of one fault test or chaos schedule."""

    settings: Settings
    folder: Path
    procs: list[Proc] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Environment for ``byflyt`` subprocesses that use these settings."""
        env = dict(os.environ)
        env.update(
            {
                "BYFLYT_KAFKA_BOOTSTRAP": self.settings.bootstrap_servers,
                "BYFLYT_TOPIC_PREFIX": self.settings.topic_prefix,
                "BYFLYT_APP_ID": self.settings.app_id,
                "BYFLYT_TOPIC_PARTITIONS": str(self.settings.topic_partitions),
                "BYFLYT_DATA_DIR": str(self.settings.data_dir),
                "BYFLYT_STORE_URL": self.settings.database_url,
                "BYFLYT_KAFKA_LIBS": str(kafka_libs()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def byflyt(self, name: str, *args: str) -> Proc:
        """Start ``byflyt ARGS`` with its output in ``<folder>/<name>.log``."""
        log = self.folder / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "byflyt", *args],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, web_port: int | None = None) -> Proc:
        """A long-running worker, its /metrics on ``web_port`` (default: a free port).

        Never the default port: two workers of a run, or another run's, would collide on it.
        """
        port = web_port if web_port is not None else free_port()
        return self.byflyt(name, "worker", "--loglevel", "info", "--web-port", str(port))

    def drain(self, name: str, timeout: float = 120) -> Proc:
        """``byflyt worker --drain`` to the end; fails unless it exits 0."""
        proc = self.byflyt(name, "worker", "--drain", "--loglevel", "info")
        code = proc.wait(timeout)
        assert code == 0, f"{name} exited {code}:\n{proc.output()[-4000:]}"
        return proc

    def close(self) -> None:
        """Stop every process still running (SIGCONT first: a paused one cannot exit)."""
        for proc in reversed(self.procs):
            if proc.alive():
                proc.popen.send_signal(signal.SIGCONT)
                proc.popen.terminate()
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)

    def outputs(self) -> str:
        """Every process' output, for failure messages."""
        return "\n".join(f"--- {p.name}\n{p.output()[-2500:]}" for p in self.procs)


def no_tracebacks(procs: Iterable[Proc]) -> None:
    """Fail naming the process that printed a traceback."""
    for proc in procs:
        text = proc.output()
        assert "Traceback" not in text, f"{proc.name} printed a traceback:\n{text[-5000:]}"


# -- /metrics --------------------------------------------------------------------------------
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")


def scrape(port: int) -> str | None:
    """The /metrics text on ``port``, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def metric_sum(text: str | None, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in (text or "").splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def scraped(port: int, name: str, **labels: str) -> float:
    """:func:`metric_sum` of what the process on ``port`` serves on /metrics now."""
    return metric_sum(scrape(port), name, **labels)


# -- the workload and its ground truth -------------------------------------------------------
START = datetime(2025, 10, 25, 12, tzinfo=UTC)  # spans the autumn clock change
POINTS = {"F1": "3403", "F2": "3403", "F3": "3407", "F4": "3405", "F5": "3405", "F6": "3411"}


def observations(hours: int = 48, seed: int = 15, corrections: int = 40) -> list[CountObservation]:
    """A fixed synthetic workload in produce order: every point-hour, then some corrections.

    Some hours are null (missing, coverage 0), some partial; ``corrections`` later values replace
    earlier ones for random point-hours (a recount, or a volume turned null).
    """
    rng = random.Random(seed)
    out: list[CountObservation] = []
    for h in range(hours):
        start = START + timedelta(hours=h)
        for point, kommune in POINTS.items():
            out.append(hour_of(rng, point, kommune, start, null_share=0.08, most=80))
    for base in rng.sample(out[: len(out)], corrections):
        out.append(
            hour_of(rng, base.point_id, base.kommune_nr, base.start, null_share=0.15, most=120)
        )
    return out


def hour_of(
    rng: random.Random, point: str, kommune: str, start: datetime, null_share: float, most: int
) -> CountObservation:
    """A random hour of the workload's ``point`` (source ``faults``)."""
    coverages = [100.0, 100.0, 100.0, 87.5]
    return synthetic_hour(
        *(rng, "faults", point, kommune, start),
        null_share=null_share,
        most=most,
        coverages=coverages,
    )


def send(settings: Settings, batch: list[CountObservation]) -> None:
    """Produce ``batch`` to ``bike.counts`` and wait for the broker's acknowledgement."""
    produce(
        settings,
        settings.topic("bike.counts"),
        [(o.key.encode(), o.to_bytes()) for o in batch],
    )


def connector_observations(
    dataset: TrafikkdataDataset, region: str, since: datetime
) -> list[CountObservation]:
    """What a Trafikkdata run from ``since`` must deliver, from the dataset by the rules.

    Every bicycle point of the region contributes each hour from ``max(since, first data)`` to
    its latest data: the published value, or a missing hour (no volume, coverage 0).
    """
    kommuner = get_region(region).kommuner
    expected: list[CountObservation] = []
    for point in dataset.points:
        kommune = f"{point.municipality_number:04d}"
        if point.traffic_type != "BICYCLE" or kommune not in kommuner:
            continue
        hour = max(since, point.first_data.astimezone(UTC))
        while hour <= point.latest_data.astimezone(UTC):
            value = dataset.hours.get(point.id, {}).get(hour)
            volume, coverage = (value.volume, value.coverage) if value else (None, 0.0)
            expected.append(
                CountObservation(
                    source="trafikkdata",
                    point_id=point.id,
                    kommune_nr=kommune,
                    start=hour,
                    end=hour + timedelta(hours=1),
                    volume=volume,
                    coverage=coverage,
                )
            )
            hour += timedelta(hours=1)
    return expected


# -- the two views that must equal the truth -------------------------------------------------
store_rows = stored_rows
"""The store's bicycle kommune-hours, sorted like the truth (the helper every test uses)."""


def topic_rows(settings: Settings) -> list[Row]:
    """``volumes.hourly`` read to its end: the latest record per key, tombstones removed."""
    latest: dict[bytes | None, bytes | None] = {}
    for key, value in read_all(settings, settings.topic("volumes.hourly")):
        latest[key] = value
    volumes = (HourlyVolume.from_bytes(raw) for raw in latest.values() if raw is not None)
    return sorted(
        (v.kommune_nr, v.mode, v.metric, v.hour_start, v.value, v.coverage, v.n_sources)
        for v in volumes
        if v.mode == "bicycle"
    )


@dataclass(frozen=True)
class Verdict:
    """How a result differs from the truth: rows missing or wrong, rows that should not be."""

    lost: int
    doubled: int
    detail: str

    @property
    def exact(self) -> bool:
        """Nothing lost, nothing doubled."""
        return self.lost == 0 and self.doubled == 0


def compare(got: list[Row], truth: list[Row], what: str) -> Verdict:
    """``lost``: truth rows absent or with a smaller value; ``doubled``: extra or larger ones."""
    want = {row[:4]: row for row in truth}
    have = {row[:4]: row for row in got}
    lost = doubled = 0
    diffs: list[str] = []
    for key in sorted(want.keys() | have.keys()):
        a, b = want.get(key), have.get(key)
        if a == b:
            continue
        if b is None or (a is not None and b[4] < a[4]):
            lost += 1
        else:
            doubled += 1
        if len(diffs) < 5:
            diffs.append(f"{key[0]} {key[3]:%Y-%m-%dT%H}Z want {a and a[4:]} got {b and b[4:]}")
    return Verdict(lost, doubled, f"{what}: lost {lost}, doubled {doubled}; " + "; ".join(diffs))


def wait_for_store(
    settings: Settings, truth: list[Row], timeout: float, what: str = "the store to converge"
) -> None:
    """Wait until the store's hourly rows equal ``truth`` (fails after ``timeout`` s)."""
    wait_until(lambda: store_rows(settings), timeout, what, until=lambda rows: rows == truth)


def assert_exact(settings: Settings, truth: list[Row]) -> None:
    """The store and ``volumes.hourly`` both equal ``truth`` exactly."""
    assert truth, "an empty ground truth proves nothing"
    store = store_rows(settings)
    assert store == truth, compare(store, truth, "store").detail
    topic = topic_rows(settings)
    assert topic == truth, compare(topic, truth, "volumes.hourly").detail


def group_lag(settings: Settings) -> int:
    """Records the worker group has not committed on the cycling input topics."""
    from byflyt.streams.drain import partition_lag

    topics = {settings.topic("bike.counts"), settings.topic("bike.counts.by-kommune")}
    return sum(partition_lag(settings, settings.app_id, topics).values())


def delete_topic(settings: Settings, name: str) -> None:
    """Delete topic ``name`` (the full name) and wait until the broker no longer lists it."""
    client = admin(settings)
    try:
        client.delete_topics([name])
        wait_until(lambda: name not in client.list_topics(), 60, f"{name} to be deleted")
    finally:
        client.close()


def delete_changelogs(settings: Settings) -> list[str]:
    """Delete every table changelog topic of the worker's app; return their names."""
    client = admin(settings)
    try:
        names = sorted(
            t
            for t in client.list_topics()
            if t.startswith(f"{settings.app_id}-") and t.endswith("-changelog")
        )
    finally:
        client.close()
    assert names, f"the worker of {settings.app_id} has no changelog topics to lose"
    for name in names:
        delete_topic(settings, name)
    return names


def new_folder(prefix: str) -> Path:
    """A fresh temporary folder."""
    return Path(tempfile.mkdtemp(prefix=prefix))
