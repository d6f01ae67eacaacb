"""Leader election (hoststate.kube.leader) with a fake clock over FakeKube: client-go's algorithm,
the "no two writers" bound, release, and the client that writes only while leading."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import pytest

from hoststate.kube import LEASES, SERVERS
from hoststate.kube.leader import ElectionTiming, LeaderElector, LeaderOnlyClient, NotLeader
from tests.support.fake_kube import FakeKube

NAMESPACE = "hoststate-system"
NAME = "hoststate-operator"
TIMING = ElectionTiming(lease_duration=2.0, renew_deadline=1.5, retry_period=0.25)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def candidate(kube: FakeKube, clock: Clock, identity: str) -> LeaderElector:
    return LeaderElector(
        kube, NAME, NAMESPACE, identity, TIMING, clock=clock, wall=lambda: datetime(2026, 1, 1, tzinfo=UTC)
    )


def spec(kube: FakeKube) -> dict:
    lease = kube.object(LEASES, NAME, NAMESPACE)
    assert lease is not None
    return lease["spec"]


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


async def test_the_first_candidate_creates_the_lease_and_leads_until_the_renew_deadline(kube: FakeKube) -> None:
    clock = Clock()
    a = candidate(kube, clock, "a")
    assert await a.try_acquire_or_renew()
    assert spec(kube) | {"acquireTime": "", "renewTime": ""} == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 2,
        "acquireTime": "",
        "renewTime": "",
        "leaseTransitions": 0,
    }
    assert a.is_leader() and a.valid_until == 100.0 + TIMING.renew_deadline
    clock.now += TIMING.renew_deadline
    assert not a.is_leader()  # no renewal since: it stops writing


async def test_a_dropped_connection_is_a_failed_attempt_not_the_end_of_the_campaign(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server restarting drops connections: aiohttp raises errors that are not OSErrors."""
    clock = Clock()
    a = candidate(kube, clock, "a")
    assert await a.try_acquire_or_renew()

    async def disconnected(*_args: object, **_kwargs: object) -> dict:
        raise aiohttp.ServerDisconnectedError()

    monkeypatch.setattr(kube, "request", disconnected)
    assert await a.try_acquire_or_renew() is False
    clock.now += TIMING.renew_deadline
    assert not a.is_leader()


async def test_a_standby_waits_a_lease_duration_from_the_last_renewal_it_saw(kube: FakeKube) -> None:
    clock = Clock()
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # observed at 100.0
    assert b.holder == "a" and not b.is_leader()
    clock.now += 1.0
    assert await a.try_acquire_or_renew()  # renewed at 101.0
    clock.now += 1.5
    assert not await b.try_acquire_or_renew()  # saw the renewal now (102.5): 2 s from here
    clock.now += 1.9
    assert not await b.try_acquire_or_renew()
    clock.now += 0.2  # 104.6 > 102.5 + 2
    assert await b.try_acquire_or_renew()
    assert spec(kube)["holderIdentity"] == "b" and spec(kube)["leaseTransitions"] == 1
    assert b.previous_holder == "a"


async def test_a_leader_that_cannot_renew_stops_writing_before_a_standby_can_take_over(kube: FakeKube) -> None:
    clock = Clock()
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    kube.fail(500, path=LEASES.path(NAMESPACE, NAME), times=-1)
    stopped_at = took_over_at = None
    for _ in range(40):  # every retry period, both try
        clock.now += TIMING.retry_period
        if await a.try_acquire_or_renew():
            raise AssertionError("a renewed through a failing API server")
        if stopped_at is None and not a.is_leader():
            stopped_at = clock.now
        if took_over_at is None and clock.now >= 103.0:
            kube.clear_failures()  # the standby reaches the API server again; the leader does not try any more
            if await b.try_acquire_or_renew():
                took_over_at = clock.now
                break
            kube.fail(500, path=LEASES.path(NAMESPACE, NAME), times=-1)
        assert not (a.is_leader() and b.is_leader())
    assert stopped_at is not None and took_over_at is not None
    assert stopped_at <= 100.0 + TIMING.renew_deadline < 100.0 + TIMING.lease_duration <= took_over_at


async def test_a_renewal_that_hangs_ends_at_the_deadline(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    a = candidate(kube, Clock(), "a")
    a.clock = asyncio.get_running_loop().time
    assert await a.try_acquire_or_renew()
    a.valid_until = a.clock() + 0.05

    async def hang(*_: object, **__: object) -> dict:
        await asyncio.sleep(10)
        return {}

    monkeypatch.setattr(kube, "request", hang)
    assert not await a.try_acquire_or_renew()  # the request timed out with the validity
    assert not a.is_leader()


async def test_a_leader_seeing_another_holder_stops_at_once(kube: FakeKube) -> None:
    clock = Clock()
    a = candidate(kube, clock, "a")
    assert await a.try_acquire_or_renew()
    kube.modify(LEASES, NAME, {"spec": {"holderIdentity": "intruder"}}, NAMESPACE)
    clock.now += TIMING.retry_period
    assert not await a.try_acquire_or_renew()
    assert not a.is_leader()


async def test_a_write_conflict_loses(kube: FakeKube) -> None:
    clock = Clock()
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.now += 10  # a is gone; b may take the Lease, but another writes it first
    kube.fail(409, method="PATCH", path=LEASES.path(NAMESPACE, NAME))
    assert not await b.try_acquire_or_renew()
    assert not b.is_leader() and spec(kube)["holderIdentity"] == "a"
    patch = kube.requests("PATCH")[-1]
    assert patch.body["metadata"]["resourceVersion"]  # the write is conditioned on what was read


async def test_the_leader_renews_with_one_conditional_write(kube: FakeKube) -> None:
    """client-go's fast path: no read before the renewal, the write conditioned on the version it wrote last."""
    clock = Clock()
    a = candidate(kube, clock, "a")
    assert await a.try_acquire_or_renew()
    written = kube.object(LEASES, NAME, NAMESPACE)["metadata"]["resourceVersion"]  # type: ignore[index]
    reads = len(kube.requests("GET"))
    clock.now += TIMING.retry_period
    assert await a.try_acquire_or_renew()
    assert len(kube.requests("GET")) == reads
    assert kube.requests("PATCH")[-1].body["metadata"]["resourceVersion"] == written
    assert a.valid_until == clock.now + TIMING.renew_deadline


async def test_a_renewal_refused_reads_the_lease_and_renews_if_still_ours(kube: FakeKube) -> None:
    clock = Clock()
    a = candidate(kube, clock, "a")
    assert await a.try_acquire_or_renew()
    kube.fail(500, method="PATCH", path=LEASES.path(NAMESPACE, NAME))
    reads = len(kube.requests("GET"))
    clock.now += TIMING.retry_period
    assert await a.try_acquire_or_renew()  # the fast path failed; read, still ours: renewed
    assert len(kube.requests("GET")) == reads + 1 and spec(kube)["holderIdentity"] == "a"


async def test_a_leader_that_regains_its_own_lease_resumes(kube: FakeKube) -> None:
    """Renewals missed past the deadline, then the Lease renewed before anyone took it: the same
    leadership resumed (nobody else wrote meanwhile), not a takeover."""
    clock = Clock()
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    assert await a.try_acquire_or_renew()
    a._announce()
    assert not await b.try_acquire_or_renew()
    assert not a.resumed and a.previous_holder == ""
    clock.now += TIMING.renew_deadline  # the renewals timed out
    a._announce()
    assert not a.leading
    assert await a.try_acquire_or_renew()  # before b may take it
    a._announce()
    assert a.leading and a.resumed and a.previous_holder == ""
    assert spec(kube)["leaseTransitions"] == 0
    assert not await b.try_acquire_or_renew()  # sees the renewal: a lease duration from now
    clock.now += TIMING.lease_duration + 0.1  # a gone; b takes over: a takeover, not a resumption
    assert await b.try_acquire_or_renew()
    assert not b.resumed and b.previous_holder == "a"


async def test_renewal_keeps_acquire_time_and_transitions(kube: FakeKube) -> None:
    clock = Clock()
    a = candidate(kube, clock, "a")
    assert await a.try_acquire_or_renew()
    before = dict(spec(kube))
    a.wall = lambda: datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    clock.now += TIMING.retry_period
    assert await a.try_acquire_or_renew()
    after = spec(kube)
    assert after["acquireTime"] == before["acquireTime"] and after["leaseTransitions"] == 0
    assert after["renewTime"] != before["renewTime"]


async def test_release_frees_the_lease_for_the_next_attempt_of_a_standby(kube: FakeKube) -> None:
    clock = Clock()
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.resign()
    assert not a.is_leader()
    await a.release()
    assert spec(kube)["holderIdentity"] == "" and spec(kube)["leaseDurationSeconds"] == 1
    clock.now += TIMING.retry_period  # not a lease duration: the holder is gone
    assert await b.try_acquire_or_renew()


async def test_release_keeps_a_lease_another_took(kube: FakeKube) -> None:
    clock = Clock()
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.now += 10
    assert await b.try_acquire_or_renew()
    await a.release()  # a's version is stale: the conditional write fails, b keeps the Lease
    assert spec(kube)["holderIdentity"] == "b"


async def test_the_leader_only_client_refuses_writes_unless_leading(kube: FakeKube) -> None:
    clock = Clock()
    a = candidate(kube, clock, "a")
    writer = LeaderOnlyClient(kube, a)
    kube.add(SERVERS, {"metadata": {"name": "vm"}, "spec": {}}, "t")
    with pytest.raises(NotLeader):
        await writer.patch(SERVERS, "vm", {"status": {"hostStatus": "UP"}}, "t", subresource="status")
    assert not kube.requests("PATCH", path_prefix=SERVERS.path("t"))  # refused before a request was made
    assert (await writer.get(SERVERS, "vm", "t"))["metadata"]["name"] == "vm"  # reads pass
    assert await a.try_acquire_or_renew()
    await writer.patch(SERVERS, "vm", {"status": {"hostStatus": "UP"}}, "t", subresource="status")
    assert kube.requests("PATCH", path_prefix=SERVERS.path("t"))[-1].params == {"fieldManager": "a"}  # the writer
    clock.now += TIMING.renew_deadline
    with pytest.raises(NotLeader):
        await writer.create(SERVERS, {"metadata": {"name": "vm2"}}, "t")


async def test_callbacks_run_in_order_as_leadership_comes_and_goes(kube: FakeKube) -> None:
    seen: list[str] = []

    async def started() -> None:
        seen.append("started")

    async def stopped() -> None:
        seen.append("stopped")

    elector = LeaderElector(
        kube,
        NAME,
        NAMESPACE,
        "a",
        ElectionTiming(lease_duration=1.0, renew_deadline=0.2, retry_period=0.05),
        on_started_leading=started,
        on_stopped_leading=stopped,
    )
    campaign = elector.start()  # on a thread of its own; the callbacks run here
    while seen != ["started"]:
        await asyncio.sleep(0.01)
    kube.fail(500, times=-1)  # renewals fail: it stops leading at its deadline
    while seen != ["started", "stopped"]:
        await asyncio.sleep(0.01)
    kube.clear_failures()
    while seen != ["started", "stopped", "started"]:  # its own Lease: it renews it again
        await asyncio.sleep(0.01)
    await elector.stop(release=True)
    assert seen == ["started", "stopped", "started", "stopped"] and elector.transitions == 2
    assert campaign.done() and not elector.is_leader()
    assert spec(kube)["holderIdentity"] == ""  # released by the campaign's thread


async def test_a_busy_event_loop_does_not_cost_the_lease(kube: FakeKube) -> None:
    elector = LeaderElector(
        kube, NAME, NAMESPACE, "a", ElectionTiming(lease_duration=1.0, renew_deadline=0.8, retry_period=0.1)
    )
    elector.start()
    while not elector.is_leader():
        await asyncio.sleep(0.01)
    time.sleep(2.5)  # this loop blocked for three renew deadlines: the campaign's thread renews on
    assert elector.is_leader()
    await elector.stop()


def test_timing_constraints() -> None:
    assert ElectionTiming().problem() is None
    assert ElectionTiming(lease_duration=1.5, renew_deadline=1.5).problem()
    assert ElectionTiming(renew_deadline=0.25, retry_period=0.25).problem()
    assert ElectionTiming(lease_duration=1.5).lease_seconds == 2
    with pytest.raises(ValueError):
        LeaderElector(FakeKube(), NAME, NAMESPACE, "a", ElectionTiming(2, 3, 1))
