"""Self-contained: a fresh clone with nothing beside it runs the demo; nothing reads outside it.

A user's clone has no ``shared`` folder beside it and no ``BYFLYT_*`` variables. These tests make
that situation for real: a clone of HEAD in an empty folder, its own venv made by its own
``make install-demo``, and ``byflyt demo --exit-after-report`` run from there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from byflyt.store import Store
from tests.helpers import plain_env, run

REPO = Path(__file__).resolve().parent.parent

# A path out of the repository into the workspace's shared folder, written any way.
OUTSIDE = re.compile(r"\.\./shared|/work/shared|parent\s*/\s*[\"']shared[\"']")


def test_no_tracked_file_points_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, tracked):
        path = REPO / name.decode()
        if path.suffix in {".gz", ".zip", ".pb", ".png", ".xlsx"} or not path.is_file():
            continue
        text = path.read_text("utf-8", errors="replace")
        if path.name == Path(__file__).name:
            continue  # this test names the pattern it looks for
        offenders += [f"{name.decode()}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert offenders == []


@pytest.mark.slow
@pytest.mark.kafka
def test_a_fresh_clone_with_nothing_beside_it_runs_the_demo(tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    clone = alone / "byflyt"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-local", str(REPO), str(clone)],
        check=True,
        timeout=120,
    )
    assert sorted(p.name for p in alone.iterdir()) == ["byflyt"]
    env = plain_env()  # a new user's: no ``BYFLYT_*`` variable at all
    installed = run(["make", "install-demo"], cwd=clone, env=env, timeout=900)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]

    demo = run(
        [clone / ".venv" / "bin" / "byflyt", "demo", "--exit-after-report"],
        cwd=clone,
        env=env,
        timeout=900,
    )
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out[-4000:]
    assert "shared" not in out
    report_line = next(line for line in demo.stdout.splitlines() if line.startswith("Report: "))
    report = Path(report_line.removeprefix("Report: ").strip())
    # Everything the demo made lives inside the clone's own data folder.
    assert report.is_relative_to(clone / ".byflyt")
    assert "© Kartverket" in report.read_text("utf-8")
    with Store(f"sqlite:///{clone / '.byflyt' / 'byflyt.sqlite'}") as store:
        # Bus departures need the stops placed in kommuner: the shipped boundaries did that.
        departures = store.query_hourly(metric="departures")
        assert sum(row.value for row in departures) > 0
        placed = {row.kommune_nr for row in departures}
        assert {"3403", "3405", "3407"} <= placed  # Hamar, Lillehammer, Gjøvik
    assert sorted(p.name for p in alone.iterdir()) == ["byflyt"]
