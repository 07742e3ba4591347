"""What test modules share beyond fixtures: ports and jars, the one polling helper, metrics,
connectors' local HTTP, the command line and the worker, the ends of the pipelines (counts in,
rows and answers out). Test modules import from here, never from each other."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner, Result

from byflyt.models.base import iso_z
from byflyt.models.counts import CountObservation
from byflyt.models.gtfs import StaticFeed, feed_dir
from byflyt.models.kommuner import get_region
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from tests.cycling_expect import FROM, TO, Row, parse
from tests.kafka_util import produce

REPO = Path(__file__).resolve().parent.parent
BYFLYT = (sys.executable, "-m", "byflyt")
SHOWN_CHARS = 2000
EMPTY: Mapping[str, str] = {}

T = TypeVar("T")


# -- ports and jars --------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kafka_libs() -> Path:
    """Where ``make install`` put the Kafka jars."""
    data_dir = Path(os.environ.get("BYFLYT_DATA_DIR", REPO / ".byflyt"))
    return data_dir / "kafka" / "libs"


# -- the one polling helper ------------------------------------------------------------------
def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    until: Callable[[T], object] = bool,
    every: float = 0.2,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``predicate`` every ``every`` s until its value satisfies ``until`` (by default: is
    truthy), and return that value.

    After ``timeout`` seconds, fail with an AssertionError that says what it waited for and the
    last value seen (or the last exception of a ``retry_on`` type, which count as "not yet").
    Any other exception from ``predicate`` fails at once (a process that died, an HTTP error).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except retry_on as exc:
            last: object = exc
        else:
            if until(value):
                return value
            last = value
        if time.monotonic() > deadline:
            shown = repr(last)
            if len(shown) > SHOWN_CHARS:
                shown = shown[:SHOWN_CHARS] + f"… ({len(shown)} chars)"
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {shown}")
        time.sleep(every)


# -- metrics ---------------------------------------------------------------------------------
def metric_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value in ``registry`` (0 for a counter or gauge never set with ``labels``)."""
    return registry.get_sample_value(name, labels) or 0.0


# -- connectors and local HTTP --------------------------------------------------------------
def direct(request: Callable[[], T], what: str) -> T:
    """The ``call`` a test hands to a connector's ``poll``: the request, once, without back-off."""
    return request()


class QuietHandler(BaseHTTPRequestHandler):
    """A test's hand-written HTTP handler: it answers with :meth:`reply` and logs nothing."""

    def reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] = EMPTY) -> None:
        """Answer ``status`` with ``headers`` and ``body`` (and its Content-Length)."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: the tests assert on what was asked and answered, not on access lines."""


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` answering on a free port of 127.0.0.1 while the block runs; the server's URL
    (``http://127.0.0.1:PORT``, no slash at the end)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# -- the command line and the worker ---------------------------------------------------------
def plain_env() -> dict[str, str]:
    """This process' environment without any ``BYFLYT_*`` setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BYFLYT_")}


def run(
    argv: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end (from ``cwd``, output captured as text); the caller judges how it
    exited."""
    return subprocess.run(
        [str(arg) for arg in argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def byflyt(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``byflyt ARGS`` with ``env``; it must succeed."""
    done = run([*BYFLYT, *args], env=env, timeout=timeout)
    assert done.returncode == 0, f"byflyt {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done


def invoke(store_url: str | None, *args: str, **env: str | None) -> Result:
    """``byflyt ARGS`` run in this process (typer's runner) on the store at ``store_url``, with
    no region from the environment unless ``env`` (``BYFLYT_*`` → value, None: unset) says so."""
    from byflyt.cli import app  # the whole command line: only the tests that call it load it

    environment = {
        "BYFLYT_STORE_URL": store_url,
        "BYFLYT_REGION": None,
        "BYFLYT_REGIONS_FILE": None,
    }
    return CliRunner().invoke(app, list(args), env={**environment, **env}, catch_exceptions=False)


def ok(result: Result) -> str:
    """The output of a command run by :func:`invoke`, which must have succeeded."""
    assert result.exit_code == 0, result.stderr
    return result.stdout


def worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start ``byflyt worker ARGS`` with ``env`` (stdout and stderr piped)."""
    return subprocess.Popen(
        [*BYFLYT, "worker", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def drain(env: dict[str, str], timeout: float = 120) -> None:
    """``byflyt worker --drain``: process everything produced so far, then exit 0.

    Each drain's log is kept in the data dir (``worker-N.log``); a hung one's thread and task
    dump in ``hung-worker.log``.
    """
    proc = worker(env, "--drain", "--loglevel", os.environ.get("BYFLYT_TEST_LOGLEVEL", "info"))
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # mode's worker prints every thread's stack and every task on SIGUSR1: the log then
        # shows where a hung drain waits.
        proc.send_signal(signal.SIGUSR1)
        time.sleep(3)
        proc.kill()
        _, err = proc.communicate()
        Path(env["BYFLYT_DATA_DIR"], "hung-worker.log").write_text(err)
        pytest.fail(f"worker --drain did not finish in {timeout}s:\n{err[-4000:]}")
    n = len(list(Path(env["BYFLYT_DATA_DIR"]).glob("worker-*.log")))
    Path(env["BYFLYT_DATA_DIR"], f"worker-{n}.log").write_text(err)
    assert proc.returncode == 0, err[-3000:]


# -- the ends of the pipelines ---------------------------------------------------------------
def synthetic_hour(
    rng: random.Random,
    source: str,
    point: str,
    kommune: str,
    start: datetime,
    *,
    null_share: float,
    most: int,
    coverages: Sequence[float],
) -> CountObservation:
    """One random hour of ``point`` from ``start``: null (coverage 0) with probability
    ``null_share``, else a volume from 0 to ``most`` with a coverage drawn from ``coverages``."""
    null = rng.random() < null_share
    return CountObservation(
        source=source,
        point_id=point,
        kommune_nr=kommune,
        start=start,
        end=start + timedelta(hours=1),
        volume=None if null else rng.randint(0, most),
        coverage=0.0 if null else rng.choice(coverages),
    )


def send(settings: Settings, observations: list[CountObservation]) -> None:
    """Produce ``observations`` to ``bike.counts``, keyed as the connectors key them."""
    produce(
        settings,
        settings.topic("bike.counts"),
        [(o.key.encode(), o.to_bytes()) for o in observations],
    )


def ingest_week(endpoint: str) -> list[str]:
    """The ``byflyt`` arguments that ingest the Mjøsbyen week (``FROM`` to ``TO``) from the
    Trafikkdata API at ``endpoint``."""
    return [
        "ingest",
        "trafikkdata",
        "--region",
        "mjosbyen",
        "--endpoint",
        endpoint,
        "--from",
        FROM,
        "--to",
        TO,
    ]


def queried_rows(
    env: dict[str, str], mode: str, since: str, until: str
) -> list[tuple[object, ...]]:
    """``byflyt query hourly --mode MODE --format csv`` for Mjøsbyen, parsed (as
    :func:`tests.cycling_expect.kommune_hours` gives)."""
    return parse(
        byflyt(
            env,
            *("query", "hourly", "--region", "mjosbyen", "--mode", mode, "--metric", "volume"),
            *("--from", since, "--to", until, "--format", "csv"),
        ).stdout
    )


def assert_drained_week(env: dict[str, str], want: list[tuple[object, ...]]) -> None:
    """``byflyt worker --drain``; then the Mjøsbyen week's bicycle and pedestrian hours (``FROM``
    to ``TO``) are ``want``'s rows of each mode (as :func:`tests.cycling_expect.kommune_hours`
    gives them), and neither is empty."""
    byflyt(env, "worker", "--drain")
    for mode in ("bicycle", "pedestrian"):
        rows = queried_rows(env, mode, FROM, TO)
        assert rows == [r for r in want if r[2] == mode]
        assert rows


def kommune_hour(
    kommune: str,
    hour: datetime,
    value: float,
    *,
    mode: str = "bicycle",
    metric: str = "volume",
    coverage: float = 100.0,
    n_sources: int = 1,
) -> HourlyVolume:
    """A kommune-hour as ``volumes.hourly`` and the store hold it (a bicycle volume unless
    ``mode`` and ``metric`` say otherwise)."""
    return HourlyVolume(
        kommune_nr=kommune,
        mode=mode,
        metric=metric,
        hour_start=hour,
        value=value,
        coverage=coverage,
        n_sources=n_sources,
    )


def stored_rows(settings: Settings) -> list[Row]:
    """The store's hourly cycling volumes, as :func:`tests.cycling_expect.expected_rows` gives."""
    store = Store(settings.database_url)
    try:
        rows = store.query_hourly(mode="bicycle", metric="volume")
    finally:
        store.close()
    return sorted(
        (r.kommune_nr, r.mode, r.metric, r.hour_start, r.value, r.coverage, r.n_sources)
        for r in rows
    )


def stored(settings: Settings) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The store's transit rows (every mode but bicycle) and flows, sorted."""
    store = Store(settings.database_url)
    try:
        rows = [r for r in store.query_hourly() if r.mode != "bicycle"]
        flows = store.query_flows()
    finally:
        store.close()
    hourly: list[tuple[object, ...]] = sorted(
        (r.kommune_nr, r.mode, r.metric, r.hour_start, r.value, r.coverage, r.n_sources)
        for r in rows
    )
    return hourly, sorted(
        (f.from_kommune, f.to_kommune, f.mode, f.hour_start, f.trips) for f in flows
    )


def load_static(settings: Settings, env: dict[str, str], zip_path: Path, feed: str) -> StaticFeed:
    """``byflyt gtfs load --feed FEED --zip ZIP`` (the whole feed, no region); the feed as the
    command saved it."""
    byflyt(env, "gtfs", "load", "--feed", feed, "--zip", str(zip_path))
    return StaticFeed.load(feed_dir(settings, feed))


def analyst_answers(
    env: dict[str, str],
    hourly: Sequence[tuple[Any, ...]],
    flows: Sequence[tuple[Any, ...]],
    mode: str,
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str, str], int]]:
    """Ask as an analyst does, over the hours of ``hourly``: ``query hourly`` of MODE's
    departures per Mjøsbyen kommune and ``query flows --level region``. Both must equal what the
    expected ``hourly`` rows and ``flows`` say; the answers, for further checks."""
    members = set(get_region("mjosbyen").kommuner)
    hours = [r[3] for r in hourly]
    span = ["--from", iso_z(min(hours)), "--to", iso_z(max(hours) + timedelta(hours=1))]
    answer = byflyt(
        env, "query", "hourly", "--region", "mjosbyen", "--mode", mode,
        "--metric", "departures", *span, "--format", "csv",
    )  # fmt: skip
    departures = {
        (row["kommune_nr"], row["hour_start"]): float(row["value"])
        for row in csv.DictReader(io.StringIO(answer.stdout))
    }
    assert departures == {
        (r[0], iso_z(r[3])): r[4]
        for r in hourly
        if r[1] == mode and r[2] == "departures" and r[0] in members
    }
    answer = byflyt(
        env, "query", "flows", "--region", "mjosbyen", "--level", "region", *span,
        "--format", "csv",
    )  # fmt: skip
    region_flows = {
        (row["from"], row["to"], row["mode"]): int(row["vehicle_trips"])
        for row in csv.DictReader(io.StringIO(answer.stdout))
    }
    want: dict[tuple[str, str, str], int] = defaultdict(int)
    for a, b, flow_mode, _, trips in flows:
        if (a in members) != (b in members):
            ends = ("region", "outside") if a in members else ("outside", "region")
            want[(*ends, flow_mode)] += trips
    assert region_flows == dict(want)
    return departures, region_flows
