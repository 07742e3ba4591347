"""Shared by the counter sources' Done-when tests: run byflyt commands, read kommune-hours back.

``kommune_hours`` applies the model's rules (latest value per source, point and hour; per
kommune, mode and hour: the sum of volumes, coverage the mean over the points seen that hour
with missing as 0, ``n_sources`` the points with a volume) to per-point hours computed by each
test from its dataset, independently of the connectors.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from byflyt.models.base import iso_z
from byflyt.models.kommuner import kommune_name

REPO = Path(__file__).resolve().parent.parent
PointHours = dict[tuple[str, str, str, datetime], tuple[int | None, float]]
"""(kommune_nr, mode, point, UTC hour) → (volume or None, coverage)."""


def byflyt(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """Run ``byflyt ARGS`` and return its stdout (the test fails on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "byflyt", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"byflyt {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done.stdout


def kommune_hours(points: PointHours) -> list[tuple[object, ...]]:
    """The CSV rows of ``byflyt query hourly`` the rules give for these point-hours."""
    cells: dict[tuple[str, str, datetime], list[tuple[int | None, float]]] = defaultdict(list)
    for (kommune, mode, _, hour), value in points.items():
        cells[(kommune, mode, hour)].append(value)
    rows = []
    for (kommune, mode, hour), members in sorted(cells.items()):
        volumes = [v for v, _ in members if v is not None]
        if not volumes:
            continue
        coverage = round(sum(c for _, c in members) / len(members), 2)
        rows.append(
            (
                kommune,
                kommune_name(kommune),
                mode,
                "volume",
                iso_z(hour),
                float(sum(volumes)),
                coverage,
                len(volumes),
            )
        )
    return rows


def query(env: dict[str, str], mode: str, since: str, until: str) -> list[tuple[object, ...]]:
    """``byflyt query hourly --mode MODE --format csv`` for Mjøsbyen, parsed."""
    text = byflyt(
        env,
        *("query", "hourly", "--region", "mjosbyen", "--mode", mode, "--metric", "volume"),
        *("--from", since, "--to", until, "--format", "csv"),
    )
    reader = csv.reader(io.StringIO(text))
    next(reader)
    return [
        (k, name, m, metric, hour, float(value), float(coverage), int(n))
        for k, name, m, metric, hour, value, coverage, n in reader
    ]
