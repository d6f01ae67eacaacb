"""Kopf handlers: thin. They feed watch events to the Reconciler kept in Kopf's memo.

Only low-level event handlers: no finalizers, no Kopf annotations or progress storage on
users' objects (GitOps diffs stay clean, deletes never wait for a stopped operator).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from .. import API_GROUP, API_VERSION
from ..kube import COMPUTE_SERVICES, KubeClient
from ..metrics import OperatorMetrics, serve_metrics
from .events import EventRecorder
from .leases import LeaseWatcher
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
    metrics.watch(reconciler)
    leases = LeaseWatcher(client, reconciler, config.lease_namespace)

    # Heartbeats, then services, before Kopf starts the watches: the first Server events
    # must already see every host's state, or a restart would flap servers to "".
    lease_version = await leases.list()
    for item in (await client.list(COMPUTE_SERVICES)).get("items", []):
        reconciler.service_seen(item)

    memo.client, memo.events, memo.reconciler = client, events, reconciler
    memo.tasks = [
        asyncio.create_task(leases.run(lease_version), name="lease-watch"),
        asyncio.create_task(_resync_forever(reconciler, config.resync_period), name="resync"),
    ]
    if config.metrics_port:
        memo.http = await serve_metrics(
            metrics.registry, config.metrics_port, healthy=lambda: not any(t.done() for t in memo.tasks)
        )
    logger.info(
        "hoststate operator started: down time %gs, fan-out concurrency %d, leases in %s",
        config.down_time, config.fanout_concurrency, config.lease_namespace,
    )  # fmt: skip


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
    else:
        memo.reconciler.service_seen(body)


@kopf.on.event(API_GROUP, API_VERSION, "servers")
async def server_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event["type"] == "DELETED":
        memo.reconciler.server_deleted(body)
    else:
        memo.reconciler.server_seen(body)
