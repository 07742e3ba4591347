"""Markers that tell the truth (a pytest plugin that conftest loads).

A test that starts a Kafka broker is marked ``kafka``, one that starts PostgreSQL ``postgres``, one
that starts Chromium ``browser``; ``pytest -m "not kafka"`` therefore starts no broker. Two guards
keep the markers honest, so a missing one fails loudly instead of slowing a tier down unseen:

- At collection (before ``-m`` deselects anything), a test whose fixtures start one of these
  (``broker``, ``pg_server``, …, directly or through ``settings``) must carry the marker.
- While a test sets up and runs, a watcher thread looks at this process' descendants every
  quarter second. A Kafka broker, a PostgreSQL server or a Chromium that first appears while a
  test without the marker runs fails that test (tests that start them through the CLI, the demo or
  ``LocalBroker`` are caught too). What an earlier test started (the session's broker) is not
  counted against later ones.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURE_MARKERS = {
    "broker": "kafka",
    "session_broker": "kafka",
    "secure_broker": "kafka",
    "fault_broker": "kafka",
    "pg_server": "postgres",
    "fault_pg": "postgres",
}
"""Fixtures that start a server, and the marker a test that uses them must carry."""

PROC = Path("/proc")
SAMPLE_EVERY_S = 0.25


def server_kind(argv: list[str]) -> str | None:
    """The marker a process with command line ``argv`` needs (None for any other process)."""
    if not argv:
        return None
    program = Path(argv[0]).name
    if "kafka.Kafka" in argv:
        return "kafka"
    if program in {"initdb", "pg_ctl", "postgres"}:
        return "postgres"
    if program in {"chromium", "chromedriver", "chrome"}:
        return "browser"
    return None


def is_pytest(argv: list[str]) -> bool:
    """Whether ``argv`` runs pytest (``python -m pytest``, ``-mpytest``, ``pytest``)."""
    if not argv:
        return False  # a process that has exited and not been reaped yet
    return Path(argv[0]).name in {"pytest", "py.test"} or any(
        arg in {"-mpytest", "pytest"} for arg in argv[1:3]
    )


def _children(pid: int) -> Iterator[int]:
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        yield from (int(child) for child in text.split())


def _argv(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def servers_below(root: int) -> dict[int, tuple[str, str]]:
    """Every Kafka, PostgreSQL and Chromium process below ``root``: pid → (kind, argv0)."""
    found: dict[int, tuple[str, str]] = {}
    todo = list(_children(root))
    while todo:
        pid = todo.pop()
        argv = _argv(pid)
        kind = server_kind(argv)
        if kind is not None:
            found[pid] = (kind, argv[0])
            continue  # a server's own children (Chromium's renderers) are the server
        if is_pytest(argv):
            continue  # a nested pytest run (this plugin's own test) watches its own tests
        todo.extend(_children(pid))
    return found


class Watcher:
    """Notes which test was running when each server process first appeared."""

    def __init__(self) -> None:
        self.root = os.getpid()
        self.current: pytest.Item | None = None
        self.seen: set[int] = set()
        self.offences: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="marker-watcher", daemon=True)

    def start(self) -> None:
        """Watch, if this system has a ``/proc`` with children lists (Linux)."""
        if (PROC / str(self.root) / "task" / str(self.root) / "children").exists():
            self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY_S):
            self.sample()

    def sample(self) -> None:
        """Note the server processes that appeared since the last sample."""
        with self.lock:
            item = self.current
            for pid, (kind, program) in servers_below(self.root).items():
                if pid in self.seen:
                    continue
                self.seen.add(pid)
                if item is not None and item.get_closest_marker(kind) is None:
                    self.offences.setdefault(item.nodeid, []).append(
                        f"started {program} (pid {pid}) without the {kind!r} marker"
                    )

    def running(self, item: pytest.Item | None) -> None:
        """Attribute what appears from now on to ``item`` (None: to no test)."""
        self.sample()
        with self.lock:
            self.current = item

    def offences_of(self, item: pytest.Item) -> list[str]:
        """What ``item`` started without its marker."""
        with self.lock:
            return self.offences.pop(item.nodeid, [])


WATCHER = Watcher()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        WATCHER.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    WATCHER.stop.set()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail the run when a test uses a server fixture without the server's marker."""
    missing = []
    for item in items:
        needs = {
            FIXTURE_MARKERS[name]
            for name in getattr(item, "fixturenames", ())
            if name in FIXTURE_MARKERS
        }
        for marker in sorted(needs):
            if item.get_closest_marker(marker) is None:
                missing.append(f"{item.nodeid}: uses a fixture that starts one, mark it {marker!r}")
    if missing:
        raise pytest.UsageError("tests without their server's marker:\n  " + "\n  ".join(missing))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    WATCHER.running(item)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    # Session and package fixtures stop their servers in the last test's teardown: that is no
    # start, and what a test started was seen while it set up or ran.
    WATCHER.running(None)
    offences = WATCHER.offences_of(item)
    yield
    if offences:
        pytest.fail(f"{item.nodeid}: " + "; ".join(offences), pytrace=False)
