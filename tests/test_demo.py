"""``byflyt demo``: end to end, a report behind it, then /metrics and the live page until Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from byflyt.models.kommuner import get_region
from byflyt.settings import Settings
from byflyt.store import Store
from tests.conftest import free_port
from tests.helpers import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent


def wait_for_line(
    lines: list[str], prefix: str, proc: subprocess.Popen[str], timeout: float
) -> str:
    """The last line the demo printed starting with ``prefix``, once it has printed one."""

    def found() -> list[str]:
        return [line for line in lines if line.startswith(prefix)]

    def output() -> str:
        text = "".join(lines)
        if not found() and proc.poll() is not None:
            raise AssertionError(f"the demo exited without printing {prefix!r}:\n{text[-3000:]}")
        return text[-3000:]

    wait_until(output, timeout, f"the demo to print {prefix!r}", until=lambda _: found())
    return found()[-1]


def get(url: str, timeout: float = 60) -> httpx.Response:
    """GET ``url`` until it answers 200 (the demo's servers start in the background)."""
    return wait_until(
        lambda: httpx.get(url, timeout=5),
        timeout,
        f"{url} to answer 200",
        until=lambda answer: answer.status_code == 200,
        every=0.5,
        retry_on=(httpx.TransportError,),
    )


def test_demo_runs_end_to_end_then_serves_until_ctrl_c(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    metrics_port, serve_port = free_port(), free_port()
    env = dict(worker_env, BYFLYT_WEB_PORT=str(metrics_port), BYFLYT_SERVE_PORT=str(serve_port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "byflyt", "demo"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stdout = proc.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")))
    reader.start()
    try:
        report_line = wait_for_line(lines, "Report: ", proc, timeout=600)
        metrics_line = wait_for_line(lines, "Metrics:", proc, timeout=60)
        page_line = wait_for_line(lines, "Live page:", proc, timeout=10)
        assert metrics_line.split()[-1] == f"http://127.0.0.1:{metrics_port}/metrics"
        assert page_line.split()[-1] == f"http://127.0.0.1:{serve_port}/"

        # Both stay up: the worker's metrics and the live page answer.
        scraped = get(metrics_line.split()[-1])
        assert scraped.status_code == 200
        assert "byflyt_agent_records_total" in scraped.text
        page = get(page_line.split()[-1])
        assert page.status_code == 200
        state = get(f"http://127.0.0.1:{serve_port}/live/state.json").json()
        assert state["synthetic"] is True
        assert state["volumes"], state

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            children = subprocess.run(
                ["ps", "-o", "pid,stat,etime,args", "--ppid", str(proc.pid)],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            proc.send_signal(signal.SIGUSR1)  # the demo prints its threads' stacks
            time.sleep(3)
            tail = "".join(lines)[-6000:]
            pytest.fail(f"the demo did not stop within 60 s of Ctrl-C\n{children}\n{tail}")
        assert code == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        stdout.close()
    out = "".join(lines)
    assert "synthetic" in out.lower()
    assert "Stopping the worker and the live page" in out

    report = Path(report_line.removeprefix("Report: ").strip())
    assert report.is_file()
    assert report.suffix == ".html"
    assert report.parent == settings.data_dir / "report"
    assert list(report.parent.glob("*.xlsx")), "the XLSX workbook is missing"
    assert "syntetisk" in report.read_text(encoding="utf-8").lower()
    assert "Gange per måned og kommune" in report.read_text(encoding="utf-8")
    # The year between the demo's October weeks was never fetched: "ikke hentet", no outage.
    book = load_workbook(next(report.parent.glob("*.xlsx")))
    rows = list(book["Avbrudd"].iter_rows(values_only=True))
    outages = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    counters = [o for o in outages if o["Type"] == "teller"]
    assert any(o["Art"] == "ikke hentet" and o["Varighet (timer)"] > 8000 for o in counters)
    week = 7 * 24 + 1
    assert all(o["Varighet (timer)"] <= week for o in counters if o["Art"] != "ikke hentet")

    with Store(settings.database_url) as store:
        bicycle = store.query_hourly(mode="bicycle", metric="volume")
        assert {row.hour_start.year for row in bicycle} == {2024, 2025}
        # Walking: the synthetic Eco-Counter site in Hamar and Telraam segment in Gjøvik.
        walking = store.query_hourly(mode="pedestrian", metric="volume")
        assert {row.kommune_nr for row in walking} == {"3403", "3407"}
        assert sum(row.value for row in walking) > 0
        walkers = store.query_points(mode="pedestrian")
        assert {p.source for p in walkers} == {"eco-counter", "telraam"}
        assert all("(syntetisk)" in p.name for p in walkers)
        # The demo's morning of GTFS-realtime snapshots gives departures in Mjøsbyen.
        transit = [
            row
            for row in store.query_hourly(metric="departures")
            if row.hour_start.date() == datetime(2025, 10, 27, tzinfo=UTC).date()
        ]
        assert transit
        assert sum(row.value for row in transit) > 0
        # Rail beside bus: Bane NOR's synthetic trains, and trains in and out of Mjøsbyen.
        assert {"bus", "rail"} <= {row.mode for row in transit if row.value > 0}
        members = set(get_region("mjosbyen").kommuner)
        crossing = {
            (f.from_kommune in members, f.mode)
            for f in store.query_flows()
            if (f.from_kommune in members) != (f.to_kommune in members)
        }
        assert {(True, "rail"), (False, "rail")} <= crossing
