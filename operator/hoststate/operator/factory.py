"""The operator's composition root: every part built from the configuration and connected in one
place (as lsst-sqre/gafaelfawr's Factory), so that the Kopf handlers stay thin."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..kube import COMPUTE_SERVICES, SERVERS, KubeClient
from ..kube.informer import Informer
from ..notifications import EgressPolicy, Notifier
from ..prometheus import OperatorMetrics, serve_metrics
from .config import OperatorConfig
from .evacuation import Evacuator, slim_server_with_evacuation
from .events import EventRecorder
from .index_metrics import IndexCollector
from .leases import HeartbeatLeases
from .reconciler import Reconciler

logger = logging.getLogger(__name__)

# Extra connections beyond the fan-out's patches: watches, Events, evacuation, notifications.
SPARE_CONNECTIONS = 8


@dataclass
class Operator:
    """The operator's parts, and the order in which they start and stop."""

    config: OperatorConfig
    client: KubeClient
    events: EventRecorder
    metrics: OperatorMetrics
    reconciler: Reconciler
    leases: HeartbeatLeases
    evacuator: Evacuator
    notifier: Notifier
    server_informers: list[Informer]
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    http: web.AppRunner | None = None

    async def start(self) -> None:
        self.events.start()
        # Heartbeats, then services, then servers: the first Server events must already see
        # every host's state, or a restart would flap servers to "".
        self.tasks.append(self.leases.informer.start())
        self.tasks.append(asyncio.create_task(self.leases.policy.run_every(), name="heartbeat-policy"))
        await self.leases.informer.synced.wait()
        for item in (await self.client.list(COMPUTE_SERVICES)).get("items", []):
            self.reconciler.service_seen(item)
        # Subscriptions before servers too: the transitions of the first Server events are notified.
        self.tasks += self.notifier.start()
        await self.notifier.wait_synced(timeout=5)
        self.tasks += [informer.start() for informer in self.server_informers]
        self.tasks.append(asyncio.create_task(self.reconciler.resync_every(self.config.resync_period), name="resync"))
        self.tasks.append(self.evacuator.start())
        if self.config.metrics_port:
            self.http = await serve_metrics(
                self.metrics.registry, self.config.metrics_host, self.config.metrics_port, healthy=self.healthy
            )
        logger.info(
            "hoststate operator started: down time %gs, fan-out concurrency %d, leases in %s",
            self.config.down_time,
            self.config.fanout_concurrency,
            self.config.lease_namespace,
        )

    def healthy(self) -> bool:
        return not any(task.done() for task in self.tasks)

    def compute_service_event(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.reconciler.service_deleted(body)
            self.evacuator.service_deleted(body)
        else:
            self.reconciler.service_seen(body)
            self.evacuator.service_seen(body)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.cleanup()
        await self.notifier.stop()
        await self.reconciler.stop()
        await self.events.stop()
        await self.client.close()


class OperatorFactory:
    """Builds the operator from its configuration."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config

    def create_operator(self) -> Operator:
        config = self.config
        client = KubeClient(max_connections=config.fanout_concurrency + SPARE_CONNECTIONS)
        events = EventRecorder(client, "operator")
        metrics = OperatorMetrics()
        reconciler = Reconciler(client, config, events, metrics)
        metrics.registry.register(IndexCollector(reconciler.services, reconciler.servers, config.down_time))
        evacuator = Evacuator(client, reconciler, config, events, metrics)
        notifier = Notifier(
            client,
            metrics,
            reconciler.servers.labels_of,
            namespaces=config.namespaces,
            egress=EgressPolicy(allowed=config.webhook_allow_cidrs, cluster=config.cluster_cidrs),
        )
        reconciler.transition_listeners += [evacuator.on_transition, notifier.on_transition]
        return Operator(
            config=config,
            client=client,
            events=events,
            metrics=metrics,
            reconciler=reconciler,
            leases=HeartbeatLeases(client, reconciler, config.lease_namespace),
            evacuator=evacuator,
            notifier=notifier,
            server_informers=self.create_server_informers(client, reconciler, evacuator),
        )

    def create_server_informers(
        self, client: KubeClient, reconciler: Reconciler, evacuator: Evacuator
    ) -> list[Informer]:
        """One Server informer per watched namespace (one for all when none is named)."""
        informers = []
        for namespace in self.config.namespaces or [None]:
            informer = Informer(client, SERVERS, namespace, transform=slim_server_with_evacuation)
            informer.add_handler(reconciler.server_changed)
            informer.add_handler(evacuator.server_changed)
            informers.append(informer)
        return informers
