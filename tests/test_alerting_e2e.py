"""End to end: a counter stops, the alert reaches Alertmanager and its webhook, then resolves.

Everything is real: the session's Kafka, a long-running ``byflyt worker`` serving ``/metrics``,
Debian's Prometheus evaluating copies of ``deploy/prometheus/rules`` (every ``for:`` cut to a
few seconds, scrapes and evaluations every second) and Debian's Alertmanager running
``deploy/alertmanager/alertmanager.yml`` with its webhook pointed at a receiver in this test and
its group intervals cut to a second. All bind 127.0.0.1 on free ports.

The counts are synthetic: four points of one kommune count every hour for four days up to a few
hours ago (a source that publishes late, as Trafikkdata does, so the rules' freshness guards see
a healthy source should the worker export freshness); S1 stops, the status agent judges it
``silent`` after three expected hours without data, and ``ByflytCounterSilent`` fires. Then S1
counts again, two good hours bring it back ``up`` (the agent's hysteresis), and the alert
resolves.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from byflyt.kafka import create_topics
from byflyt.models.base import hour_floor
from byflyt.models.counts import CountObservation
from byflyt.settings import Settings
from tests.conftest import REPO, SettingsFactory, free_port
from tests.helpers import send, wait_until
from tests.prom_util import (
    Processes,
    WebhookReceiver,
    alertmanager_config,
    get_json,
    http_get,
    prometheus_config,
    short_rules,
    write_yaml,
)

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager")
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None or ALERTMANAGER is None,
        reason="Debian's prometheus and prometheus-alertmanager packages are not installed "
        "(deploy/install-system.sh)",
    ),
]

ALERT = "ByflytCounterSilent"
SOURCE, KOMMUNE, SILENT_POINT = "synthetic", "3403", "S1"
POINTS = ("A1", "A2", "A3", SILENT_POINT)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Timeline:
    """S1 counts until ``stop`` and again from ``resume``; the others count throughout.

    Four hours off: the agent judges up to its source's newest hour minus a grace hour, so it
    has judged three silent hours (``silent_hours``) once the fourth is read. Three hours back:
    two good ones (``recover_hours``) plus the grace hour. Four days of history first: an hour
    of day is judged only with ``min_history_days`` (3) of history.
    """

    start: datetime
    stop: datetime
    resume: datetime
    end: datetime

    @classmethod
    def ending_now(cls) -> Timeline:
        end = hour_floor(datetime.now(UTC))  # the newest hour sent is the last closed one
        resume = end - 3 * HOUR
        stop = resume - 4 * HOUR
        return cls(start=stop - timedelta(days=4), stop=stop, resume=resume, end=end)


def counts(timeline: Timeline, start: datetime, end: datetime) -> list[CountObservation]:
    """Hourly counts of every point from ``start`` until ``end``; S1 is off while stopped."""
    out = []
    hour = start
    while hour < end:
        n = int((hour - timeline.start) / HOUR)
        for point in POINTS:
            off = point == SILENT_POINT and timeline.stop <= hour < timeline.resume
            out.append(
                CountObservation(
                    source=SOURCE,
                    point_id=point,
                    kommune_nr=KOMMUNE,
                    start=hour,
                    end=hour + HOUR,
                    # Never the same twice in a row: no point is flat.
                    volume=None if off else 3 + (hour.hour * 7 + n) % 11,
                    coverage=0.0 if off else 100.0,
                )
            )
        hour += HOUR
    return out


def sensor_state(metrics_url: str, point: str) -> str | None:
    """The state ``byflyt_sensor_status`` marks 1 for ``point``, from the worker's /metrics."""
    body = http_get(metrics_url)
    if body is None:
        return None
    for family in text_string_to_metric_families(body):
        if family.name != "byflyt_sensor_status":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (labels["source"], labels["point"]) == (SOURCE, point) and sample.value == 1:
                return labels["state"]
    return None


def active_alerts(alertmanager_url: str) -> list[dict[str, Any]]:
    """Alertmanager's active alerts named ALERT for the silent point."""
    return [
        alert
        for alert in get_json(f"{alertmanager_url}/api/v2/alerts")
        if alert["labels"].get("alertname") == ALERT
        and alert["labels"].get("point") == SILENT_POINT
    ]


def notifications(webhook: WebhookReceiver, status: str) -> list[dict[str, Any]]:
    """Webhook alerts for the silent point whose status is ``status``."""
    return [
        alert
        for payload in webhook.received()
        for alert in payload["alerts"]
        if alert["labels"].get("alertname") == ALERT
        and alert["labels"].get("point") == SILENT_POINT
        and alert["status"] == status
    ]


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    # One partition: the connector's order is the order the status agent reads, so no point's
    # hours are judged before they are read.
    return settings_factory(topic_partitions=1)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver().serving() as receiver:
        yield receiver


def test_a_silent_counter_alerts_through_alertmanager_and_resolves(
    settings: Settings,
    worker_env: dict[str, str],
    processes: Processes,
    webhook: WebhookReceiver,
    tmp_path: Path,
) -> None:
    timeline = Timeline.ending_now()
    create_topics(settings)
    send(settings, counts(timeline, timeline.start, timeline.resume))

    worker_port = free_port()
    processes.start(
        "worker",
        [sys.executable, "-m", "byflyt", "worker", "--web-port", str(worker_port)],
        env=worker_env,
        cwd=REPO,
    )
    metrics_url = f"http://127.0.0.1:{worker_port}/metrics"

    def state(point: str) -> str | None:
        processes.check_alive()
        try:
            return sensor_state(metrics_url, point)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{processes.log('worker')}") from exc

    wait_until(
        lambda: state(SILENT_POINT) == "silent", 60, "the worker's /metrics to show S1 silent"
    )
    assert {state(p) for p in ("A1", "A2", "A3")} == {"up"}

    assert ALERTMANAGER is not None
    am_port = free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    am_config = alertmanager_config(
        REPO / "deploy" / "alertmanager" / "alertmanager.yml",
        webhook.url,
        group_wait="1s",
        group_interval="1s",
        repeat_interval="1m",
    )
    processes.start(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={write_yaml(tmp_path / 'alertmanager.yml', am_config)}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
    )

    assert PROMETHEUS is not None
    prom_port = free_port()
    rules = short_rules(REPO / "deploy" / "prometheus" / "rules", tmp_path / "rules", for_="3s")
    prom_config = prometheus_config(
        rules,
        targets={"byflyt-worker": f"127.0.0.1:{worker_port}"},
        alertmanager=f"127.0.0.1:{am_port}",
    )
    processes.start(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={write_yaml(tmp_path / 'prometheus.yml', prom_config)}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            # Prometheus re-sends a firing alert only this often (default 1m); resolutions go
            # out at once.
            "--rules.alert.resend-delay=1s",
        ],
    )

    def firing() -> list[dict[str, Any]] | None:
        processes.check_alive()
        if http_get(f"{am_url}/-/ready", errors_are_fatal=False) is None:
            return None
        return active_alerts(am_url)

    (alert,) = wait_until(firing, 45, f"{ALERT} in Alertmanager's /api/v2/alerts")
    labels = alert["labels"]
    assert (labels["source"], labels["kommune"], labels["point"]) == (SOURCE, KOMMUNE, "S1")
    assert labels["severity"] == "warning"
    assert alert["status"]["state"] == "active"
    assert alert["annotations"]["summary"] == "Counter S1 in kommune 3403 is silent"
    (sent,) = wait_until(
        lambda: notifications(webhook, "firing")[:1], 20, "a firing webhook notification"
    )
    assert sent["annotations"]["summary"] == "Counter S1 in kommune 3403 is silent"
    # Only the stopped counter alerts: the points that kept counting, and the worker, do not.
    firing_names = {
        (a["labels"]["alertname"], a["labels"].get("point"))
        for a in get_json(f"{am_url}/api/v2/alerts")
    }
    assert firing_names == {(ALERT, "S1")}

    # S1 counts again; two good hours (the hysteresis) bring it back up.
    send(settings, counts(timeline, timeline.resume, timeline.end))

    wait_until(lambda: state(SILENT_POINT) == "up", 30, "the worker's /metrics to show S1 up again")
    (resolved,) = wait_until(
        lambda: notifications(webhook, "resolved")[:1], 30, "a resolved webhook notification"
    )
    assert resolved["labels"]["kommune"] == KOMMUNE
    wait_until(lambda: not active_alerts(am_url), 15, f"{ALERT} to leave /api/v2/alerts")
