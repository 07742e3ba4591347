"""The Grafana provisioning is consistent, and every metric a query uses is one byflyt exports.

"Exports" means defined in ``byflyt/metrics.py`` (read from a fresh ``Metrics`` registry), or a
recording rule in ``deploy/prometheus/rules/``, or one of Prometheus' own series (``up``,
``ALERTS``). The same check covers the alert rules and the promtool tests' input series, so a
renamed metric cannot leave a dashboard panel or an alert silently empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from byflyt.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "byflyt.yml"
PROMETHEUS = REPO / "deploy" / "prometheus"

PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression reads."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _LABEL_LISTS.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def rule_files() -> list[Path]:
    return sorted((PROMETHEUS / "rules").glob("*.yml"))


def rules() -> Iterator[dict[str, Any]]:
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def known_names() -> set[str]:
    return exported_names() | recorded_names() | PROMETHEUS_OWN


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a dashboard: panel targets and template variables."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        # label_values(selector, label): the selector is PromQL, the label is not.
        match = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
        yield match.group(1) if match else text


def test_metric_names_reads_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (agent, le) (rate(byflyt_processing_seconds_bucket{a="b"}'
        "[$__rate_interval]))) > on (agent) group_left () 1e3 * point:byflyt_x:max offset 1w"
        ' unless ALERTS{alertname=~"up|down"}'
    )
    assert metric_names(expr) == {
        "byflyt_processing_seconds_bucket",
        "point:byflyt_x:max",
        "ALERTS",
    }


def test_metrics_module_exports_what_the_issue_asks_for() -> None:
    assert {
        "byflyt_volume",
        "byflyt_observations_total",
        "byflyt_stop_calls_total",
        "byflyt_source_last_data_timestamp_seconds",
        "byflyt_point_last_data_timestamp_seconds",
        "byflyt_feed_entities",
        "byflyt_feed_snapshot_age_seconds",
        "byflyt_http_errors_total",
        "byflyt_agent_records_total",
        "byflyt_rejected_total",
        "byflyt_consumer_lag_records",
        "byflyt_processing_seconds_bucket",
        "byflyt_store_writes_total",
        "byflyt_store_failures_total",
        "byflyt_sensor_status",
    } <= exported_names()


def test_sensor_state_sets_one_state_and_clears_the_others() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.set_sensor_state("trafikkdata", "17949V72812", "3403", "silent")
    metrics.set_sensor_state("trafikkdata", "17949V72812", "3403", "up")
    labels = {"source": "trafikkdata", "point": "17949V72812", "kommune": "3403"}
    assert registry.get_sample_value("byflyt_sensor_status", {**labels, "state": "up"}) == 1
    assert registry.get_sample_value("byflyt_sensor_status", {**labels, "state": "silent"}) == 0
    with pytest.raises(ValueError, match="unknown sensor state"):
        metrics.set_sensor_state("trafikkdata", "17949V72812", "3403", "asleep")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_queries_use_only_exported_metrics(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    queries = list(dashboard_queries(dashboard))
    assert queries
    used = set().union(*map(metric_names, queries))
    assert used - known_names() == set()
    # The dashboard shows what the issue asks for: counts, freshness, status, pipeline.
    assert {"byflyt_volume", "source:byflyt_data_age_seconds:min", "byflyt_sensor_status"} <= used
    assert {"byflyt_agent_records_total", "topic:byflyt_consumer_lag_records:sum"} <= used


def test_rules_use_only_exported_metrics() -> None:
    used = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert used - known_names() == set()


def test_promtool_tests_feed_only_exported_metrics() -> None:
    series = []
    for path in sorted((PROMETHEUS / "tests").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            series += [s["series"] for s in test["input_series"]]
    assert {s.split("{", 1)[0] for s in series} - known_names() == set()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_uses_the_provisioned_datasource(path: Path) -> None:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    dashboard = json.loads(path.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"]


def test_compose_mounts_the_provisioning_where_grafana_reads_it() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if ":" in volume)
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert "BYFLYT_PROMETHEUS_URL" in grafana["environment"]
