"""The embedded broker through the real CLI: start, produce, stop, restart, errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from byflyt.settings import Settings
from tests.conftest import free_port, kafka_libs
from tests.helpers import plain_env
from tests.kafka_util import produce, read_all

BYFLYT = str(Path(sys.executable).parent / "byflyt")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BYFLYT, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = plain_env()
    env["BYFLYT_DATA_DIR"] = str(tmp_path / "data")
    env["BYFLYT_KAFKA_LIBS"] = str(kafka_libs())
    return env


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.kafka
@pytest.mark.slow
def test_start_produce_stop_restart_keeps_messages(tmp_path: Path, cli_env: dict[str, str]) -> None:
    port = free_port()
    data = tmp_path / "broker-data"
    args = ["--port", str(port), "--data-dir", str(data)]
    started = run(["broker", "start", *args], cli_env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"127.0.0.1:{port}" in started.stdout
        status = run(["broker", "status", *args], cli_env)
        assert status.returncode == 0
        assert status.stdout.startswith("running")

        settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}")
        produce(settings, "hundred", [(None, f"m{i}".encode()) for i in range(100)])

        stopped = run(["broker", "stop", *args], cli_env)
        assert stopped.returncode == 0, stopped.stderr
        assert not port_open(port)
        assert run(["broker", "status", *args], cli_env).returncode == 3

        again = run(["broker", "start", *args], cli_env)
        assert again.returncode == 0, again.stderr
        values = [v for _, v in read_all(settings, "hundred")]
        assert values == [f"m{i}".encode() for i in range(100)]
        assert (data / "server.log").exists()
        assert (data / "broker.pid").exists()
    finally:
        run(["broker", "stop", *args], cli_env)
    assert not port_open(port)


def test_taken_port_is_a_clear_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = run(["broker", "start", "--port", str(port), "--data-dir", str(tmp_path)], cli_env)
    assert done.returncode == 1
    assert f"port {port} is taken" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_jars_is_a_clear_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    cli_env["BYFLYT_KAFKA_LIBS"] = str(tmp_path / "no-jars")
    done = run(["broker", "start", "--port", str(free_port())], cli_env)
    assert done.returncode == 1
    assert "Kafka jars are missing" in done.stderr
    assert "make install" in done.stderr


def test_missing_java_is_a_clear_error(cli_env: dict[str, str]) -> None:
    cli_env.pop("JAVA_HOME", None)
    cli_env["PATH"] = "/nonexistent"
    done = run(["broker", "start", "--port", str(free_port())], cli_env)
    assert done.returncode == 1
    assert "Java is not installed" in done.stderr


def test_external_bootstrap_starts_nothing(cli_env: dict[str, str]) -> None:
    cli_env["BYFLYT_KAFKA_BOOTSTRAP"] = "kafka.example:9092"
    done = run(["broker", "start"], cli_env)
    assert done.returncode == 2
    assert "nothing local to start" in done.stderr
