"""Cycling end to end against a tuned bare consumer, measured in the same run.

1. Produce N synthetic observations (points × hours, labelled synthetic) to ``bike.counts``, as
   the Trafikkdata connector does (keyed by kommune, the compact wire format).
2. Baseline: an aiokafka consumer with large fetches and ``getmany`` of 10,000 reads all N
   records (no parsing), events/s.
3. For each store (SQLite; PostgreSQL when given): a ``byflyt worker --drain`` of an empty
   prefix (the worker's start-up, drain check and stop), then one of the N records through
   every agent into the store. Steady state = N / (the second − the first); peak RSS.
4. Write the figures and the ratios to ``bench/results/cycling.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from byflyt.kafka import create_topics, producer
from byflyt.models import codec_counts
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
        # As the Trafikkdata connector produces them: keyed by kommune, compact wire format.
        prod.send(topic, key=obs.kommune_nr.encode(), value=codec_counts.encode(obs))
    prod.flush()
    prod.close()


async def _bare_consume(settings: Settings, n: int) -> float:
    """The baseline: a tuned aiokafka consumer (large fetches, ``getmany`` of 10,000)."""
    consumer = AIOKafkaConsumer(
        settings.topic(BIKE_COUNTS.name),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"bench-bare-{time.time_ns()}",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
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


def _drain(
    settings: Settings, app_id: str, store_url: str
) -> tuple[float, float | None, float | None]:
    """One ``byflyt worker --drain`` (a fresh consumer group): seconds, peak RSS, CPU seconds.

    The peak is the worker's own ``VmHWM``, read while it runs: ``ru_maxrss`` of a child also
    counts the pages of this process that the child had before ``exec`` (with ``vfork``, this
    process's own peak), which overstated the worker by this driver's size.
    """
    env = dict(os.environ)
    env.update(
        {
            "BYFLYT_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "BYFLYT_TOPIC_PREFIX": settings.topic_prefix,
            "BYFLYT_APP_ID": app_id,
            "BYFLYT_DATA_DIR": str(settings.data_dir),
            "BYFLYT_STORE_URL": store_url,
        }
    )
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "byflyt", "worker", "--drain"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        peak_kb = 0
        cpu: float | None = None
        while proc.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid) or 0)
            cpu = _cpu_seconds(proc.pid) or cpu
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            stderr = err.read().decode(errors="replace")
            raise RuntimeError(f"worker --drain failed: {stderr[-2000:]}")
    return seconds, peak_kb / 1024 if peak_kb else None, cpu


def _cpu_seconds(pid: int) -> float | None:
    """A running process's CPU time so far (user and system, all its threads), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _vm_hwm_kb(pid: int) -> int | None:
    """A running process's peak RSS so far (``VmHWM``, kB), or None where Linux gives none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run(
    settings: Settings, n: int, out: Path, store_urls: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run the whole benchmark; return and write the figures.

    ``store_urls`` maps a store's name to its URL (default: SQLite under the data dir). Each
    store gets a start-up run first (a worker draining an empty prefix: start, assignment,
    drain check, stop), so steady-state throughput is ``N / (drain − start-up)``.
    """
    stores = store_urls or {"sqlite": settings.database_url}
    create_topics(settings)
    t0 = time.perf_counter()
    produce_observations(settings, n)
    produce_s = time.perf_counter() - t0

    bare_s = asyncio.run(_bare_consume(settings, n))
    empty = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "empty."})
    create_topics(empty)
    figures: dict[str, Any] = {
        "benchmark": "cycling end to end (consume, validate, aggregate, volumes.hourly, store)",
        "measured_at": datetime.now(UTC).isoformat(),
        "n_observations": n,
        "produce_seconds": round(produce_s, 2),
        "bare_consumer_events_per_s": round(n / bare_s),
        "cpu_count": os.cpu_count(),
    }
    for name, url in stores.items():
        startup_s, _, startup_cpu = _drain(empty, f"{settings.app_id}-{name}-startup", url)
        agent_s, peak_mb, agent_cpu = _drain(settings, f"{settings.app_id}-{name}", url)
        steady_s = max(agent_s - startup_s, 1e-3)
        cpu_us = None
        if agent_cpu is not None and startup_cpu is not None:
            cpu_us = round((agent_cpu - startup_cpu) / n * 1e6, 2)
        figures[name] = {
            "agent_seconds_including_startup": round(agent_s, 2),
            "worker_startup_seconds": round(startup_s, 2),
            "agent_events_per_s_steady": round(n / steady_s),
            "agent_to_bare_ratio": round(bare_s / steady_s, 4),
            "worker_peak_rss_mb": None if peak_mb is None else round(peak_mb, 1),
            # The worker's CPU (all threads) per count, start-up's taken off. More than the
            # wall time per count (1e6 / events_per_s) means its threads ran in parallel.
            "worker_cpu_us_per_count": cpu_us,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures
