"""The domain rules, every combination."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from hoststate.domain import (
    HostStatus,
    ServiceFacts,
    effective_service_down_time,
    heartbeat_deadline,
    host_status,
    service_is_up,
    service_view,
)
from hoststate.domain.hoststatus import ServiceView

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("down_time", "report_interval", "expected"),
    [
        (60, 10, 60),  # Nova's defaults
        (10, 10, 25),  # equal: 2.5 x report interval
        (5, 10, 25),  # smaller
        (3, 3, 7),  # int(7.5): Nova truncates
        (31, 30, 31),
        (0.5, 0.2, 0.5),
    ],
)
def test_effective_service_down_time(down_time: float, report_interval: float, expected: float) -> None:
    assert effective_service_down_time(down_time, report_interval) == expected


@pytest.mark.parametrize(
    ("forced_down", "age", "expected"),
    [
        (False, 0, True),
        (False, 59.9, True),
        (False, 60, True),  # at the limit is still up (<=)
        (False, 60.001, False),
        (False, 3600, False),
        (False, -30, True),  # a clock slightly ahead
        (False, -61, False),  # a clock far ahead counts as missing (abs)
        (False, None, False),  # never reported
        (True, 0, False),
        (True, 3600, False),
        (True, None, False),
    ],
)
def test_service_is_up(forced_down: bool, age: float | None, expected: bool) -> None:
    heartbeat = None if age is None else NOW - timedelta(seconds=age)
    assert service_is_up(forced_down=forced_down, last_heartbeat=heartbeat, now=NOW, down_time=60) is expected


def test_heartbeat_deadline() -> None:
    assert heartbeat_deadline(NOW, 60) == NOW + timedelta(seconds=60)
    assert heartbeat_deadline(None, 60) is None
    # At the deadline the service is still up, a moment later it is not.
    deadline = heartbeat_deadline(NOW, 5)
    assert service_is_up(forced_down=False, last_heartbeat=NOW, now=deadline, down_time=5)
    assert not service_is_up(
        forced_down=False, last_heartbeat=NOW, now=deadline + timedelta(milliseconds=1), down_time=5
    )


def expected_host_status(forced_down: bool, disabled: bool, up: bool) -> HostStatus:
    # Written out from Nova's code as a table, independently of the implementation.
    table = {
        (True, True, True): "DOWN",
        (True, True, False): "DOWN",
        (True, False, True): "DOWN",
        (True, False, False): "DOWN",
        (False, True, True): "MAINTENANCE",
        (False, True, False): "MAINTENANCE",
        (False, False, True): "UP",
        (False, False, False): "UNKNOWN",
    }
    return HostStatus(table[(forced_down, disabled, up)])


@pytest.mark.parametrize(("forced_down", "disabled", "up"), list(itertools.product([False, True], repeat=3)))
def test_host_status_every_combination(forced_down: bool, disabled: bool, up: bool) -> None:
    facts = ServiceFacts(forced_down=forced_down, disabled=disabled, up=up)
    assert host_status(facts) == expected_host_status(forced_down, disabled, up)


def test_no_service_gives_empty_host_status() -> None:
    assert host_status(None) == HostStatus.NONE == ""


def test_down_beats_maintenance() -> None:
    """The seed's list would let MAINTENANCE override DOWN; Nova's code does not, nor do we."""
    assert host_status(ServiceFacts(forced_down=True, disabled=True, up=False)) == HostStatus.DOWN


@pytest.mark.parametrize(("forced_down", "disabled", "up"), list(itertools.product([False, True], repeat=3)))
def test_service_view(forced_down: bool, disabled: bool, up: bool) -> None:
    view = service_view(ServiceFacts(forced_down=forced_down, disabled=disabled, up=up))
    assert view == ServiceView(
        state="up" if up and not forced_down else "down",
        service_status="disabled" if disabled else "enabled",
        host_status=expected_host_status(forced_down, disabled, up),
    )
