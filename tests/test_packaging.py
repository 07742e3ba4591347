"""Packaging: a non-editable install imports under ``byflyt`` only, runs ``byflyt --help``, and
places a small GTFS feed's stops with the boundaries it ships (no setting, nothing beside it)."""

from __future__ import annotations

import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from byflyt.samples.gtfs import write_synthetic_gtfs
from tests.helpers import REPO, plain_env, run


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    built = run([*pip_wheel, "-w", wheel_dir, REPO], timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheel_dir.glob("byflyt-*.whl"))

    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    installed = run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # The dependencies come from the project's venv (already resolved from the constraints);
    # the package itself comes only from the wheel.
    site = Path(sysconfig.get_paths()["purelib"])
    target_site = next((target / "lib").glob("python3*/site-packages"))
    (target_site / "deps.pth").write_text(f"{site}\n")

    probe = (
        "import importlib.util, byflyt, byflyt.models.counts, byflyt.streams.app, "
        "byflyt.connectors, byflyt.store\n"
        "assert 'site-packages' in byflyt.__file__, byflyt.__file__\n"
        f"assert str(byflyt.__file__).startswith({str(target)!r}), byflyt.__file__\n"
        "for bare in ('models', 'streams', 'connectors', 'store', 'samples', 'deploy'):\n"
        "    assert importlib.util.find_spec(bare) is None, bare\n"
        "from byflyt.models.kommuner import kommune_name\n"
        "assert kommune_name('3403') == 'Hamar'\n"
    )
    checked = run([python, "-c", probe], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-2000:]

    installed_byflyt = target / "bin" / "byflyt"
    helped = run([installed_byflyt, "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    for command in ("broker", "topics", "worker", "ingest", "query"):
        assert command in helped.stdout

    # No setting at all: the kommune boundaries come from inside the wheel.
    feed_zip = write_synthetic_gtfs(tmp_path / "feed" / "inn.zip")
    user = tmp_path / "user"
    user.mkdir()
    load = ["gtfs", "load", "--feed", "inn", "--zip", feed_zip, "--region", "mjosbyen"]
    loaded = run([installed_byflyt, *load], cwd=user, env=plain_env(), timeout=300)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr[-2000:]
    assert "(30 placed, 2 unplaced)" in loaded.stdout
    assert (user / ".byflyt" / "gtfs" / "inn").is_dir()

    # The kommune history ships in the wheel: a region written in 2018 resolves from it.
    show = ["regions", "show", "alesundregionen", "--format", "csv"]
    shown = run([installed_byflyt, *show], cwd=user, env=plain_env())
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1:] == [
        "1508,Ålesund",
        "1531,Sula",
        "1532,Giske",
        "1580,Haram",
    ]
