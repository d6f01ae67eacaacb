"""The notifier: subscriptions from a watch cache, host and Server transitions in, signed CloudEvents out.

`on_host_transition` is the Reconciler's host transition listener: it is called once a host
transition is recorded in its ComputeService's status, with the transitions of every server on
the host, before their status writes; it returns what those writes wait for (at most the operator's
--notify-first): the first attempts of the events to the subscriptions that answer. `on_transition`
gets the Server transitions the operator writes; those a host transition announced are skipped, the
others (a Server created, or moved) are sent as they are written. Both run on the operator's path,
so they only match and queue (no I/O, no await); delivery runs in each subscription's Channel.

Queueing is done in slices of OFFER_SLICE servers per turn of the event loop, one subscription at a
time, the namespaces with the least to queue first: a tenant with 100 subscriptions and 100 servers
on a host (10,000 events) does not hold another tenant's first attempts behind its own queueing. What
is not queued yet waits in one FIFO, so no event overtakes an earlier one of the same server.

Only while delivering (`start_delivering` .. `stop_delivering`, the leader's part) are there
Channels; a standby keeps the subscriptions' cache. `start_delivering` first redelivers, with the
same ids, every recorded host transition a subscription has not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..domain.transitions import HostTransition, ServerTransition
from ..kube import HOST_STATUS_SUBSCRIPTIONS, ApiError, KubeClient
from ..kube.informer import Informer
from ..kubetime import parse_kube_time, utcnow
from ..prometheus import OperatorMetrics
from .cloudevents import BATCH_CONTENT_TYPE, build_event, encode, encode_batch
from .delivery import Channel, Deliverer, FirstAttempts, Pending
from .egress import EgressPolicy
from .secrets import SigningKeys
from .status import Condition, DeliveryState
from .subscriptions import SubscriptionKey, SubscriptionSpec
from .url_policy import origin

logger = logging.getLogger(__name__)

# Served per namespace, oldest first; the others get Ready=False, TooManySubscriptions.
MAX_SUBSCRIPTIONS_PER_NAMESPACE = 100
BATCH_MAX = 1000  # events in one PerHostTransition request; a bigger host takes several
KEY_REFRESH = 20.0  # seconds between GETs of a served subscription's Secret (within its 30 s cache)
TOO_MANY = "TooManySubscriptions"
OFFER_SLICE = 500  # servers matched against subscriptions per turn of the event loop (about a millisecond)


class ServerView(Protocol):
    key: tuple[str, str]
    uid: str


class FleetView(Protocol):
    """What the notifier reads of the operator's indexes (the Reconciler)."""

    def recorded_transitions(self) -> list[HostTransition]: ...
    def oldest_unrecorded(self) -> datetime | None: ...
    def servers_on_host(self, host: str) -> Iterable[ServerView]: ...
    def labels_of(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


class NamespaceEvents:
    """A host transition's servers in one namespace, shared by its subscriptions: each server's labels
    are looked up, its event id computed (a UUIDv5) and its event encoded once, not per subscription."""

    def __init__(self, namespace: str, servers: list[ServerTransition], fleet: FleetView) -> None:
        self.namespace = namespace
        self.servers = servers
        self.fleet = fleet
        self._labels: list[Mapping[str, str] | None] | None = None
        self.bodies: dict[str, tuple[str, bytes]] = {}  # server uid -> (event id, body)
        self._wanted: dict[tuple[str, frozenset[str], str], list[ServerTransition]] = {}  # by filter

    def wanted_by(self, spec: SubscriptionSpec) -> list[ServerTransition]:
        """The servers `spec` wants (matched once per filter: a tenant's subscriptions mostly share one)."""
        key = (spec.namespace, spec.host_statuses, repr(spec.selector))
        wanted = self._wanted.get(key)
        if wanted is not None:
            return wanted
        if self._labels is None:
            self._labels = [self.fleet.labels_of(self.namespace, server.name) for server in self.servers]
        wanted = self._wanted[key] = [
            s for s, labels in zip(self.servers, self._labels, strict=True) if spec.wants(self.namespace, s.new, labels)
        ]
        return wanted

    def encoded(self, servers: list[ServerTransition]) -> dict[str, tuple[str, bytes]]:
        """`bodies`, with those of `servers` among them (encoded once each, and only when requested:
        a subscription whose queue is full drops its share unencoded)."""
        for server in servers:
            if server.uid not in self.bodies:
                event_id = server.event_id
                self.bodies[server.uid] = (event_id, encode(build_event(server, event_id)))
        return self.bodies


@dataclass
class Offer:
    """Queueing yet to be done: `servers` to match, for a transition decided at `decided`."""

    servers: int
    decided: datetime
    run: Callable[[], None]


class Notifier:
    def __init__(
        self,
        client: KubeClient,
        metrics: OperatorMetrics,
        fleet: FleetView,
        *,
        namespaces: tuple[str, ...] = (),
        keys: SigningKeys | None = None,
        egress: EgressPolicy | None = None,
        status_period: float = 5.0,
        max_subscriptions: int = MAX_SUBSCRIPTIONS_PER_NAMESPACE,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.fleet = fleet
        self.status_period = status_period
        self.max_subscriptions = max_subscriptions
        self.deliverer = Deliverer(client, metrics, keys=keys, egress=egress)
        self.bodies: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # namespace -> name -> object
        self.channels: dict[SubscriptionKey, Channel] = {}  # the served subscriptions, while delivering
        self.by_namespace: dict[str, set[str]] = {}
        self.delivering = False
        self._offers: deque[Offer] = deque()  # in order; the first runs next
        self._offering: asyncio.Handle | None = None  # the next slice, while offers are left
        self._background: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self.informers = [Informer(client, HOST_STATUS_SUBSCRIPTIONS, ns) for ns in (namespaces or [None])]
        for informer in self.informers:
            informer.add_handler(self._subscription_event)
        metrics.notifications_pending.set_function(self.pending)

    def start(self) -> list[asyncio.Task[None]]:
        """Start watching subscriptions (without waiting: nothing is delivered before start_delivering)."""
        return [informer.start() for informer in self.informers]

    async def wait_synced(self, timeout: float) -> bool:
        """Until every subscription informer has listed once (False after `timeout`: the operator
        goes on without them, for example while its RBAC lacks the subscriptions)."""
        try:
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self.informers)), timeout)
        except TimeoutError:
            logger.warning("HostStatusSubscriptions not listed within %gs; notifications start when they are", timeout)
            return False
        return True

    def pending(self) -> int:
        """Events queued, and servers still to be matched (each an event, at most)."""
        return sum(channel.pending for channel in self.channels.values()) + sum(o.servers for o in self._offers)

    def _unoffered_since(self) -> datetime | None:
        """When the oldest transition not yet offered to every subscription (unrecorded, or still to be
        queued) was decided: no subscription acknowledges through it."""
        times = [offer.decided for offer in self._offers]
        unrecorded = self.fleet.oldest_unrecorded()
        if unrecorded is not None:
            times.append(unrecorded)
        return min(times, default=None)

    # -- leadership -----------------------------------------------------------------------
    async def start_delivering(self) -> None:
        """Serve the subscriptions and redeliver what they have not acknowledged of the recorded host
        transitions (to the servers on each host now), with the same ids. Call it once the servers
        are indexed. Nothing awaits in between: no transition falls between the redelivery and the
        live path."""
        if self.delivering:
            return
        self.delivering = True
        for namespace in list(self.bodies):
            self._serve(namespace)
        self._refresher = asyncio.create_task(self._refresh_keys(), name="refresh signing keys")
        transitions = self.fleet.recorded_transitions()
        for transition in transitions:
            self._offer_host_transition(transition, self._by_namespace(transition))
        logger.info(
            "delivering notifications: %d subscriptions, %d recorded host transitions offered again",
            len(self.channels),
            len(transitions),
        )

    async def stop_delivering(self) -> None:
        """Stop sending: queued events are dropped from memory but stay unacknowledged in status (whoever
        delivers next redelivers them); the acknowledgements so far are written once."""
        if not self.delivering:
            return
        self.delivering = False
        self._offers.clear()  # not acknowledged: whoever delivers next offers them again
        if self._offering is not None:
            self._offering.cancel()
            self._offering = None
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        channels, self.channels = self.channels, {}
        self.by_namespace.clear()
        left = await asyncio.gather(*(channel.close(deleted=False) for channel in channels.values()))
        if sum(left):
            logger.info("stopped delivering with %d events queued (left to whoever delivers next)", sum(left))

    async def _refresh_keys(self) -> None:
        """Every KEY_REFRESH seconds, each served Secret once, then the Ready conditions: an event never
        waits for a Secret's GET (a heartbeat expiry would, behind its fan-out's patches), and a key
        deleted or spoiled shows in status before an event needs it."""
        while True:
            await asyncio.sleep(KEY_REFRESH)
            secrets = {(channel.spec.namespace, channel.spec.secret_name) for channel in self.channels.values()}
            for namespace, name in secrets:
                await self.deliverer.keys.refresh(namespace, name)
            for channel in list(self.channels.values()):
                channel.check_ready()

    # -- subscriptions ------------------------------------------------------------------
    def _subscription_event(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        body = old if kind == "DELETED" else new
        assert body is not None
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        known = self.bodies[namespace].get(name)
        if kind == "DELETED":
            self.bodies[namespace].pop(name, None)
            if not self.bodies[namespace]:
                del self.bodies[namespace]
        else:
            self.bodies[namespace][name] = body
        if not self.delivering:
            return
        if kind != "DELETED" and known is not None and known["metadata"].get("uid") == body["metadata"].get("uid"):
            channel = self.channels.get((namespace, name))
            spec = SubscriptionSpec.from_body(body)
            if channel is not None and spec.generation != channel.spec.generation:
                channel.update(spec)  # a status write (ours) keeps the generation: nothing to do
                logger.info("subscription %s/%s: generation %d", namespace, name, spec.generation)
            return
        self._serve(namespace)

    def _serve(self, namespace: str) -> None:
        """Channels for the namespace's oldest `max_subscriptions` subscriptions; the others refused."""
        specs = sorted(
            (SubscriptionSpec.from_body(body) for body in self.bodies.get(namespace, {}).values()),
            key=lambda spec: (spec.created, spec.name),
        )
        served = {spec.name: spec for spec in specs[: self.max_subscriptions]}
        for name in list(self.by_namespace.get(namespace, ())):
            channel = self.channels[(namespace, name)]
            if name not in served or served[name].uid != channel.spec.uid:
                self._remove((namespace, name), deleted=name not in self.bodies.get(namespace, {}))
        for name, spec in served.items():
            if (namespace, name) not in self.channels:
                self._add(spec, self.bodies[namespace][name])
        for spec in specs[self.max_subscriptions :]:
            self._refuse(spec, self.bodies[namespace][spec.name])

    def _add(self, spec: SubscriptionSpec, body: dict[str, Any]) -> None:
        created = parse_kube_time(spec.created) if spec.created else None
        self.channels[spec.key] = Channel(
            spec,
            self.deliverer,
            body.get("status"),
            created=created,
            unrecorded_since=self._unoffered_since,
            status_period=self.status_period,
        )
        self.by_namespace.setdefault(spec.namespace, set()).add(spec.name)
        logger.info("subscription %s/%s: delivering to %s", spec.namespace, spec.name, origin(spec.url))

    def _remove(self, key: SubscriptionKey, *, deleted: bool) -> None:
        channel = self.channels.pop(key, None)
        names = self.by_namespace.get(key[0])
        if names is not None:
            names.discard(key[1])
            if not names:
                del self.by_namespace[key[0]]
        if channel is not None:
            self._spawn(self._close(key, channel, deleted), f"close {key[0]}/{key[1]}")

    @staticmethod
    async def _close(key: SubscriptionKey, channel: Channel, deleted: bool) -> None:
        left = await channel.close(deleted=deleted)
        logger.info("subscription %s/%s removed (%d queued events dropped)", *key, left)

    def _refuse(self, spec: SubscriptionSpec, body: dict[str, Any]) -> None:
        """Ready=False with a readable reason, written once (not again while the status says so)."""
        state = DeliveryState.from_status(body.get("status"))
        ready = state.conditions.get("Ready")
        if ready is not None and ready.reason == TOO_MANY and state.written_generation == spec.generation:
            return
        message = (
            f"namespace {spec.namespace} has more than {self.max_subscriptions} HostStatusSubscriptions; "
            f"the {self.max_subscriptions} oldest are served and this one is not: delete some to have it served"
        )
        state.generation = spec.generation
        state.conditions["Ready"] = Condition("False", TOO_MANY, message, utcnow())
        state.conditions.pop("Delivering", None)
        patch = state.patch()
        logger.warning("subscription %s/%s refused: %s", spec.namespace, spec.name, message)
        self._spawn(self._write_refusal(spec, patch), f"refuse {spec.namespace}/{spec.name}")

    async def _write_refusal(self, spec: SubscriptionSpec, patch: dict[str, Any]) -> None:
        try:
            await self.client.patch(HOST_STATUS_SUBSCRIPTIONS, spec.name, patch, spec.namespace, subresource="status")
        except ApiError as error:
            logger.warning("subscription %s/%s: refusal not written: %s", spec.namespace, spec.name, error)

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- transitions ----------------------------------------------------------------------
    def on_host_transition(
        self, transition: HostTransition, servers: list[ServerTransition]
    ) -> asyncio.Future[None] | None:
        """Reconciler.host_transition_listeners: queue the events of every affected server; the answer is
        done once the subscriptions that answer have had a first attempt at each of their requests."""
        if not self.delivering:
            return None  # recorded: start_delivering redelivers it
        by_namespace: dict[str, list[ServerTransition]] = defaultdict(list)
        for server in servers:
            if server.namespace in self.by_namespace:  # the namespace is the boundary
                by_namespace[server.namespace].append(server)
        return self._offer_host_transition(transition, by_namespace)

    def _by_namespace(self, transition: HostTransition) -> dict[str, list[ServerTransition]]:
        """A recorded transition's servers: those on its host now, in the served namespaces."""
        by_namespace: dict[str, list[ServerTransition]] = defaultdict(list)
        for server in self.fleet.servers_on_host(transition.host):
            if server.key[0] in self.by_namespace:
                by_namespace[server.key[0]].append(transition.for_server(*server.key, server.uid))
        return by_namespace

    def _offer_host_transition(
        self, transition: HostTransition, by_namespace: Mapping[str, list[ServerTransition]]
    ) -> asyncio.Future[None]:
        """Offer to every served subscription (one Offer each), the namespaces with the least to queue
        first; return when the answering ones have had their first attempts (see FirstAttempts)."""
        first = FirstAttempts()
        offers = []
        for namespace, servers in sorted(
            by_namespace.items(), key=lambda item: len(item[1]) * len(self.by_namespace.get(item[0], ()))
        ):
            events = NamespaceEvents(namespace, servers, self.fleet)
            for name in sorted(self.by_namespace.get(namespace, ())):
                channel = self.channels[(namespace, name)]
                run = self._offer_to(channel, transition, events, first)
                offers.append(Offer(len(servers), transition.time, run))
        offers.append(Offer(0, transition.time, first.one))  # every request counted: done when attempted
        self._offer(offers)
        return first.done

    def _offer_to(
        self, channel: Channel, transition: HostTransition, events: NamespaceEvents, first: FirstAttempts
    ) -> Callable[[], None]:
        def run() -> None:
            if self.channels.get(channel.spec.key) is not channel:
                return  # removed meanwhile (its events are redelivered to whoever replaces it, if unacknowledged)
            if not channel.acks.wanted(transition.id, transition.time):
                return
            wanted = events.wanted_by(channel.spec)
            if channel.full:  # dropped in one count, without making the requests
                channel.offer_transition(transition.id, transition.time, [], dropped=len(wanted))
                return
            bodies = events.encoded(wanted)
            requests = self._requests(channel, transition.host, transition.id, transition.time, wanted, bodies)
            channel.offer_transition(transition.id, transition.time, requests, first if channel.answering else None)

        return run

    def _offer(self, offers: list[Offer]) -> None:
        """Queue now what fits in this turn's slice, the rest in the next turns (behind what waits)."""
        self._offers.extend(offers)
        if self._offering is None:
            self._offer_slice()

    def _offer_slice(self) -> None:
        self._offering = None
        matched = 0
        while self._offers and matched < OFFER_SLICE:
            offer = self._offers.popleft()
            matched += offer.servers
            try:
                offer.run()
            except Exception:  # a bug must not stop the offers behind it
                logger.exception("queueing notifications failed")
        if self._offers:
            self._offering = asyncio.get_running_loop().call_soon(self._offer_slice)

    @staticmethod
    def _requests(
        channel: Channel,
        host: str,
        transition_id: str,
        decided: datetime,
        servers: list[ServerTransition],
        bodies: Mapping[str, tuple[str, bytes]],
    ) -> list[tuple[str, Pending]]:
        """(queue, request) pairs: one per server, or batches on the host's queue."""
        if not channel.batched:
            return [(s.uid, Pending(*bodies[s.uid], decided, transition_id)) for s in servers]
        return [
            (
                f"host/{host}",
                Pending(
                    transition_id or chunk[0].event_id,
                    encode_batch([bodies[s.uid][1] for s in chunk]),
                    decided,
                    transition_id,
                    events=len(chunk),
                    content_type=BATCH_CONTENT_TYPE,
                ),
            )
            for chunk in (servers[i : i + BATCH_MAX] for i in range(0, len(servers), BATCH_MAX))
        ]

    def on_transition(self, transition: ServerTransition) -> None:
        """Reconciler.transition_listeners: a Server's own change (one its host's transition did not
        announce), sent as written; not redelivered after a restart."""
        if not self.delivering or transition.announced:
            return
        names = self.by_namespace.get(transition.namespace)
        if not names:
            return  # the namespace is the boundary: only its own subscriptions are looked at
        events = NamespaceEvents(transition.namespace, [transition], self.fleet)
        offers = [
            Offer(1, transition.time, self._offer_own(self.channels[(transition.namespace, name)], transition, events))
            for name in sorted(names)
        ]
        self._offer(offers)  # behind any host transition's events still to be queued: in order per server

    def _offer_own(self, channel: Channel, transition: ServerTransition, events: NamespaceEvents) -> Callable[[], None]:
        def run() -> None:
            if self.channels.get(channel.spec.key) is not channel:
                return
            wanted = events.wanted_by(channel.spec)
            bodies = events.encoded(wanted)
            for queue, pending in self._requests(channel, transition.host, "", transition.time, wanted, bodies):
                channel.offer(queue, pending)

        return run

    async def stop(self) -> None:
        for informer in self.informers:
            await informer.stop()
        await self.stop_delivering()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.deliverer.close()
