"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm, and a client that
writes only while this process leads.

The algorithm is client-go's (tools/leaderelection): every `retry_period` each candidate reads the
Lease; a holder other than us is respected while the record we observed last changed less than its
`leaseDurationSeconds` ago (measured on our monotonic clock from when *we* saw it change, so the
clocks of the replicas need not agree); otherwise we take it with an update conditioned on the
resourceVersion we read (two candidates cannot both win). The leader renews every `retry_period`,
with client-go's fast path: one write conditioned on the version it wrote last, without reading
first (one request, not two, in the renew deadline of a loaded API server); when that write fails
(409: someone else wrote), it reads and decides as a candidate would.

No two writers: the leader's writes are allowed until `renew_deadline` after the start of its last
successful renewal (`valid_until`, monotonic). That start precedes the renewal reaching the API
server, which precedes any standby observing it, and a standby waits a full lease duration from its
observation: so the leader stops writing at least `lease_duration - renew_deadline` before another
can take the Lease. A graceful stop releases the Lease (holder empty, duration 1 s, as client-go's
ReleaseOnCancel), and the standby takes it at its next poll. The campaign runs on a thread of its
own, so that a busy event loop (a fan-out, a long list) does not delay renewals and lose the Lease.

Why not kubernetes_asyncio's leaderelection: it needs that client's configuration and models, which
this project dropped (the KubeClient here is raw JSON over aiohttp), it calls its callbacks only
after the renew deadline has already passed (a lost leader may write until then), and it exposes no
"valid until" to gate each write on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from ..kubetime import kube_micro_time, utcnow
from .api_resources import LEASES
from .client import ApiError, KubeClient

logger = logging.getLogger(__name__)

# A standby's polls are spread by up to this share of the retry period (client-go jitters by 1.2,
# which would double the takeover time bound).
JITTER = 0.2
# Methods that change nothing: allowed to standbys.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Methods that record a field manager in managedFields.
MANAGED_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class ElectionTiming:
    """client-go's three durations, in seconds. Defaults: takeover after a leader dies within
    lease_duration + 2 x retry_period (about 2.5 s), a leader stops writing 0.5 s before."""

    lease_duration: float = 2.0  # how long a standby respects a holder it saw renew (whole seconds in the Lease)
    renew_deadline: float = 1.5  # how long the leader writes after its last successful renewal began
    retry_period: float = 0.25  # between renewals, and between a standby's attempts

    def problem(self) -> str | None:
        """Why these durations are unsafe (None: they are fine), with client-go's constraints."""
        if not self.lease_duration > self.renew_deadline > self.retry_period * (1 + JITTER) > 0:
            return "need lease duration > renew deadline > 1.2 x retry period > 0"
        return None

    @property
    def lease_seconds(self) -> int:
        """leaseDurationSeconds is an integer: rounded up, so the promise to standbys only grows."""
        return max(1, math.ceil(self.lease_duration))


class NotLeader(ApiError):
    """A write refused because this process does not lead (or can no longer be sure it does).

    An ApiError (503) so that every writer's error path treats it as the API server refusing a write;
    the new leader's resync redoes whatever it concerned."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(
            503, {"reason": "NotLeader", "message": "this replica does not hold the leader Lease"}, method, path
        )


Callback = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


class LeaderElector:
    """Campaigns for the Lease `namespace`/`name` as `identity` (see the module's doc).

    `clock` is monotonic (validity, observations), `wall` writes renewTime; tests pass their own.
    `on_started_leading` and `on_stopped_leading` run in order, one at a time, off the renew loop.
    """

    def __init__(
        self,
        client: KubeClient,
        name: str,
        namespace: str,
        identity: str,
        timing: ElectionTiming = ElectionTiming(),
        *,
        on_started_leading: Callback = _nothing,
        on_stopped_leading: Callback = _nothing,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if problem := timing.problem():
            raise ValueError(problem)
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.clock = clock
        self.wall = wall
        self.jitter = jitter
        self.valid_until = 0.0  # monotonic: writes are allowed before it
        self.leading = False  # as last announced to the callbacks
        self.transitions = 0  # times this process became leader
        self.previous_holder = ""  # whom we took the Lease from last ("" when it was free or ours)
        # This leadership continues our last one: the Lease was still ours when we acquired it, so
        # nobody else held it (and wrote) since; only our own writes were refused meanwhile.
        self.resumed = False
        self.lease_uid = ""
        self._observed: tuple[Any, ...] | None = None  # (holder, renewTime, resourceVersion) as last seen
        self._observed_at = 0.0  # monotonic: when it last changed, as seen by us
        self._observed_version = ""  # its resourceVersion
        self._observed_spec: Mapping[str, Any] = {}  # its spec
        self._problem = ""  # the last failed attempt's problem, logged once
        self._resigned = False  # stopping: renewals no longer count as leadership
        self._release_on_stop = False
        self._callbacks: asyncio.Task[None] | None = None  # on the caller's loop
        self._main: asyncio.AbstractEventLoop | None = None  # the caller's loop and thread
        self._main_thread = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the campaign's loop, thread and task
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[Any] | None = None

    # -- reading ---------------------------------------------------------------------------
    def is_leader(self) -> bool:
        return self.clock() < self.valid_until

    def check_leading(self, method: str, path: str) -> None:
        if not self.is_leader():
            raise NotLeader(method, path)

    @property
    def holder(self) -> str:
        """The holder as last observed ("" when none or not read yet)."""
        return self._observed[0] if self._observed else ""

    # -- one attempt (client-go's tryAcquireOrRenew) -----------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        """One read and, when the Lease is free, expired or ours, one conditional write. True when
        we hold it now; `valid_until` moves on success."""
        started = self.clock()
        timeout = max(self.valid_until - started, 0.05) if self.is_leader() else self.timing.renew_deadline
        try:
            held = await asyncio.wait_for(self._attempt(), timeout)
        except ApiError as error:
            self._report(str(error), quiet=error.status == 409)  # 409: another candidate wrote first
            held = False
        except (TimeoutError, OSError, ValueError, aiohttp.ClientError) as error:  # ValueError: a bad body
            # A dropped connection (an API server restarting) is a failed attempt, never the campaign's end.
            self._report(f"leader Lease {self.namespace}/{self.name}: {error!r}")
            held = False
        else:
            self._problem = ""
        if held and not self._resigned:
            self.valid_until = started + self.timing.renew_deadline
            if self._resigned:  # resign() ran on the operator's thread meanwhile: it wins
                self.valid_until = 0.0
        elif self.holder and self.holder != self.identity:
            self.valid_until = 0.0  # someone else holds it: stop at once, not at the deadline
        return held

    def _report(self, problem: str, *, quiet: bool = False) -> None:
        """Log a failed attempt: a warning when the problem is new, then quietly (4 attempts a second)."""
        level = logging.DEBUG if quiet or problem == self._problem else logging.WARNING
        logger.log(level, "%s", problem)
        self._problem = problem

    async def _attempt(self) -> bool:
        if self.is_leader() and self.holder == self.identity and await self._renew_as_observed():
            return True
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except ApiError as error:
            if error.status != 404:
                raise
            created = await self.client.create(LEASES, self._new_lease(transitions=0), self.namespace)
            self.previous_holder, self.resumed = "", False
            self._observe(created, self.clock())
            return True
        # Observed when the answer is in, not when asked: the holder's renewal may have landed
        # between the two, and a standby must count its lease duration from after that renewal.
        now = self.clock()
        self._observe(lease, now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.timing.lease_seconds
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # held by another, renewed within its duration as far as we have seen
        transitions = int(spec.get("leaseTransitions") or 0)
        ours = holder == self.identity
        if not self.leading:  # acquiring, not renewing: from whom
            self.previous_holder, self.resumed = ("", True) if ours else (holder, False)
        patch = self._new_lease(
            transitions=transitions if ours else transitions + 1,
            acquired=spec.get("acquireTime") if ours else None,
        )
        patch["metadata"] = {"resourceVersion": lease["metadata"]["resourceVersion"]}  # a precondition: 409 if changed
        updated = await self.client.patch(LEASES, self.name, patch, self.namespace)
        self._observe(updated, self.clock())
        return True

    async def _renew_as_observed(self) -> bool:
        """client-go's fast path for the leader: renew the record we wrote last, conditioned on its
        version (409 if anyone wrote since). False when the write failed: read and decide instead."""
        patch = self._new_lease(
            transitions=int(self._observed_spec.get("leaseTransitions") or 0),
            acquired=self._observed_spec.get("acquireTime"),
        )
        patch["metadata"] = {"resourceVersion": self._observed_version}
        try:
            updated = await self.client.patch(LEASES, self.name, patch, self.namespace)
        except ApiError as error:
            logger.debug("renewing the leader Lease as observed failed (%s): reading it", error)
            return False
        self._observe(updated, self.clock())
        return True

    def _new_lease(self, *, transitions: int, acquired: str | None = None) -> dict[str, Any]:
        now = kube_micro_time(self.wall())
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.timing.lease_seconds,
                "acquireTime": acquired or now,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }

    def _observe(self, lease: Mapping[str, Any], now: float) -> None:
        spec, metadata = lease.get("spec") or {}, lease.get("metadata") or {}
        # Any write is a sign of life (a renewal changes renewTime and, always, resourceVersion).
        record = (spec.get("holderIdentity") or "", spec.get("renewTime"), metadata.get("resourceVersion", ""))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        self._observed_version = metadata.get("resourceVersion", "")
        self._observed_spec = spec
        self.lease_uid = metadata.get("uid", "")

    # -- running ---------------------------------------------------------------------------
    def start(self) -> asyncio.Future[None]:
        """Campaign on a thread of its own (with its own event loop and `client`'s session made
        there): a busy event loop (a fan-out, a large list) must not delay renewals and lose the
        Lease. Writes are checked from any thread against `valid_until`; the callbacks run on the
        caller's loop. The future is done when the thread ends (stop())."""
        self._main = asyncio.get_running_loop()
        self._main_thread = threading.get_ident()
        done: asyncio.Future[None] = self._main.create_future()
        self._thread = threading.Thread(target=self._thread_main, args=(done,), name="leader election", daemon=True)
        self._thread.start()
        return done

    def _thread_main(self, done: asyncio.Future[None]) -> None:
        def finish(error: BaseException | None) -> None:
            if not done.done():
                done.set_exception(error) if error is not None else done.set_result(None)

        outcome: BaseException | None = None
        try:
            asyncio.run(self._campaign())
        except BaseException as error:  # a bug: the operator's health check sees the task done
            outcome = error
        assert self._main is not None
        with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
            self._main.call_soon_threadsafe(finish, outcome)

    async def _campaign(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            await self.run()
        except asyncio.CancelledError:
            pass
        finally:
            if self._release_on_stop:
                await self.release()
            await self.client.close()  # its session belongs to this loop

    async def run(self) -> None:
        """Campaign, lead while renewals succeed, campaign again: until cancelled."""
        while True:
            await self.try_acquire_or_renew()
            self._announce()
            period = self.timing.retry_period
            if not self.leading:
                period *= 1 + JITTER * self.jitter()
            # A leader whose renewals fail wakes at its deadline, to announce the loss on time.
            wake = min(period, self.valid_until - self.clock()) if self.leading else period
            await asyncio.sleep(max(wake, 0))
            self._announce()

    def _announce(self) -> None:
        leading = self.is_leader()
        if leading == self.leading:
            return
        self.leading = leading
        if leading:
            self.transitions += 1
            logger.info("%s leads (Lease %s/%s)", self.identity, self.namespace, self.name)
        else:
            logger.warning("%s no longer leads (Lease %s/%s)", self.identity, self.namespace, self.name)
        callback = self.on_started_leading if leading else self.on_stopped_leading
        if self._main is None or threading.get_ident() == self._main_thread:
            self._chain(callback)
        else:
            self._main.call_soon_threadsafe(self._chain, callback)

    def _chain(self, callback: Callback) -> None:
        """Run `callback` on this loop once the previous callbacks are done."""
        previous = self._callbacks

        async def in_order() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await callback()
            except Exception:  # a callback's bug must not stop the election
                logger.exception("leadership callback failed")

        self._callbacks = asyncio.create_task(in_order(), name="leadership callbacks")

    async def resign(self) -> None:
        """Stop writing at once, and wait for the stopped-leading callbacks. The campaign goes on
        (renewals are no longer taken as leadership) until stop()."""
        self._resigned = True
        self.valid_until = 0.0
        self._announce()
        if self._callbacks is not None:
            await asyncio.gather(self._callbacks, return_exceptions=True)

    async def stop(self, *, release: bool = True) -> None:
        """End the campaign (resigned first), releasing the Lease if it is ours (see release())."""
        await self.resign()
        self._release_on_stop = release
        if self._thread is None:  # never campaigned on a thread
            if release:
                await self.release()
            await self.client.close()
            return
        while self._task is None and self._thread.is_alive():  # just started: its loop is coming up
            await asyncio.sleep(0.01)
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._loop.call_soon_threadsafe(self._task.cancel)
        await asyncio.to_thread(self._thread.join)

    async def release(self) -> None:
        """Give the Lease up, if we still hold it: holder empty, duration 1 s (client-go's
        ReleaseOnCancel), conditioned on the version we wrote, so that a Lease another took is kept."""
        if self.holder != self.identity or not self._observed_version:
            return
        now = kube_micro_time(self.wall())
        patch = {
            "metadata": {"resourceVersion": self._observed_version},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now},
        }
        try:
            await asyncio.wait_for(
                self.client.patch(LEASES, self.name, patch, self.namespace), self.timing.renew_deadline
            )
        except (ApiError, TimeoutError, OSError) as error:
            logger.warning("could not release the leader Lease %s/%s: %s", self.namespace, self.name, error)
            return
        self._observed = None
        logger.info("%s released the leader Lease %s/%s", self.identity, self.namespace, self.name)


class LeaderOnlyClient(KubeClient):
    """A view of `client` (its session, credentials and requests) whose writes go out only while
    `elector` leads: any method but a read raises NotLeader before a byte is sent. Writes that take
    a field manager name the elector's identity (the Lease's holder): managedFields say which
    replica wrote, unless the caller names another manager."""

    def __init__(self, client: KubeClient, elector: LeaderElector) -> None:  # a view: nothing of its own
        self.inner = client
        self.elector = elector

    def __getattr__(self, name: str) -> Any:  # what the view does not override is the client's
        return getattr(self.inner, name)

    @property
    def session(self) -> Any:
        return self.inner.session

    def refresh_credentials(self) -> bool:
        return self.inner.refresh_credentials()

    def as_token_holder(self, token: str) -> KubeClient:
        return self.inner.as_token_holder(token)

    async def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        if method not in READ_METHODS:
            self.elector.check_leading(method, path)
        if method in MANAGED_METHODS:
            params = {"fieldManager": self.elector.identity[:128], **(params or {})}
        return await self.inner.request(method, path, params=params, **kwargs)

    async def close(self) -> None:
        return None  # the session is the client's to close
