"""Load: concurrent API clients against ``byflyt serve`` while a worker ingests.

1. A worker (the freshness benchmark's :class:`~bench.freshness.Probe`) on its own topics and
   SQLite store. A month of history — May 2025 and May 2024 for :data:`HISTORY_POINTS` counting
   points, the index's two periods — goes through it first, and the points are registered.
2. ``byflyt serve`` on a free loopback port over that store, following the topics as deployed.
3. Baseline: the same number of clients asking only ``/healthz`` for :data:`BASELINE_S` seconds,
   i.e. what the HTTP stack alone carries on this machine in this run.
4. The load: ``clients`` keep-alive clients (:mod:`bench.loadgen`, in their own process) for
   ``seconds`` seconds, with the calls analysts and the live page make, while the probe produces
   ``rate`` observations a second; the probe's produce → stored row latency is the worker's
   freshness under the load.

Goals: no failed request, API p99 ≤ :data:`GOAL_P99_MS`, freshness p99 ≤ 2 s. Every address is
loopback and every loop is bounded in time: the benchmark stops by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.cycling import KOMMUNER
from bench.freshness import Probe, free_port
from bench.freshness import row as freshness_row
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.settings import Settings
from byflyt.store import Store

HISTORY_POINTS = 100
HISTORY_SOURCE = "synthetic-load"
HISTORY_MONTHS = (datetime(2024, 5, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC))
FIRST_DAY = "2025-05-01"
"""The clients ask for ranges from here over :data:`DAYS` days: May's history, June's live data."""
DAYS = 33
BASELINE_S = 10
GOAL_P99_MS = 1000.0


def history() -> list[CountObservation]:
    """May 2024 and May 2025, every hour, for each history point (volumes vary by hour)."""
    found = []
    for first in HISTORY_MONTHS:
        for h in range(31 * 24):
            hour = first + timedelta(hours=h)
            for p in range(HISTORY_POINTS):
                found.append(
                    CountObservation(
                        source=HISTORY_SOURCE,
                        point_id=f"L{p:03d}",
                        kommune_nr=KOMMUNER[p % len(KOMMUNER)],
                        start=hour,
                        end=hour + timedelta(hours=1),
                        volume=(h * 31 + p * 7 + first.year) % 60,
                        coverage=100.0,
                    )
                )
    return found


def points() -> list[CountPoint]:
    """The history points and the probe's, as a points registry holds them."""
    return [
        CountPoint(
            source=HISTORY_SOURCE,
            point_id=f"L{p:03d}",
            name=f"Synthetic load counter {p}",
            kommune_nr=KOMMUNER[p % len(KOMMUNER)],
            lat=60.8 + p / 1000,
            lon=11.0 + p / 1000,
        )
        for p in range(HISTORY_POINTS)
    ]


def _wait_for_rows(url: str, expected: int, timeout: float) -> float:
    """Seconds until ``point_hourly`` holds ``expected`` history rows; fails after ``timeout``."""
    engine = create_engine(url)
    began = time.perf_counter()
    query = text("SELECT count(*) FROM point_hourly WHERE source = :source")
    try:
        while True:
            with engine.connect() as conn:
                have = conn.execute(query, {"source": HISTORY_SOURCE}).scalar_one()
            if have >= expected:
                return time.perf_counter() - began
            if time.perf_counter() - began > timeout:
                raise RuntimeError(f"history: {have} of {expected} rows after {timeout:.0f} s")
            time.sleep(0.5)
    finally:
        engine.dispose()


def start_serve(env: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``byflyt serve ARGS`` on loopback ``port`` with ``env``; returns once /healthz answers."""
    env = {**env, "BYFLYT_SERVE_HOST": "127.0.0.1", "BYFLYT_SERVE_PORT": str(port)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "byflyt", "serve", *args], env=env, stdout=out, stderr=out
        )
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("serve did not answer /healthz within 120 s")


def _clients(url: str, clients: int, seconds: float, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            url,
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
            "--first-day",
            FIRST_DAY,
            "--days",
            str(DAYS),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _figures_of(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.loadgen exited {proc.returncode}: {err[-2000:]}")
    figures: dict[str, Any] = json.loads(out)
    return figures


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    settings: Settings,
    out: Path,
    *,
    clients: int = 200,
    seconds: int = 60,
    rate: int = 1000,
) -> dict[str, Any]:
    """Run the load benchmark; return and write the figures."""
    probe = Probe(settings, "load")
    serve: subprocess.Popen[bytes] | None = None
    try:
        probe.start()
        with Store(probe.url) as store:
            store.upsert_points(points())
        seeded = history()
        for obs in seeded:
            probe.send(obs, timed=False)
        probe.producer.flush()
        history_s = _wait_for_rows(probe.url, len(seeded), timeout=600)
        port = free_port()
        serve = start_serve(probe.env, port, settings.data_dir / "load-serve.log")
        url = f"http://127.0.0.1:{port}"
        cpu_before = _cpu_seconds(serve.pid)
        baseline = _figures_of(
            _clients(url, clients, BASELINE_S, "--only", "/healthz"), BASELINE_S + 120
        )
        baseline_cpu = _cpu_seconds(serve.pid) - cpu_before
        load_avg = os.getloadavg()
        cpu_before = _cpu_seconds(serve.pid)
        loadgen = _clients(url, clients, seconds)
        probe.produce(rate, seconds)
        api = _figures_of(loadgen, seconds + 180)
        serve_cpu = _cpu_seconds(serve.pid) - cpu_before
    finally:
        if serve is not None:
            serve.terminate()
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        probe.stop()
    fresh = probe.figures()
    ratio = round(api["requests_per_s"] / baseline["requests_per_s"], 3)
    met = (
        api["errors"] == 0
        and api["requests"] > 0
        and api["p99_ms"] is not None
        and api["p99_ms"] <= GOAL_P99_MS
        and fresh["met"]
    )
    figures = {
        "benchmark": f"load: {clients} API clients × {seconds} s against byflyt serve, "
        f"worker ingesting {rate:,} obs/s (SQLite)",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"cores": os.cpu_count(), "load_average_at_start": list(load_avg)},
        "clients": clients,
        "seconds": seconds,
        "rate_per_s": rate,
        "history_rows": len(seeded),
        "history_seconds": round(history_s, 1),
        "baseline_healthz": baseline,
        "api": api,
        "api_to_healthz_ratio": ratio,
        "serve_cpu_seconds": round(serve_cpu, 1),
        "serve_cpu_ms_per_request": _per_request(serve_cpu, api["requests"]),
        "serve_cpu_share": round(serve_cpu / api["seconds"], 2),
        "baseline_cpu_ms_per_request": _per_request(baseline_cpu, baseline["requests"]),
        "freshness": fresh,
        "goal": {
            "errors": 0,
            "api_p99_ms": GOAL_P99_MS,
            "freshness_p99_s": fresh["goal_p99_seconds"],
        },
        "met": met,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _per_request(cpu_seconds: float, requests: int) -> float | None:
    return round(1000 * cpu_seconds / requests, 2) if requests else None


Row = tuple[str, str, str, str, str, str]


def rows(figures: dict[str, Any]) -> list[Row]:
    """The load benchmark's rows of the bench table."""
    api, base, fresh = figures["api"], figures["baseline_healthz"], figures["freshness"]
    return [
        (
            f"load: {figures['clients']} API clients × {figures['seconds']} s, "
            f"worker at {figures['rate_per_s']:,} obs/s",
            f"{api['requests_per_s']:,} req/s, p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms, "
            f"{api['errors']} errors; serve {figures['serve_cpu_ms_per_request']} ms CPU a "
            f"request, {figures['serve_cpu_share']:.0%} of a core",
            f"/healthz {base['requests_per_s']:,} req/s, "
            f"{figures['baseline_cpu_ms_per_request']} ms CPU a request",
            f"{figures['api_to_healthz_ratio']}",
            f"0 errors (issue 15); p99 ≤ {GOAL_P99_MS / 1000:g} s (our own target)",
            f"errors: {'yes' if api['errors'] == 0 else 'no'}; "
            f"p99: {'yes' if (api['p99_ms'] or 1e9) <= GOAL_P99_MS else 'no'}",
        ),
        freshness_row("load: the worker's freshness meanwhile, produce → store row", fresh),
    ]
