"""The PrometheusRule's alerts: valid for promtool, unit-tested, each with a runbook."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import HERE, MANIFESTS, run

RULES_TEST = HERE / "rules.test.yaml"
SEVERITIES = {"info", "warning", "critical"}


def rule_groups() -> list[dict[str, Any]]:
    """The rule groups of deploy/manifests/prometheusrule.yaml: the one copy of the rules."""
    rule = yaml.safe_load((MANIFESTS / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    return rule["spec"]["groups"]


def alerts() -> list[dict[str, Any]]:
    return [r for group in rule_groups() for r in group["rules"] if "alert" in r]


def write_rules_file(path: Path, groups: list[dict[str, Any]]) -> Path:
    """A plain Prometheus rule file, as the Prometheus Operator generates from the PrometheusRule."""
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def test_rules_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    rules = write_rules_file(tmp_path / "hoststate.rules.yaml", rule_groups())
    result = run([promtool, "check", "rules", str(rules)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule_groups())} rules found" in result.stdout


def test_rules_pass_their_promtool_unit_tests(promtool: str, tmp_path: Path) -> None:
    # The expected alerts in rules.test.yaml list only the summary (see its header).
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    write_rules_file(tmp_path / "hoststate.rules.yaml", groups)
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    result = run([promtool, "test", "rules", RULES_TEST.name], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_a_fleet_operator_needs_exist() -> None:
    names = {a["alert"] for a in alerts()}
    assert {
        "HoststateHostForcedDown",
        "HoststateHeartbeatMissing",
        "HoststateServersOnDownHost",
        "HoststateServersOnUnknownHost",
        "HoststateOperatorDown",
        "HoststateFacadeDown",
        "HoststateFanoutSlow",
        "HoststateReconcileErrors",
    } <= names


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_has_a_severity_and_a_runbook(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    assert alert.get("for"), "a `for` keeps one bad scrape from paging anyone"
    annotations = alert["annotations"]
    for key in ("summary", "description", "runbook"):
        assert len(annotations.get(key, "").strip()) > 20, f"{alert['alert']}: annotation {key} missing or too short"


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    cases = [case for test in yaml.safe_load(RULES_TEST.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"no promtool test where {name} fires"
        assert any(not case.get("exp_alerts") for case in mine), f"no promtool test where {name} stays quiet"
    assert {case["alertname"] for case in cases} <= {a["alert"] for a in alerts()}, "a test names an unknown alert"
