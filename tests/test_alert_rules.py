"""The alert and recording rules are valid, unit-tested by promtool, and documented.

promtool is the real one from Debian's prometheus package (``deploy/install-system.sh``). The
unit tests in ``deploy/prometheus/tests/`` hold a positive and a negative case for every alert;
the structural tests here make sure none is forgotten as alerts are added.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOK = PROMETHEUS / "RUNBOOK.md"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's prometheus package (deploy/install-system.sh)",
)

ALERTS_ISSUE_7 = {
    "ByflytCounterSilent",
    "ByflytCounterFlat",
    "ByflytCoverageLow",
    "ByflytFeedStale",
    "ByflytFeedEmpty",
    "ByflytConnectorFailing",
    "ByflytConsumerLagGrowing",
    "ByflytDeadLetterRateHigh",
    "ByflytWorkerDown",
}


def promtool(*args: str | Path) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def alerts() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return rules


def unit_tests() -> list[dict[str, Any]]:
    return [test for path in TEST_FILES for test in yaml.safe_load(path.read_text())["tests"]]


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings (lower case, spaces to dashes)."""
    headings = re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    output = promtool("check", "rules", *RULE_FILES)
    assert output.count("SUCCESS") == len(RULE_FILES)


@needs_promtool
@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    output = promtool("test", "rules", *TEST_FILES)
    assert output.count("SUCCESS") == len(TEST_FILES)


@needs_promtool
def test_prometheus_config_is_valid_and_loads_every_rule_file() -> None:
    output = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert f"{len(RULE_FILES)} rule files found" in output
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"byflyt-worker", "byflyt-connectors"} <= jobs


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not found (Alertmanager)")
def test_alertmanager_config_is_valid() -> None:
    amtool = shutil.which("amtool")
    assert amtool is not None
    done = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert config["receivers"][0]["webhook_configs"][0]["send_resolved"] is True


def test_every_alert_the_issue_asks_for_exists() -> None:
    assert {rule["alert"] for rule in alerts()} >= ALERTS_ISSUE_7


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_has_for_severity_summary_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Byflyt")
    assert re.fullmatch(r"\d+[mh]", rule["for"])
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert path == "deploy/prometheus/RUNBOOK.md"
    assert anchor == rule["alert"].lower()
    assert anchor in runbook_anchors()


@pytest.mark.parametrize("name", ["ByflytCounterSilent", "ByflytCounterFlat", "ByflytCoverageLow"])
def test_counter_alerts_name_the_kommune_and_point(name: str) -> None:
    (rule,) = [rule for rule in alerts() if rule["alert"] == name]
    assert "$labels.kommune" in rule["annotations"]["summary"]
    assert "$labels.point" in rule["annotations"]["summary"]


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_has_positive_and_negative_unit_tests(rule: dict[str, Any]) -> None:
    cases = [
        case
        for test in unit_tests()
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == rule["alert"]
    ]
    assert any(case.get("exp_alerts") for case in cases), "no case where it fires"
    assert any(not case.get("exp_alerts") for case in cases), "no case where it stays quiet"


def test_the_issues_negatives_are_tested() -> None:
    names = " ".join(test["name"] for test in unit_tests())
    for negative in ("3 a.m. zeros", "2-hour source lag", "cancellations"):
        assert negative in names
