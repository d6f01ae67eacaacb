"""PromQL helpers for the tests: the metric names an expression reads, and those hoststate exports.

promtool checks that expressions parse; it cannot list the metrics they name. `metric_names`
is a small lexer for that: enough for valid PromQL (promtool has accepted it first), with its
own tests in test_promql_names.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Metric

# Series Prometheus itself writes for every scrape target (not exported by hoststate).
PROMETHEUS_SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>(?:\d|\.\d)[\w.+-]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[{}()\[\],=<>+\-*/%^@:])
    """,
    re.VERBOSE,
)
# Followed by a parenthesised label list, not by an expression.
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _GROUPING | {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end", "atan2"}
# May be followed by `by (...)` / `without (...)` before their parenthesis.
_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read {expr[position : position + 20]!r} in {expr!r}")
        position = match.end()
        if match.lastgroup not in ("space", "comment"):
            tokens.append((match.lastgroup, match.group()))
    return tokens


def metric_names(expr: str) -> set[str]:
    """The metric names a (valid) PromQL expression selects, including `{__name__="..."}`."""
    tokens = _tokens(expr)
    names: set[str] = set()
    braces = brackets = 0
    skip_group = False  # inside by (...), on (...), ...
    for i, (kind, text) in enumerate(tokens):
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "op":
            if text == "{":
                braces += 1
            elif text == "}":
                braces -= 1
            elif text == "[":
                brackets += 1
            elif text == "]":
                brackets -= 1
            elif text == ")" and skip_group:
                skip_group = False
            continue
        if braces:
            if kind == "ident" and text == "__name__" and following in ("=", "=~"):
                value = tokens[i + 2][1]
                names.add(value[1:-1])
            continue
        if brackets or skip_group or kind != "ident":
            continue
        if text.lower() in _GROUPING and following == "(":
            skip_group = True
        elif following == "(" or text.lower() in _KEYWORDS:
            continue  # a function, an aggregation, or an operator keyword
        elif text in _AGGREGATIONS and following.lower() in ("by", "without"):
            continue  # `sum by (le) (...)`
        else:
            names.add(text)
    return names


def family_sample_names(family: Metric) -> set[str]:
    """The series names a metric family is scraped as (prometheus_client strips `_total`)."""
    if family.type == "counter":
        return {f"{family.name}_total"}
    if family.type == "histogram":
        return {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    if family.type == "summary":
        return {family.name, f"{family.name}_sum", f"{family.name}_count"}
    return {family.name}


def names_of(families: Iterable[Metric]) -> set[str]:
    return {name for family in families for name in family_sample_names(family)}


def exported_metric_names() -> set[str]:
    """Every series name the operator and the facade export, from their real registries."""
    from hoststate.operator.index_metrics import IndexCollector
    from hoststate.operator.indexes import ServerIndex, ServiceIndex
    from hoststate.prometheus import FacadeMetrics, OperatorMetrics

    names = names_of(OperatorMetrics(CollectorRegistry()).registry.collect())
    names |= names_of(FacadeMetrics(CollectorRegistry()).registry.collect())
    # The per-service and per-status gauges come from a collector over the operator's indexes;
    # with empty indexes it still yields every family.
    names |= names_of(IndexCollector(ServiceIndex(), ServerIndex(), down_time=60.0).collect())
    return names
