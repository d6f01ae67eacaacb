"""The Evacuator in-process: a FakeKube for the API server, the Reconciler's indexes fed directly,
a clock the test moves. What the cluster tests (tests/evacuation) show end to end, here in
milliseconds: recording and progress of requests, the storm guard, the concurrency cap, the
force-up warning, write conflicts and errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hoststate.domain import evacuation as rules
from hoststate.kube import COMPUTE_SERVICES, SERVERS
from hoststate.operator.config import OperatorConfig
from hoststate.operator.evacuation import OPERATOR_USER, Evacuator, slim_server_with_evacuation
from hoststate.operator.events import ObjectRef
from hoststate.operator.indexes import ServerRecord, ServiceRecord
from hoststate.operator.reconciler import Reconciler
from hoststate.prometheus import OperatorMetrics
from tests.kubeobjects import compute_service, server
from tests.support.fake_kube import FakeKube

NS = "tenant"
START = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Event:
    kind: str
    name: str
    reason: str
    message: str
    warning: bool


@dataclass
class Events:
    """EventRecorder's record(), kept in a list."""

    recorded: list[Event] = field(default_factory=list)

    def record(self, ref: ObjectRef, reason: str, message: str, *, warning: bool = False) -> None:
        self.recorded.append(Event(ref.kind, ref.name, reason, message, warning))

    def reasons(self, name: str | None = None) -> list[str]:
        return [e.reason for e in self.recorded if name is None or e.name == name]


class World:
    """The cluster as the Evacuator sees it: objects in a FakeKube, the Reconciler's indexes, its inputs."""

    def __init__(self, **config: Any) -> None:
        self.kube = FakeKube()
        self.clock = Clock()
        self.events = Events()
        self.metrics = OperatorMetrics()
        self.config = OperatorConfig(**{"evacuation_storm_threshold": 0.3, **config})
        self.reconciler = Reconciler(self.kube, self.config, self.events, self.metrics, clock=self.clock)
        self.evacuator = Evacuator(self.kube, self.reconciler, self.config, self.events, self.metrics)

    # -- arranging ---------------------------------------------------------------------
    def host(self, name: str, *, zone: str = "nova", heartbeat: bool = True, **spec: Any) -> None:
        """A nova-compute service; with a fresh heartbeat it is up unless forced down."""
        body = self.kube.add(COMPUTE_SERVICES, compute_service(name, zone=zone, **spec))
        self.reconciler.services.upsert(ServiceRecord.from_body(body))
        if heartbeat:
            self.reconciler.services.heartbeats[body["metadata"]["name"]] = self.clock.now
        self.evacuator.service_seen(body)

    def patch_host(self, name: str, **spec: Any) -> None:
        service = self.kube.modify(COMPUTE_SERVICES, f"{name}.nova-compute", {"spec": spec})
        self.reconciler.services.upsert(ServiceRecord.from_body(service))
        self.evacuator.service_seen(service)

    def server(self, name: str, host: str, *, ha: bool = False, host_status: str = "UP", **spec: Any) -> None:
        body = server(name, host, **spec)
        if ha:
            body["metadata"]["labels"] = {rules.HA_LABEL: "true"}
        body["status"] = {"hostStatus": host_status}
        self.seen(self.kube.add(SERVERS, body, NS))

    def seen(self, body: dict[str, Any]) -> None:
        """A Server watch event, for the Reconciler's index and the Evacuator."""
        self.reconciler.servers.upsert(ServerRecord.from_body(body))
        self.evacuator.server_changed("MODIFIED", None, slim_server_with_evacuation(body))

    def host_status(self, name: str, value: str) -> None:
        """The Reconciler wrote the server's hostStatus (e.g. UP on its new host)."""
        self.seen(self.kube.modify(SERVERS, name, {"status": {"hostStatus": value}}, NS, subresource="status"))

    def requested(self, name: str, source: str, target: str) -> None:
        """An evacuation request written with the move (by the facade)."""
        record = rules.EvacuationRecord(
            id=f"e-{name}", source_host=source, target_host=target, requested_time="2026-11-24T12:00:00Z"
        )
        self.seen(self.kube.modify(SERVERS, name, rules.request_patch(record, None), NS))

    # -- what happened --------------------------------------------------------------------
    def obj(self, name: str) -> dict[str, Any]:
        obj = self.kube.object(SERVERS, name, NS)
        assert obj is not None
        return obj

    def request(self, name: str) -> dict[str, Any] | None:
        raw = (self.obj(name)["metadata"].get("annotations") or {}).get(rules.EVACUATION_ANNOTATION)
        return json.loads(raw) if raw else None

    def evacuation(self, name: str) -> dict[str, Any] | None:
        return (self.obj(name).get("status") or {}).get("evacuation")

    def moves(self) -> list[str]:
        """Servers whose spec.host the Evacuator patched, in order."""
        return [
            call.path.rsplit("/", 1)[1]
            for call in self.kube.requests("PATCH", path_prefix=SERVERS.path(NS))
            if "spec" in (call.body or {})
        ]

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    async def evacuate_until_quiet(self, passes: int = 10) -> None:
        """Reconcile passes, each target confirming (UP) what moved to it, until nothing changes."""
        for _ in range(passes):
            before = len(self.kube.calls)
            await self.evacuator.reconcile()
            for tracked in list(self.evacuator.tracked.values()):
                if tracked.request is not None and tracked.host_status != "UP":
                    self.host_status(tracked.key[1], "UP")
            if len(self.kube.calls) == before:
                return


@pytest.fixture
async def world():
    worlds: list[World] = []

    def make(**config: Any) -> World:
        worlds.append(World(**config))
        return worlds[-1]

    yield make
    for made in worlds:
        await made.reconciler.stop()


# -- progress of a request ----------------------------------------------------------------------
async def accepted(w: World, **target: Any) -> None:
    """vm evacuated (through the facade) from forced-down src to dst, and recorded: accepted."""
    w.host("src", forcedDown=True)
    w.host("dst", **target)
    w.server("vm", "src", host_status="DOWN")
    w.requested("vm", "src", "dst")
    await w.evacuator.reconcile()


async def test_a_request_is_accepted_then_done_when_up_on_the_target(world) -> None:
    w = world()
    await accepted(w)
    assert w.evacuation("vm")["state"] == "accepted" and w.evacuation("vm")["id"] == "e-vm"
    assert w.events.reasons("vm") == ["EvacuationAccepted"]
    assert w.gauge("hoststate_evacuations_in_flight") == 1.0

    await w.evacuator.reconcile()  # not yet UP on dst: stays accepted, nothing written
    assert w.evacuation("vm")["state"] == "accepted" and w.events.reasons("vm") == ["EvacuationAccepted"]

    w.host_status("vm", "UP")
    await w.evacuator.reconcile()
    record = w.evacuation("vm")
    assert (record["state"], record["message"]) == ("done", "server is UP on dst")
    assert record["completedTime"] == "2026-11-24T12:00:00Z"
    assert w.events.reasons("vm") == ["EvacuationAccepted", "Evacuated"]
    assert w.gauge("hoststate_evacuations_total", trigger="api", state="done") == 1.0
    assert w.gauge("hoststate_evacuations_in_flight") == 0.0
    # The operator writes status.evacuation only, through the status subresource.
    assert {c.path for c in w.kube.requests("PATCH")} == {SERVERS.path(NS, "vm", "status")}


async def test_a_request_fails_after_the_timeout(world) -> None:
    w = world(evacuation_timeout=300.0)
    await accepted(w, disabled=True)  # MAINTENANCE: never UP while disabled
    w.host_status("vm", "MAINTENANCE")

    w.clock.advance(300)
    await w.evacuator.reconcile()
    assert w.evacuation("vm")["state"] == "accepted"  # exactly the timeout: not more
    w.clock.advance(1)
    w.reconciler.services.heartbeats["dst.nova-compute"] = w.clock.now
    await w.evacuator.reconcile()
    record = w.evacuation("vm")
    assert record["state"] == "failed" and "within 300s (host status MAINTENANCE)" in record["message"]
    assert record["completedTime"] == "2026-11-24T12:05:01Z"
    failed = w.events.recorded[-1]
    assert (failed.reason, failed.warning) == ("EvacuationFailed", True)


async def test_a_request_fails_when_the_target_is_forced_down(world) -> None:
    w = world()
    await accepted(w)
    w.patch_host("dst", forcedDown=True)
    await w.evacuator.reconcile()
    assert w.evacuation("vm")["state"] == "failed"
    assert w.evacuation("vm")["message"] == "target host dst is forced down"
    assert w.gauge("hoststate_evacuations_total", trigger="api", state="failed") == 1.0


async def test_a_deleted_server_is_forgotten(world) -> None:
    w = world()
    w.host("dst")
    w.server("vm", "dst")
    w.requested("vm", "src", "dst")
    await w.kube.delete(SERVERS, "vm", NS)
    await w.evacuator.reconcile()
    assert w.evacuator.tracked == {}


# -- automatic evacuation -------------------------------------------------------------------------
async def test_ha_servers_of_a_forced_down_host_are_evacuated_and_confirmed(world) -> None:
    w = world()
    w.host("src")
    for name in ("t1", "t2", "t3"):
        w.host(name)
    w.host("off", disabled=True)
    for i in range(4):
        w.server(f"ha-{i}", "src", ha=True)
    w.server("plain", "src")
    w.server("paused", "src", ha=True, vmState="paused")
    await w.evacuator.reconcile()
    assert w.moves() == []  # the host is up

    w.patch_host("src", forcedDown=True)
    await w.evacuate_until_quiet()
    records = {f"ha-{i}": w.evacuation(f"ha-{i}") for i in range(4)}
    assert {r["state"] for r in records.values()} == {"done"}
    assert sorted(r["targetHost"] for r in records.values()) == ["t1", "t1", "t2", "t3"]
    assert {(r["trigger"], r["requestedBy"], r["sourceHost"]) for r in records.values()} == {
        ("automatic", OPERATOR_USER, "src")
    }
    for name, record in records.items():
        assert w.obj(name)["spec"]["host"] == record["targetHost"]
    for name in ("plain", "paused"):
        assert w.obj(name)["spec"]["host"] == "src" and w.request(name) is None
    assert w.events.reasons("paused") == ["EvacuationSkipped"]  # once, though every pass sees it
    # The move is conditional on the version the decision was made on.
    moves = [c for c in w.kube.requests("PATCH") if "spec" in (c.body or {})]
    assert all(c.body["metadata"]["resourceVersion"] for c in moves)


async def test_concurrency_cap(world) -> None:
    w = world(evacuation_concurrency=1)
    w.host("src", forcedDown=True)
    for name in ("t1", "t2", "t3", "t4"):
        w.host(name)
    for i in range(3):
        w.server(f"ha-{i}", "src", ha=True, host_status="DOWN")

    most = 0
    for _ in range(12):
        await w.evacuator.reconcile()
        most = max(most, sum(t.in_flight for t in w.evacuator.tracked.values()))
        for tracked in list(w.evacuator.tracked.values()):
            if tracked.request is not None and tracked.host_status != "UP":
                w.host_status(tracked.key[1], "UP")
    assert most == 1
    assert w.moves() == ["ha-0", "ha-1", "ha-2"]
    assert all(w.evacuation(f"ha-{i}")["state"] == "done" for i in range(3))


async def test_no_automatic_evacuation_at_concurrency_zero(world) -> None:
    w = world(evacuation_concurrency=0)
    w.host("src", forcedDown=True)
    w.host("t1")
    w.server("ha", "src", ha=True)
    await w.evacuator.reconcile()
    assert w.moves() == [] and w.events.recorded == []


async def test_storm_guard_stops_warns_once_and_lifts(world) -> None:
    w = world()
    w.host("src")
    w.host("t1")
    w.host("t2")
    w.server("ha", "src", ha=True)
    w.patch_host("src", forcedDown=True)  # 1 of 3 down: more than 0.3

    await w.evacuator.reconcile()
    await w.evacuator.reconcile()
    assert w.moves() == [] and w.request("ha") is None
    (storm,) = [e for e in w.events.recorded if e.reason == "EvacuationStormGuard"]
    assert (storm.kind, storm.name, storm.warning) == ("ComputeService", "src.nova-compute", True)
    assert "33% of the nova-compute hosts in zone nova are down" in storm.message
    assert w.gauge("hoststate_evacuation_storm_guard_active", zone="nova") == 1.0

    w.host("t3")
    w.host("t4")  # 1 of 5: 0.2, the guard lifts
    await w.evacuate_until_quiet()
    assert w.evacuation("ha")["state"] == "done"
    assert w.gauge("hoststate_evacuation_storm_guard_active", zone="nova") == 0.0
    assert w.events.reasons().count("EvacuationStormGuard") == 1


async def test_no_target_warns_once(world) -> None:
    w = world(evacuation_storm_threshold=1.0)
    w.host("src", forcedDown=True)
    w.host("t1", disabled=True)
    w.server("ha", "src", ha=True)
    for _ in range(3):
        await w.evacuator.reconcile()
    assert w.moves() == []
    assert w.events.reasons("src.nova-compute") == ["EvacuationNoTarget"]

    w.patch_host("t1", disabled=False)
    await w.evacuator.reconcile()
    assert w.moves() == ["ha"]


def one_ha_server_to_evacuate(w: World) -> None:
    w.host("src", forcedDown=True)
    for name in ("t1", "t2", "t3"):
        w.host(name)
    w.server("ha", "src", ha=True)


async def test_a_conflicting_write_is_decided_again(world) -> None:
    w = world()
    one_ha_server_to_evacuate(w)
    w.kube.fail(409, method="PATCH", path=SERVERS.path(NS, "ha"))
    await w.evacuator.reconcile()
    assert w.request("ha") is None
    assert w.gauge("hoststate_reconcile_errors_total", kind="evacuation") is None  # not an error

    await w.evacuator.reconcile()
    assert w.request("ha")["targetHost"] == "t1"


async def test_a_failed_write_is_counted_and_retried(world) -> None:
    w = world()
    one_ha_server_to_evacuate(w)
    w.kube.fail(500, method="PATCH", path=SERVERS.path(NS, "ha"))
    await w.evacuator.reconcile()
    assert w.request("ha") is None
    assert w.gauge("hoststate_reconcile_errors_total", kind="evacuation") == 1.0
    await w.evacuator.reconcile()
    assert w.request("ha") is not None


# -- force-up guard -------------------------------------------------------------------------------
async def test_force_up_with_pending_evacuations_is_warned(world) -> None:
    w = world()
    await accepted(w)

    w.patch_host("src", forcedDown=False)
    (warning,) = [e for e in w.events.recorded if e.reason == "ForceUpWithPendingEvacuations"]
    assert (warning.kind, warning.name, warning.warning) == ("ComputeService", "src.nova-compute", True)
    assert warning.message.startswith(
        f"forcedDown unset on host src while 1 evacuations from it are not completed ({NS}/vm)"
    )

    # Confirmed (done) is not enough: the source may still hold the guest, as in Nova.
    w.patch_host("src", forcedDown=True)
    w.host_status("vm", "UP")
    await w.evacuator.reconcile()
    assert w.evacuation("vm")["state"] == "done"
    w.patch_host("src", forcedDown=False)
    assert w.events.reasons().count("ForceUpWithPendingEvacuations") == 2

    # The source's agent completed it: told once in an Event, and force-up is quiet again.
    w.patch_host("src", forcedDown=True)
    agent_completes(w, "vm")
    assert w.events.reasons("vm").count("EvacuationCompleted") == 1
    await w.evacuator.reconcile()
    assert w.evacuation("vm")["state"] == "completed"
    w.patch_host("src", forcedDown=False)
    assert w.events.reasons().count("ForceUpWithPendingEvacuations") == 2


def agent_completes(w: World, name: str) -> None:
    """The source host's agent marks the record completed (hoststate.agent.cleanup)."""
    patch = {"status": {"evacuation": {"state": "completed", "message": "gone"}}}
    w.seen(w.kube.modify(SERVERS, name, patch, NS, subresource="status"))


async def test_the_agents_completion_is_never_undone(world) -> None:
    """The operator decided `done` on a version the agent changed since: its write is refused (409)."""
    w = world()
    await accepted(w)
    w.host_status("vm", "UP")
    w.kube.modify(SERVERS, "vm", {"status": {"evacuation": {"state": "completed"}}}, NS, subresource="status")
    await w.evacuator.reconcile()  # its informer has not delivered the agent's write yet
    assert w.evacuation("vm")["state"] == "completed"
    assert w.gauge("hoststate_reconcile_errors_total", kind="evacuation") is None
