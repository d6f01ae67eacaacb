"""Kubernetes time formats: Time (seconds) and MicroTime, both RFC 3339 in UTC; and the clock."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware datetime in UTC."""
    return datetime.now(UTC)


def kube_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def kube_micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_kube_time(value: str | None) -> datetime | None:
    """Time or MicroTime to an aware datetime; None when absent; ValueError when malformed."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_kube_time_leniently(value: object) -> datetime | None:
    """parse_kube_time for times anyone may have written (annotations, status fields): None when absent,
    not text, or malformed."""
    try:
        return parse_kube_time(value) if isinstance(value, str) else None
    except ValueError:
        return None
