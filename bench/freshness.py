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


def run(settings: Settings, out: Path, rate: int = 1000, seconds: int = 60) -> dict[str, Any]:
    """Run the freshness benchmark; return and write the figures."""
    fresh = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "fresh."})
    create_topics(fresh)
    url = f"sqlite:///{settings.data_dir / 'fresh.sqlite'}"
    env = dict(os.environ)
    env.update(
        {
            "BYFLYT_KAFKA_BOOTSTRAP": fresh.bootstrap_servers,
            "BYFLYT_TOPIC_PREFIX": fresh.topic_prefix,
            "BYFLYT_APP_ID": f"{settings.app_id}-fresh",
            "BYFLYT_DATA_DIR": str(settings.data_dir),
            "BYFLYT_STORE_URL": url,
        }
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "byflyt", "worker", "--web-port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = _Reader(url)
    prod = producer(fresh, linger_ms=5)
    topic = fresh.topic(BIKE_COUNTS.name)
    produced: dict[tuple[str, str], float] = {}

    def send(i: int) -> None:
        obs = _observation(i)
        produced[(obs.point_id, obs.start.isoformat()[:13].replace("T", " "))] = time.perf_counter()
        prod.send(topic, key=obs.kommune_nr.encode(), value=codec_counts.encode(obs))

    try:
        reader.start()
        total = rate * seconds
        # Start-up: the first observation's row shows the worker is consuming and writing.
        started = time.perf_counter()
        send(total)
        prod.flush()
        first = next(iter(produced))
        while first not in reader.seen:
            if worker.poll() is not None or time.perf_counter() - started > 180:
                raise RuntimeError(f"worker did not start: {worker.communicate()[1][-2000:]}")
            time.sleep(POLL_S)
        startup_s = reader.seen[first] - started
        produced.clear()
        begin = time.perf_counter()
        for i in range(total):
            due = begin + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            send(i)
        prod.flush()
        deadline = time.perf_counter() + 60
        while len(set(produced) & set(reader.seen)) < len(produced):
            if time.perf_counter() > deadline:
                break
            time.sleep(0.2)
    finally:
        reader.stop.set()
        prod.close()
        worker.terminate()
        try:
            worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
    latencies = sorted(reader.seen[k] - t for k, t in produced.items() if k in reader.seen)
    missing = len(produced) - len(latencies)

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3)

    figures = {
        "benchmark": "freshness: produce → committed store row (point_hourly), SQLite",
        "measured_at": datetime.now(UTC).isoformat(),
        "rate_per_s": rate,
        "seconds": seconds,
        "observations": len(produced),
        "missing_rows": missing,
        "worker_startup_seconds": round(startup_s, 2),
        "p50_seconds": pct(0.50),
        "p99_seconds": pct(0.99),
        "max_seconds": round(latencies[-1], 3) if latencies else None,
        "poll_interval_seconds": POLL_S,
        "goal_p99_seconds": 2.0,
        "met": missing == 0 and (pct(0.99) or 1e9) <= 2.0,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures
