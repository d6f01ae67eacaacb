"""The Reconciler in-process: a fake KubeClient, the Reconciler's injectable clock, milliseconds per test.

Fan-out, heartbeat deadlines, coalescing and the concurrency budget are logic: tested here. That
the operator does the same against a real API server is what tests/operator's cluster tests show.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hoststate.domain import HostTransition, ServerTransition
from hoststate.kube import COMPUTE_SERVICES, SERVERS
from hoststate.operator.config import OperatorConfig
from hoststate.operator.events import EventRecorder, ObjectRef
from hoststate.operator.reconciler import Reconciler
from hoststate.prometheus import OperatorMetrics
from hoststate.resources.computeservice import service_name
from tests.support.fake_kube import FakeKube

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DOWN_TIME = 60.0
TENANT = "tenant-a"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RecordedEvents:
    """EventRecorder's interface, keeping (kind, name, reason, warning)."""

    recorded: list[tuple[str, str, str, bool]] = field(default_factory=list)

    def record(self, ref: ObjectRef, reason: str, message: str, *, warning: bool = False) -> None:
        self.recorded.append((ref.kind, ref.name, reason, warning))


class World:
    """A Reconciler over a FakeKube, and what a test does to them."""

    def __init__(self, kube: FakeKube | None = None, *, clock_at: datetime = T0, **config: Any) -> None:
        self.kube = kube or FakeKube()
        self.clock = Clock(clock_at)
        self.events = RecordedEvents()
        self.metrics = OperatorMetrics()
        config = {"service_down_time": DOWN_TIME, "report_interval": 10.0, **config}
        self.reconciler = Reconciler(
            self.kube,  # type: ignore[arg-type]
            OperatorConfig(**config),
            self.events,  # type: ignore[arg-type]
            self.metrics,
            clock=self.clock,
        )
        self.transitions: list[ServerTransition] = []
        self.reconciler.transition_listeners.append(self.transitions.append)

    # -- what the watches would deliver --------------------------------------------------
    def add_service(self, host: str, *, heartbeat: datetime | None = T0, **spec: Any) -> str:
        name = service_name(host)
        if heartbeat is not None:
            self.reconciler.heartbeat(name, heartbeat)  # the Lease is watched first
        body = {"metadata": {"name": name}, "spec": {"host": host, "binary": "nova-compute", **spec}}
        self.reconciler.service_seen(self.kube.add(COMPUTE_SERVICES, body))
        return name

    async def change_service(self, host: str, **spec: Any) -> None:
        updated = await self.kube.patch(COMPUTE_SERVICES, service_name(host), {"spec": spec})
        self.reconciler.service_seen(updated)

    def add_server(self, name: str, host: str, host_status: str | None = "UP") -> None:
        body = {"metadata": {"name": name}, "spec": {"host": host}, "status": {"hostStatus": host_status}}
        self.reconciler.server_seen(self.kube.add(SERVERS, body, TENANT))

    async def settle(self) -> None:
        """Until every queued status job ran (the coalescer's drain: no other way to know from outside)."""
        await self.reconciler._jobs.drain()

    # -- what a test looks at -------------------------------------------------------------
    def server_status(self, name: str) -> str | None:
        obj = self.kube.object(SERVERS, name, TENANT)
        assert obj is not None
        return obj["status"].get("hostStatus")

    def service_status(self, host: str) -> dict[str, Any]:
        obj = self.kube.object(COMPUTE_SERVICES, service_name(host))
        assert obj is not None
        return obj.get("status") or {}

    def server_patches(self) -> list[str]:
        """Names of the Servers whose status was patched, in order."""
        prefix = SERVERS.path(TENANT) + "/"
        return [c.path.split("/")[-2] for c in self.kube.requests("PATCH", path_prefix=prefix)]

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    world = World(clock_at=T0 + timedelta(seconds=1))
    yield world
    await world.reconciler.stop()


async def test_servers_already_right_are_not_written(world: World) -> None:
    world.add_service("h1")
    for i in range(3):
        world.add_server(f"s{i}", "h1", "UP")
    await world.settle()
    assert world.service_status("h1")["hostStatus"] == "UP"
    assert world.server_patches() == []
    assert world.transitions == []


async def test_forced_down_fans_out_to_every_server_of_the_host_and_only_those(world: World) -> None:
    world.add_service("h1")
    world.add_service("h2")
    for i in range(3):
        world.add_server(f"on-h1-{i}", "h1")
    world.add_server("on-h2", "h2")
    await world.settle()

    await world.change_service("h1", forcedDown=True)
    await world.settle()

    assert sorted(world.server_patches()) == ["on-h1-0", "on-h1-1", "on-h1-2"]
    assert {world.server_status(f"on-h1-{i}") for i in range(3)} == {"DOWN"}
    assert world.server_status("on-h2") == "UP"
    assert {(t.name, t.old, t.new, t.reason) for t in world.transitions} == {
        (f"on-h1-{i}", "UP", "DOWN", "ForcedDown") for i in range(3)
    }
    status = world.service_status("h1")
    assert (status["state"], status["hostStatus"]) == ("down", "DOWN")
    assert status["forcedDownTime"]
    assert world.sample("hoststate_fanout_servers_patched_total") == 3
    assert world.sample("hoststate_fanout_duration_seconds_count") == 1
    assert ("ComputeService", service_name("h1"), "ServiceDown", True) in world.events.recorded
    assert ("Server", "on-h1-0", "HostStatusChanged", True) in world.events.recorded


async def test_a_burst_of_changes_to_one_host_is_one_fanout_to_the_last_value(world: World) -> None:
    world.add_service("h1")
    for i in range(5):
        world.add_server(f"s{i}", "h1")
    await world.settle()

    # Three changes before the fan-out job runs: it runs once and writes the last one.
    await world.change_service("h1", forcedDown=True)
    await world.change_service("h1", forcedDown=False, disabled=True)
    await world.change_service("h1", forcedDown=True)
    await world.settle()

    assert sorted(world.server_patches()) == [f"s{i}" for i in range(5)]
    assert {t.new for t in world.transitions} == {"DOWN"}
    assert world.sample("hoststate_fanout_servers_patched_total") == 5


async def test_changes_during_a_fanout_make_it_run_once_more() -> None:
    gate = asyncio.Event()

    class SlowKube(FakeKube):
        async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            if method == "PATCH" and path.startswith(SERVERS.path(TENANT)):
                await gate.wait()
            return await super().request(method, path, **kwargs)

    world = World(SlowKube(), clock_at=T0 + timedelta(seconds=1))
    world.add_service("h1")
    world.add_server("s0", "h1")
    await world.settle()

    await world.change_service("h1", forcedDown=True)
    await asyncio.sleep(0.01)  # the fan-out is in flight, its patch waiting
    await world.change_service("h1", forcedDown=False, disabled=True)
    await world.change_service("h1", disabled=False)
    gate.set()
    await world.settle()

    # The run in flight finishes (DOWN); the changes during it make exactly one more run (UP again).
    assert [(t.old, t.new) for t in world.transitions] == [("UP", "DOWN"), ("DOWN", "UP")]
    assert world.server_status("s0") == "UP"
    await world.reconciler.stop()


async def test_a_fanout_keeps_to_the_concurrency_budget() -> None:
    in_flight = 0
    most = 0

    class CountingKube(FakeKube):
        async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            nonlocal in_flight, most
            if method != "PATCH" or not path.startswith(SERVERS.path(TENANT)):
                return await super().request(method, path, **kwargs)
            in_flight += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(0.001)
                return await super().request(method, path, **kwargs)
            finally:
                in_flight -= 1

    world = World(CountingKube(), clock_at=T0 + timedelta(seconds=1), fanout_concurrency=3)
    world.add_service("h1")
    for i in range(12):
        world.add_server(f"s{i:02d}", "h1")
    await world.settle()

    await world.change_service("h1", forcedDown=True)
    await world.settle()

    assert len(world.server_patches()) == 12
    assert most == 3
    await world.reconciler.stop()


async def test_the_heartbeat_deadline_timer_marks_the_service_down() -> None:
    # 20 ms before the deadline (heartbeat at T0, down time 60 s): the timer is due in 20 ms + slack.
    world = World(clock_at=T0 + timedelta(seconds=DOWN_TIME - 0.02))
    world.add_service("h1", heartbeat=T0)
    world.add_server("s0", "h1")
    await world.settle()
    assert world.service_status("h1")["state"] == "up"

    world.clock.advance(1)  # liveness asks the clock; the timer runs on the event loop's
    await asyncio.sleep(0.05)
    await world.settle()

    status = world.service_status("h1")
    assert (status["state"], status["hostStatus"]) == ("down", "UNKNOWN")
    assert [(t.name, t.new, t.reason) for t in world.transitions] == [("s0", "UNKNOWN", "HeartbeatMissing")]
    assert world.sample("hoststate_heartbeat_expiries_total") == 1
    await world.reconciler.stop()


async def test_a_renewed_heartbeat_only_moves_the_deadline_and_a_late_one_brings_the_host_back() -> None:
    world = World(clock_at=T0 + timedelta(seconds=DOWN_TIME - 0.02))
    name = world.add_service("h1", heartbeat=T0)
    world.add_server("s0", "h1")
    await world.settle()
    writes = len(world.kube.calls)

    world.reconciler.heartbeat(name, T0 + timedelta(seconds=30))  # still up: no write, a later deadline
    world.clock.advance(1)
    await asyncio.sleep(0.05)
    await world.settle()
    assert len(world.kube.calls) == writes
    assert world.sample("hoststate_heartbeat_expiries_total") == 0

    world.clock.now = T0 + timedelta(seconds=100)  # past the moved deadline too: down when looked at
    world.reconciler.resync()
    await world.settle()
    assert world.server_status("s0") == "UNKNOWN"

    world.reconciler.heartbeat(name, world.clock.now)  # it was down: a heartbeat is a change
    await world.settle()
    assert world.service_status("h1")["state"] == "up"
    assert [(t.new, t.reason) for t in world.transitions] == [("UNKNOWN", "HeartbeatMissing"), ("UP", "ServiceUp")]
    await world.reconciler.stop()


async def test_servers_without_a_compute_service_or_a_host_get_no_host_status(world: World) -> None:
    world.add_server("lost", "ghost-host")
    world.add_server("unplaced", "")
    await world.settle()

    assert world.server_status("lost") == ""
    assert world.server_status("unplaced") == ""
    assert {(t.name, t.reason) for t in world.transitions} == {
        ("lost", "NoComputeService"),
        ("unplaced", "NoHost"),
    }
    assert ("Server", "lost", "UnknownHost", True) in world.events.recorded


async def test_a_service_event_older_than_what_is_known_is_ignored(world: World) -> None:
    world.add_service("h1")
    old = copy.deepcopy(world.kube.object(COMPUTE_SERVICES, service_name("h1")))
    await world.change_service("h1", forcedDown=True)
    await world.settle()

    world.reconciler.service_seen(old)  # a watch event from before the change, arriving late
    await world.settle()

    assert world.reconciler.services.by_name[service_name("h1")].forced_down
    assert world.service_status("h1")["hostStatus"] == "DOWN"


async def test_a_failed_patch_is_retried_and_counted(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hoststate.operator.coalescer.BACKOFF", (0.001,))
    world.add_service("h1")
    world.add_server("s0", "h1")
    await world.settle()
    world.kube.fail(500, method="PATCH", path=SERVERS.path(TENANT, "s0", "status"))

    await world.change_service("h1", forcedDown=True)
    await world.settle()

    assert world.server_status("s0") == "DOWN"
    assert world.server_patches() == ["s0", "s0"]
    assert world.sample("hoststate_reconcile_errors_total", kind="host") == 1


async def test_a_server_deleted_meanwhile_leaves_the_index(world: World) -> None:
    world.add_service("h1")
    world.add_server("s0", "h1")
    await world.settle()
    world.kube.objects.pop(next(key for key in world.kube.objects if key[-1] == "s0"))  # deleted, event not seen

    await world.change_service("h1", forcedDown=True)
    await world.settle()

    assert (TENANT, "s0") not in world.reconciler.servers.by_key
    assert world.transitions == []
    assert world.sample("hoststate_reconcile_errors_total", kind="host") is None


# -- host transitions: tenants are told from the decision -------------------------------------------
class GatedKube(FakeKube):
    """Server status writes wait for the gate (the API server's pace, as slow as a test wants)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "PATCH" and path.startswith(SERVERS.path(TENANT)):
            await self.gate.wait()
        return await super().request(method, path, **kwargs)


def listen_host_transitions(world: World) -> list[tuple[HostTransition, list[ServerTransition]]]:
    told: list[tuple[HostTransition, list[ServerTransition]]] = []
    world.reconciler.host_transition_listeners.append(lambda transition, servers: told.append((transition, servers)))
    return told


async def until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("not within 200 loop turns")


async def test_a_host_transition_tells_every_server_before_their_status_writes() -> None:
    kube = GatedKube()
    world = World(kube, clock_at=T0 + timedelta(seconds=1))
    told = listen_host_transitions(world)
    world.add_service("h1")
    for i in range(3):
        world.add_server(f"s{i}", "h1")
    await world.settle()
    # The new service came up before its servers were seen; they already say UP: none to tell.
    assert [(t.old, t.new, servers) for t, servers in told] == [("", "UP", [])]
    told.clear()

    await world.change_service("h1", forcedDown=True)
    await until(lambda: told)

    # Told for all three at once, while every Server's status still says UP (no status write yet).
    transition, servers = told[0]
    assert (transition.host, transition.old, transition.new, transition.reason) == ("h1", "UP", "DOWN", "ForcedDown")
    assert sorted((s.name, s.old, s.new, s.host_transition) for s in servers) == [
        (f"s{i}", "UP", "DOWN", transition.id) for i in range(3)
    ]
    assert {world.server_status(f"s{i}") for i in range(3)} == {"UP"}
    assert world.server_patches() == []
    # ... after the transition was recorded in the service's status (what a restart redelivers from).
    ring = world.service_status("h1")["recentTransitions"]
    assert [(r["id"], r["oldHostStatus"], r["newHostStatus"], r["reason"]) for r in ring][-1] == (
        transition.id,
        "UP",
        "DOWN",
        "ForcedDown",
    )
    assert len({s.event_id for s in servers}) == 3

    kube.gate.set()
    await world.settle()
    assert {world.server_status(f"s{i}") for i in range(3)} == {"DOWN"}
    # The writes' own transitions say they were announced (the notifier does not send them again).
    assert sorted((t.name, t.announced) for t in world.transitions) == [(f"s{i}", True) for i in range(3)]
    assert world.reconciler._announced == {}
    await world.reconciler.stop()

    # A restarted operator reads the same transition, with the same id, and decides nothing new.
    again = World(kube, clock_at=T0 + timedelta(seconds=2))
    again.reconciler.service_seen(kube.object(COMPUTE_SERVICES, service_name("h1")))
    assert again.reconciler.recorded_transitions()[-1] == transition
    assert again.reconciler.oldest_unrecorded() is None
    await again.reconciler.stop()


class RecordGatedKube(FakeKube):
    """ComputeService status writes wait for the gate, once closed (the record as slow as a test wants)."""

    def __init__(self) -> None:
        super().__init__()
        self.record = asyncio.Event()
        self.record.set()

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "PATCH" and path.startswith(COMPUTE_SERVICES.path(None)) and path.endswith("/status"):
            await self.record.wait()
        return await super().request(method, path, **kwargs)


async def turns(count: int = 50) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_hosts_status_writes_start_once_its_transition_is_recorded_and_told() -> None:
    kube = RecordGatedKube()
    world = World(kube, clock_at=T0 + timedelta(seconds=1))
    told: list[HostTransition] = []
    answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def listener(transition: HostTransition, servers: list[ServerTransition]) -> asyncio.Future[None]:
        told.append(transition)
        return answer

    world.add_service("h1")
    for i in range(3):
        world.add_server(f"s{i}", "h1")
    await world.settle()
    world.reconciler.host_transition_listeners.append(listener)

    kube.record.clear()
    await world.change_service("h1", forcedDown=True)
    await turns()
    assert told == [] and world.server_patches() == []  # not recorded: neither told nor written

    kube.record.set()
    await until(lambda: told)
    await turns()
    assert world.server_patches() == []  # recorded and handed over: the writes wait for the answer
    assert world.service_status("h1")["recentTransitions"][-1]["id"] == told[0].id

    answer.set_result(None)
    await world.settle()
    assert {world.server_status(f"s{i}") for i in range(3)} == {"DOWN"}
    await world.reconciler.stop()


async def test_a_listener_that_never_answers_holds_the_writes_only_notify_first_seconds() -> None:
    world = World(clock_at=T0 + timedelta(seconds=1), notify_first=0.05)
    world.add_service("h1")
    world.add_server("s0", "h1")
    await world.settle()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    world.reconciler.host_transition_listeners.append(lambda transition, servers: never)

    await world.change_service("h1", forcedDown=True)
    await asyncio.wait_for(world.settle(), 10)  # a guard against a hang, not a measure
    assert world.server_status("s0") == "DOWN" and not never.done()
    await world.reconciler.stop()


async def test_in_a_zone_failure_every_hosts_tenants_are_told_before_any_server_write() -> None:
    world = World(clock_at=T0 + timedelta(seconds=1))
    for host in ("h1", "h2"):
        world.add_service(host)
        world.add_server(f"on-{host}", host)
    await world.settle()
    loop = asyncio.get_running_loop()
    answers: dict[str, asyncio.Future[None]] = {"h1": loop.create_future(), "h2": loop.create_future()}
    world.reconciler.host_transition_listeners.append(lambda transition, servers: answers[transition.host])

    await world.change_service("h1", forcedDown=True)
    await world.change_service("h2", forcedDown=True)
    answers["h1"].set_result(None)
    await turns()
    assert world.server_patches() == []  # h1's tenants are told, h2's not yet: no Server written

    answers["h2"].set_result(None)
    await world.settle()
    assert {world.server_status("on-h1"), world.server_status("on-h2")} == {"DOWN"}
    await world.reconciler.stop()


async def test_events_are_posted_once_the_tenants_are_told() -> None:
    world = World(clock_at=T0 + timedelta(seconds=1))
    recorder = EventRecorder(world.kube, "operator")  # type: ignore[arg-type]
    recorder.before_posting = world.reconciler.told_so_far
    recorder.start()
    world.add_service("h1")
    world.add_server("s0", "h1")
    await world.settle()
    answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    world.reconciler.host_transition_listeners.append(lambda transition, servers: answer)
    posted = lambda: world.kube.requests("POST", path_prefix="/api/v1/namespaces/default/events")  # noqa: E731

    await world.change_service("h1", forcedDown=True)
    recorder.record(ObjectRef("v1", "Node", "h1", "uid-1"), "Fenced", "a fan-out's Event")
    await turns()
    assert posted() == [] and world.server_patches() == []  # the tenants first

    answer.set_result(None)
    await world.settle()
    await until(posted)
    assert world.server_status("s0") == "DOWN"
    await recorder.stop()
    await world.reconciler.stop()


async def test_a_server_created_on_a_host_is_not_announced_and_a_flap_before_the_writes_is() -> None:
    kube = GatedKube()
    world = World(kube, clock_at=T0 + timedelta(seconds=1))
    told = listen_host_transitions(world)
    world.add_service("h1")
    world.add_server("s0", "h1", host_status=None)  # new: its own change, written then told
    kube.gate.set()
    await world.settle()
    assert [(t.name, t.old, t.new, t.announced) for t in world.transitions] == [("s0", "", "UP", False)]
    assert [(t.new, servers) for t, servers in told] == [("UP", [])]  # decided before the server was seen
    told.clear()

    kube.gate.clear()
    await world.change_service("h1", forcedDown=True)
    await until(lambda: told)
    await world.change_service("h1", forcedDown=False)  # back up before any write
    await until(lambda: len(told) == 2)
    assert [(t.old, t.new) for t, _ in told] == [("UP", "DOWN"), ("DOWN", "UP")]
    assert [(s.old, s.new) for _, servers in told for s in servers] == [("UP", "DOWN"), ("DOWN", "UP")]
    kube.gate.set()
    await world.settle()
    assert world.server_status("s0") == "UP"
    assert world.reconciler._announced == {}
    assert [r["newHostStatus"] for r in world.service_status("h1")["recentTransitions"]] == ["UP", "DOWN", "UP"]
    await world.reconciler.stop()


async def test_a_heartbeat_deadline_is_decided_on_the_same_path() -> None:
    world = World(clock_at=T0 + timedelta(seconds=DOWN_TIME - 0.02))
    told = listen_host_transitions(world)
    world.add_service("h1", heartbeat=T0)
    world.add_server("s0", "h1")
    await world.settle()

    world.clock.advance(1)
    await asyncio.sleep(0.05)  # the timer: 20 ms + TIMER_SLACK
    await world.settle()
    assert [(t.new, t.reason, [s.name for s in servers]) for t, servers in told] == [
        ("UP", "ServiceUp", []),
        ("UNKNOWN", "HeartbeatMissing", ["s0"]),
    ]
    assert world.service_status("h1")["recentTransitions"][-1]["newHostStatus"] == "UNKNOWN"
    await world.reconciler.stop()


async def test_after_a_restart_the_writes_a_recorded_transition_covers_count_as_announced() -> None:
    kube = GatedKube()
    world = World(kube, clock_at=T0 + timedelta(seconds=1))
    world.add_service("h1")
    world.add_server("s0", "h1")
    await world.change_service("h1", forcedDown=True)
    await until(
        lambda: (
            "recentTransitions" in world.service_status("h1")
            and len(world.service_status("h1")["recentTransitions"]) == 2
        )
    )
    await world.reconciler.stop()  # killed before the server's write

    again = World(kube, clock_at=T0 + timedelta(seconds=2))
    kube.gate.set()
    again.reconciler.service_seen(kube.object(COMPUTE_SERVICES, service_name("h1")))
    again.reconciler.server_seen(kube.object(SERVERS, "s0", TENANT))
    again.add_server("new", "h1", host_status=None)  # created on the down host: its own change
    await again.settle()
    assert sorted((t.name, t.old, t.new, t.announced) for t in again.transitions) == [
        ("new", "", "DOWN", False),
        ("s0", "UP", "DOWN", True),  # the recorded transition's: redelivered from it, not sent anew
    ]
    await again.reconciler.stop()


async def test_a_standby_keeps_no_transition_it_cannot_record() -> None:
    """Every write of a standby is refused: what it decided would pile up until a takeover."""
    standby = World()
    standby.reconciler.leading = lambda: False
    told = listen_host_transitions(standby)
    name = standby.add_service("h1")
    standby.add_server("s0", "h1")
    standby.kube.fail(403, method="PATCH", path=COMPUTE_SERVICES.path(None, name, "status"), times=-1)
    await standby.change_service("h1", forcedDown=True)
    await asyncio.sleep(0.01)
    assert standby.reconciler.oldest_unrecorded() is None and told == []
    await standby.reconciler.stop()


async def test_a_new_leader_decides_from_the_recorded_transitions_not_from_its_own_as_a_standby(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("hoststate.operator.coalescer.BACKOFF", (0.001,) * 7)
    leader = World(clock_at=T0 + timedelta(seconds=1))
    kube = leader.kube
    name = leader.add_service("h1")
    leader.add_server("s0", "h1")
    await leader.change_service("h1", forcedDown=True)
    await leader.settle()

    # A standby decides too, but cannot record (its writes are refused): never told.
    standby = World(kube, clock_at=T0 + timedelta(seconds=1))
    told = listen_host_transitions(standby)
    kube.fail(403, method="PATCH", path=COMPUTE_SERVICES.path(None, name, "status"), times=-1)
    standby.reconciler.heartbeat(name, T0)
    standby.reconciler.service_seen({**kube.object(COMPUTE_SERVICES, name), "status": {}})
    await asyncio.sleep(0.01)
    assert standby.reconciler.oldest_unrecorded() is not None and told == []

    # It becomes the leader: it decides again from what the statuses record (the last leader's DOWN).
    kube.clear_failures()
    standby.reconciler.forget_decisions()
    standby.reconciler.service_seen(kube.object(COMPUTE_SERVICES, name))
    await standby.settle()
    assert standby.reconciler.oldest_unrecorded() is None and told == []
    assert standby.reconciler.recorded_transitions() == leader.reconciler.recorded_transitions()
    await leader.reconciler.stop()
    await standby.reconciler.stop()
