"""Freshness: observations produced steadily, time from produce to the committed store row.

1. Start ``byflyt worker`` (not a drain) on a fresh topic prefix with a SQLite store, and wait
   until a first observation's row is in the store (start-up is not part of the figure).
2. Produce ``rate`` observations a second for ``seconds`` seconds (each a new point-hour of
   :data:`POINTS` points, keyed by kommune and in the compact format, as the Trafikkdata
   connector produces them).
3. A reader polls the store's ``point_hourly`` every 20 ms; each row's latency is the time it
   was first seen minus the time its observation was handed to the producer.
4. Report p50, p99 and max, and whether every row arrived.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.cycling import KOMMUNER
from byflyt.kafka import create_topics, producer
from byflyt.models import codec_counts
from byflyt.models.counts import CountObservation
from byflyt.settings import Settings
from byflyt.topics import BIKE_COUNTS

POINTS = 500
POLL_S = 0.02
GOAL_P99_S = 2.0


def _observation(i: int) -> CountObservation:
    hour = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(hours=i // POINTS)
    point = i % POINTS
    return CountObservation(
        source="synthetic-fresh",
        point_id=f"F{point:04d}",
        kommune_nr=KOMMUNER[point % len(KOMMUNER)],
        start=hour,
        end=hour + timedelta(hours=1),
        volume=i % 50,
        coverage=100.0,
    )


class _Reader(threading.Thread):
    """Polls ``point_hourly`` and notes when each (point, hour) row is first seen."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(url)
        self.seen: dict[tuple[str, str], float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        # Only rows written since the newest one seen (``updated_at`` is sortable UTC text), so
        # the reader's own cost stays flat as the table grows.
        query = text(
            "SELECT point_id, hour_start, updated_at FROM point_hourly "
            "WHERE source = 'synthetic-fresh' AND updated_at >= :since"
        )
        since = ""
        while not self.stop.is_set():
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(query, {"since": since}).all()
            except Exception:  # noqa: BLE001 - the table may not exist yet
                rows = []
            now = time.perf_counter()
            for point_id, hour, updated_at in rows:
                self.seen.setdefault((point_id, str(hour)[:13].replace("T", " ")), now)
                since = max(since, str(updated_at))
            time.sleep(POLL_S)


class Probe:
    """A running ``byflyt worker`` on its own topics and SQLite store, and the row reader.

    :meth:`start` waits until the worker writes (start-up is not part of the figure),
    :meth:`produce` sends observations at a steady rate, :meth:`figures` says how fresh their rows
    were. The load benchmark runs one beside its API clients.
    """

    def __init__(self, settings: Settings, name: str = "fresh") -> None:
        self.settings = settings.model_copy(
            update={"topic_prefix": f"{settings.topic_prefix}{name}."}
        )
        self.url = f"sqlite:///{settings.data_dir / f'{name}.sqlite'}"
        self.env = dict(os.environ)
        self.env.update(
            {
                "BYFLYT_KAFKA_BOOTSTRAP": self.settings.bootstrap_servers,
                "BYFLYT_TOPIC_PREFIX": self.settings.topic_prefix,
                "BYFLYT_APP_ID": f"{settings.app_id}-{name}",
                "BYFLYT_DATA_DIR": str(settings.data_dir),
                "BYFLYT_STORE_URL": self.url,
            }
        )
        self.worker: subprocess.Popen[str] | None = None
        self.reader = _Reader(self.url)
        self.producer = producer(self.settings, linger_ms=5)
        self.topic = self.settings.topic(BIKE_COUNTS.name)
        self.produced: dict[tuple[str, str], float] = {}
        self.startup_s = 0.0
        self.rate = 0
        self.seconds = 0

    def send(self, obs: CountObservation, *, timed: bool = True) -> None:
        """Hand ``obs`` to the producer (noting when, unless ``timed`` is false)."""
        if timed:
            key = (obs.point_id, obs.start.isoformat()[:13].replace("T", " "))
            self.produced[key] = time.perf_counter()
        self.producer.send(self.topic, key=obs.kommune_nr.encode(), value=codec_counts.encode(obs))

    def start(self) -> None:
        """Start the worker and the reader; return once a first observation's row is stored."""
        create_topics(self.settings)
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "byflyt", "worker", "--web-port", str(free_port())],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader.start()
        started = time.perf_counter()
        self.send(_observation(-1))  # the hour before the timed ones
        self.producer.flush()
        first = next(iter(self.produced))
        while first not in self.reader.seen:
            if self.worker.poll() is not None or time.perf_counter() - started > 180:
                raise RuntimeError(f"worker did not start: {self.worker.communicate()[1][-2000:]}")
            time.sleep(POLL_S)
        self.startup_s = self.reader.seen[first] - started
        self.produced.clear()

    def produce(self, rate: int, seconds: int) -> None:
        """Send ``rate`` observations a second for ``seconds``; wait (≤ 60 s) for their rows."""
        self.rate, self.seconds = rate, seconds
        begin = time.perf_counter()
        for i in range(rate * seconds):
            pause = begin + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            self.send(_observation(i))
        self.producer.flush()
        deadline = time.perf_counter() + 60
        while len(set(self.produced) & set(self.reader.seen)) < len(self.produced):
            if time.perf_counter() > deadline:
                break
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the reader, the producer and the worker."""
        self.reader.stop.set()
        self.producer.close()
        if self.worker is None:
            return
        self.worker.terminate()
        try:
            self.worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.communicate()

    def figures(self) -> dict[str, Any]:
        """p50/p99/max produce → stored row, missing rows, and whether the goal was met."""
        seen = self.reader.seen
        latencies = sorted(seen[k] - t for k, t in self.produced.items() if k in seen)
        missing = len(self.produced) - len(latencies)

        def pct(q: float) -> float | None:
            if not latencies:
                return None
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3)

        return {
            "benchmark": "freshness: produce → committed store row (point_hourly), SQLite",
            "measured_at": datetime.now(UTC).isoformat(),
            "rate_per_s": self.rate,
            "seconds": self.seconds,
            "observations": len(self.produced),
            "missing_rows": missing,
            "worker_startup_seconds": round(self.startup_s, 2),
            "p50_seconds": pct(0.50),
            "p99_seconds": pct(0.99),
            "max_seconds": round(latencies[-1], 3) if latencies else None,
            "poll_interval_seconds": POLL_S,
            "goal_p99_seconds": GOAL_P99_S,
            "met": missing == 0 and (pct(0.99) or 1e9) <= GOAL_P99_S,
        }


def run(settings: Settings, out: Path, rate: int = 1000, seconds: int = 60) -> dict[str, Any]:
    """Run the freshness benchmark; return and write the figures."""
    probe = Probe(settings)
    try:
        probe.start()
        probe.produce(rate, seconds)
    finally:
        probe.stop()
    figures = probe.figures()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def row(label: str, fresh: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """The bench table's row for these figures (:meth:`Probe.figures`), named ``label``."""
    return (
        label,
        f"p99 {fresh['p99_seconds']} s (p50 {fresh['p50_seconds']} s, "
        f"{fresh['missing_rows']} missing)",
        "",
        "",
        "p99 ≤ 2 s",
        "yes" if fresh["met"] else "no",
    )
