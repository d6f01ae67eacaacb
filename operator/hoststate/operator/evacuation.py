"""Evacuation, operator side.

- Records every evacuation request (annotation hoststate.io/evacuation, written with the move of
  spec.host by the facade or by this module) in `status.evacuation`: accepted, then done when the
  server shows UP on its target, or failed. Callers of the facade need `patch servers` and
  nothing on servers/status. The source host's agent turns the record completed once its copy
  of the guest is gone (hoststate.agent.cleanup); this module's writes are conditional on the
  version they decided on, so they never undo that, and it tells it in an Event.
- Evacuates HA servers (label hoststate.io/ha=true) on forced-down hosts without a call, spread
  over healthy hosts, at most `--evacuation-concurrency` in flight, and not at all while more
  than `--evacuation-storm-threshold` of the hosts (of the zone, or of all) are down: then a
  Warning Event and the gauge hoststate_evacuation_storm_guard_active say so. What to do is
  decided by domain.evacuation.plan_evacuations; this module writes it.
- Force-up guard, kubectl side: a CEL rule cannot see other objects, so unsetting forcedDown
  while evacuations from the host are not completed is reported by a Warning Event
  (ForceUpWithPendingEvacuations) on the ComputeService. The facade refuses it outright.

One worker does all of it, on the leader only, woken by changes (Server and ComputeService events,
transitions) and every RECHECK_PERIOD seconds, over a small index: only HA servers and servers with
an evacuation are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypedDict

from .. import API_GROUP_VERSION
from ..domain import evacuation as rules
from ..domain.transitions import ServerTransition
from ..kube import SERVERS, ApiError, KubeClient
from ..kube.leader import NotLeader
from ..kubetime import kube_time, parse_kube_time_leniently
from ..prometheus import OperatorMetrics
from .config import OperatorConfig
from .events import EventRecorder, ObjectRef
from .indexes import ServerKey, is_stale, resource_version, slim_server
from .reconciler import Reconciler

logger = logging.getLogger(__name__)

RECHECK_PERIOD = 5.0  # seconds: timeouts, targets that became available, a storm that ended
# Seconds between two passes: a burst of changes (a thousand services listed at start, a zone failing)
# makes a few passes, not one per change (each pass looks at every host).
MIN_PASS_INTERVAL = 0.1
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


# What slim_server_with_evacuation reads of a Server: the operator's informer decodes only these
# fields of each watch event (kube.client.EventDecoder); the types are those the CRD and the API
# server guarantee (anything else is decoded whole, and the transform sees it as it is).
class _ServerMetadata(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    generation: int
    resourceVersion: str
    labels: dict[str, str]
    annotations: dict[str, str]


class _ServerSpec(TypedDict, total=False):
    host: str | None
    vmState: str | None
    taskState: str | None


class _ServerStatus(TypedDict, total=False):
    hostStatus: str | None
    evacuation: dict[str, Any] | None


class ServerFields(TypedDict, total=False):
    metadata: _ServerMetadata
    spec: _ServerSpec | None
    status: _ServerStatus | None


@dataclass
class Tracked:
    """An HA server, or one with an evacuation."""

    key: ServerKey
    uid: str
    host: str
    ha: bool
    vm_state: str | None
    task_state: str | None
    request: rules.EvacuationRecord | None  # the annotation
    evacuation_status: dict[str, Any] | None  # status.evacuation, as the operator last recorded it
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
            evacuation_status=status.get("evacuation"),
            host_status=status.get("hostStatus"),
            resource_version=meta.get("resourceVersion"),
        )

    @property
    def relevant(self) -> bool:
        return self.ha or self.request is not None or self.evacuation_status is not None

    @property
    def in_flight(self) -> bool:
        return rules.is_in_flight(self.request, self.evacuation_status)

    @property
    def facts(self) -> rules.ServerFacts:
        return rules.ServerFacts(self.key, self.host, self.ha, self.in_flight, self.vm_state, self.task_state)

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(API_GROUP_VERSION, "Server", self.key[1], self.uid, namespace=self.key[0])


class Evacuator:
    """The operator's evacuation worker: records evacuation requests in status.evacuation and
    follows them to done or failed, evacuates HA servers of forced-down hosts by the plan of
    domain.evacuation.plan_evacuations, and warns when forcedDown is unset with evacuations
    from the host unconfirmed.

    Fed by the Server informer (server_changed), the Reconciler's transitions (on_transition)
    and ComputeService events (service_seen, service_deleted); reads the Reconciler's indexes
    and clock. `reconcile()` is one level-based pass, which `start()` runs on every change and
    every RECHECK_PERIOD seconds."""

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
        self._situations: frozenset[rules.Situation] = frozenset()  # warned about, and still holding
        self._guarded_scopes: set[str] = set()  # scopes the storm-guard gauge has a value for
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
        tracked = Tracked.from_body(body)
        known = self.tracked.get(tracked.key)
        if (
            known is not None
            and known.uid == tracked.uid
            and is_stale(resource_version(body), _int(known.resource_version))
        ):
            return  # older than what our own write returned
        if known is not None and known.uid == tracked.uid:
            self._tell_completed(known.evacuation_status, tracked)
        if tracked.relevant:
            self.tracked[tracked.key] = tracked
            self.wake()
        elif self.tracked.pop(tracked.key, None) is not None:
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
            if not self.reconciler.leading():
                continue  # only the leader writes; started_leading wakes this worker
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except NotLeader:
                pass  # leadership lost during the pass: the new leader evacuates
            except Exception:
                logger.exception("evacuation pass failed")
                self.metrics.reconcile_errors.labels(kind="evacuation").inc()
            await asyncio.sleep(MIN_PASS_INTERVAL)

    async def reconcile(self) -> None:
        """One level-based pass: record requests, confirm or fail them, evacuate HA servers."""
        now = self.reconciler.clock()
        outcomes = await asyncio.gather(
            *(self._progress(t, now) for t in list(self.tracked.values()) if t.request), return_exceptions=True
        )
        for outcome in outcomes:  # one record's failure must not stop the others, nor the HA pass below
            if isinstance(outcome, NotLeader) or (
                isinstance(outcome, BaseException) and not isinstance(outcome, Exception)
            ):
                raise outcome
            if isinstance(outcome, Exception):
                logger.error("evacuation record not written: %r", outcome)
                self.metrics.reconcile_errors.labels(kind="evacuation").inc()
        self.metrics.evacuations_in_flight.set(sum(t.in_flight for t in self.tracked.values()))
        if self.config.evacuation_concurrency > 0:
            await self._evacuate_ha_servers(now)

    # -- status.evacuation ------------------------------------------------------------------
    async def _progress(self, tracked: Tracked, now: datetime) -> None:
        request = tracked.request
        assert request is not None
        status = tracked.evacuation_status or {}
        if status.get("id") != request.id:
            await self._write_status(tracked, replace(request, state=rules.ACCEPTED))
            return
        if status.get("state") != rules.ACCEPTED:
            return
        state, message = rules.progress(
            request,
            server_host=tracked.host,
            server_host_status=tracked.host_status,
            target_host_status=self.reconciler.desired_host_status(request.target_host).value,
            requested=parse_kube_time_leniently(request.requested_time),
            now=now,
            timeout=self.config.evacuation_timeout,
        )
        if state != rules.ACCEPTED:
            await self._write_status(
                tracked, replace(request, state=state, completed_time=kube_time(now), message=message)
            )

    async def _write_status(self, tracked: Tracked, evacuation: rules.EvacuationRecord) -> None:
        # Conditional on the version decided on: the source's agent may have completed the record since.
        metadata = {"resourceVersion": tracked.resource_version} if tracked.resource_version else {}
        try:
            answer = await self.client.patch(
                SERVERS,
                tracked.key[1],
                {"metadata": metadata, "status": {"evacuation": evacuation.status()}},
                namespace=tracked.key[0],
                subresource="status",
            )
        except ApiError as error:
            if error.status == 404:
                self.tracked.pop(tracked.key, None)
                return
            if error.status == 409:
                return  # changed since: the informer brings the new version, the next pass decides
            raise
        self._upsert(slim_server_with_evacuation(answer))
        self.metrics.evacuations.labels(trigger=evacuation.trigger, state=evacuation.state).inc()
        source, target = evacuation.source_host, evacuation.target_host
        text = {
            rules.ACCEPTED: f"evacuation from {source} to {target} accepted "
            f"({evacuation.trigger}, by {evacuation.requested_by or 'unknown'})",
            rules.DONE: f"evacuated from {source} to {target}: {evacuation.message}",
            rules.FAILED: f"evacuation from {source} to {target} failed: {evacuation.message}",
        }[evacuation.state]
        logger.info("server %s/%s: %s", *tracked.key, text)
        reason = {rules.ACCEPTED: "EvacuationAccepted", rules.DONE: "Evacuated", rules.FAILED: "EvacuationFailed"}
        self.events.record(tracked.ref, reason[evacuation.state], text, warning=evacuation.state == rules.FAILED)

    def _tell_completed(self, before: dict[str, Any] | None, tracked: Tracked) -> None:
        """The source host's agent completed this record (seen once: the change from our last copy)."""
        after = tracked.evacuation_status or {}
        if after.get("state") != rules.COMPLETED or (before or {}).get("state") == rules.COMPLETED:
            return
        if (before or {}).get("id") != after.get("id"):
            return  # not a change we saw happen (the operator restarted meanwhile)
        text = f"evacuation from {after.get('sourceHost')} completed: {after.get('message')}"
        logger.info("server %s/%s: %s", *tracked.key, text)
        self.metrics.evacuations.labels(trigger=after.get("trigger", rules.TRIGGER_API), state=rules.COMPLETED).inc()
        self.events.record(tracked.ref, "EvacuationCompleted", text)

    # -- automatic evacuation ----------------------------------------------------------------
    async def _evacuate_ha_servers(self, now: datetime) -> None:
        """Plan (domain.evacuation.plan_evacuations), then tell the warnings and write the moves."""
        plan = rules.plan_evacuations(
            [t.facts for t in self.tracked.values()],
            self._compute_hosts(now),
            concurrency=self.config.evacuation_concurrency,
            storm_threshold=self.config.evacuation_storm_threshold,
            storm_scope=self.config.evacuation_storm_scope,
            warned=self._situations,
        )
        self._situations = plan.situations
        for warning in plan.warnings:
            self._warn(warning)
        for scope in sorted(plan.resumed):
            logger.info("automatic evacuation resumed in %s", scope)
        self._guarded_scopes |= plan.guarded_scopes
        for scope in self._guarded_scopes:
            self.metrics.evacuation_storm_guard.labels(zone=scope).set(1.0 if scope in plan.storming else 0.0)
        writes = [self._request(self.tracked[move.server], move, now) for move in plan.moves]
        results = await asyncio.gather(*writes, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            logger.warning("automatic evacuation not written: %s", error)
        if errors:
            self.metrics.reconcile_errors.labels(kind="evacuation").inc()

    def _compute_hosts(self, now: datetime) -> list[rules.ComputeHost]:
        services, servers = self.reconciler.services, self.reconciler.servers
        down_time = self.reconciler.config.down_time
        return rules.compute_hosts(
            ((r.host, r.zone, services.facts(r, now, down_time)) for r in services.by_name.values() if r.is_compute),
            lambda host: len(servers.by_host.get(host, ())),
        )

    def _warn(self, warning: rules.WarningEvent) -> None:
        if warning.server is not None:
            ref = self.tracked[warning.server].ref
        else:
            service = self.reconciler.services.compute_service(warning.host)
            if service is None:
                return
            ref = ObjectRef(API_GROUP_VERSION, "ComputeService", service.name, service.uid)
        logger.warning("%s", warning.message)
        self.events.record(ref, warning.reason, warning.message, warning=True)

    async def _request(self, tracked: Tracked, move: rules.Move, now: datetime) -> None:
        evacuation = rules.EvacuationRecord(
            id=str(uuid.uuid4()),
            source_host=move.source_host,
            target_host=move.target_host,
            requested_time=kube_time(now),
            trigger=rules.TRIGGER_AUTOMATIC,
            requested_by=OPERATOR_USER,
        )
        try:
            answer = await self.client.patch(
                SERVERS,
                tracked.key[1],
                rules.request_patch(evacuation, tracked.resource_version),
                namespace=tracked.key[0],
            )
        except ApiError as error:
            if error.status in (404, 409):
                return  # deleted, or changed since we decided: the next pass decides again
            raise
        logger.info("evacuating HA server %s/%s from %s to %s", *tracked.key, move.source_host, move.target_host)
        self._upsert(slim_server_with_evacuation(answer))

    # -- force-up guard ---------------------------------------------------------------------
    def _report_force_up(self, body: dict[str, Any]) -> None:
        host = (body.get("spec") or {}).get("host", "")
        pending = rules.pending_evacuations_from(
            host, ((f"{t.key[0]}/{t.key[1]}", t.request, t.evacuation_status) for t in self.tracked.values())
        )
        if not pending:
            return
        text = (
            f"forcedDown unset on host {host} while {len(pending)} evacuations from it are not completed "
            f"({', '.join(pending[:5])}{' ...' if len(pending) > 5 else ''}): their servers may still run there. "
            "The Nova facade refuses this; set forcedDown back to true until the host's agent has restarted "
            "and completed them."
        )
        logger.warning("%s", text)
        meta = body["metadata"]
        self.events.record(
            ObjectRef(API_GROUP_VERSION, "ComputeService", meta["name"], meta.get("uid", "")),
            "ForceUpWithPendingEvacuations",
            text,
            warning=True,
        )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
