"""The operator's logic: from watch events and heartbeat deadlines to status writes.

Handlers feed it events; it keeps the indexes, one heartbeat timer per service, and
schedules status writes through coalescers (one job per service, per host fan-out and
per server at a time). Everything is level-based: each job recomputes the desired value
when it runs, so a burst of changes converges to the last one.

Tenants are told from the decision, not from the writes: when a host's status changes (a
force-down seen, a heartbeat deadline passed, a disable), the transition is decided at once for
every server on the host from the indexes, recorded in the ComputeService's status (one write per
host transition), and then handed to the host transition listeners. Only then do the servers' status
writes start, and they first wait (at most `notify_first` seconds) until the listeners say the tenants
were told: a tenant's requests do not queue behind a thousand status writes on this core and at the
API server, and no Server's status shows a transition its service's status does not record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime
from typing import Any

from .. import API_GROUP_VERSION
from ..domain import (
    HostStatus,
    HostTransition,
    ServerTransition,
    heartbeat_deadline,
    host_status,
    host_transition_id,
    service_is_up,
    service_view,
    transition_reason,
)
from ..kube import COMPUTE_SERVICES, SERVERS, ApiError, KubeClient
from ..kubetime import kube_micro_time, parse_kube_time, utcnow
from ..prometheus import OperatorMetrics
from ..resources.computeservice import RECENT_TRANSITIONS
from .coalescer import Coalescer
from .config import OperatorConfig
from .events import EventRecorder, ObjectRef
from .indexes import ServerIndex, ServerKey, ServerRecord, ServiceIndex, ServiceRecord, is_stale

# Returns None, or what to wait for before the host's status writes (their tenants told; see Reconciler).
HostTransitionListener = Callable[[HostTransition, list[ServerTransition]], Awaitable[Any] | None]
from .status_patches import server_status_patch, service_status_is_current, service_status_patch

logger = logging.getLogger(__name__)

# A timer fires this long after the deadline: liveness is `age <= down time`, so at the
# deadline itself the service is still up.
TIMER_SLACK = 0.005


def recorded_transitions(status: dict[str, Any], host: str) -> list[HostTransition]:
    """The host transitions a ComputeService's status records, oldest first."""
    transitions = []
    for item in status.get("recentTransitions") or ():
        try:
            time = parse_kube_time(item["time"])
            transitions.append(
                HostTransition(item["id"], host, item["oldHostStatus"], item["newHostStatus"], item["reason"], time)
            )
        except (KeyError, TypeError, ValueError):
            continue  # written by hand or by another version: not ours to redeliver
    return transitions


class HostGate:
    """Closed while a host has transitions decided and not yet recorded, or recorded and being told."""

    def __init__(self) -> None:
        self.holds = 0  # one per such transition
        self.opened = asyncio.Event()


def transition_status(transition: HostTransition) -> dict[str, str]:
    return {
        "id": transition.id,
        "oldHostStatus": transition.old,
        "newHostStatus": transition.new,
        "reason": transition.reason,
        "time": kube_micro_time(transition.time),
    }


class Reconciler:
    """Keeps ComputeService and Server statuses what the domain rules say they should be.

    Fed synchronously from the event loop (service, heartbeat and Server events); it keeps the
    indexes and one heartbeat timer per service, and writes through one Coalescer: one job per
    service, per host fan-out and per server at a time, at most `fanout_concurrency` Server
    patches in flight. `clock` gives "now" for liveness (tests pass their own); timers run on the
    event loop's clock. Every Server transition it writes goes to `transition_listeners`; every host
    transition, once recorded, goes with its servers' transitions to `host_transition_listeners`, and
    the host's Server writes wait for what those return (an awaitable: the tenants told), at most
    `config.notify_first` seconds from the record.
    """

    def __init__(
        self,
        client: KubeClient,
        config: OperatorConfig,
        events: EventRecorder,
        metrics: OperatorMetrics,
        *,
        clock: Callable[[], datetime] = utcnow,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.leading = leading
        self.config = config
        self.events = events
        self.metrics = metrics
        self.clock = clock
        self.services = ServiceIndex()
        self.servers = ServerIndex()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._patches = asyncio.Semaphore(config.fanout_concurrency)
        self._jobs = Coalescer(on_error=self._count_error)
        self._fanout_since: dict[str, float] = {}  # host -> when its change was first observed
        # Called for every Server transition the operator writes; must not block (queue the work).
        self.transition_listeners: list[Callable[[ServerTransition], None]] = []
        # Called for every host transition once recorded in its service's status, with the transitions
        # of the servers on the host at the decision; must not block either. What one returns (an
        # awaitable) holds the host's status writes until done, or `config.notify_first` seconds.
        self.host_transition_listeners: list[HostTransitionListener] = []
        self._gates: dict[str, HostGate] = {}  # host -> its gate, while closed
        self._telling: set[asyncio.Task[None]] = set()
        self._decided: dict[str, str] = {}  # service name -> the host status last decided
        # Decided, not yet recorded in the service's status (their events wait for the record).
        self._unrecorded: dict[str, list[tuple[HostTransition, list[ServerTransition]]]] = {}
        # Servers whose new host status was announced before their status write: key -> that status.
        self._announced: dict[ServerKey, str] = {}

    def _count_error(self, key: Hashable, error: BaseException) -> None:
        kind = key[0] if isinstance(key, tuple) else "other"
        self.metrics.reconcile_errors.labels(kind=kind).inc()

    # -- what things should be ------------------------------------------------
    def desired_host_status(self, host: str) -> HostStatus:
        if not host:
            return HostStatus.NONE
        service = self.services.compute_service(host)
        if service is None:
            return HostStatus.NONE
        return host_status(self.services.facts(service, self.clock(), self.config.down_time))

    # -- ComputeServices --------------------------------------------------------
    def service_seen(self, body: dict[str, Any]) -> None:
        record = ServiceRecord.from_body(body)
        known = self.services.by_name.get(record.name)
        if known is not None and known.uid == record.uid and is_stale(record.resource_version, known.resource_version):
            return  # an event older than our own status write
        self.services.upsert(record)
        self._service_changed(record.name, record.host)

    def service_deleted(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        record = self.services.remove(name)
        self._cancel_timer(name)
        self._decided.pop(name, None)
        self._release(name, len(self._unrecorded.get(name, ())))  # no status left to record them in
        if record is not None and record.is_compute:
            self.request_fanout(record.host)

    def _service_changed(self, name: str, host: str) -> None:
        self._schedule_deadline(name)
        record = self.services.by_name.get(name)
        if record is not None and record.is_compute:
            self._decide(record)
        self._jobs.request(("service", name), lambda: self._write_service_status(name))
        if record is not None and record.is_compute:
            self.request_fanout(host)

    # -- host transitions ---------------------------------------------------------------
    def _decide(self, record: ServiceRecord) -> None:
        """The host's status now; when it changed, the transition of every server on the host, at once."""
        now = self.clock()
        new = host_status(self.services.facts(record, now, self.config.down_time)).value
        old = self._decided.get(record.name)
        if old is None:  # first sight (a start, a new service): what the status last recorded
            recorded = recorded_transitions(record.status, record.host)
            old = recorded[-1].new if recorded else record.status.get("hostStatus") or ""
        self._decided[record.name] = new
        if new == old or not self.leading():
            # A standby cannot record nor tell: it keeps nothing (forget_decisions at takeover decides again).
            return
        reason = transition_reason(HostStatus(new), record.host)
        transition = HostTransition(host_transition_id(record.uid, old, new, now), record.host, old, new, reason, now)
        servers = []
        for server in self.servers.on_host(record.host):
            told = self._announced.get(server.key, server.host_status or "")
            if told != new:
                self._announced[server.key] = new
                servers.append(transition.for_server(*server.key, server.uid, told))
        self._unrecorded.setdefault(record.name, []).append((transition, servers))
        self._gates.setdefault(record.host, HostGate()).holds += 1

    def forget_decisions(self) -> None:
        """On becoming the leader, before the resync: decide again from what the services' statuses
        record, not from what this replica decided while it could not record (a standby's decisions
        were never told; the last leader's are in the statuses)."""
        self._decided.clear()
        self._unrecorded.clear()
        self._announced.clear()
        self._open_gates()

    def _open_gates(self) -> None:
        for task in self._telling:
            task.cancel()
        gates, self._gates = self._gates, {}
        for gate in gates.values():
            gate.opened.set()

    def _release(self, name: str, count: int) -> None:
        """The first `count` unrecorded transitions of a service are recorded (or cannot be): tell."""
        unrecorded = self._unrecorded.pop(name, [])
        released = unrecorded[:count]
        if unrecorded[count:]:
            self._unrecorded[name] = unrecorded[count:]
        for transition, servers in released:
            told = []
            for listener in self.host_transition_listeners:
                try:
                    answer = listener(transition, servers)
                except Exception:  # a listener's bug must not stop the others
                    logger.exception("host transition listener failed")
                    continue
                if answer is not None:
                    told.append(asyncio.ensure_future(answer))
            if not told:
                self._open(transition.host)
                continue
            task = asyncio.create_task(self._open_when_told(transition.host, told), name=f"tell {transition.id}")
            self._telling.add(task)
            task.add_done_callback(self._telling.discard)

    async def _open_when_told(self, host: str, told: list[asyncio.Future[Any]]) -> None:
        """The host's writes wait for the tenants, not for ever: a hanging webhook holds them `notify_first`."""
        await asyncio.wait(told, timeout=self.config.notify_first)
        self._open(host)

    def _open(self, host: str) -> None:
        gate = self._gates.get(host)
        if gate is None:
            return
        gate.holds -= 1
        if gate.holds <= 0:
            del self._gates[host]
            gate.opened.set()

    @property
    def telling(self) -> bool:
        """A host transition is being recorded or its tenants told, now."""
        return bool(self._gates)

    async def told_so_far(self) -> None:
        """Until the hosts being told now are told, at most `notify_first`: the operator's other writes
        (other hosts' Server statuses in a zone failure, Events) wait for the tenants too, and a stream of
        new transitions cannot hold them longer."""
        waits = [asyncio.ensure_future(gate.opened.wait()) for gate in self._gates.values()]
        if not waits:
            return
        _, unfinished = await asyncio.wait(waits, timeout=self.config.notify_first)
        for wait in unfinished:
            wait.cancel()

    async def _told(self, host: str) -> None:
        """Until the host's transitions are recorded and told (see HostGate)."""
        gate = self._gates.get(host)
        if gate is not None:
            await gate.opened.wait()

    def _last_transition(self, host: str) -> HostTransition | None:
        """The host's last transition, decided or recorded."""
        service = self.services.compute_service(host)
        if service is None:
            return None
        unrecorded = self._unrecorded.get(service.name)
        if unrecorded:
            return unrecorded[-1][0]
        recorded = recorded_transitions(service.status, host)
        return recorded[-1] if recorded else None

    def recorded_transitions(self) -> list[HostTransition]:
        """Every compute service's recorded transitions, oldest first (for redelivery)."""
        transitions = [
            transition
            for record in self.services.by_name.values()
            if record.is_compute
            for transition in recorded_transitions(record.status, record.host)
        ]
        return sorted(transitions, key=lambda transition: transition.time)

    def oldest_unrecorded(self) -> datetime | None:
        """When the oldest transition decided but not yet recorded was decided."""
        return min((pending[0][0].time for pending in self._unrecorded.values()), default=None)

    def servers_on_host(self, host: str) -> list[ServerRecord]:
        return self.servers.on_host(host)

    def labels_of(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.servers.labels_of(namespace, name)

    # -- heartbeats ----------------------------------------------------------------
    def heartbeat(self, name: str, renewed: datetime) -> None:
        previous = self.services.heartbeats.get(name)
        if previous == renewed:
            return
        self.services.heartbeats[name] = renewed
        record = self.services.by_name.get(name)
        if record is None:
            return  # the agent started before its service exists: kept for when it comes
        was_up = service_is_up(
            forced_down=record.forced_down, last_heartbeat=previous, now=self.clock(), down_time=self.config.down_time
        )
        if was_up:
            self._schedule_deadline(name)  # still up: only the deadline moves
        else:
            self._service_changed(name, record.host)

    def heartbeat_gone(self, name: str) -> None:
        if self.services.heartbeats.pop(name, None) is None:
            return
        record = self.services.by_name.get(name)
        if record is not None:
            self._service_changed(name, record.host)

    def _schedule_deadline(self, name: str) -> None:
        self._cancel_timer(name)
        record = self.services.by_name.get(name)
        if record is None:
            return
        deadline = heartbeat_deadline(self.services.last_heartbeat(record), self.config.down_time)
        if deadline is None:
            return
        delay = (deadline - self.clock()).total_seconds()
        if delay < 0:
            return  # already past: the status job that runs now sees it down
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(delay + TIMER_SLACK, self._deadline_passed, name)

    def _deadline_passed(self, name: str) -> None:
        self._timers.pop(name, None)
        record = self.services.by_name.get(name)
        if record is not None:
            logger.info("heartbeat of %s is older than %ss", name, self.config.down_time)
            self.metrics.heartbeat_expiries.inc()
            self._service_changed(name, record.host)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    # -- ComputeService status ---------------------------------------------------------
    async def _write_service_status(self, name: str) -> None:
        record = self.services.by_name.get(name)
        if record is None:
            return
        now = self.clock()
        view = service_view(self.services.facts(record, now, self.config.down_time))
        unrecorded = [transition for transition, _ in self._unrecorded.get(name, [])]
        if not unrecorded and service_status_is_current(record.status, view, record.generation, record.forced_down):
            return
        before = dict(record.status)
        patch = service_status_patch(
            record.status,
            view,
            generation=record.generation,
            forced_down=record.forced_down,
            last_heartbeat=self.services.last_heartbeat(record),
            now=now,
        )
        if unrecorded:  # the ring of recent transitions, in the same write (merge patch: the whole list)
            ring = recorded_transitions(record.status, record.host) + unrecorded
            patch["status"]["recentTransitions"] = [transition_status(t) for t in ring[-RECENT_TRANSITIONS:]]
        try:
            answer = await self.client.patch(COMPUTE_SERVICES, name, patch, subresource="status")
        except ApiError as error:
            if error.status == 404:
                self._release(name, len(unrecorded))  # deleted meanwhile: told, though no record can hold it
                return
            raise
        current = self.services.by_name.get(name)
        if current is not None and current.uid == answer["metadata"].get("uid"):
            current.status = dict(answer.get("status") or {})
            current.resource_version = ServiceRecord.from_body(answer).resource_version
        self._release(name, len(unrecorded))
        self._record_service_transition(record, before, view)

    def _record_service_transition(self, record: ServiceRecord, before: dict[str, Any], view: Any) -> None:
        ref = ObjectRef(API_GROUP_VERSION, "ComputeService", record.name, record.uid)
        if before.get("state") != view.state:
            cause = (
                "forced down"
                if record.forced_down
                else ("heartbeat fresh" if view.state == "up" else f"no heartbeat for {self.config.down_time:g}s")
            )
            logger.info("service %s is %s (%s)", record.name, view.state, cause)
            self.events.record(
                ref,
                "ServiceUp" if view.state == "up" else "ServiceDown",
                f"service {record.name} is {view.state}: {cause}",
                warning=view.state == "down",
            )
        if before.get("hostStatus") != view.host_status.value:
            self.events.record(
                ref,
                "HostStatusChanged",
                f"host {record.host} is {view.host_status.value or 'unset'} (was {before.get('hostStatus') or 'unset'})",
                warning=view.host_status in (HostStatus.DOWN, HostStatus.UNKNOWN),
            )

    # -- Servers --------------------------------------------------------------------------
    def server_seen(self, body: dict[str, Any]) -> None:
        record = self.servers.upsert(ServerRecord.from_body(body))
        if record is None or not self.leading():
            return  # a standby only indexes (at 100,000 Servers, its start): its takeover's resync checks them
        if record.host_status != self.desired_host_status(record.host).value:
            key = record.key
            self._jobs.request(("server", key), lambda: self._patch_server(key))

    def server_deleted(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self.servers.remove(key)
        self._announced.pop(key, None)

    def server_changed(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Informer handler."""
        if kind == "DELETED":
            assert old is not None
            self.server_deleted(old)
        else:
            assert new is not None
            self.server_seen(new)

    def request_fanout(self, host: str) -> None:
        self._fanout_since.setdefault(host, asyncio.get_running_loop().time())
        self._jobs.request(("host", host), lambda: self._fanout(host))

    async def _fanout(self, host: str) -> None:
        await self._told(host)
        await self.told_so_far()  # and the other hosts' tenants (a zone failure: every record and event first)
        desired = self.desired_host_status(host).value
        stale = []
        for record in self.servers.on_host(host):
            if record.host_status != desired:
                stale.append(record.key)
            elif self._announced.get(record.key) == desired:
                del self._announced[record.key]  # announced, and already so (it flapped back before a write)
        if not stale:
            self._fanout_since.pop(host, None)
            return
        results = await asyncio.gather(*(self._patch_server(key) for key in stale), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        self.metrics.fanout_servers.inc(len(stale) - len(failures))
        if not failures:
            since = self._fanout_since.pop(host, None)
            if since is not None:
                self.metrics.fanout_duration.observe(asyncio.get_running_loop().time() - since)
        else:
            raise RuntimeError(
                f"{len(failures)} of {len(stale)} servers on {host} not patched: {failures[0]}"
            ) from failures[0]  # a NotLeader cause makes the Coalescer drop the job

    async def _patch_server(self, key: ServerKey) -> None:
        record = self.servers.by_key.get(key)
        if record is not None:
            await self._told(record.host)  # a Server's own write too: never ahead of its host's record
        async with self._patches:
            record = self.servers.by_key.get(key)
            if record is None:
                return
            desired = self.desired_host_status(record.host).value
            if record.host_status == desired:
                if self._announced.get(key) == desired:
                    del self._announced[key]
                return
            previous = record.host_status
            started = asyncio.get_running_loop().time()
            try:
                answer = await self.client.patch(
                    SERVERS,
                    key[1],
                    server_status_patch(desired, record.generation, self.clock()),
                    namespace=key[0],
                    subresource="status",
                )
            except ApiError as error:
                if error.status == 404:
                    self.servers.remove(key)
                    return
                raise
            self.metrics.status_patch_duration.observe(asyncio.get_running_loop().time() - started)
        self.servers.upsert(ServerRecord.from_body(answer))
        told = self._announced.get(key)
        if told == desired:
            del self._announced[key]
        self._record_server_transition(record, previous or "", desired, told)

    def _record_server_transition(self, record: ServerRecord, previous: str, desired: str, told: str | None) -> None:
        """`told`: what a host transition announced for this server (None: nothing; another value: a newer
        decision, announced too, which a later write follows)."""
        reason = transition_reason(HostStatus(desired), record.host)
        if told is None and previous:  # after a restart: a write its host's recorded transition covers
            last = self._last_transition(record.host)  # (redelivered from it; "" before: a new server's own)
            told = desired if last is not None and (last.old, last.new) == (previous, desired) else None
        transition = ServerTransition(
            *record.key, record.uid, record.host, previous, desired, reason, self.clock(), announced=told is not None
        )
        for listener in self.transition_listeners:
            try:
                listener(transition)
            except Exception:  # a listener's bug must not stop the fan-out
                logger.exception("transition listener failed")
        ref = ObjectRef(API_GROUP_VERSION, "Server", record.key[1], record.uid, namespace=record.key[0])
        if record.host and desired == HostStatus.NONE and self.services.compute_service(record.host) is None:
            logger.warning("server %s/%s is on host %r, which has no nova-compute service", *record.key, record.host)
            self.events.record(
                ref,
                "UnknownHost",
                f"host {record.host} has no nova-compute ComputeService; host status unset",
                warning=True,
            )
            return
        self.events.record(
            ref,
            "HostStatusChanged",
            f"host {record.host or '(none)'} is {desired or 'unset'} (was {previous or 'unset'})",
            warning=desired in (HostStatus.DOWN, HostStatus.UNKNOWN),
        )

    # -- level-based repair -------------------------------------------------------------------
    def resync(self) -> None:
        """Recheck everything: every service's status, every host's servers."""
        for name, record in list(self.services.by_name.items()):
            self._service_changed(name, record.host)
        for host in self.servers.hosts():
            self.request_fanout(host)

    async def resync_every(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            self.resync()

    async def stop(self) -> None:
        for name in list(self._timers):
            self._cancel_timer(name)
        self._open_gates()
        await self._jobs.cancel()
