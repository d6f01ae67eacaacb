"""Is a service up? Nova's servicegroup rules (nova/servicegroup/api.py and drivers/db.py)."""

from __future__ import annotations

from datetime import datetime, timedelta


def effective_service_down_time(service_down_time: float, report_interval: float) -> float:
    """Nova refuses a down time that a healthy reporter could exceed: when
    service_down_time <= report_interval it uses int(2.5 x report_interval) instead."""
    if service_down_time <= report_interval:
        return float(int(report_interval * 2.5))
    return float(service_down_time)


def service_is_up(*, forced_down: bool, last_heartbeat: datetime | None, now: datetime, down_time: float) -> bool:
    """Up when not forced down and the last heartbeat is at most `down_time` seconds away.

    Nova takes the absolute difference, so a heartbeat from a clock far in the future also
    counts as missing. A service that never reported is down.
    """
    if forced_down or last_heartbeat is None:
        return False
    return abs((now - last_heartbeat).total_seconds()) <= down_time


def heartbeat_deadline(last_heartbeat: datetime | None, down_time: float) -> datetime | None:
    """The moment a service whose last heartbeat is `last_heartbeat` turns down by itself."""
    if last_heartbeat is None:
        return None
    return last_heartbeat + timedelta(seconds=down_time)
