"""Every PromQL expression of the dashboard and the alerts parses and names only exported metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import GRAFANA, run
from .promql import PROMETHEUS_SYNTHETIC, exported_metric_names, metric_names
from .test_rules import alerts

DASHBOARD = GRAFANA / "hoststate.json"
# Grafana's interval variables become durations; any other variable (only ever inside a
# label matcher's string here) becomes a plain value.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
GRAFANA_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+|\[\[\w+\]\]")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows
    return found


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    return [
        (f"panel {panel['id']} {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in panels(dashboard())
        for target in panel.get("targets", [])
    ]


def template_metrics() -> list[str]:
    """Metrics named by the template variables' label_values(metric, label) queries."""
    names = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
            assert match, f"variable {variable['name']}: unexpected query {query!r}"
            names.append(match.group(1))
    return names


def family(name: str) -> str:
    """A histogram's series (_bucket, _sum, _count) belong to one metric."""
    return re.sub(r"_(bucket|sum|count)$", "", name)


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    return GRAFANA_VARIABLE.sub("x", expr)


EXPORTED = exported_metric_names()
KNOWN = EXPORTED | PROMETHEUS_SYNTHETIC


# -- the lexer itself ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('absent(up{job="hoststate-operator"} == 1)', {"up"}),
        ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[10m]))) > 5", {"a_bucket"}),
        ("max by (host, zone) (a) == 0 unless on (host, zone) (max without (x) (b) == 1 or c)", {"a", "b", "c"}),
        ("sum(rate(a_total[5m] offset 1h)) by (le) / ignoring (code) group_left (route) b", {"a_total", "b"}),
        ('{__name__="a", job=~"by|on"}', {"a"}),
        ("rate(a[5m:1m]) > bool 3 and b @ 1609746000", {"a", "b"}),
        ('topk by (route) (5, a{route!="sum(x)"}) + count(b) - time() # c', {"a", "b"}),
        ("vector(0) or -inf", set()),
    ],
)
def test_metric_names_finds_the_selected_series(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exported_names_come_from_the_code() -> None:
    assert {
        "hoststate_service_up",
        "hoststate_servers",
        "hoststate_fanout_duration_seconds_bucket",
        "hoststate_reconcile_errors_total",
        "hoststate_facade_requests_total",
    } <= EXPORTED
    assert all(name.startswith("hoststate_") for name in EXPORTED)


# -- the dashboard ------------------------------------------------------------------------------
def test_dashboard_expressions_parse(promtool: str, tmp_path: Path) -> None:
    # promtool parses expressions when it checks rules: one recording rule per expression.
    rules = [
        {"record": f"hoststate_dashboard:expr_{i}", "expr": as_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("where", "expr"), dashboard_expressions(), ids=[w for w, _ in dashboard_expressions()])
def test_dashboard_expression_names_only_exported_metrics(where: str, expr: str) -> None:
    names = metric_names(as_promql(expr))
    assert names, f"{where} reads no metric"
    assert names <= KNOWN, f"{where} names metrics hoststate does not export: {sorted(names - KNOWN)}"


def test_dashboard_variables_name_exported_metrics() -> None:
    assert set(template_metrics()) <= EXPORTED


def test_dashboard_shows_hosts_servers_fanout_and_facade() -> None:
    titles = {panel["title"] for panel in panels(dashboard())}
    assert {"Hosts by state", "Servers by host status", "Fan-out latency", "Requests by route"} <= titles
    used = set().union(*(metric_names(as_promql(expr)) for _, expr in dashboard_expressions()))
    unshown = {family(name) for name in EXPORTED} - {family(name) for name in used}
    assert not unshown, f"exported metrics the dashboard never shows: {sorted(unshown)}"


def test_dashboard_is_importable() -> None:
    board = dashboard()
    assert board["uid"] == "hoststate" and board["title"] == "hoststate"
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    datasource = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"panel {panel['title']} is wider than the grid"
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


# -- the alerts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_names_only_exported_metrics(alert: dict[str, Any]) -> None:
    names = metric_names(alert["expr"])
    assert names <= KNOWN, f"{alert['alert']} names metrics hoststate does not export: {sorted(names - KNOWN)}"
