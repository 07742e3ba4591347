"""``byflyt demo --exit-after-report``: the demo runs end to end and leaves a report behind."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byflyt.settings import Settings
from byflyt.store import Store

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent


def test_demo_ingests_both_years_and_transit_and_writes_the_report(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "byflyt", "demo", "--exit-after-report"],
        env=worker_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "synthetic" in out.lower()
    report_lines = [line for line in out.splitlines() if line.startswith("Report: ")]
    assert report_lines, out[-3000:]
    report = Path(report_lines[-1].removeprefix("Report: ").strip())
    assert report.is_file()
    assert report.suffix == ".html"
    assert report.parent == settings.data_dir / "report"
    assert list(report.parent.glob("*.xlsx")), "the XLSX workbook is missing"
    html = report.read_text(encoding="utf-8")
    assert "syntetisk" in html.lower()

    with Store(settings.database_url) as store:
        bicycle = store.query_hourly(mode="bicycle", metric="volume")
        years = {row.hour_start.year for row in bicycle}
        assert years == {2024, 2025}
        # The demo's morning of GTFS-realtime snapshots gives departures in Mjøsbyen.
        transit = [
            row
            for row in store.query_hourly(metric="departures")
            if row.hour_start.date() == datetime(2025, 10, 27, tzinfo=UTC).date()
        ]
        assert transit
        assert sum(row.value for row in transit) > 0
