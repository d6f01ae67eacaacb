"""Kopf handlers: thin. They feed watch events to the Reconciler kept in Kopf's memo.

Only low-level event handlers: no finalizers, no Kopf annotations or progress storage on
users' objects (GitOps diffs stay clean, deletes never wait for a stopped operator).

Servers and heartbeat Leases are watched by informers, not Kopf: every status patch of
a fan-out comes back as a watch event, and Kopf's per-event machinery cost half of the
operator's CPU during a fan-out (profiled, docs/benchmarks.md), CPU the API server needs.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import kopf

from .. import API_GROUP, API_VERSION
from ..kube import COMPUTE_SERVICES, SERVERS, KubeClient
from ..kube.informer import Informer
from ..notifications import Notifier
from ..prometheus import OperatorMetrics, serve_metrics
from .evacuation import Evacuator, slim_server_with_evacuation
from .events import EventRecorder
from .index_metrics import IndexCollector
from .leases import HeartbeatLeases
from .reconciler import Reconciler

logger = logging.getLogger(__name__)


@kopf.on.startup(backoff=1)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = memo.config
    settings.posting.enabled = False  # we post our own Events, off the hot path
    settings.peering.standalone = True  # one replica, Recreate strategy: no peering objects
    settings.watching.server_timeout = 300
    settings.watching.reconnect_backoff = 1.0

    client = KubeClient(max_connections=config.fanout_concurrency + 8)
    events = EventRecorder(client, "operator")
    events.start()
    metrics = OperatorMetrics()
    reconciler = Reconciler(client, config, events, metrics)
    metrics.registry.register(IndexCollector(reconciler.services, reconciler.servers, config.down_time))
    leases = HeartbeatLeases(client, reconciler, config.lease_namespace)
    evacuator = memo.evacuator = Evacuator(client, reconciler, config, events, metrics)
    servers = [
        Informer(client, SERVERS, namespace, transform=slim_server_with_evacuation)
        for namespace in (config.namespaces or [None])
    ]
    for informer in servers:
        informer.add_handler(partial(_server_changed, reconciler))
        informer.add_handler(evacuator.server_changed)
    reconciler.transition_listeners.append(evacuator.on_transition)

    # Heartbeats, then services, then servers: the first Server events must already see
    # every host's state, or a restart would flap servers to "".
    memo.tasks = [leases.informer.start()]
    await leases.informer.synced.wait()
    for item in (await client.list(COMPUTE_SERVICES)).get("items", []):
        reconciler.service_seen(item)
    # Subscriptions before servers too: the transitions of the first Server events are notified.
    memo.notifier = notifier = Notifier(
        client, metrics, partial(_server_labels, reconciler), namespaces=config.namespaces
    )
    reconciler.transition_listeners.append(notifier.on_transition)
    memo.tasks += notifier.start()
    await notifier.wait_synced(timeout=5)
    memo.tasks += [informer.start() for informer in servers]
    memo.tasks.append(asyncio.create_task(_resync_forever(reconciler, config.resync_period), name="resync"))
    memo.tasks.append(evacuator.start())
    memo.client, memo.events, memo.reconciler = client, events, reconciler
    if config.metrics_port:
        memo.http = await serve_metrics(
            metrics.registry, config.metrics_port, healthy=lambda: not any(t.done() for t in memo.tasks)
        )
    logger.info(
        "hoststate operator started: down time %gs, fan-out concurrency %d, leases in %s",
        config.down_time,
        config.fanout_concurrency,
        config.lease_namespace,
    )


def _server_labels(reconciler: Reconciler, namespace: str, name: str) -> dict[str, str] | None:
    record = reconciler.servers.by_key.get((namespace, name))
    return record.labels if record is not None else None


def _server_changed(reconciler: Reconciler, kind: str, old: dict | None, new: dict | None) -> None:
    if kind == "DELETED":
        reconciler.server_deleted(old)
    else:
        reconciler.server_seen(new)


async def _resync_forever(reconciler: Reconciler, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        reconciler.resync()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get("tasks", []):
        task.cancel()
    await asyncio.gather(*memo.get("tasks", []), return_exceptions=True)
    if "http" in memo:
        await memo.http.cleanup()
    if "notifier" in memo:
        notifier: Notifier = memo.notifier
        await notifier.stop()
    if "reconciler" in memo:
        await memo.reconciler.stop()
        events: EventRecorder = memo.events
        await events.stop()
        client: KubeClient = memo.client
        await client.close()


@kopf.on.event(API_GROUP, API_VERSION, "computeservices")
async def compute_service_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event["type"] == "DELETED":
        memo.reconciler.service_deleted(body)
        memo.evacuator.service_deleted(body)
    else:
        memo.reconciler.service_seen(body)
        memo.evacuator.service_seen(body)
