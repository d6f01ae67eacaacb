"""Nova's time formats."""

from __future__ import annotations

from datetime import UTC, datetime

from ...kubetime import kube_time


def nova_datetime(value: datetime | None) -> str | None:
    """oslo jsonutils' datetime: naive UTC with microseconds (os-services updated_at, launched_at)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def isotime(value: datetime | None) -> str | None:
    """nova.utils.isotime: second precision with Z (servers created/updated)."""
    if value is None:
        return None
    return kube_time(value.astimezone(UTC))
