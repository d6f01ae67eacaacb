"""Kubernetes times (hoststate.kubetime): written and read back, strictly and leniently."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hoststate.kubetime import kube_micro_time, kube_time, parse_kube_time, parse_kube_time_leniently, utcnow

MOMENT = datetime(2026, 11, 24, 12, 0, 1, 250000, tzinfo=UTC)


def test_times_written_read_back() -> None:
    assert kube_time(MOMENT) == "2026-11-24T12:00:01Z"
    assert kube_micro_time(MOMENT) == "2026-11-24T12:00:01.250000Z"
    assert parse_kube_time(kube_micro_time(MOMENT)) == MOMENT
    assert parse_kube_time(kube_time(MOMENT)) == MOMENT.replace(microsecond=0)
    assert parse_kube_time("2026-11-24T13:00:01.25+01:00") == MOMENT


@pytest.mark.parametrize("absent", [None, ""])
def test_absent_is_none(absent: str | None) -> None:
    assert parse_kube_time(absent) is None
    assert parse_kube_time_leniently(absent) is None


def test_malformed_is_an_error_unless_lenient() -> None:
    with pytest.raises(ValueError):
        parse_kube_time("yesterday")
    assert parse_kube_time_leniently("yesterday") is None
    assert parse_kube_time_leniently(1732449601) is None  # not text: a hand-edited status field
    assert parse_kube_time_leniently(kube_time(MOMENT)) == MOMENT.replace(microsecond=0)


def test_utcnow_is_aware_utc() -> None:
    before = datetime.now(UTC)
    now = utcnow()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC and before <= now <= after
