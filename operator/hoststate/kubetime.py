"""Kubernetes time formats: Time (seconds) and MicroTime, both RFC 3339 in UTC."""

from __future__ import annotations

from datetime import datetime


def kube_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def kube_micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_kube_time(value: str | None) -> datetime | None:
    """Time or MicroTime to an aware datetime; None when absent; ValueError when malformed."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
