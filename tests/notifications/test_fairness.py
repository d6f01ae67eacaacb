"""Fast and fair, in-process: what a host transition's answer waits for, and a big tenant's queueing
interleaved with a small tenant's first attempts. The Notifier over a fake fleet and a deliverer that
records the order of what happens (never the time it takes)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from hoststate.kubetime import kube_micro_time
from hoststate.notifications import notifier as notifier_module
from hoststate.notifications.delivery import (
    HANGING_STATUS_SLOWDOWN,
    STATUS_WRITES_IN_FLIGHT,
    TIMEOUT_JITTER,
    Channel,
    Outcome,
    Pending,
    attempt_timeout,
)
from hoststate.notifications.notifier import Notifier
from hoststate.notifications.subscriptions import SubscriptionSpec
from hoststate.prometheus import OperatorMetrics

from .test_logic import FakeFleet, ScriptedDeliverer
from .test_redelivery import RecordingClient, Server, at, drained, host_transition

BIG, SMALL = "tenant-big", "tenant-small"


class OrderedDeliverer(ScriptedDeliverer):
    """Accepts every attempt (after one turn of the loop), except to URLs ending in /hangs (never answered);
    appends ("attempt", subscription) to a shared log."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__(seed=0)
        self.log = log
        self.hanging = asyncio.Event()

    async def attempt(self, spec, pending: Pending, number: int) -> Outcome:
        self.log.append(("attempt", f"{spec.namespace}/{spec.name}"))
        if spec.url.endswith("/hangs"):
            await self.hanging.wait()
        await asyncio.sleep(0)
        return Outcome(True)


def subscription(namespace: str, name: str, url: str = "http://127.0.0.1:1/hook", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"{namespace}-{name}",
            "generation": 1,
            "creationTimestamp": kube_micro_time(at(-1)),
        },
        "spec": {"url": url, "signingKeySecretRef": {"name": "k"}},
        "status": status,
    }


def notifier_over(fleet: FakeFleet, log: list[tuple[str, str]], *bodies: dict[str, Any]) -> Notifier:
    notifier = Notifier(RecordingClient(), OperatorMetrics(), fleet)  # type: ignore[arg-type]
    notifier.deliverer = OrderedDeliverer(log)  # type: ignore[assignment]
    for body in bodies:
        notifier._subscription_event("ADDED", None, body)
    return notifier


async def one_hanging_subscription(servers: int) -> tuple[Notifier, Channel, list[Server], list[tuple[str, str]]]:
    """A delivering notifier with one subscription (SMALL/hangs) to a receiver that never answers, and
    `servers` servers of its tenant on host h1; the log of what happens."""
    log: list[tuple[str, str]] = []
    fleet = FakeFleet()
    fleet.servers["h1"] = [Server(f"s{i}", SMALL) for i in range(servers)]
    notifier = notifier_over(fleet, log, subscription(SMALL, "hangs", url="http://127.0.0.1:1/hangs"))
    await notifier.start_delivering()
    return notifier, notifier.channels[(SMALL, "hangs")], fleet.servers["h1"], log


async def test_a_big_tenants_queueing_does_not_hold_a_small_tenants_first_attempt(monkeypatch) -> None:
    log: list[tuple[str, str]] = []
    offer_transition = Channel.offer_transition

    def logged(channel: Channel, *args: Any, **kwargs: Any) -> None:
        log.append(("queued", f"{channel.spec.namespace}/{channel.spec.name}"))
        offer_transition(channel, *args, **kwargs)

    monkeypatch.setattr(Channel, "offer_transition", logged)
    fleet = FakeFleet()
    big = [Server(f"b{i}", BIG) for i in range(100)]
    small = [Server("s0", SMALL)]
    fleet.servers["h1"] = big + small
    subscriptions = 20  # 20 x 100 events: several slices of OFFER_SLICE
    assert subscriptions * len(big) > 2 * notifier_module.OFFER_SLICE
    notifier = notifier_over(
        fleet,
        log,
        *(subscription(BIG, f"hangs-{i:02d}", url="http://127.0.0.1:1/hangs") for i in range(subscriptions)),
        subscription(SMALL, "hook"),
    )
    await notifier.start_delivering()
    down = host_transition("UP", "DOWN", 1)
    notifier.on_host_transition(down, [down.for_server(*s.key, s.uid) for s in fleet.servers["h1"]])
    # The cheapest namespace first, at once; the big tenant's subscriptions in slices of OFFER_SLICE servers.
    assert log[0] == ("queued", f"{SMALL}/hook") and len(log) < subscriptions + 1
    while sum(1 for kind, _ in log if kind == "queued") < subscriptions + 1:
        await asyncio.sleep(0)

    # The small tenant's attempt went out before the big tenant's last subscription was even queued.
    first_attempt = log.index(("attempt", f"{SMALL}/hook"))
    last_queued = max(i for i, entry in enumerate(log) if entry[0] == "queued")
    assert first_attempt < last_queued
    assert notifier.channels[(BIG, "hangs-00")].pending == len(big)  # all queued in the end, none dropped
    notifier.deliverer.hanging.set()  # type: ignore[attr-defined]
    await drained(notifier)
    await notifier.stop()


async def test_a_host_transitions_answer_waits_for_the_answering_subscriptions_first_attempts_only() -> None:
    log: list[tuple[str, str]] = []
    fleet = FakeFleet()
    fleet.servers["h1"] = [Server("s0", SMALL), Server("s1", SMALL)]
    notifier = notifier_over(
        fleet,
        log,
        subscription(SMALL, "hook"),
        subscription(SMALL, "failing", url="http://127.0.0.1:1/hangs", consecutiveFailures=3),
    )
    await notifier.start_delivering()
    down = host_transition("UP", "DOWN", 1)
    told = notifier.on_host_transition(down, [down.for_server(*s.key, s.uid) for s in fleet.servers["h1"]])
    assert told is not None and not told.done()
    await told  # the failing subscription's attempts hang: not waited for
    assert sorted(name for kind, name in log if kind == "attempt" and name.endswith("hook")) == [f"{SMALL}/hook"] * 2
    assert notifier.channels[(SMALL, "failing")].pending == 2
    notifier.deliverer.hanging.set()  # type: ignore[attr-defined]
    await drained(notifier)
    await notifier.stop()


async def test_a_subscription_whose_attempts_go_unanswered_is_not_answering(monkeypatch) -> None:
    """Its host's writes do not wait for it, and it writes its counts HANGING_STATUS_SLOWDOWN times less
    often (its conditions at once): a tenant's hundred hanging webhooks do not load the API server
    that every tenant's transition records go through."""
    monkeypatch.setattr("hoststate.notifications.delivery.ANSWER_WINDOW", 0.0)
    notifier, channel, _, log = await one_hanging_subscription(1)
    assert channel.answering  # nothing in flight yet
    assert channel.writer.period() == notifier.status_period  # type: ignore[operator]
    down = host_transition("UP", "DOWN", 1)
    notifier.on_host_transition(down, [down.for_server(SMALL, "s0", "uid-s0")])
    while ("attempt", f"{SMALL}/hangs") not in log:
        await asyncio.sleep(0)
    assert not channel.answering  # in flight, no answer within the (zero) window
    assert channel.writer.period() == notifier.status_period * HANGING_STATUS_SLOWDOWN  # type: ignore[operator]
    up = host_transition("DOWN", "UP", 2)
    told = notifier.on_host_transition(up, [up.for_server(SMALL, "s0", "uid-s0")])
    assert told is not None
    await told  # not held by the hanging attempt
    notifier.deliverer.hanging.set()  # type: ignore[attr-defined]
    await drained(notifier)
    assert channel.writer.period() == notifier.status_period  # type: ignore[operator]  # answered
    await notifier.stop()


async def test_a_transition_beyond_the_bounds_is_dropped_in_one_count_and_acknowledged() -> None:
    notifier, channel, servers, _ = await one_hanging_subscription(5)
    channel.max_pending = 3
    down = host_transition("UP", "DOWN", 1)
    notifier.on_host_transition(down, [down.for_server(*s.key, s.uid) for s in servers])
    assert (channel.pending, channel.state.dropped, channel.state.failed) == (3, 2, 2)
    up = host_transition("DOWN", "UP", 2)
    notifier.on_host_transition(up, [up.for_server(*s.key, s.uid) for s in servers])
    assert (channel.pending, channel.state.dropped) == (3, 7)  # full: all five dropped, none made a request
    assert not channel.acks.wanted(up.id, up.time)
    notifier.deliverer.hanging.set()  # type: ignore[attr-defined]
    await drained(notifier)
    # The three delivered, the two dropped (given up): acknowledged, not offered again.
    assert down.id not in channel.acks.in_flight and not channel.acks.wanted(down.id, down.time)
    await notifier.stop()


class HeldStatusWrites:
    """Subscription status writes that wait for `release`, counting how many are in flight at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.in_flight = self.most = self.written = 0

    async def patch(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        self.written += 1
        return {}


async def test_subscriptions_status_writes_are_bounded_all_together() -> None:
    """A hundred subscriptions marked at once do not take the operator's API connections (its records and
    Server writes share them): every namespace's together, STATUS_WRITES_IN_FLIGHT at a time."""
    deliverer = OrderedDeliverer([])
    client = deliverer.client = HeldStatusWrites()  # type: ignore[assignment]
    count = 3 * STATUS_WRITES_IN_FLIGHT
    channels = [
        Channel(SubscriptionSpec.from_body(subscription(f"tenant-{i % 3}", f"s{i}")), deliverer, None)  # type: ignore[arg-type]
        for i in range(count)
    ]  # each new subscription's Ready condition is written at once
    for _ in range(100):
        await asyncio.sleep(0)
    assert client.in_flight == client.most == STATUS_WRITES_IN_FLIGHT

    client.release.set()
    for _ in range(100):
        await asyncio.sleep(0)
    assert client.written == count and client.most == STATUS_WRITES_IN_FLIGHT
    for channel in channels:
        await channel.close()


async def test_subscriptions_status_writes_wait_while_tenants_are_being_told() -> None:
    """The operator's deliverer awaits `before_status_write` (the Reconciler's told_so_far): a hundred
    subscriptions' bookkeeping waits while a transition's record and first attempts go out."""
    deliverer = OrderedDeliverer([])
    client = deliverer.client = HeldStatusWrites()  # type: ignore[assignment]
    client.release.set()
    telling = asyncio.Event()

    async def told_so_far() -> None:
        await telling.wait()

    deliverer.before_status_write = told_so_far  # type: ignore[method-assign]
    channel = Channel(SubscriptionSpec.from_body(subscription(SMALL, "hook")), deliverer, None)  # type: ignore[arg-type]
    for _ in range(100):
        await asyncio.sleep(0)
    assert client.written == 0  # its Ready condition is due at once, and waits
    telling.set()
    for _ in range(100):
        await asyncio.sleep(0)
    assert client.written == 1
    await channel.close()


async def test_a_hanging_webhooks_queue_is_out_of_the_garbage_collectors_sight(monkeypatch) -> None:
    """Queued requests are plain tuples of strings, bytes and times: once the collector has seen them it
    stops tracking them, and a full queue (thousands) adds nothing to the operator's pauses (heap.py)."""
    monkeypatch.setattr("hoststate.notifications.delivery.ANSWER_WINDOW", 0.0)
    notifier, channel, servers, _ = await one_hanging_subscription(50)
    for number, (old, new) in enumerate([("UP", "DOWN"), ("DOWN", "UP"), ("UP", "DOWN")], start=1):
        transition = host_transition(old, new, number)
        notifier.on_host_transition(transition, [transition.for_server(*s.key, s.uid) for s in servers])
        await asyncio.sleep(0)  # the first attempts go out (and hang); the first transition's are waited for
    gc.collect()
    queued = [request for queue in channel._queues.values() for request in queue]
    assert len(queued) == channel.pending == 150
    tracked = [request for request in queued if gc.is_tracked(request)]
    # Only the first transition's, made while the subscription was still answering, hold what they tell.
    assert all(Pending._make(request).first is not None for request in tracked)
    assert len(tracked) == 50
    notifier.deliverer.hanging.set()  # type: ignore[attr-defined]
    await drained(notifier)
    await notifier.stop()


def test_attempts_started_together_do_not_time_out_together() -> None:
    assert attempt_timeout(30, jitter=lambda: 0.0) == 30
    assert attempt_timeout(30, jitter=lambda: 1.0) == 30 * (1 + TIMEOUT_JITTER)
    assert len({attempt_timeout(30) for _ in range(20)}) > 1
