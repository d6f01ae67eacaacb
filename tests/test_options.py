"""One configuration style for the three commands: a flag wins, then its HOSTSTATE_* variable, then the default."""

from __future__ import annotations

import pytest

from hoststate.cli import build_parser
from hoststate.facade.cli import from_arguments as facade_config
from hoststate.operator.config import from_arguments as operator_config


def test_flag_then_variable_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTSTATE_SERVICE_DOWN_TIME", raising=False)
    assert operator_config(build_parser().parse_args(["operator"])).service_down_time == 60.0
    monkeypatch.setenv("HOSTSTATE_SERVICE_DOWN_TIME", "30")
    assert operator_config(build_parser().parse_args(["operator"])).service_down_time == 30.0
    args = build_parser().parse_args(["operator", "--service-down-time=20"])
    assert operator_config(args).service_down_time == 20.0


def test_shared_options_have_one_variable_and_the_facades_own_are_scoped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTSTATE_LEASE_NAMESPACE", "leases")
    monkeypatch.setenv("HOSTSTATE_FACADE_PORT", "9774")
    monkeypatch.setenv("HOSTSTATE_NAMESPACES", "a,b")
    facade = facade_config(build_parser().parse_args(["facade"]))
    operator = operator_config(build_parser().parse_args(["operator", "--namespace=c"]))
    assert (facade.lease_namespace, facade.port) == ("leases", 9774)
    assert operator.lease_namespace == "leases" and operator.namespaces == ("a", "b", "c")


def test_a_bad_variable_fails_like_a_bad_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTSTATE_FANOUT_CONCURRENCY", "many")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["operator"])
