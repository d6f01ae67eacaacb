"""Delivery of a subscription's events: FIFO queues, bounded retries with exponential backoff,
one HTTP session per namespace.

Ordering: each Server (by uid; with PerHostTransition delivery, each host) has its own queue
inside a subscription, drained by one worker at a time; a request leaves its queue only when
delivered or given up, so a later event of the same Server is never sent before an earlier one,
even across retries. Servers do not wait for each other: a failing event holds back only its own
Server's (or host's) later events.
Fairness: at most `concurrency` workers per subscription (an attempt or a backoff sleep each) and
NAMESPACE_IN_FLIGHT attempts per namespace in flight, each namespace with its own connection pool, and at most
`max_pending` events queued per subscription and NAMESPACE_MAX_PENDING per namespace (beyond,
new events are dropped and counted): one tenant's slow, failing or hanging webhooks hold only its
own slots, connections and memory.
Reach: the sessions connect only where the egress policy allows (egress.py), follow no
redirect, and a failure is reported by its category (failures.py), never its text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
from aiohttp.abc import AbstractResolver

from ..kube import HOST_STATUS_SUBSCRIPTIONS, ApiError
from ..kubetime import utcnow
from .cloudevents import CONTENT_TYPE, SIGNATURE_HEADER, sign
from .egress import EgressPolicy
from .failures import ADDRESS_NOT_ALLOWED, INVALID_URL, Failure, client_failure, http_failure, timeout_failure
from .secrets import SigningKeyError, SigningKeys
from .status import Acknowledgements, DeliveryState, StatusWriter
from .subscriptions import PER_HOST_TRANSITION, SubscriptionSpec
from .url_policy import host_address, url_problem

if TYPE_CHECKING:
    from ..kube import KubeClient
    from ..prometheus import OperatorMetrics

logger = logging.getLogger(__name__)

TIMEOUT_JITTER = 0.1
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0
MAX_PENDING = 10_000  # events queued per subscription; beyond, new ones are dropped (and counted)
CONCURRENCY = 16  # attempts in flight per subscription
NAMESPACE_IN_FLIGHT = 32  # attempts in flight per namespace (all its subscriptions)
NAMESPACE_CONNECTIONS = 32  # connections of a namespace's pool
NAMESPACE_MAX_PENDING = 50_000  # events queued per namespace
# A subscription with attempts in flight and no answer for this long is not answering: a host's status
# writes do not wait for its first attempts (reconciler.py's notify_first).
ANSWER_WINDOW = 1.0
USER_AGENT = "hoststate-notifier"
# Subscriptions' status writes in flight at once, all namespaces together: a hundred subscriptions marked
# by one transition never take the operator's API connections from its records and Server writes.
STATUS_WRITES_IN_FLIGHT = 4
# A subscription whose receiver leaves attempts unanswered writes its counts this many times less often.
HANGING_STATUS_SLOWDOWN = 12
REFUSALS_CACHED = 4096  # URLs whose refusal (or none) is kept: the served subscriptions' at most, usually


def attempt_timeout(timeout: float, jitter: Callable[[], float] = random.random) -> float:
    """The subscription's timeout, up to TIMEOUT_JITTER longer: attempts started together (a hanging webhook's,
    each time its tenant's slots free up) do not all time out, and all retry, at the same moment."""
    return timeout * (1 + TIMEOUT_JITTER * jitter())


def backoff_delay(retry: int, jitter: Callable[[], float] = random.random) -> float:
    """Delay before retry number `retry` (0-based): 0.5 s doubling, capped at 30 s, ±20% jitter."""
    return min(BACKOFF_BASE * 2**retry, BACKOFF_CAP) * (0.8 + 0.4 * jitter())


class FirstAttempts:
    """A host transition's requests to answering subscriptions: `done` once each had its first attempt
    (or was dropped). Held open by its maker until every request is counted (`expect`), then `one()`."""

    def __init__(self) -> None:
        self.left = 1
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def expect(self, requests: int) -> None:
        self.left += requests

    def one(self, count: int = 1) -> None:
        self.left -= count
        if self.left <= 0 and not self.done.done():
            self.done.set_result(None)


class Pending(NamedTuple):
    """One request: an event, or a batch of events (PerHostTransition). Queued as a plain tuple (Channel)."""

    event_id: str  # the event's id; a batch's: its host transition's
    body: bytes
    transition_time: datetime
    transition_id: str = ""  # the host transition it belongs to ("" for a Server's own change)
    events: int = 1
    content_type: str = CONTENT_TYPE
    first: FirstAttempts | None = None  # told after this request's first attempt (a subscription answering)


@dataclass
class NamespacePool:
    """A namespace's share: its connections and its in-flight and queued bounds."""

    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(NAMESPACE_IN_FLIGHT))
    queued: int = 0
    users: int = 0
    session: aiohttp.ClientSession | None = None


READY = ("True", "Valid", "the URL and the signing key are usable")
UNUSABLE_URL = (INVALID_URL.category, ADDRESS_NOT_ALLOWED.category)  # failures no retry helps: not Ready


@dataclass
class Outcome:
    ok: bool
    error: str = ""
    retryable: bool = False
    retry_after: float | None = None
    ready: tuple[str, str, str] | None = None  # (status, reason, message) of the Ready condition

    @classmethod
    def failed(cls, failure: Failure, retry_after: float | None = None) -> Outcome:
        """A failed attempt; the Ready condition says whether the subscription itself is at fault."""
        ready = ("False", failure.category, failure.message) if failure.category in UNUSABLE_URL else READY
        return cls(False, str(failure), retryable=failure.retryable, retry_after=retry_after, ready=ready)


class Deliverer:
    """What all subscriptions share: the egress policy, the signing keys, the metrics; and one
    connection pool per namespace, so that no tenant can hold another's connections."""

    def __init__(
        self,
        client: KubeClient,
        metrics: OperatorMetrics,
        *,
        keys: SigningKeys | None = None,
        egress: EgressPolicy | None = None,
        resolver: AbstractResolver | None = None,  # aiohttp's default when None (tests give answers of their own)
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.keys = keys or SigningKeys(client)
        self.egress = egress or EgressPolicy()
        self.resolver = resolver
        self.pools: dict[str, NamespacePool] = {}
        self.status_writes = asyncio.Semaphore(STATUS_WRITES_IN_FLIGHT)
        # Awaited before each status write (the operator's: until the tenants being told now are told, at
        # most its notify-first budget): a hundred subscriptions' bookkeeping does not compete with a
        # transition's record and first attempts at the API server.
        self.before_status_write: Callable[[], Awaitable[None]] = partial(
            asyncio.sleep, 0
        )  # by default, nothing to wait for
        self._refusals: dict[str, Failure | None] = {}  # url -> url_refusal's answer (a tenth of an attempt's CPU)

    def pool(self, namespace: str) -> NamespacePool:
        """The namespace's pool, for one more subscription (give it back with release())."""
        pool = self.pools.setdefault(namespace, NamespacePool())
        pool.users += 1
        return pool

    async def release(self, namespace: str) -> None:
        pool = self.pools.get(namespace)
        if pool is None:
            return
        pool.users -= 1
        if pool.users <= 0:
            del self.pools[namespace]
            if pool.session is not None:
                await pool.session.close()

    def session(self, namespace: str) -> aiohttp.ClientSession:
        pool = self.pools.setdefault(namespace, NamespacePool())
        if pool.session is None:
            # No proxies from the environment, no cookies; per-attempt timeouts are set per request.
            # Every address connected to, resolved or literal, passes the egress policy first.
            connector = aiohttp.TCPConnector(
                limit=NAMESPACE_CONNECTIONS,
                keepalive_timeout=30,
                resolver=self.resolver,
                socket_factory=self.egress.socket_factory,
            )
            pool.session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
        return pool.session

    async def close(self) -> None:
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            if pool.session is not None:
                await pool.session.close()

    def url_refusal(self, url: str) -> Failure | None:
        """Why no event will go to `url`, as far as the URL shows (its name is judged when connecting)."""
        if url not in self._refusals:
            if len(self._refusals) >= REFUSALS_CACHED:
                self._refusals.clear()
            self._refusals[url] = self._url_refusal(url)
        return self._refusals[url]

    def _url_refusal(self, url: str) -> Failure | None:
        problem = url_problem(url)
        if problem:
            return Failure(INVALID_URL.category, problem, retryable=False)
        address = host_address(url)
        if address is not None and self.egress.refusal(address) is not None:
            return ADDRESS_NOT_ALLOWED
        return None

    async def attempt(self, spec: SubscriptionSpec, pending: Pending, number: int) -> Outcome:
        refusal = self.url_refusal(spec.url)
        if refusal is not None:
            return Outcome.failed(refusal)
        try:
            key = await self.keys.get(spec.namespace, spec.secret_name, spec.secret_key)
        except SigningKeyError as error:
            return Outcome(False, f"signing key: {error}", retryable=True, ready=("False", error.reason, str(error)))
        headers = {
            "Content-Type": pending.content_type,
            SIGNATURE_HEADER: sign(key, pending.body),
            "X-Hoststate-Delivery-Attempt": str(number),
        }
        try:
            async with self.session(spec.namespace).post(
                spec.url,
                data=pending.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=attempt_timeout(spec.timeout)),
                allow_redirects=False,  # a redirect would take a signed event elsewhere
            ) as response:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.content.read(4096)
                if 200 <= response.status < 300:
                    return Outcome(True, ready=READY)
                return Outcome.failed(
                    http_failure(response.status), retry_after=_retry_after(response.headers.get("Retry-After"))
                )
        except TimeoutError:
            return Outcome.failed(timeout_failure(spec.timeout))
        except aiohttp.ClientError as error:
            # The details for the operator's log only: they name what answered at the tenant's address.
            logger.debug("subscription %s/%s: attempt %d failed: %r", spec.namespace, spec.name, number, error)
            return Outcome.failed(client_failure(error))


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    return None


class Channel:
    """One subscription's queues, workers, delivery state and acknowledgements."""

    def __init__(
        self,
        spec: SubscriptionSpec,
        deliverer: Deliverer,
        status: dict[str, Any] | None,
        *,
        created: datetime | None = None,
        unrecorded_since: Callable[[], datetime | None] = lambda: None,
        status_period: float = 5.0,
        concurrency: int = CONCURRENCY,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.spec = spec
        self.deliverer = deliverer
        self.state = DeliveryState.from_status(status)
        self.state.generation = spec.generation
        now = utcnow()
        self.acks = Acknowledgements.from_status(status, created or now, now)
        self.unrecorded_since = unrecorded_since
        self.max_pending = max_pending
        self.pending = 0
        self.pool = deliverer.pool(spec.namespace)
        self.concurrency = concurrency
        # Per server (or host): its requests in order, each as a plain tuple of a Pending's fields. The
        # garbage collector stops tracking an exact tuple of strings, bytes and times once it has seen it
        # (not a NamedTuple's instance): a hanging webhook's tens of thousands add nothing to its pauses.
        self._queues: dict[str, deque[tuple[Any, ...]]] = {}
        self._ready: deque[str] = deque()  # queues with a request and no worker on them
        self._workers: set[asyncio.Task[None]] = set()  # at most `concurrency`: the attempts in flight
        self._in_flight = 0
        self._heads_attempted: set[str] = set()  # queues whose first request's first attempt is told
        self._last_answer = asyncio.get_running_loop().time()  # of an attempt (or the channel's start)
        self.status_period = status_period
        self.writer = StatusWriter(self._write_status, period=self._status_period, name=f"{spec.namespace}/{spec.name}")
        self._check: asyncio.Task[None] | None = None
        self.check_ready()

    # -- spec ------------------------------------------------------------------------
    def update(self, spec: SubscriptionSpec) -> None:
        """A new generation: later attempts use it (queued events go to the new URL)."""
        if spec.secret_name != self.spec.secret_name:
            self.deliverer.keys.forget(spec.namespace, self.spec.secret_name)
        self.deliverer.keys.forget(spec.namespace, spec.secret_name)
        self.spec = spec
        self.state.generation = spec.generation
        self.check_ready()

    def check_ready(self) -> None:
        """Validate the URL and fetch the key now, so that status tells a tenant before an event does."""
        if self._check is not None:
            self._check.cancel()
        self._check = asyncio.create_task(self._check_ready(), name=f"check {self.spec.namespace}/{self.spec.name}")

    async def _check_ready(self) -> None:
        spec = self.spec
        refusal = self.deliverer.url_refusal(spec.url)
        if refusal is not None:
            ready = ("False", refusal.category, refusal.message)
        else:
            try:
                await self.deliverer.keys.get(spec.namespace, spec.secret_name, spec.secret_key)
                ready = READY
            except SigningKeyError as error:
                ready = ("False", error.reason, str(error))
        changed = self.state.set_condition("Ready", *ready, utcnow())
        if "Delivering" not in self.state.conditions:
            changed = self.state.set_condition("Delivering", "Unknown", "NoEvents", "no event to deliver yet", utcnow())
        if changed or self.state.written_generation != spec.generation:
            # Not on every operator start: a subscription whose status is current is not rewritten.
            self.state.written_generation = spec.generation
            self.writer.mark(urgent=True)

    # -- events ----------------------------------------------------------------------
    @property
    def batched(self) -> bool:
        return self.spec.delivery == PER_HOST_TRANSITION

    @property
    def answering(self) -> bool:
        """Its last attempt did not fail, and nothing it has in flight went unanswered for ANSWER_WINDOW."""
        if self.state.consecutive_failures:
            return False
        return not self._in_flight or asyncio.get_running_loop().time() - self._last_answer < ANSWER_WINDOW

    def offer_transition(
        self,
        transition_id: str,
        decided: datetime,
        requests: list[tuple[str, Pending]],
        first: FirstAttempts | None = None,
        *,
        dropped: int = 0,
    ) -> None:
        """Queue the requests (queue, request) of a host transition; none: nothing of it is for this
        subscription (acknowledged at once, written with the next status write). `first` is told of each
        request's first attempt. Those beyond the bounds, and `dropped` events more (not made into
        requests: the queue was `full`), are dropped in one count (see offer)."""
        queued = 0
        for queue, pending in requests:  # no await: no worker runs before the counts below are set
            if self._has_room(pending):
                self._queue(queue, pending if first is None else pending._replace(first=first))
                queued += 1
            else:
                dropped += pending.events
        self.acks.offered(transition_id, decided, queued)
        if first is not None:
            first.expect(queued)
        if dropped:
            self._drop(dropped)

    def offer(self, queue: str, pending: Pending) -> bool:
        """Queue a request on `queue` (a server's uid, or a host); False (counted as dropped, and as given
        up) when the subscription's or its namespace's queue is full."""
        if not self._has_room(pending):
            self._drop(pending.events)
            self._finished(pending)
            return False
        self._queue(queue, pending)
        return True

    @property
    def full(self) -> bool:
        return self.pending >= self.max_pending or self.pool.queued >= NAMESPACE_MAX_PENDING

    def _has_room(self, pending: Pending) -> bool:
        return self.pending + pending.events <= self.max_pending and self.pool.queued < NAMESPACE_MAX_PENDING

    def _drop(self, events: int) -> None:
        self.state.dropped_events(events)
        self.deliverer.metrics.notifications.labels(result="dropped").inc(events)
        self.writer.mark()

    def _queue(self, queue: str, pending: Pending) -> None:
        self.pending += pending.events
        self.pool.queued += pending.events
        requests = self._queues.get(queue)
        if requests is None:  # a new queue: ready for a worker (a queue in work is not: its worker goes on)
            requests = self._queues[queue] = deque()
            self._ready.append(queue)
            if len(self._workers) < self.concurrency:
                worker = asyncio.create_task(self._work(), name=f"notify {self.spec.namespace}/{self.spec.name}")
                self._workers.add(worker)
                worker.add_done_callback(self._workers.discard)
        requests.append(tuple(pending))

    def _finished(self, pending: Pending) -> None:
        """Delivered, given up or dropped: acknowledged (a crash before then redelivers it)."""
        if pending.transition_id and self.acks.finished(pending.transition_id):
            self.writer.mark()

    async def _work(self) -> None:
        """A worker: takes a ready queue and delivers its requests in order, one at a time, then the next.
        A few workers per subscription, not a task per server: a host of 1,000 servers is 16 tasks."""
        while self._ready:
            name = self._ready.popleft()
            queue = self._queues[name]
            while queue:
                pending = Pending._make(queue[0])
                try:
                    await self._deliver(name, pending)
                except Exception:  # a bug must not wedge this server's queue
                    logger.exception("subscription %s/%s: delivery failed", self.spec.namespace, self.spec.name)
                    self.deliverer.metrics.notifications.labels(result="failed").inc(pending.events)
                    self.state.gave_up(pending.events)
                    self._attempted(name, pending)
                queue.popleft()  # only now: the next event of this server waits for this one
                self._heads_attempted.discard(name)
                self.pending -= pending.events
                self.pool.queued -= pending.events
                self._finished(pending)
            # No await between the empty check and here: an offer() in between sees the queue in work.
            del self._queues[name]

    def _attempted(self, queue: str, pending: Pending) -> None:
        """The request at the head of `queue` had its first attempt (or none will come): told once."""
        if pending.first is not None and queue not in self._heads_attempted:
            self._heads_attempted.add(queue)
            pending.first.one()

    async def _deliver(self, queue: str, pending: Pending) -> None:
        metrics = self.deliverer.metrics
        retry = 0
        while True:
            self._in_flight += 1  # waiting for a slot too: a namespace whose slots all hang does not answer
            try:
                async with self.pool.slots:
                    outcome = await self.deliverer.attempt(self.spec, pending, retry + 1)
            finally:
                self._in_flight -= 1
            self._last_answer = asyncio.get_running_loop().time()
            self._attempted(queue, pending)
            now = utcnow()
            if outcome.ready is not None and self.state.set_condition("Ready", *outcome.ready, now):
                self.writer.mark(urgent=True)
            if outcome.ok:
                metrics.notifications.labels(result="delivered").inc(pending.events)
                latency = max(0.0, (now - pending.transition_time).total_seconds())
                for _ in range(pending.events):
                    metrics.notification_latency.observe(latency)
                urgent = self.state.succeeded(now)
                self.state.delivered += pending.events - 1
                self.writer.mark(urgent=urgent)
                return
            self.writer.mark(urgent=self.state.attempt_failed(outcome.error, now))
            if not outcome.retryable or retry >= self.spec.max_retries:
                logger.warning(
                    "subscription %s/%s: event %s given up after %d attempts: %s",
                    self.spec.namespace,
                    self.spec.name,
                    pending.event_id,
                    retry + 1,
                    outcome.error,
                )
                metrics.notifications.labels(result="failed").inc(pending.events)
                self.state.gave_up(pending.events)
                self.writer.mark(urgent=True)  # a lost event is worth telling at once
                return
            metrics.notification_retries.inc()
            delay = backoff_delay(retry)
            if outcome.retry_after is not None:
                delay = max(delay, outcome.retry_after)
            retry += 1
            await asyncio.sleep(delay)

    # -- status -------------------------------------------------------------------------
    def _status_period(self) -> float:
        """Seconds between writes of ordinary changes: HANGING_STATUS_SLOWDOWN times longer while the
        receiver leaves attempts unanswered. Such a subscription's conditions say so at once (urgent);
        what changes after (its queue filling, then dropping) is written once a minute, so a tenant's
        hundred hanging webhooks do not load the API server every tenant's records go through."""
        if self._in_flight and asyncio.get_running_loop().time() - self._last_answer >= ANSWER_WINDOW:
            return self.status_period * HANGING_STATUS_SLOWDOWN
        return self.status_period

    async def _write_status(self) -> None:
        await self.deliverer.before_status_write()
        async with self.deliverer.status_writes:
            spec = self.spec
            self.acks.compact(self.unrecorded_since())
            patch = self.state.patch()
            patch["status"].update(self.acks.patch())
            try:
                await self.deliverer.client.patch(
                    HOST_STATUS_SUBSCRIPTIONS, spec.name, patch, spec.namespace, subresource="status"
                )
            except ApiError as error:
                if error.status != 404:  # deleted meanwhile: nothing to report to
                    raise

    async def close(self, *, deleted: bool = True, flush_timeout: float = 2.0) -> int:
        """Stop delivering; return how many events were still queued. `deleted`: the subscription is
        gone (they are dropped, counted); otherwise they stay unacknowledged for whoever delivers next,
        and the acknowledgements so far are written once (within `flush_timeout`)."""
        tasks = [*self._workers, *([self._check] if self._check else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name, queue in self._queues.items():  # none will be attempted: nobody waits for them
            for pending in map(Pending._make, list(queue)[1:] if name in self._heads_attempted else queue):
                if pending.first is not None:
                    pending.first.one()
        await self.writer.stop()
        if not deleted:
            try:
                await asyncio.wait_for(self._write_status(), flush_timeout)
            except (Exception, TimeoutError) as error:  # the next leader redelivers: duplicates, not losses
                logger.warning("subscription %s/%s: final status not written: %s", *self.spec.key, error)
        self.deliverer.keys.forget(self.spec.namespace, self.spec.secret_name)
        await self.deliverer.release(self.spec.namespace)
        left, self.pending = self.pending, 0
        self.pool.queued -= left
        if left and deleted:
            self.deliverer.metrics.notifications.labels(result="dropped").inc(left)
        return left
