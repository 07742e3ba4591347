"""Run the real Prometheus and Alertmanager in a test: configs, processes, a webhook receiver.

Prometheus and Alertmanager are Debian's packages (``deploy/install-system.sh``). The configs are
derived from the project's own (``deploy/prometheus/rules``, ``deploy/alertmanager``) with only
what a test must change: loopback targets, the webhook URL, and test-sized intervals and ``for:``.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.helpers import http_server

T = TypeVar("T")


def http_get(url: str, timeout: float = 5, *, errors_are_fatal: bool = True) -> str | None:
    """The body of a GET, or None while nothing answers on the port.

    An HTTP error status fails at once (with the body, which names the server's error) unless
    ``errors_are_fatal`` is False, for readiness checks that answer 503 while starting.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body.decode()
    except urllib.error.HTTPError as exc:
        if not errors_are_fatal:
            return None
        detail = exc.read().decode(errors="replace")[:1000]
        raise AssertionError(f"GET {url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def get_json(url: str) -> Any:
    """A GET that must answer JSON."""
    body = http_get(url)
    assert body is not None, f"no answer from {url}"
    return json.loads(body)


# -- configs ---------------------------------------------------------------------------------
def _rewrite_intervals(route: dict[str, Any], intervals: dict[str, str]) -> None:
    for key in intervals:
        if key in route:
            route[key] = intervals[key]
    for child in route.get("routes", []):
        _rewrite_intervals(child, intervals)


def short_rules(rules_dir: Path, out_dir: Path, for_: str) -> list[Path]:
    """Copies of every rule file with every alert's ``for:`` set to ``for_``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(rules_dir.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = for_
        target = out_dir / path.name
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        written.append(target)
    return written


def prometheus_config(
    rule_files: list[Path], targets: dict[str, str], alertmanager: str, interval: str = "1s"
) -> dict[str, Any]:
    """A Prometheus config: one job per ``targets`` item (job name → host:port)."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }


def alertmanager_config(
    source: Path, webhook_url: str, group_wait: str, group_interval: str, repeat_interval: str
) -> dict[str, Any]:
    """``source`` (the project's Alertmanager config) sending every webhook to ``webhook_url``."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    _rewrite_intervals(
        config["route"],
        {
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
    )
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    return config


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# -- processes -------------------------------------------------------------------------------
class Processes:
    """Long-running subprocesses of one test, each logging to its own file; stopped in ``close``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` with stdout and stderr to ``<log_dir>/<name>.log``."""
        log = (self.log_dir / f"{name}.log").open("wb")
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        finally:
            log.close()
        self.running.append((name, proc))
        return proc

    def log(self, name: str, tail: int = 3000) -> str:
        """The end of a process' log, for failure messages."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def check_alive(self) -> None:
        """Fail with its log if a process has exited."""
        for name, proc in self.running:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")

    def close(self) -> None:
        """Terminate every process (newest first), then kill what does not stop."""
        for _, proc in reversed(self.running):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.running):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        self.running.clear()


# -- the webhook receiver --------------------------------------------------------------------
class WebhookReceiver:
    """Alertmanager's webhook notifications, as POSTed to ``url``."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.url = ""

    def received(self) -> list[dict[str, Any]]:
        """A copy of the payloads so far, oldest first."""
        with self.lock:
            return list(self.payloads)

    @contextmanager
    def serving(self) -> Iterator[WebhookReceiver]:
        """Listen on a free loopback port until the block ends."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.payloads.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test asserts on the payloads; access lines are noise

        with http_server(Handler) as url:
            self.url = f"{url}/alerts"
            yield self
