"""Cycling agent throughput against a bare consumer, measured in the same run.

1. Produce N synthetic observations (points × hours, labelled synthetic) to ``bike.counts``.
2. (a) Baseline: a bare aiokafka consumer reads all N records (no parsing), events/s.
3. (b) ``byflyt worker --drain`` processes them through the cycling agents into the store
   (SQLite), events/s and the worker's peak RSS.
4. Write both, and (b)/(a), to ``bench/results/cycling.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from byflyt.kafka import create_topics, producer
from byflyt.models.counts import CountObservation
from byflyt.settings import Settings
from byflyt.topics import BIKE_COUNTS

KOMMUNER = ("3403", "3405", "3407", "3411", "3412", "3413", "3420", "3442", "3443")


def produce_observations(settings: Settings, n: int, points: int = 200) -> None:
    """N observations: ``points`` synthetic points, consecutive hours from 2025-01-01."""
    prod = producer(settings, linger_ms=50, batch_size=256 * 1024)
    topic = settings.topic(BIKE_COUNTS.name)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    retrieved = datetime(2025, 12, 1, tzinfo=UTC)
    for i in range(n):
        point = i % points
        hour = start + timedelta(hours=i // points)
        obs = CountObservation(
            source="synthetic-bench",
            point_id=f"P{point:04d}",
            kommune_nr=KOMMUNER[point % len(KOMMUNER)],
            start=hour,
            end=hour + timedelta(hours=1),
            volume=(i * 7919) % 97,
            coverage=100.0 if i % 11 else 87.5,
            retrieved_at=retrieved,
        )
        prod.send(topic, key=obs.key.encode(), value=obs.to_bytes())
    prod.flush()
    prod.close()


async def _bare_consume(settings: Settings, n: int) -> float:
    consumer = AIOKafkaConsumer(
        settings.topic(BIKE_COUNTS.name),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"bench-bare-{time.time_ns()}",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def run(settings: Settings, n: int, out: Path) -> dict[str, Any]:
    """Run the whole benchmark; return and write the figures."""
    create_topics(settings)
    t0 = time.perf_counter()
    produce_observations(settings, n)
    produce_s = time.perf_counter() - t0

    bare_s = asyncio.run(_bare_consume(settings, n))

    env = dict(os.environ)
    env.update(
        {
            "BYFLYT_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "BYFLYT_TOPIC_PREFIX": settings.topic_prefix,
            "BYFLYT_APP_ID": f"{settings.app_id}-agent",
            "BYFLYT_DATA_DIR": str(settings.data_dir),
            "BYFLYT_STORE_URL": settings.database_url,
        }
    )
    t1 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "byflyt", "worker", "--drain"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    agent_s = time.perf_counter() - t1
    if done.returncode != 0:
        raise RuntimeError(f"worker --drain failed: {done.stderr[-2000:]}")
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "benchmark": "cycling agent vs bare aiokafka consumer (synthetic observations)",
        "measured_at": datetime.now(UTC).isoformat(),
        "n_observations": n,
        "produce_seconds": round(produce_s, 2),
        "bare_consumer_events_per_s": round(n / bare_s),
        "agent_events_per_s": round(n / agent_s),
        "agent_to_bare_ratio": round(bare_s / agent_s, 4),
        "agent_seconds_including_startup": round(agent_s, 2),
        "worker_peak_rss_mb": round(peak_rss_mb, 1),
        "cpu_count": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures
