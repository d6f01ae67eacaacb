"""The facade's and the operator's listeners bind the addresses they are given (issue 12, item 9):
0.0.0.0 by default (a pod's address, for its probes and Prometheus), 127.0.0.1 in `make run`."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from prometheus_client import CollectorRegistry

from hoststate.devcluster import free_port
from hoststate.facade.cli import add_arguments, from_arguments
from hoststate.operator import config as operator_config
from hoststate.prometheus import serve_metrics


def parsed(add: object, convert: object, *argv: str) -> object:
    parser = argparse.ArgumentParser()
    add(parser)
    return convert(parser.parse_args(list(argv)))


def test_facade_addresses_flag_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("HOSTSTATE_FACADE_HOST", "HOSTSTATE_FACADE_METRICS_HOST"):
        monkeypatch.delenv(variable, raising=False)
    default = parsed(add_arguments, from_arguments)
    assert (default.host, default.metrics_host) == ("0.0.0.0", "0.0.0.0")
    flags = parsed(add_arguments, from_arguments, "--host", "127.0.0.1", "--metrics-host", "::1")
    assert (flags.host, flags.metrics_host) == ("127.0.0.1", "::1")
    monkeypatch.setenv("HOSTSTATE_FACADE_HOST", "127.0.0.2")
    monkeypatch.setenv("HOSTSTATE_FACADE_METRICS_HOST", "127.0.0.3")
    env = parsed(add_arguments, from_arguments)
    assert (env.host, env.metrics_host) == ("127.0.0.2", "127.0.0.3")
    assert parsed(add_arguments, from_arguments, "--metrics-host", "10.0.0.1").metrics_host == "10.0.0.1"


def test_operator_metrics_address_flag_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTSTATE_METRICS_HOST", raising=False)
    add, convert = operator_config.add_arguments, operator_config.from_arguments
    assert parsed(add, convert).metrics_host == "0.0.0.0"
    monkeypatch.setenv("HOSTSTATE_METRICS_HOST", "127.0.0.1")
    assert parsed(add, convert).metrics_host == "127.0.0.1"
    assert parsed(add, convert, "--metrics-host", "::1").metrics_host == "::1"


def test_metrics_listen_on_the_address_given_only() -> None:
    async def bound() -> list:
        runner = await serve_metrics(CollectorRegistry(), "127.0.0.1", free_port(), healthy=lambda: True)
        try:
            return list(runner.addresses)
        finally:
            await runner.cleanup()

    addresses = asyncio.run(bound())
    assert [address[0] for address in addresses] == ["127.0.0.1"]
