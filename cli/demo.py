"""``byflyt demo``: byflyt end to end on synthetic Mjøsbyen data, through the user's commands.

It uses only the real parts: the local broker (unless ``BYFLYT_KAFKA_BOOTSTRAP`` names another
Kafka), the synthetic Trafikkdata server for a week of 2025 and the same week of 2024 (the base
year of the cycling index), ``byflyt ingest trafikkdata`` twice for 2025 (the second serving
corrects some hours), a synthetic Eco-Counter site and Telraam segment in Mjøsbyen (cycling
and walking, ``byflyt ingest eco-counter`` and ``ingest telraam`` against the local servers in
their shapes), a synthetic Innlandstrafikk GTFS feed with a morning of GTFS-realtime
snapshots, a synthetic slice of Entur's national GTFS with Dovrebanen, Gjøvikbanen and
Rørosbanen and a day of synthetic Bane NOR SIRI ET (``byflyt transit sources``, ``byflyt ingest
siri-et --dataset BNR``), ``byflyt worker --drain``, ``byflyt query daily`` (cycling and
walking) and ``flows`` and ``byflyt report``. Then, unless told to exit, it keeps a worker
(``/metrics``) and ``byflyt serve`` (the live page and API) up until Ctrl-C. Every figure it
shows is synthetic and says so.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.console import Console

from byflyt.broker import LocalBroker
from byflyt.errors import ByflytError
from byflyt.kafka import create_topics
from byflyt.samples.counters import SYNTHETIC_NOTICE as COUNTERS_NOTICE
from byflyt.samples.counters import eco_counter_week, telraam_week
from byflyt.samples.eco_counter_server import EcoCounterServer
from byflyt.samples.gtfs import write_synthetic_gtfs
from byflyt.samples.gtfs_rt import write_synthetic_snapshots
from byflyt.samples.national import SYNTHETIC_NOTICE as NATIONAL_NOTICE
from byflyt.samples.national import bnr_day, write_national_gtfs
from byflyt.samples.siri import write_replay
from byflyt.samples.telraam_server import TelraamServer
from byflyt.samples.trafikkdata import OSLO, SYNTHETIC_NOTICE, generate, mjosbyen_week
from byflyt.samples.trafikkdata_server import TrafikkdataServer
from byflyt.settings import Settings

REGION = "mjosbyen"
WEEK_FROM = "2025-10-22"
WEEK_TO = "2025-10-29"
BASE_FROM = "2024-10-22"
BASE_TO = "2024-10-29"
FEED = "inn-synthetic"
RAIL_FEED = "national-synthetic"
TRAIN_DAY, TRAIN_DAY_END = "2025-10-27", "2025-10-28"
ECO_SITE = 100_001
"""The demo's Eco-Counter site: Strandgata Hamar, bicycle and pedestrian 15-minute channels."""
TELRAAM_SEGMENT = "9000017002"
"""The demo's Telraam segment: Kirkegata Gjøvik."""
DEMO_KEY = "nokkel"
"""The local sample servers' API key (they serve synthetic data only)."""


class DemoError(ByflytError):
    """A demo step failed; the message names the step and shows its output."""


def _byflyt(args: Sequence[str], console: Console, env: dict[str, str] | None = None) -> None:
    console.print(f"[dim]$ byflyt {' '.join(args)}[/dim]")
    done = subprocess.run(
        [sys.executable, "-m", "byflyt", *args],
        env={**os.environ, **(env or {})},
        check=False,
        text=True,
        capture_output=True,
    )
    if done.stdout.strip():
        console.print(done.stdout.rstrip(), markup=False, highlight=False)
    if done.returncode != 0:
        raise DemoError(f"`byflyt {' '.join(args)}` failed:\n{done.stderr[-3000:]}")


def run_demo(settings: Settings, *, keep_broker: bool = False, serve: bool = True) -> Path:
    """Run the demo and return the report's path.

    The local broker is stopped at the end unless ``keep_broker``. With ``serve``, a worker and
    the live page stay up until Ctrl-C.
    """
    console = Console()
    # `kill -USR1 <pid>` prints every thread's stack: where a demo that does not stop waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    broker: LocalBroker | None = None
    if settings.uses_local_broker:
        broker = LocalBroker(settings.broker_dir, settings.kafka_libs_dir, settings.broker_port)
        was_running = broker.status().running
        console.print(broker.start().describe())
        if was_running:
            broker = None  # not ours to stop
    try:
        create_topics(settings)
        console.rule(f"[bold]{SYNTHETIC_NOTICE}")
        _ingest_cycling(console)
        _ingest_counters(console)
        _ingest_transit(settings, console)
        _ingest_trains(settings, console)
        console.print("4. Aggregate: drain the worker (everything in the topics, then exit)")
        _byflyt(["worker", "--drain"], console)
        console.rule("Kollektivturer inn og ut av Mjøsbyen — SYNTETISKE DATA / synthetic data")
        flows = ["query", "flows", "--region", REGION, "--level", "region"]
        _byflyt([*flows, "--from", TRAIN_DAY, "--to", TRAIN_DAY_END], console)
        console.rule("Sykkel per dag, Mjøsbyen — SYNTETISKE DATA / synthetic data")
        daily = ["query", "daily", "--region", REGION, "--from", WEEK_FROM, "--to", WEEK_TO]
        _byflyt([*daily, "--mode", "bicycle"], console)
        console.rule("Gange per dag, Mjøsbyen — SYNTETISKE DATA / synthetic data")
        _byflyt([*daily, "--mode", "pedestrian"], console)
        console.print(f"Store: {settings.database_url}", soft_wrap=True, markup=False)
        out = settings.data_dir / "report"
        console.print("5. The indicator report for October 2025 (HTML and XLSX)")
        _byflyt(
            ["report", "--region", REGION, "--year", "2025", "--month", "10", "--out", str(out)],
            console,
        )
        report = _report_path(out)
        console.print(f"Report: {report}", soft_wrap=True, markup=False, highlight=False)
        if serve:
            _serve_until_interrupted(settings, console)
        return report
    finally:
        if broker is not None and not keep_broker:
            console.print(broker.stop().describe())


def _ingest_cycling(console: Console) -> None:
    base = generate(start=datetime(2024, 10, 22, tzinfo=OSLO), days=7, seed=7, version=2)
    with TrafikkdataServer(base) as server:
        ingest = ["ingest", "trafikkdata", "--region", REGION, "--endpoint", server.url]
        console.print("1. Ingest the same week of 2024 (the cycling index's base year)")
        _byflyt([*ingest, "--from", BASE_FROM, "--to", BASE_TO], console)
        window = ["--from", WEEK_FROM, "--to", WEEK_TO]
        console.print("2. Ingest the 2025 week (first serving), then again: it corrects hours")
        server.set_dataset(mjosbyen_week(1))
        _byflyt([*ingest, *window], console)
        server.set_dataset(mjosbyen_week(2))
        _byflyt([*ingest, *window], console)


def _ingest_counters(console: Console) -> None:
    """A kommune's Eco-Counter site and a resident's Telraam segment: cycling and walking."""
    week = eco_counter_week()
    site = replace(week, sites=tuple(s for s in week.sites if s.id == ECO_SITE))
    window = ["--from", WEEK_FROM, "--to", WEEK_TO]
    console.print(
        "2b. Counters of a kommune and its residents: an Eco-Counter site in Hamar and a "
        "Telraam segment in Gjøvik, cycling and walking"
    )
    console.print(f"[bold]{COUNTERS_NOTICE}")
    with EcoCounterServer(site, api_key=DEMO_KEY) as eco, TelraamServer(telraam_week()) as tel:
        env = {"BYFLYT_ECO_COUNTER_API_KEY": DEMO_KEY, "BYFLYT_TELRAAM_API_KEY": DEMO_KEY}
        eco_args = ["ingest", "eco-counter", "--region", REGION, "--api", "v2"]
        _byflyt([*eco_args, "--endpoint", eco.url, *window], console, env)
        tel_args = ["ingest", "telraam", "--segments", TELRAAM_SEGMENT, "--endpoint", tel.url]
        _byflyt([*tel_args, *window], console, env)


def _ingest_transit(settings: Settings, console: Console) -> None:
    work = settings.data_dir / "demo-transit"
    work.mkdir(parents=True, exist_ok=True)
    static = write_synthetic_gtfs(work / "inn-synthetic-gtfs.zip")
    snapshots = work / "gtfs-rt"
    snapshots.mkdir(exist_ok=True)
    write_synthetic_snapshots(snapshots, static_zip=static)
    console.print("3. Transit: load the synthetic GTFS feed, replay a morning of GTFS-realtime")
    _byflyt(["gtfs", "load", "--feed", FEED, "--zip", str(static), "--region", REGION], console)
    _byflyt(["ingest", "gtfs-rt", "--feed", FEED, "--replay", str(snapshots)], console)


def _ingest_trains(settings: Settings, console: Console) -> None:
    """The trains: a synthetic national slice and a synthetic day of Bane NOR's SIRI ET."""
    work = settings.data_dir / "demo-transit"
    national = write_national_gtfs(work / "national-synthetic-gtfs.zip")
    replay = work / "bnr-et"
    for old in replay.glob("*.xml"):
        old.unlink()
    write_replay(replay, bnr_day(national))
    console.print(
        "3b. Trains: load a synthetic slice of Entur's national GTFS, list the datasets that "
        "serve Mjøsbyen, replay a day of Bane NOR's SIRI ET (every passenger train)"
    )
    console.print(f"[bold]{NATIONAL_NOTICE}")
    load = ["gtfs", "load", "--feed", RAIL_FEED, "--zip", str(national), "--region", REGION]
    _byflyt(load, console)
    _byflyt(["transit", "sources", "--region", REGION, "--feed", RAIL_FEED], console)
    _byflyt(
        ["ingest", "siri-et", "--dataset", "BNR", "--feed", RAIL_FEED, "--replay", str(replay)],
        console,
    )


def _report_path(out: Path) -> Path:
    pages = sorted(out.glob("*.html"), key=lambda p: p.stat().st_mtime)
    if not pages:
        raise DemoError(f"byflyt report wrote no HTML file into {out}")
    return pages[-1]


def _serve_until_interrupted(settings: Settings, console: Console) -> None:
    """Keep a worker (its /metrics) and ``byflyt serve`` up until Ctrl-C (or SIGTERM).

    The signals only set a flag: no KeyboardInterrupt lands inside ``subprocess``'s own
    bookkeeping (one raised between its lock and its ``try`` leaves a later ``wait()`` hanging).
    """
    metrics_port, serve_port = settings.web_port, settings.serve_port
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        with tempfile.TemporaryDirectory(prefix="byflyt-demo-") as tmp:
            logs = Path(tmp)
            procs = [
                _background(["worker", "--web-port", str(metrics_port)], logs / "worker.log"),
                _background(["serve", "--port", str(serve_port)], logs / "serve.log"),
            ]
            try:
                _up_until(stop, procs, logs, settings, console)
            finally:
                _stop(procs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _up_until(
    stop: threading.Event,
    procs: list[subprocess.Popen[bytes]],
    logs: Path,
    settings: Settings,
    console: Console,
) -> None:
    """Say where the worker and the live page answer, then wait for ``stop``; fail if one dies."""
    if stop.wait(3):
        return
    console.rule("Up until Ctrl-C")
    console.print(f"Metrics:    http://127.0.0.1:{settings.web_port}/metrics")
    console.print(f"Live page:  http://{settings.serve_host}:{settings.serve_port}/")
    console.print(f"API:        http://{settings.serve_host}:{settings.serve_port}/api/v1/regions")
    while not stop.wait(0.5):
        for name, proc in zip(("worker", "serve"), procs, strict=True):
            if proc.poll() is not None:
                log = (logs / f"{name}.log").read_text(errors="replace")
                raise DemoError(f"`byflyt {name}` stopped:\n{log[-3000:]}")
    console.print("Stopping the worker and the live page")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each child; one still up after the shared grace is killed.

    One shared deadline: Ctrl-C ends the demo within STOP_GRACE_S however slowly a child stops
    (the worker's uncommitted tail is read again by the next worker).
    """
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


STOP_GRACE_S = 20.0
"""How long the demo's worker and live page together get to stop after Ctrl-C."""


def _background(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "byflyt", *args],
            env=dict(os.environ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
