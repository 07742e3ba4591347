"""The markers tell the truth: ``tests/markers.py`` fails a test that starts a server unmarked.

Each case runs a small pytest session of its own (a subprocess, with only that plugin) and
reads its outcome. The "server" is a plain sleeping process whose command line names Kafka's main
class, so the watcher sees what it would see of a broker, without starting one.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import REPO
from tests.markers import is_pytest, server_kind

FAKE_BROKER = """
import subprocess, sys, time
import pytest

RUNNING = []

@pytest.fixture(scope="module", autouse=True)
def stop_them():
    yield
    for proc in RUNNING:
        proc.kill()
        proc.wait()

def start_a_broker():
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka"]
    RUNNING.append(subprocess.Popen(argv))
    time.sleep(1.0)
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose sessions load only ``tests.markers``, with the markers registered."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    pytester.makeini(
        "[pytest]\naddopts = -p tests.markers\nmarkers =\n    kafka\n    postgres\n    browser\n"
    )
    return pytester


def test_a_test_that_starts_a_broker_unmarked_fails_and_marked_passes(run: pytest.Pytester) -> None:
    run.makepyfile(
        FAKE_BROKER
        + """
def test_unmarked():
    start_a_broker()

@pytest.mark.kafka
def test_marked():
    start_a_broker()

def test_after_a_marked_one_whose_broker_still_runs():
    time.sleep(1.0)
"""
    )
    result = run.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_unmarked*started *python* (pid *) without the 'kafka' marker*"]
    )


def test_a_server_fixture_without_its_marker_stops_the_run_at_collection(
    run: pytest.Pytester,
) -> None:
    run.makeconftest(
        """
import pytest

@pytest.fixture(scope="session")
def broker():
    return "127.0.0.1:9"

@pytest.fixture
def settings(broker):
    return broker
"""
    )
    run.makepyfile(
        """
import pytest

def test_forgot_the_marker(settings):
    pass

@pytest.mark.kafka
def test_marked(settings):
    pass
"""
    )
    # Before -m deselects anything: "not kafka" would otherwise hide nothing and start a broker.
    result = run.runpytest_subprocess("-p", "no:cacheprovider", "-m", "not kafka")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_forgot_the_marker: uses a fixture*mark it 'kafka'*"])
    assert "test_marked:" not in result.stderr.str()


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["/usr/bin/java", "-Xmx1G", "-cp", "libs/*", "kafka.Kafka", "server.properties"], "kafka"),
        (["/usr/lib/postgresql/17/bin/initdb", "-D", "data"], "postgres"),
        (["/usr/lib/postgresql/17/bin/postgres", "-D", "data"], "postgres"),
        (["pg_ctl", "-D", "data", "start"], "postgres"),
        (["/usr/bin/chromedriver", "--port=4444"], "browser"),
        (["/usr/lib/chromium/chromium", "--headless=new"], "browser"),
        (["/usr/bin/python3", "-m", "byflyt", "worker"], None),
        (["/usr/bin/java", "-jar", "other.jar"], None),
        ([], None),
    ],
)
def test_server_kinds(argv: list[str], kind: str | None) -> None:
    assert server_kind(argv) == kind


def test_the_readme_tiers_select_by_registered_markers(pytestconfig: pytest.Config) -> None:
    registered = {line.split(":", 1)[0] for line in pytestconfig.getini("markers")}
    readme = (REPO / "README.md").read_text()
    expressions = [q or bare for q, bare in re.findall(r'pytest -m (?:"([^"]+)"|(\w+))', readme)]
    assert len(expressions) >= 4
    for expression in expressions:
        names = set(re.findall(r"\w+", expression)) - {"and", "or", "not"}
        assert names <= registered, (expression, names - registered)


def test_asking_for_the_broker_unmarked_fails_before_one_starts(
    request: pytest.FixtureRequest,
) -> None:
    with pytest.raises(pytest.fail.Exception, match="asks for Kafka: mark it 'kafka'"):
        request.getfixturevalue("broker")
    assert "session_broker" not in request.fixturenames


@pytest.mark.parametrize(
    ("argv", "nested"),
    [
        (["/usr/bin/python3", "-mpytest", "--basetemp=x"], True),
        (["/usr/bin/python3", "-m", "pytest", "tests"], True),
        ([".venv/bin/pytest", "-q"], True),
        (["/usr/bin/python3", "-m", "byflyt", "demo"], False),
        ([], False),
    ],
)
def test_nested_pytest_runs_are_left_to_their_own_watcher(argv: list[str], nested: bool) -> None:
    assert is_pytest(argv) == nested
