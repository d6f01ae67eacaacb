"""Evacuation, operator side.

- Records every evacuation request (annotation hoststate.io/evacuation, written with the move of
  spec.host by the facade or by this module) in `status.evacuation`: accepted, then done when the
  server shows UP on its target, or failed. The operator is the only writer of
  status.evacuation, so callers of the facade need `patch servers` and nothing on servers/status.
- Evacuates HA servers (label hoststate.io/ha=true) on forced-down hosts without a call, spread
  over healthy hosts (domain.evacuation.plan_targets), at most `--evacuation-concurrency` in
  flight, and not at all while more than `--evacuation-storm-threshold` of the hosts (of the
  zone, or of all) are down: then a Warning Event and the gauge
  hoststate_evacuation_storm_guard_active say so.
- Force-up guard, kubectl side: a CEL rule cannot see other objects, so unsetting forcedDown
  while evacuations from the host are unconfirmed is reported by a Warning Event
  (ForceUpWithPendingEvacuations) on the ComputeService. The facade refuses it outright.

One worker does all of it, woken by changes (Server and ComputeService events, transitions) and
every RECHECK_PERIOD seconds, over a small index: only HA servers and servers with an
evacuation are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .. import API_GROUP_VERSION
from ..domain import evacuation as rules
from ..domain.transitions import ServerTransition
from ..kube import SERVERS, ApiError, KubeClient
from ..kubetime import kube_time, parse_kube_time
from ..prometheus import OperatorMetrics
from .config import OperatorConfig
from .events import EventRecorder, ObjectRef
from .indexes import ServerKey, is_stale, resource_version, slim_server
from .reconciler import Reconciler

logger = logging.getLogger(__name__)

RECHECK_PERIOD = 5.0  # seconds: timeouts, targets that became available, a storm that ended
OPERATOR_USER = "hoststate-operator"


def slim_server_with_evacuation(obj: dict[str, Any]) -> dict[str, Any]:
    """slim_server (which keeps labels) plus what evacuation needs: the request annotation, the
    VM state, status.evacuation."""
    slim = slim_server(obj)
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    if request := (meta.get("annotations") or {}).get(rules.EVACUATION_ANNOTATION):
        slim["metadata"]["annotations"] = {rules.EVACUATION_ANNOTATION: request}
    for key in ("vmState", "taskState"):
        if spec.get(key) is not None:
            slim["spec"][key] = spec[key]
    if status.get("evacuation"):
        slim["status"]["evacuation"] = status["evacuation"]
    return slim


@dataclass
class Tracked:
    """An HA server, or one with an evacuation."""

    key: ServerKey
    uid: str
    host: str
    ha: bool
    vm_state: str | None
    task_state: str | None
    request: rules.EvacuationRecord | None
    record: dict[str, Any] | None  # status.evacuation
    host_status: str | None
    resource_version: str | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Tracked:
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        return cls(
            key=(meta["namespace"], meta["name"]),
            uid=meta.get("uid", ""),
            host=spec.get("host") or "",
            ha=rules.is_ha(meta.get("labels")),
            vm_state=spec.get("vmState"),
            task_state=spec.get("taskState"),
            request=rules.parse_request(meta.get("annotations")),
            record=status.get("evacuation"),
            host_status=status.get("hostStatus"),
            resource_version=meta.get("resourceVersion"),
        )

    @property
    def relevant(self) -> bool:
        return self.ha or self.request is not None or self.record is not None

    @property
    def in_flight(self) -> bool:
        """Requested and not yet done or failed."""
        if self.request is None:
            return False
        record = self.record or {}
        return record.get("id") != self.request.id or record.get("state") == rules.ACCEPTED

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(API_GROUP_VERSION, "Server", self.key[1], self.uid, namespace=self.key[0])


@dataclass
class _Guard:
    active: set[str] = field(default_factory=set)  # storm scopes (zones, or "all") stopped now
    seen: set[str] = field(default_factory=set)  # scopes the gauge has a value for


class Evacuator:
    def __init__(
        self,
        client: KubeClient,
        reconciler: Reconciler,
        config: OperatorConfig,
        events: EventRecorder,
        metrics: OperatorMetrics,
    ) -> None:
        self.client = client
        self.reconciler = reconciler
        self.config = config
        self.events = events
        self.metrics = metrics
        self.tracked: dict[ServerKey, Tracked] = {}
        self._forced_down: dict[str, bool] = {}  # ComputeService name -> spec.forcedDown last seen
        self._guard = _Guard()
        self._warned: set[tuple[str, ...]] = set()  # Events sent once per situation
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- inputs (all synchronous, from the event loop) ---------------------------------
    def server_changed(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Informer handler (objects shaped by slim_server_with_evacuation)."""
        if kind == "DELETED" or new is None:
            if old is not None and self.tracked.pop((old["metadata"]["namespace"], old["metadata"]["name"]), None):
                self.wake()
            return
        self._upsert(new)

    def on_transition(self, transition: ServerTransition) -> None:
        """Reconciler.transition_listeners: a server went DOWN (its host forced down), or came UP on a target."""
        if (transition.namespace, transition.name) in self.tracked:
            self.wake()

    def service_seen(self, body: dict[str, Any]) -> None:
        name, spec = body["metadata"]["name"], body.get("spec") or {}
        forced = bool(spec.get("forcedDown", False))
        before = self._forced_down.get(name)
        self._forced_down[name] = forced
        if before and not forced:
            self._report_force_up(body)
        self.wake()

    def service_deleted(self, body: dict[str, Any]) -> None:
        self._forced_down.pop(body["metadata"]["name"], None)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def _upsert(self, body: dict[str, Any]) -> None:
        record = Tracked.from_body(body)
        known = self.tracked.get(record.key)
        if (
            known is not None
            and known.uid == record.uid
            and is_stale(resource_version(body), _int(known.resource_version))
        ):
            return  # older than what our own write returned
        if record.relevant:
            self.tracked[record.key] = record
            self.wake()
        elif self.tracked.pop(record.key, None) is not None:
            self.wake()

    # -- running -------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="evacuation")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RECHECK_PERIOD)
            self._wake.clear()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("evacuation pass failed")
                self.metrics.reconcile_errors.labels(kind="evacuation").inc()

    async def reconcile(self) -> None:
        """One level-based pass: record requests, confirm or fail them, evacuate HA servers."""
        now = self.reconciler.clock()
        await asyncio.gather(*(self._progress(t, now) for t in list(self.tracked.values()) if t.request))
        self.metrics.evacuations_in_flight.set(sum(t.in_flight for t in self.tracked.values()))
        if self.config.evacuation_concurrency > 0:
            await self._evacuate_ha_servers(now)

    # -- status.evacuation ------------------------------------------------------------------
    async def _progress(self, tracked: Tracked, now: datetime) -> None:
        request = tracked.request
        assert request is not None
        record = tracked.record or {}
        if record.get("id") != request.id:
            await self._write_record(tracked, replace(request, state=rules.ACCEPTED))
            return
        if record.get("state") != rules.ACCEPTED:
            return
        state, message = rules.progress(
            request,
            server_host=tracked.host,
            server_host_status=tracked.host_status,
            target_host_status=self.reconciler.desired_host_status(request.target_host).value,
            requested=_time(request.requested_time),
            now=now,
            timeout=self.config.evacuation_timeout,
        )
        if state != rules.ACCEPTED:
            await self._write_record(
                tracked, replace(request, state=state, completed_time=kube_time(now), message=message)
            )

    async def _write_record(self, tracked: Tracked, record: rules.EvacuationRecord) -> None:
        try:
            answer = await self.client.patch(
                SERVERS,
                tracked.key[1],
                {"status": {"evacuation": record.status()}},
                namespace=tracked.key[0],
                subresource="status",
            )
        except ApiError as error:
            if error.status == 404:
                self.tracked.pop(tracked.key, None)
                return
            raise
        self._upsert(slim_server_with_evacuation(answer))
        self.metrics.evacuations.labels(trigger=record.trigger, state=record.state).inc()
        text = {
            rules.ACCEPTED: f"evacuation from {record.source_host} to {record.target_host} accepted "
            f"({record.trigger}, by {record.requested_by or 'unknown'})",
            rules.DONE: f"evacuated from {record.source_host} to {record.target_host}: {record.message}",
            rules.FAILED: f"evacuation from {record.source_host} to {record.target_host} failed: {record.message}",
        }[record.state]
        logger.info("server %s/%s: %s", *tracked.key, text)
        reason = {rules.ACCEPTED: "EvacuationAccepted", rules.DONE: "Evacuated", rules.FAILED: "EvacuationFailed"}
        self.events.record(tracked.ref, reason[record.state], text, warning=record.state == rules.FAILED)

    # -- automatic evacuation ----------------------------------------------------------------
    async def _evacuate_ha_servers(self, now: datetime) -> None:
        services = self.reconciler.services
        down_time = self.reconciler.config.down_time
        computes = [r for r in services.by_name.values() if r.is_compute]
        up = {r.host: services.facts(r, now, down_time).up for r in computes}

        waiting: dict[str, list[Tracked]] = defaultdict(list)
        for tracked in self.tracked.values():
            if not tracked.ha or tracked.in_flight or not tracked.host:
                continue
            service = services.compute_service(tracked.host)
            if service is None or not service.forced_down:
                continue
            invalid = rules.invalid_state(tracked.vm_state, tracked.task_state)
            if invalid is not None:
                self._warn_once(
                    ("state", *tracked.key, tracked.host),
                    tracked.ref,
                    "EvacuationSkipped",
                    f"not evacuated from forced-down host {tracked.host}: {invalid.attr} is {invalid.state}",
                )
                continue
            waiting[tracked.host].append(tracked)

        storming: set[str] = set()
        budget = self.config.evacuation_concurrency - sum(t.in_flight for t in self.tracked.values())
        extra: dict[str, int] = defaultdict(int)  # servers placed in this pass
        writes = []
        for host in sorted(waiting):
            source = services.compute_service(host)
            assert source is not None
            scope = source.zone if self.config.evacuation_storm_scope == "zone" else "all"
            population = [up[r.host] for r in computes if scope == "all" or r.zone == scope]
            if rules.storm(population, self.config.evacuation_storm_threshold):
                storming.add(scope)
                if scope not in self._guard.active:
                    share = rules.down_share(population)
                    text = (
                        f"automatic evacuation stopped: {share:.0%} of the nova-compute hosts "
                        f"{'in zone ' + scope if scope != 'all' else ''} are down (threshold "
                        f"{self.config.evacuation_storm_threshold:.0%}); {len(waiting[host])} HA servers on {host} "
                        "wait. A partition is likelier than that many host failures: check, then evacuate by hand."
                    ).replace("  ", " ")
                    logger.warning("%s", text)
                    self.events.record(_service_ref(source), "EvacuationStormGuard", text, warning=True)
                    self._guard.active.add(scope)
                continue
            if budget <= 0:
                continue
            servers = sorted(waiting[host], key=lambda t: t.key)[:budget]
            candidates = [
                rules.Candidate(
                    host=r.host,
                    zone=r.zone,
                    disabled=r.disabled,
                    forced_down=r.forced_down,
                    up=up[r.host],
                    servers=len(self.reconciler.servers.by_host.get(r.host, ())) + extra[r.host],
                )
                for r in computes
            ]
            targets = rules.plan_targets(len(servers), host, source.zone, candidates)
            if len(targets) < len(servers):
                self._warn_once(
                    ("notarget", host),
                    _service_ref(source),
                    "EvacuationNoTarget",
                    f"{len(servers) - len(targets)} HA servers on forced-down host {host} wait: no enabled, "
                    "up host to evacuate them to",
                )
            else:
                self._warned.discard(("notarget", host))
            for tracked, target in zip(servers, targets, strict=False):
                extra[target] += 1
                budget -= 1
                writes.append(self._request(tracked, target, now))
        for scope in self._guard.active - storming:
            logger.info("automatic evacuation resumed in %s", scope)
        self._guard.active &= storming
        self._guard.seen |= storming | self._known_scopes(computes)
        for scope in self._guard.seen:
            self.metrics.evacuation_storm_guard.labels(zone=scope).set(1.0 if scope in storming else 0.0)
        results = await asyncio.gather(*writes, return_exceptions=True)
        for error in (r for r in results if isinstance(r, BaseException)):
            logger.warning("automatic evacuation not written: %s", error)
        if any(isinstance(r, BaseException) for r in results):
            self.metrics.reconcile_errors.labels(kind="evacuation").inc()

    def _known_scopes(self, computes: list[Any]) -> set[str]:
        if self.config.evacuation_storm_scope == "global":
            return {"all"}
        return {r.zone for r in computes if r.forced_down}

    async def _request(self, tracked: Tracked, target: str, now: datetime) -> None:
        record = rules.EvacuationRecord(
            id=str(uuid.uuid4()),
            source_host=tracked.host,
            target_host=target,
            requested_time=kube_time(now),
            trigger=rules.TRIGGER_AUTOMATIC,
            requested_by=OPERATOR_USER,
        )
        try:
            answer = await self.client.patch(
                SERVERS, tracked.key[1], rules.request_patch(record, tracked.resource_version), namespace=tracked.key[0]
            )
        except ApiError as error:
            if error.status in (404, 409):
                return  # deleted, or changed since we decided: the next pass decides again
            raise
        logger.info("evacuating HA server %s/%s from %s to %s", *tracked.key, tracked.host, target)
        self._upsert(slim_server_with_evacuation(answer))

    # -- force-up guard ---------------------------------------------------------------------
    def _report_force_up(self, body: dict[str, Any]) -> None:
        host = (body.get("spec") or {}).get("host", "")
        pending = sorted(
            f"{t.key[0]}/{t.key[1]}"
            for t in self.tracked.values()
            if t.request is not None and t.request.source_host == host and rules.is_pending(t.request, t.record)
        )
        if not pending:
            return
        text = (
            f"forcedDown unset on host {host} while {len(pending)} evacuations from it are not confirmed "
            f"({', '.join(pending[:5])}{' ...' if len(pending) > 5 else ''}): their servers may still run there. "
            "The Nova facade refuses this; set forcedDown back to true until they are done."
        )
        logger.warning("%s", text)
        meta = body["metadata"]
        self.events.record(
            ObjectRef(API_GROUP_VERSION, "ComputeService", meta["name"], meta.get("uid", "")),
            "ForceUpWithPendingEvacuations",
            text,
            warning=True,
        )

    def _warn_once(self, key: tuple[str, ...], ref: ObjectRef, reason: str, text: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        logger.warning("%s", text)
        self.events.record(ref, reason, text, warning=True)


def _service_ref(record: Any) -> ObjectRef:
    return ObjectRef(API_GROUP_VERSION, "ComputeService", record.name, record.uid)


def _time(value: str | None) -> datetime | None:
    try:
        return parse_kube_time(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
