"""``/healthz`` and ``/readyz`` of the worker (real broker, real process) and compose's probes.

The probes in ``docker-compose.yml`` are run here as they are written, against a real worker
and a real ``serve``, ready and not ready.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from byflyt.settings import Settings
from byflyt.streams.health import Check, readiness
from byflyt.web import create_app
from tests.conftest import REPO, free_port
from tests.helpers import wait_until
from tests.web_server import serving

pytestmark = [pytest.mark.kafka]


def compose_probe(service: str, port: int) -> list[str]:
    """The service's healthcheck command from docker-compose.yml, aimed at ``port``."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    listens = {"worker": 6066, "serve": 8066}[service]
    assert f"127.0.0.1:{listens}/readyz" in test[-1]
    return [sys.executable, *test[2:-1], test[-1].replace(f":{listens}/", f":{port}/")]


def probe_ok(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0


@pytest.fixture
def worker_url(worker_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "byflyt", "worker", "--web-port", str(port)],
        env=worker_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthz() -> int:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            return httpx.get(url + "/healthz").status_code

        wait_until(
            healthz,
            120,
            "the worker's web server to answer /healthz with 200",
            until=lambda status: status == 200,
            every=0.3,
            retry_on=(httpx.TransportError,),
        )
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_worker_is_alive_then_ready_with_its_reasons(worker_url: str) -> None:
    assert httpx.get(worker_url + "/healthz").json() == {"status": "ok"}

    def readyz() -> tuple[int, dict[str, Any]]:
        answer = httpx.get(worker_url + "/readyz", timeout=30)
        body: dict[str, Any] = answer.json()
        if answer.status_code != 200:
            assert answer.status_code == 503
            assert body["status"] == "not ready"
            assert body["reasons"]
        return answer.status_code, body

    _, body = wait_until(
        readyz, 90, "the worker to be ready", until=lambda answer: answer[0] == 200, every=0.5
    )
    assert body["status"] == "ready"
    assert body["reasons"] == []
    assert set(body["checks"]) == {"store", "kafka", "lag"}
    assert body["checks"]["store"]["detail"].startswith("sqlite:///")
    assert body["checks"]["lag"]["records"] <= body["checks"]["lag"]["max"]
    assert "byflyt_" in httpx.get(worker_url + "/metrics").text
    assert probe_ok(compose_probe("worker", int(worker_url.rsplit(":", 1)[1])))


def test_compose_probe_of_serve_follows_its_readiness(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    store_only = settings_factory(data_dir=tmp_path / "a")
    with serving(create_app(store_only, follow_topics=False)) as url:
        assert probe_ok(compose_probe("serve", int(url.rsplit(":", 1)[1])))
    # Following topics that do not exist: not ready, and the probe says so.
    following = settings_factory(data_dir=tmp_path / "b")
    with serving(create_app(following, follow_topics=True)) as url:
        assert httpx.get(url + "/readyz").status_code == 503
        assert not probe_ok(compose_probe("serve", int(url.rsplit(":", 1)[1])))


def test_readiness_lists_every_failed_check() -> None:
    status, body = readiness(
        {
            "store": Check(True, "sqlite:///x"),
            "kafka": Check(False, "not answering: KafkaTimeoutError"),
            "lag": Check(False, "12 records behind, more than 10", {"records": 12, "max": 10}),
        }
    )
    assert status == 503
    assert body == {
        "status": "not ready",
        "reasons": [
            "kafka: not answering: KafkaTimeoutError",
            "lag: 12 records behind, more than 10",
        ],
        "checks": {
            "store": {"ok": True, "detail": "sqlite:///x"},
            "kafka": {"ok": False, "detail": "not answering: KafkaTimeoutError"},
            "lag": {
                "ok": False,
                "detail": "12 records behind, more than 10",
                "records": 12,
                "max": 10,
            },
        },
    }
    assert readiness({"store": Check(True, "ok")})[0] == 200
