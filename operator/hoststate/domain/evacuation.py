"""Evacuation rules, as pure functions: which servers may be evacuated, which host receives
them, how an evacuation request is recorded, when a storm stops automatic evacuation, the
plan of one automatic-evacuation pass (what to write, what to warn about), and what a host
that comes back must clean up before it runs anything.

The request (written with the server's move) and the record (`status.evacuation`: written by
the operator, and turned `completed` by the source host's agent) share the camelCase keys of
`EvacuationRecord`. The states are Nova's migration states.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .hoststatus import COMPUTE_BINARY, ServiceFacts

# The request: set together with spec.host in one write (by the facade with the caller's
# token, or by the operator for automatic evacuations).
EVACUATION_ANNOTATION = "hoststate.io/evacuation"
# Opt-in for automatic evacuation, as Masakari's HA_Enabled instance metadata.
HA_LABEL = "hoststate.io/ha"

ACCEPTED = "accepted"  # spec.host moved; the server is not yet UP on the target
DONE = "done"  # the server shows UP on the target: confirmed
COMPLETED = "completed"  # the source host's agent made sure its copy of the guest is gone
FAILED = "failed"  # the target went down or lost its service, or confirmation timed out
STATES = (ACCEPTED, DONE, COMPLETED, FAILED)
# The records the source host cleans up when it comes back. Nova's _destroy_evacuated_instances
# takes accepted, pre-migrating and done; here a failed evacuation has moved spec.host too (the
# server belongs elsewhere), so the source's copy is as stale and is cleaned up as well.
CLEANUP_STATES = (ACCEPTED, DONE, FAILED)

TRIGGER_API = "api"
TRIGGER_AUTOMATIC = "automatic"
TRIGGERS = (TRIGGER_API, TRIGGER_AUTOMATIC)
EVACUATION_ID_MAX_LENGTH = 64  # status.evacuation.id in the CRD

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
class ComputeHost:
    """A nova-compute host as evacuation sees it: a source (when forced down) or a possible target."""

    host: str
    zone: str
    disabled: bool
    forced_down: bool
    up: bool
    servers: int  # servers placed on it now

    @property
    def healthy(self) -> bool:
        return self.up and not self.forced_down and not self.disabled


def compute_hosts(
    services: Iterable[tuple[str, str, ServiceFacts]], servers_on_host: Callable[[str], int]
) -> list[ComputeHost]:
    """The hosts of these nova-compute services, given as (host, zone, facts now), with their servers."""
    return [
        ComputeHost(
            host=host,
            zone=zone,
            disabled=facts.disabled,
            forced_down=facts.forced_down,
            up=facts.up,
            servers=servers_on_host(host),
        )
        for host, zone, facts in services
    ]


class TargetLoads:
    """The hosts that may receive evacuated servers (healthy ones) and how many servers each has, counting
    those placed through it: the least loaded eligible one is found in log time, over a heap per zone and
    one over all zones. A heap entry whose count is stale (its host has received servers since, through
    the other heap) is pushed again with the count it has now when it comes up."""

    def __init__(self, candidates: Iterable[ComputeHost]) -> None:
        self._servers: dict[str, int] = {}
        self._zone: dict[str, str] = {}
        for c in candidates:
            if c.healthy:
                self._servers[c.host], self._zone[c.host] = c.servers, c.zone
        self._all = [(servers, host) for host, servers in self._servers.items()]
        self._by_zone: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        for entry in self._all:
            self._by_zone[self._zone[entry[1]]].append(entry)
        for heap in (self._all, *self._by_zone.values()):
            heapq.heapify(heap)

    def _eligible(self, source_host: str, source_zone: str | None) -> list[tuple[int, str]] | None:
        """The heap of the eligible hosts: the source's zone's if it has one other than the source, else all."""
        source_is_candidate = source_host in self._servers
        zone = self._by_zone.get(source_zone) if source_zone is not None else None
        if zone and len(zone) > (source_is_candidate and self._zone[source_host] == source_zone):
            return zone
        return self._all if len(self._servers) > source_is_candidate else None

    def has_target(self, source_host: str, source_zone: str | None) -> bool:
        """Enabled, up, not forced down, not the source; only the source's zone if it has any such host."""
        return self._eligible(source_host, source_zone) is not None

    def place(self, count: int, source_host: str, source_zone: str | None) -> list[str]:
        """Targets for `count` servers leaving `source_host`, one at a time: each the eligible host with
        the fewest servers, counting those placed before it (so they spread), ties to the lowest name.
        Shorter than `count` only when no host is eligible."""
        heap = self._eligible(source_host, source_zone)
        if heap is None or count <= 0:
            return []
        targets: list[str] = []
        source_entry = None  # the source is no target, but stays in the heap for other sources
        while len(targets) < count:
            servers, host = heapq.heappop(heap)
            if host == source_host:
                source_entry = (servers, host)
            elif servers != self._servers[host]:
                heapq.heappush(heap, (self._servers[host], host))
            else:
                self._servers[host] += 1
                targets.append(host)
                heapq.heappush(heap, (servers + 1, host))
        if source_entry is not None:
            heapq.heappush(heap, source_entry)
        return targets


def choose_target(source_host: str, source_zone: str | None, candidates: Iterable[ComputeHost]) -> str | None:
    """The eligible host (TargetLoads) with the fewest servers; ties go to the host name, lowest first."""
    return next(iter(plan_targets(1, source_host, source_zone, candidates)), None)


def plan_targets(count: int, source_host: str, source_zone: str | None, candidates: Iterable[ComputeHost]) -> list[str]:
    """Targets for `count` servers leaving `source_host` (TargetLoads.place)."""
    return TargetLoads(candidates).place(count, source_host, source_zone)


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
        record = EvacuationRecord(
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
    # What status.evacuation could not hold is no request: a write of it would be refused for ever.
    if record.trigger not in TRIGGERS or len(record.id) > EVACUATION_ID_MAX_LENGTH:
        return None
    return record


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
    """The source host may still hold a copy of the server: the request is not recorded yet, or
    its record is not `completed` (the source's agent has not cleaned up)."""
    if request is None:
        return False
    status = status or {}
    return status.get("id") != request.id or status.get("state") != COMPLETED


def is_in_flight(request: EvacuationRecord | None, status: Mapping[str, Any] | None) -> bool:
    """The request is neither done nor failed: not recorded yet, or recorded as accepted."""
    if request is None:
        return False
    status = status or {}
    return status.get("id") != request.id or status.get("state") == ACCEPTED


def pending_evacuations_from(
    host: str, servers: Iterable[tuple[str, EvacuationRecord | None, Mapping[str, Any] | None]]
) -> list[str]:
    """Of these servers, given as (name, request, status.evacuation), those evacuated from `host`
    whose record is not `completed`, sorted: their VMs may still run there (force-up guard)."""
    return sorted(
        name
        for name, request, status in servers
        if request is not None and request.source_host == host and is_pending(request, status)
    )


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


# -- the source host's cleanup -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EvacuatedServer:
    """A server as the agent of an evacuation's source host lists it."""

    namespace: str
    name: str
    uid: str  # the server's id: its guest's libvirt UUID (or name), as Nova's instance uuid
    host: str  # spec.host now
    evacuation: Mapping[str, Any]  # status.evacuation
    resource_version: str | None = None


@dataclass(frozen=True, slots=True)
class Cleanup:
    """What the agent of `server`'s evacuation source does: destroy the local guest first (or keep
    it: the server is back on this host), then mark the record completed with `message`."""

    server: EvacuatedServer
    destroy_guest: bool
    message: str


def cleanup_plan(host: str, servers: Iterable[EvacuatedServer]) -> list[Cleanup]:
    """The cleanups the agent of `host` owes, in (namespace, name) order: evacuations whose record
    says they left `host` and is not yet completed. A server whose evacuation came TO `host`, or
    whose record is about another host, is never touched; one that is on `host` again (moved
    back) keeps its guest, which is the server's only copy, and its record is completed."""
    plan = []
    for server in sorted(servers, key=lambda s: (s.namespace, s.name)):
        record = server.evacuation
        if record.get("sourceHost") != host or record.get("targetHost") == host:
            continue
        if record.get("state") not in CLEANUP_STATES:
            continue
        if server.host == host:
            plan.append(Cleanup(server, False, f"the server is on {host} again: its guest there is kept"))
        else:
            plan.append(Cleanup(server, True, f"{host} made sure its copy of the guest is gone"))
    return plan


def completed_patch(server: EvacuatedServer, now: str, message: str) -> dict[str, Any]:
    """The agent's merge patch of servers/status: this record turns completed, only if the Server
    is still the version it was listed at (else 409: listed again next time)."""
    metadata = {"resourceVersion": server.resource_version} if server.resource_version else {}
    evacuation = {"state": COMPLETED, "cleanedUpTime": now, "message": message[:1024]}
    return {"metadata": metadata, "status": {"evacuation": evacuation}}


# -- automatic evacuation: one pass's plan -------------------------------------------------
STORM_SCOPE_ZONE = "zone"  # the storm guard counts the down hosts of the source's zone; else ("global") all:
ALL_ZONES = "all"  # the one scope when the guard counts all hosts

Situation = tuple[str, ...]  # what a warning is about; told once, until it no longer holds


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What automatic evacuation depends on, for one server."""

    key: tuple[str, str]  # (namespace, name)
    host: str
    ha: bool
    in_flight: bool  # an evacuation of it is requested and neither done nor failed
    vm_state: str | None = None
    task_state: str | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """Evacuate `server` from `source_host` to `target_host`."""

    server: tuple[str, str]  # (namespace, name)
    source_host: str
    target_host: str


@dataclass(frozen=True, slots=True)
class WarningEvent:
    """A Warning Event to send: about `server` when given, else about `host`'s nova-compute service."""

    situation: Situation
    reason: str
    message: str
    host: str
    server: tuple[str, str] | None = None  # (namespace, name)


@dataclass(frozen=True, slots=True)
class EvacuationPlan:
    moves: list[Move]
    warnings: list[WarningEvent]  # situations that began since the last pass
    situations: frozenset[Situation]  # every situation that holds now: the next pass's `warned`
    storming: frozenset[str]  # scopes (zones, or "all") where the storm guard stops evacuation now
    resumed: frozenset[str]  # scopes where it stopped in the last pass and no longer does
    guarded_scopes: frozenset[str]  # scopes the storm-guard gauge reports on now


def plan_evacuations(
    servers: Sequence[ServerFacts],
    hosts: Sequence[ComputeHost],
    *,
    concurrency: int,
    storm_threshold: float,
    storm_scope: str,
    warned: Collection[Situation] = frozenset(),
) -> EvacuationPlan:
    """One pass of automatic evacuation: HA servers on forced-down hosts, host by host (by name),
    each spread over the eligible targets (TargetLoads, counting this pass's placements), while
    fewer than `concurrency` evacuations are in flight, and none from a scope in a storm.

    Warns about an HA server Nova would not evacuate (its state), a storm, a host whose servers
    have no eligible target: each once while it holds (`warned`: the last plan's situations)."""
    by_host = {h.host: h for h in hosts}
    waiting, warnings = _waiting_by_host(servers, by_host)
    zone_scoped = storm_scope == STORM_SCOPE_ZONE
    populations: defaultdict[str, list[bool]] = defaultdict(list)  # scope -> whether each of its hosts is up
    for h in hosts:
        populations[ALL_ZONES].append(h.up)
        if zone_scoped and h.zone != ALL_ZONES:  # a zone named "all" is counted as all hosts (as before)
            populations[h.zone].append(h.up)
    storms = {scope: storm(population, storm_threshold) for scope, population in populations.items()}
    storming: set[str] = set()
    budget = concurrency - sum(s.in_flight for s in servers)
    loads = TargetLoads(hosts)  # counts this pass's placements
    moves: list[Move] = []
    for host in sorted(waiting):
        source, count = by_host[host], len(waiting[host])
        scope = source.zone if zone_scoped else ALL_ZONES
        if storms[scope]:
            if scope not in storming:  # told by the first host of the scope
                storming.add(scope)
                message = _storm_message(scope, down_share(populations[scope]), storm_threshold, count, host)
                warnings.append(WarningEvent(("storm", scope), "EvacuationStormGuard", message, host))
            continue
        if not loads.has_target(host, source.zone):
            message = f"{count} HA servers on forced-down host {host} wait: no enabled, up host to evacuate them to"
            warnings.append(WarningEvent(("notarget", host), "EvacuationNoTarget", message, host))
            continue
        if budget <= 0:
            continue  # at the cap: a later pass, when some are done or failed
        batch = sorted(waiting[host], key=lambda s: s.key)[:budget]
        targets = loads.place(len(batch), host, source.zone)
        budget -= len(targets)
        moves += [Move(server.key, host, target) for server, target in zip(batch, targets, strict=True)]

    was_storming = {situation[1] for situation in warned if situation[0] == "storm"}
    guarded = {h.zone for h in hosts if h.forced_down} if zone_scoped else {ALL_ZONES}
    return EvacuationPlan(
        moves=moves,
        warnings=[w for w in warnings if w.situation not in warned],
        situations=frozenset(w.situation for w in warnings),
        storming=frozenset(storming),
        resumed=frozenset(was_storming - storming),
        guarded_scopes=frozenset(guarded | storming),
    )


def _waiting_by_host(
    servers: Iterable[ServerFacts], by_host: Mapping[str, ComputeHost]
) -> tuple[dict[str, list[ServerFacts]], list[WarningEvent]]:
    """HA servers not in flight on forced-down hosts, by host, and a warning for each of them
    that Nova would not evacuate (nova.compute.api's check_instance_state)."""
    waiting: dict[str, list[ServerFacts]] = defaultdict(list)
    warnings: list[WarningEvent] = []
    for server in servers:
        source = by_host.get(server.host)
        if not server.ha or server.in_flight or source is None or not source.forced_down:
            continue
        invalid = invalid_state(server.vm_state, server.task_state)
        if invalid is None:
            waiting[server.host].append(server)
            continue
        message = f"not evacuated from forced-down host {server.host}: {invalid.attr} is {invalid.state}"
        situation = ("state", *server.key, server.host)
        warnings.append(WarningEvent(situation, "EvacuationSkipped", message, server.host, server.key))
    return waiting, warnings


def _storm_message(scope: str, share: float, threshold: float, waiting: int, host: str) -> str:
    where = f" in zone {scope}" if scope != ALL_ZONES else ""
    return (
        f"automatic evacuation stopped: {share:.0%} of the {COMPUTE_BINARY} hosts{where} are down (threshold "
        f"{threshold:.0%}); {waiting} HA servers on {host} wait. A partition is likelier than that many host "
        "failures: check, then evacuate by hand."
    )
