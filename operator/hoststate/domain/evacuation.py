"""Evacuation rules, as pure functions: which servers may be evacuated, which host receives
them, how an evacuation request is recorded, when a storm stops automatic evacuation.

The request (written with the server's move) and the record (written by the operator in
`status.evacuation`) share the camelCase keys of `EvacuationRecord`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The request: set together with spec.host in one write (by the facade with the caller's
# token, or by the operator for automatic evacuations).
EVACUATION_ANNOTATION = "hoststate.io/evacuation"
# Opt-in for automatic evacuation, as Masakari's HA_Enabled instance metadata.
HA_LABEL = "hoststate.io/ha"

ACCEPTED = "accepted"  # spec.host moved; the server is not yet UP on the target
DONE = "done"  # the server shows UP on the target: confirmed
FAILED = "failed"  # the target went down or lost its service, or confirmation timed out
STATES = (ACCEPTED, DONE, FAILED)

TRIGGER_API = "api"
TRIGGER_AUTOMATIC = "automatic"

# nova/compute/api.py: evacuate is decorated with
# check_instance_state(vm_state=[ACTIVE, STOPPED, ERROR]) (task_state must be None).
EVACUABLE_VM_STATES = ("active", "stopped", "error")


# -- which servers --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InvalidState:
    """Nova's InstanceInvalidState: `attr` ('vm_state' or 'task_state') is `state`."""

    attr: str
    state: str | None


def invalid_state(vm_state: str | None, task_state: str | None) -> InvalidState | None:
    """None when Nova would evacuate a server in these states; else what is wrong (vm_state first)."""
    vm_state = vm_state or "active"
    if vm_state not in EVACUABLE_VM_STATES:
        return InvalidState("vm_state", vm_state)
    if task_state is not None:
        return InvalidState("task_state", task_state)
    return None


def is_ha(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(HA_LABEL, "").lower() == "true"


# -- which host -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Candidate:
    """A compute host as a possible target."""

    host: str
    zone: str
    disabled: bool
    forced_down: bool
    up: bool
    servers: int  # servers placed on it now

    @property
    def healthy(self) -> bool:
        return self.up and not self.forced_down and not self.disabled


def eligible_targets(source_host: str, source_zone: str | None, candidates: Iterable[Candidate]) -> list[Candidate]:
    """Enabled, up, not forced down, not the source; only the source's zone if it has any such host."""
    healthy = [c for c in candidates if c.healthy and c.host != source_host]
    same_zone = [c for c in healthy if source_zone is not None and c.zone == source_zone]
    return same_zone or healthy


def choose_target(source_host: str, source_zone: str | None, candidates: Iterable[Candidate]) -> str | None:
    """The eligible host with the fewest servers; ties go to the host name, lowest first."""
    eligible = eligible_targets(source_host, source_zone, candidates)
    if not eligible:
        return None
    return min(eligible, key=lambda c: (c.servers, c.host)).host


def plan_targets(count: int, source_host: str, source_zone: str | None, candidates: Sequence[Candidate]) -> list[str]:
    """Targets for `count` servers leaving `source_host`, one at a time, each counting the ones
    placed before it (so they spread). Shorter than `count` only when no host is eligible."""
    eligible = {c.host: c for c in eligible_targets(source_host, source_zone, candidates)}
    load = {host: c.servers for host, c in eligible.items()}
    targets: list[str] = []
    for _ in range(count):
        if not load:
            break
        host = min(load, key=lambda h: (load[h], h))
        load[host] += 1
        targets.append(host)
    return targets


# -- storms -------------------------------------------------------------------------------
def down_share(up: Sequence[bool]) -> float:
    """The share of hosts that are down, 0 for none."""
    return (len(up) - sum(up)) / len(up) if up else 0.0


def storm(up: Sequence[bool], threshold: float) -> bool:
    """More than `threshold` of these hosts are down at once: a partition or a site failure is
    likelier than that many real host failures, and mass evacuation would make it worse."""
    return down_share(up) > threshold


# -- the request and the record ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EvacuationRecord:
    id: str
    source_host: str
    target_host: str
    requested_time: str
    trigger: str = TRIGGER_API
    requested_by: str = ""
    target_state: str | None = None  # "stopped" from microversion 2.95
    state: str = ACCEPTED
    completed_time: str | None = None
    message: str | None = None

    def request(self) -> dict[str, Any]:
        """The annotation's content."""
        data = {
            "id": self.id,
            "sourceHost": self.source_host,
            "targetHost": self.target_host,
            "requestedTime": self.requested_time,
            "trigger": self.trigger,
            "requestedBy": self.requested_by,
        }
        if self.target_state:
            data["targetState"] = self.target_state
        return data

    def status(self) -> dict[str, Any]:
        """status.evacuation."""
        data = {k: v for k, v in self.request().items() if k != "targetState"}
        data["state"] = self.state
        data["completedTime"] = self.completed_time
        data["message"] = self.message
        return data


def parse_request(annotations: Mapping[str, str] | None) -> EvacuationRecord | None:
    """The evacuation request a Server carries; None when absent or malformed."""
    raw = (annotations or {}).get(EVACUATION_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return EvacuationRecord(
            id=str(data["id"]),
            source_host=str(data["sourceHost"]),
            target_host=str(data["targetHost"]),
            requested_time=str(data["requestedTime"]),
            trigger=str(data.get("trigger", TRIGGER_API)),
            requested_by=str(data.get("requestedBy", "")),
            target_state=data.get("targetState"),
        )
    except (ValueError, KeyError, TypeError):
        return None


def request_patch(record: EvacuationRecord, resource_version: str | None, *, stop: bool = False) -> dict[str, Any]:
    """The one merge patch that evacuates: spec.host moves and the request is recorded, atomically,
    and only if the Server is still the version the decision was made on (else 409)."""
    metadata: dict[str, Any] = {"annotations": {EVACUATION_ANNOTATION: json.dumps(record.request(), sort_keys=True)}}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    spec: dict[str, Any] = {"host": record.target_host}
    if stop:
        spec.update(vmState="stopped", powerState=4)  # 2.95: the server is stopped on the target
    return {"metadata": metadata, "spec": spec}


def is_pending(request: EvacuationRecord | None, status: Mapping[str, Any] | None) -> bool:
    """The request is not yet confirmed: not recorded yet, or recorded in a state other than done."""
    if request is None:
        return False
    status = status or {}
    return status.get("id") != request.id or status.get("state") != DONE


def progress(
    request: EvacuationRecord,
    *,
    server_host: str,
    server_host_status: str | None,
    target_host_status: str,
    requested: datetime | None,
    now: datetime,
    timeout: float,
) -> tuple[str, str | None]:
    """(state, message) of an accepted evacuation, from what the cluster shows now."""
    if server_host == request.target_host and server_host_status == "UP":
        return DONE, f"server is UP on {request.target_host}"
    if server_host != request.target_host:
        return FAILED, f"server was moved to {server_host or '(no host)'} before the evacuation was confirmed"
    if target_host_status == "DOWN":
        return FAILED, f"target host {request.target_host} is forced down"
    if target_host_status == "":
        return FAILED, f"target host {request.target_host} has no nova-compute service"
    if requested is not None and (now - requested).total_seconds() > timeout:
        return FAILED, f"server not UP on {request.target_host} within {timeout:g}s (host status {target_host_status})"
    return ACCEPTED, None
