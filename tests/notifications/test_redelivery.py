"""At least once, in-process: acknowledgements, redelivery of recorded host transitions with the same
ids, batches, the subscription cap. The Notifier over a fake fleet and a recording deliverer."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from hoststate.domain import HostTransition, host_transition_id, server_event_id
from hoststate.kubetime import kube_micro_time
from hoststate.notifications.cloudevents import BATCH_CONTENT_TYPE, CONTENT_TYPE
from hoststate.notifications.delivery import Outcome, Pending
from hoststate.notifications.notifier import TOO_MANY, Notifier
from hoststate.notifications.status import Acknowledgements
from hoststate.prometheus import OperatorMetrics

from .test_logic import T0, FakeFleet, ScriptedDeliverer

NS = "tenant-a"


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def host_transition(old: str, new: str, seconds: float, host: str = "h1") -> HostTransition:
    reason = {"DOWN": "ForcedDown", "UP": "ServiceUp"}[new]
    return HostTransition(host_transition_id("svc-uid", old, new, at(seconds)), host, old, new, reason, at(seconds))


class Server:
    def __init__(self, name: str, namespace: str = NS) -> None:
        self.key = (namespace, name)
        self.uid = f"uid-{name}"


class RecordingDeliverer(ScriptedDeliverer):
    """Accepts every request and keeps (subscription, content type, events)."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.requests: list[tuple[str, str, list[dict[str, Any]]]] = []

    async def attempt(self, spec, pending: Pending, number: int) -> Outcome:
        parsed = json.loads(pending.body)
        self.requests.append((spec.name, pending.content_type, parsed if isinstance(parsed, list) else [parsed]))
        return Outcome(True)


class RecordingClient:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    async def patch(self, _resource, name: str, body: dict[str, Any], namespace: str, **_: Any) -> dict[str, Any]:
        self.patches.append((namespace, name, body))
        return {}


def subscription(name: str, created: float = 0, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"sub-{name}",
            "generation": 1,
            "creationTimestamp": kube_micro_time(at(created)),
        },
        "spec": {"url": "http://127.0.0.1:1/hook", "signingKeySecretRef": {"name": "k"}, **spec},
        "status": status or {},
    }


def notifier_over(fleet: FakeFleet, *bodies: dict[str, Any], max_subscriptions: int = 100) -> Notifier:
    notifier = Notifier(
        RecordingClient(),  # type: ignore[arg-type]
        OperatorMetrics(),
        fleet,
        max_subscriptions=max_subscriptions,
    )
    notifier.deliverer = RecordingDeliverer()  # type: ignore[assignment]
    for body in bodies:
        notifier._subscription_event("ADDED", None, body)
    return notifier


async def drained(notifier: Notifier) -> None:
    while notifier.pending():
        await asyncio.sleep(0.001)


# -- acknowledgements ------------------------------------------------------------------------------
def test_acknowledgements_advance_past_what_is_done_and_keep_what_is_in_flight() -> None:
    acks = Acknowledgements.from_status({}, created=at(0), now=at(100))
    assert acks.through == at(0)  # a new subscription: from its creation
    assert acks.wanted("t1", at(1)) and not acks.wanted("t0", at(0))
    acks.offered("t1", at(1), events=2)
    acks.offered("t2", at(2), events=1)
    assert not acks.wanted("t1", at(1))  # in flight: not offered twice
    assert acks.finished("t2") is True
    acks.compact(None)
    assert acks.through < at(1) and acks.done == {"t2": at(2)}  # t1 holds the mark back
    assert acks.finished("t1") is False and acks.finished("t1") is True
    acks.compact(at(1.5))  # a transition decided at 1.5 not yet recorded: the mark stops before it
    assert at(1) < acks.through < at(1.5) and acks.done == {"t2": at(2)}
    acks.compact(None)
    assert acks.through == at(2) and acks.done == {}
    again = Acknowledgements.from_status(acks.patch(), created=at(0), now=at(100))
    assert again.through == at(2)


def test_a_subscription_from_before_acknowledgements_starts_now() -> None:
    acks = Acknowledgements.from_status({"observedGeneration": 3, "delivered": 9}, created=at(0), now=at(100))
    assert acks.through == at(100)


def test_acknowledged_ids_after_the_mark_are_kept_and_bounded() -> None:
    acks = Acknowledgements.from_status({}, created=at(0), now=at(0))
    acks.offered("slow", at(1), events=1)
    for i in range(100):
        acks.offered(f"t{i}", at(2 + i), events=1)
        acks.finished(f"t{i}")
    acks.compact(None)
    patch = acks.patch()
    assert len(patch["acknowledged"]) == 64  # the oldest forgotten: redelivered after a restart (same ids)
    assert patch["acknowledged"][-1]["id"] == "t99"


# -- redelivery ----------------------------------------------------------------------------------------
async def test_start_delivering_redelivers_what_is_not_acknowledged_with_the_same_ids() -> None:
    fleet = FakeFleet()
    down, up = host_transition("UP", "DOWN", 1), host_transition("DOWN", "UP", 2)
    before = host_transition("UP", "DOWN", -5)  # before the subscription existed
    fleet.transitions = [before, down, up]
    fleet.servers["h1"] = [Server("a"), Server("b"), Server("other", "tenant-b")]
    status = {
        "acknowledgedThrough": kube_micro_time(at(0)),
        "acknowledged": [{"id": down.id, "time": kube_micro_time(down.time)}],
    }
    notifier = notifier_over(
        fleet,
        subscription("fresh", created=-1),
        subscription("half", created=-1, status=status),
        subscription("batched", created=-1, delivery="PerHostTransition"),
    )
    await notifier.start_delivering()
    await drained(notifier)
    requests = notifier.deliverer.requests  # type: ignore[attr-defined]

    def events(name: str) -> list[tuple[str, str, str]]:
        return [
            (e["data"]["server_name"], e["data"]["new_host_status"], e["id"])
            for sub, _, batch in requests
            if sub == name
            for e in batch
        ]

    expected_down = [(s, "DOWN", server_event_id(down.id, f"uid-{s}", "DOWN")) for s in "ab"]
    expected_up = [(s, "UP", server_event_id(up.id, f"uid-{s}", "UP")) for s in "ab"]
    # Each server's events in order, ids from the transition and the server (never tenant-b's server).
    for name in ("fresh", "batched"):
        got = events(name)
        assert sorted(got) == sorted(expected_down + expected_up), name
        for server in "ab":
            assert [e[1] for e in got if e[0] == server] == ["DOWN", "UP"]
    assert sorted(events("half")) == sorted(expected_up)  # DOWN was acknowledged
    # Batched: one request per transition, in CloudEvents' batched mode.
    batches = [(content_type, len(batch)) for sub, content_type, batch in requests if sub == "batched"]
    assert batches == [(BATCH_CONTENT_TYPE, 2), (BATCH_CONTENT_TYPE, 2)]
    assert {content_type for sub, content_type, _ in requests if sub == "fresh"} == {CONTENT_TYPE}

    # Acknowledged now: a second start (a new leader reading this status) sends nothing again.
    for channel in notifier.channels.values():
        channel.acks.compact(None)
        assert channel.acks.through == up.time
    statuses = {name: notifier.channels[(NS, name)].acks.patch() for name in ("fresh", "half", "batched")}
    await notifier.stop()
    again = notifier_over(fleet, *(subscription(n, created=-1, status=s) for n, s in statuses.items()))
    await again.start_delivering()
    await drained(again)
    assert again.deliverer.requests == []  # type: ignore[attr-defined]
    await again.stop()


async def test_a_live_host_transition_goes_out_only_while_delivering() -> None:
    fleet = FakeFleet()
    fleet.servers["h1"] = [Server("a")]
    notifier = notifier_over(fleet, subscription("ops", created=-1))
    down = host_transition("UP", "DOWN", 1)
    notifier.on_host_transition(down, [down.for_server(NS, "a", "uid-a")])
    assert notifier.pending() == 0 and notifier.channels == {}  # a standby: recorded, redelivered by the leader
    await notifier.start_delivering()
    up = host_transition("DOWN", "UP", 2)
    fleet.transitions = [up]  # recorded, then told
    notifier.on_host_transition(up, [up.for_server(NS, "a", "uid-a")])
    await drained(notifier)
    ids = [e["id"] for _, _, batch in notifier.deliverer.requests for e in batch]  # type: ignore[attr-defined]
    assert ids == [server_event_id(up.id, "uid-a", "UP")]  # once: the live path and the redelivery are one
    await notifier.stop()


async def test_beyond_the_cap_a_subscription_is_refused_readably_until_an_older_one_goes() -> None:
    fleet = FakeFleet()
    bodies = [subscription(f"s{i}", created=i) for i in range(3)]
    notifier = notifier_over(fleet, *reversed(bodies), max_subscriptions=2)
    await notifier.start_delivering()
    assert set(notifier.channels) == {(NS, "s0"), (NS, "s1")}  # the oldest two
    await asyncio.sleep(0)
    await asyncio.gather(*notifier._background)
    refusals = [(name, body) for _, name, body in notifier.client.patches if name == "s2"]  # type: ignore[attr-defined]
    assert len(refusals) == 1
    ready = next(c for c in refusals[0][1]["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", TOO_MANY)
    assert ready["message"].startswith(f"namespace {NS} has more than 2 HostStatusSubscriptions")

    notifier._subscription_event("DELETED", bodies[0], None)
    assert set(notifier.channels) == {(NS, "s1"), (NS, "s2")}
    await notifier.stop()
