"""``byflyt demo``: the whole cycling pipeline on a synthetic Mjøsbyen week, end to end.

It uses only the real parts, through the same commands a user runs: the local broker (unless
``BYFLYT_KAFKA_BOOTSTRAP`` names another Kafka), the synthetic Trafikkdata server, ``byflyt
ingest trafikkdata`` twice (the second serving corrects some hours), ``byflyt worker --drain``
and ``byflyt query daily``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from rich.console import Console

from byflyt.broker import LocalBroker
from byflyt.errors import ByflytError
from byflyt.kafka import create_topics
from byflyt.samples.trafikkdata import SYNTHETIC_NOTICE, mjosbyen_week
from byflyt.samples.trafikkdata_server import TrafikkdataServer
from byflyt.settings import Settings

REGION = "mjosbyen"
WEEK_FROM = "2025-10-22"
WEEK_TO = "2025-10-29"


class DemoError(ByflytError):
    """A demo step failed; the message names the step and shows its output."""


def _byflyt(args: Sequence[str], console: Console) -> None:
    console.print(f"[dim]$ byflyt {' '.join(args)}[/dim]")
    done = subprocess.run(
        [sys.executable, "-m", "byflyt", *args],
        env=dict(os.environ),
        check=False,
        text=True,
        capture_output=True,
    )
    if done.stdout.strip():
        console.print(done.stdout.rstrip(), markup=False, highlight=False)
    if done.returncode != 0:
        raise DemoError(f"`byflyt {' '.join(args)}` failed:\n{done.stderr[-3000:]}")


def run_demo(settings: Settings, *, keep_broker: bool = False) -> None:
    """Run the demo; the local broker is stopped at the end unless ``keep_broker``."""
    console = Console()
    broker: LocalBroker | None = None
    if settings.uses_local_broker:
        broker = LocalBroker(settings.broker_dir, settings.kafka_libs_dir, settings.broker_port)
        was_running = broker.status().running
        console.print(broker.start().describe())
        if was_running:
            broker = None  # not ours to stop
    try:
        create_topics(settings)
        v1, v2 = mjosbyen_week(1), mjosbyen_week(2)
        console.rule(f"[bold]{SYNTHETIC_NOTICE}")
        with TrafikkdataServer(v1) as server:
            ingest = ["ingest", "trafikkdata", "--region", REGION, "--endpoint", server.url]
            window = ["--from", WEEK_FROM, "--to", WEEK_TO]
            console.print("1. Ingest the synthetic week (first serving)")
            _byflyt([*ingest, *window], console)
            console.print("2. Ingest it again: the second serving corrects some hours")
            server.set_dataset(v2)
            _byflyt([*ingest, *window], console)
        console.print("3. Aggregate: drain the worker (everything in the topics, then exit)")
        _byflyt(["worker", "--drain"], console)
        console.rule("Sykkel per dag, Mjøsbyen — SYNTETISKE DATA / synthetic data")
        _byflyt(
            ["query", "daily", "--region", REGION, "--from", WEEK_FROM, "--to", WEEK_TO],
            console,
        )
        console.print(f"Store: {settings.database_url}")
        console.print(
            f"Try: byflyt query hourly --region {REGION} --from 2025-10-26 --to 2025-10-27 "
            "--format csv"
        )
    finally:
        if broker is not None and not keep_broker:
            console.print(broker.stop().describe())
