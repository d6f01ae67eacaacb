"""The status patches the operator writes: pure functions of what it knows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..domain.hoststatus import ServiceView
from ..kubetime import kube_time


def service_status_is_current(status: dict[str, Any], view: ServiceView, generation: int, forced_down: bool) -> bool:
    return (
        status.get("state") == view.state
        and status.get("serviceStatus") == view.service_status
        and status.get("hostStatus") == view.host_status.value
        and status.get("observedGeneration") == generation
        and bool(status.get("forcedDownTime")) == forced_down
    )


def up_condition(view: ServiceView, forced_down: bool) -> tuple[str, str, str]:
    """(status, reason, message) of the service's Up condition."""
    if forced_down:
        return "False", "ForcedDown", "spec.forcedDown is true: the host is fenced and down"
    if view.state == "up":
        return "True", "HeartbeatFresh", "the host's heartbeat is within serviceDownTime"
    return "False", "HeartbeatMissing", "no heartbeat within serviceDownTime"


def service_status_patch(
    status: dict[str, Any],
    view: ServiceView,
    *,
    generation: int,
    forced_down: bool,
    last_heartbeat: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Merge patch of a ComputeService's status for the new view; times move only on change."""
    stamp = kube_time(now)
    new: dict[str, Any] = {
        "state": view.state,
        "serviceStatus": view.service_status,
        "hostStatus": view.host_status.value,
        "lastHeartbeatTime": kube_time(last_heartbeat),
        "observedGeneration": generation,
    }
    if status.get("state") != view.state:
        new["stateChangedTime"] = stamp
    if status.get("hostStatus") != view.host_status.value:
        new["hostStatusChangedTime"] = stamp
    if forced_down and not status.get("forcedDownTime"):
        new["forcedDownTime"] = stamp
    elif not forced_down and status.get("forcedDownTime"):
        new["forcedDownTime"] = None  # merge patch: remove
    condition_status, reason, message = up_condition(view, forced_down)
    previous = next((c for c in status.get("conditions") or [] if c.get("type") == "Up"), {})
    changed = previous.get("status") != condition_status or previous.get("reason") != reason
    new["conditions"] = [
        {
            "type": "Up",
            "status": condition_status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": stamp if changed else previous.get("lastTransitionTime", stamp),
            "observedGeneration": generation,
        }
    ]
    return {"status": new}


def server_status_patch(host_status: str, generation: int, now: datetime) -> dict[str, Any]:
    return {
        "status": {
            "hostStatus": host_status,
            "hostStatusChangedTime": kube_time(now),
            "observedGeneration": generation,
        }
    }
