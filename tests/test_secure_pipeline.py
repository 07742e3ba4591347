"""The whole pipeline through a broker with authentication (SASL_SSL, SCRAM-SHA-512, own CA).

One secure broker for the session (``byflyt broker start --secure``, the ``secure_broker``
fixture). Through it, as real processes: the Trafikkdata connector against the local sample
server, ``byflyt worker --drain``, ``byflyt serve`` following the topics and a long-running
worker with ``/readyz`` and ``/metrics``. The store and the API must equal the rules' table
exactly, and the password must be nowhere: not in any process's output or command line, the
broker's log, the metrics, the dead-letter topic or any other record, or an error message.
A wrong password and an unknown CA stop every command at start-up with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from byflyt.broker_security import make_ca
from byflyt.samples.trafikkdata import mjosbyen_week
from byflyt.samples.trafikkdata_server import TrafikkdataServer
from byflyt.topics import ALL_TOPICS, BIKE_COUNTS, DLQ
from tests.conftest import REPO, SecureBroker, free_port, kafka_libs
from tests.cycling_expect import FROM, TO, expected_csv_rows, parse
from tests.helpers import BYFLYT, ingest_week, plain_env, run, wait_until
from tests.kafka_util import produce, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class Processes:
    """``python -m byflyt …`` processes with their output and command lines kept for checks."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[str] = []
        self.cmdlines: list[bytes] = []
        self.running: list[subprocess.Popen[str]] = []

    def start(self, *args: str, merge: bool = True) -> subprocess.Popen[str]:
        """Start ``byflyt -v ARGS``; with ``merge`` its log (stderr) joins its output."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "byflyt", "-v", *args],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            text=True,
        )
        self.cmdlines.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes())
        self.running.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 240, merge: bool = True) -> str:
        """Run ``byflyt -v ARGS`` to the end; its output (stdout)."""
        proc = self.start(*args, merge=merge)
        out, err = proc.communicate(timeout=timeout)
        self.outputs += [out, err or ""]
        assert proc.returncode == 0, f"byflyt {' '.join(args)}:\n{out[-3000:]}{err or ''}"
        return out

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.terminate()
                out, _ = proc.communicate(timeout=60)
                self.outputs.append(out)


def _env(secure_broker: SecureBroker, tmp_path: Path, unique: str) -> dict[str, str]:
    env = plain_env()
    env.update(secure_broker.client_env)
    env.update(
        BYFLYT_KAFKA_BOOTSTRAP=secure_broker.bootstrap,
        BYFLYT_DATA_DIR=str(tmp_path / "data"),
        BYFLYT_KAFKA_LIBS=str(kafka_libs()),
        BYFLYT_TOPIC_PREFIX=f"s{unique}.",
        BYFLYT_APP_ID=f"byflyt-secure-{unique}",
        BYFLYT_TOPIC_PARTITIONS="2",
    )
    return env


@pytest.fixture
def procs(secure_broker: SecureBroker, tmp_path: Path, unique: str) -> Iterator[Processes]:
    processes = Processes(_env(secure_broker, tmp_path, unique))
    try:
        yield processes
    finally:
        processes.stop_all()


def _wait_ready(url: str, timeout: float = 120) -> dict[str, object]:
    def readyz() -> tuple[int, str]:
        answer = httpx.get(url + "/readyz", timeout=15)
        return answer.status_code, answer.text

    _, text = wait_until(
        readyz,
        timeout,
        f"{url} to become ready",
        until=lambda answer: answer[0] == 200,
        every=0.5,
        retry_on=(httpx.TransportError,),
    )
    body: dict[str, object] = json.loads(text)
    return body


def test_pipeline_through_sasl_ssl_is_exact_and_keeps_the_password_secret(
    secure_broker: SecureBroker, procs: Processes, unique: str
) -> None:
    password = secure_broker.password
    assert len(password) >= 24
    settings = secure_broker.settings(topic_prefix=f"s{unique}.", topic_partitions=2)
    dataset = mjosbyen_week(1)
    with TrafikkdataServer(dataset) as server:
        procs.run(*ingest_week(server.url))
    # One malformed record, so the dead-letter topic holds something to inspect.
    produce(settings, settings.topic(BIKE_COUNTS.name), [(b"P-BAD", b"{not json")])
    procs.run("worker", "--drain", "--loglevel", "info")
    query = ["query", "hourly", "--region", "mjosbyen", "--mode", "bicycle", "--metric"]
    stored = procs.run(*query, "volume", "--from", FROM, "--to", TO, "--format", "csv", merge=False)
    expected = expected_csv_rows(dataset)
    assert expected
    assert parse(stored) == expected

    serve_port, web_port = free_port(), free_port()
    procs.start("serve", "--port", str(serve_port))
    procs.start("worker", "--web-port", str(web_port), "--loglevel", "info")
    serve_url, worker_url = f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{web_port}"
    served = _wait_ready(serve_url)
    assert served["checks"]["kafka"]["ok"] is True  # type: ignore[index]
    api = httpx.get(
        serve_url + "/api/v1/hourly",
        params={
            "region": "mjosbyen",
            "mode": "bicycle",
            "metric": "volume",
            "from": FROM,
            "to": TO,
            "limit": 10_000,
        },
        headers={"Accept": "text/csv"},
        timeout=30,
    )
    assert parse(api.text) == expected
    worker_ready = _wait_ready(worker_url)
    assert worker_ready["checks"]["kafka"]["ok"] is True  # type: ignore[index]
    assert worker_ready["checks"]["store"]["ok"] is True  # type: ignore[index]
    metrics = httpx.get(worker_url + "/metrics", timeout=30).text
    assert "byflyt_" in metrics
    procs.stop_all()

    # Every secret the broker has: the clients' password, its own, its keystores'.
    stored_secrets = json.loads((secure_broker.dir / "secrets.json").read_text())
    secrets = [password, *stored_secrets.values()]
    dlq = read_all(settings, settings.topic(DLQ.name))
    assert dlq, "the malformed record should be in the dead-letter topic"
    records = [r for spec in ALL_TOPICS for r in read_all(settings, settings.topic(spec.name))]
    assert records
    broker_cmdline = Path(f"/proc/{secure_broker.pid}/cmdline").read_bytes()
    assert b"kafka.Kafka" in broker_cmdline
    logs = [
        (secure_broker.dir / name).read_text(errors="replace")
        for name in ("server.log", "broker.out")
    ]
    assert any("SASL_SSL" in log for log in logs)
    for secret in secrets:
        raw = secret.encode()
        assert not [o for o in procs.outputs if secret in o]
        assert not [c for c in [*procs.cmdlines, broker_cmdline] if raw in c]
        assert not [log for log in logs if secret in log]
        assert secret not in metrics
        assert secret not in api.text
        assert secret not in json.dumps(served)
        assert not [r for r in records if raw in (r[0] or b"") or raw in (r[1] or b"")]
    assert len(procs.cmdlines) == 5
    assert any("INFO" in o for o in procs.outputs)  # the logs were verbose, and checked


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the secure broker's certificate."""
    java = Path(os.environ.get("JAVA_HOME", "/usr")) / "bin" / "java"
    return make_ca(
        tmp_path_factory.mktemp("other-ca"), str(java), SecretStr("x" * 16), name="someone else"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "create"],
        ["worker", "--drain"],
        ["serve", "--port", str(free_port())],
        [
            "ingest",
            "trafikkdata",
            "--region",
            "mjosbyen",
            "--endpoint",
            "http://127.0.0.1:9/",
            "--from",
            FROM,
            "--to",
            TO,
        ],
    ],
    ids=["topics", "worker", "serve", "ingest"],
)
def test_wrong_password_or_unknown_ca_fails_at_start_in_one_line(
    secure_broker: SecureBroker, tmp_path: Path, unique: str, other_ca: Path, command: list[str]
) -> None:
    env = _env(secure_broker, tmp_path, unique)
    wrong = "Wr0ng-but-plausible-password"
    cases = [
        ({"BYFLYT_KAFKA_SASL_PASSWORD": wrong}, "BYFLYT_KAFKA_SASL_PASSWORD"),
        ({"BYFLYT_KAFKA_SSL_CAFILE": str(other_ca)}, "BYFLYT_KAFKA_SSL_CAFILE"),
    ]
    for changed, setting in cases:
        done = run([*BYFLYT, *command], env={**env, **changed})
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"byflyt: configuration error: {setting}: ")
        for secret in (wrong, secure_broker.password):
            assert secret not in done.stderr
            assert secret not in done.stdout


def test_secrets_stay_out_of_settings_and_files_are_private(secure_broker: SecureBroker) -> None:
    settings = secure_broker.settings()
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert secure_broker.password not in shown
    for name in ("client.env", "secrets.json", "server.properties"):
        assert (secure_broker.dir / name).stat().st_mode & 0o077 == 0, name
    assert not list(secure_broker.dir.glob(".args-*"))  # the storage tool's argument file


def test_a_broker_folder_keeps_its_mode(tmp_path: Path) -> None:
    from byflyt.broker import LocalBroker
    from byflyt.broker_security import ClientCredentials
    from byflyt.errors import BrokerError

    formatted = tmp_path / "broker"
    (formatted / "kraft-logs").mkdir(parents=True)
    (formatted / "kraft-logs" / "meta.properties").write_text("cluster.id=x\n")
    (formatted / "broker.json").write_text(json.dumps({"secure": True}))
    plain = LocalBroker(formatted, kafka_libs(), free_port())
    with pytest.raises(BrokerError, match="was created with --secure; start it without --secure"):
        plain.start()
    (formatted / "broker.json").write_text(json.dumps({"secure": False}))
    user = ClientCredentials("byflyt", SecretStr("a-password-of-some-length"))
    secure = LocalBroker(formatted, kafka_libs(), free_port(), secure=user)
    with pytest.raises(BrokerError, match="was created without --secure; start it with --secure"):
        secure.start()
