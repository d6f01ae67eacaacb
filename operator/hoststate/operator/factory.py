"""The operator's composition root: every part built from the configuration and connected in one
place (as lsst-sqre/gafaelfawr's Factory), so that the Kopf handlers stay thin.

Every replica runs everything: informers, indexes, heartbeat timers, Kopf's ComputeService
handler. Only the leader writes: the reconciler, the evacuator, the Event recorder and the notifier
get a client that refuses writes unless this replica holds the leader Lease (kube/leader.py), so a
standby is warm and takes over with one resync, without listing anything again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..heap import collect_fully_when_idle, freeze_start_up
from ..kube import COMPUTE_SERVICES, SERVERS, KubeClient
from ..kube.health import informers_live, informers_ready
from ..kube.informer import Informer
from ..kube.leader import LeaderElector, LeaderOnlyClient
from ..notifications import EgressPolicy, Notifier
from ..prometheus import OperatorMetrics, serve_metrics
from .config import OperatorConfig
from .evacuation import Evacuator, ServerFields, slim_server_with_evacuation
from .events import EventRecorder, ObjectRef
from .index_metrics import IndexCollector
from .leases import HeartbeatLeases
from .reconciler import Reconciler

logger = logging.getLogger(__name__)

# Extra connections beyond the fan-out's patches: watches, Events, evacuation, notifications.
SPARE_CONNECTIONS = 8
# The election has a pool of its own: a renewal never queues behind a fan-out's patches.
ELECTION_CONNECTIONS = 2


@dataclass
class Operator:
    """The operator's parts, and the order in which they start and stop."""

    config: OperatorConfig
    client: KubeClient
    elector: LeaderElector
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
        if self.config.metrics_port:  # first: /healthz answers (live) while the lists load, /readyz after
            self.http = await serve_metrics(
                self.metrics.registry,
                self.config.metrics_host,
                self.config.metrics_port,
                healthy=self.healthy,
                ready=self.ready,
            )
        self.events.start()
        # Everything is read at once (at 100,000 Servers, their list is most of the start-up); what is
        # read is handled in order: heartbeats, then services, then servers. The first Server events
        # must already see every host's state, or a restart would flap servers to "", and the
        # subscriptions must be known, so that the transitions of the first Server events are notified.
        services_known = asyncio.Event()
        self.tasks.append(self.leases.informer.start())
        self.tasks.append(asyncio.create_task(self.leases.policy.run_every(), name="heartbeat-policy"))
        self.tasks += self.notifier.start()
        self.tasks += [informer.start(deliver_after=services_known) for informer in self.server_informers]
        services, _ = await asyncio.gather(self.client.list(COMPUTE_SERVICES), self.leases.informer.synced.wait())
        for item in services.get("items", []):
            self.reconciler.service_seen(item)
        await self.notifier.wait_synced(timeout=5)
        services_known.set()
        self.tasks.append(asyncio.create_task(self.reconciler.resync_every(self.config.resync_period), name="resync"))
        self.tasks.append(self.evacuator.start())
        self.tasks.append(asyncio.create_task(self.campaign(), name="campaign"))
        logger.info(
            "hoststate operator started: down time %gs, fan-out concurrency %d, leases in %s, candidate %s",
            self.config.down_time,
            self.config.fanout_concurrency,
            self.config.lease_namespace,
            self.elector.identity,
        )

    @property
    def informers(self) -> list[Informer]:
        return [self.leases.informer, *self.notifier.informers, *self.server_informers]

    def healthy(self) -> bool:
        """Live: no background task has ended, and every watch makes progress."""
        return not any(task.done() for task in self.tasks) and informers_live(self.informers)

    def ready(self) -> bool:
        """Ready: every informer has listed once (leader or standby alike: a standby is ready to take over)."""
        return informers_ready(self.informers)

    async def campaign(self) -> None:
        """Stand for leader once the indexes are warm (a cold replica must not take over), then for ever."""
        await asyncio.gather(*(informer.synced.wait() for informer in [self.leases.informer, *self.server_informers]))
        freeze_start_up()  # the indexes are built: no later collection walks them (heap.py)
        full_collections = collect_fully_when_idle(lambda: not self.reconciler.telling)
        self.tasks.append(asyncio.create_task(full_collections, name="full collections"))
        await self.elector.start()

    async def started_leading(self) -> None:
        """Takeover: write what the indexes say at once. The resync requests every service's status
        and every host's fan-out, and rearms the heartbeat deadlines from the Leases' renewTime as the
        index holds them; whatever the last leader left undone is redone."""
        self.metrics.leader.set(1)
        self.metrics.leader_transitions.inc()
        self.reconciler.forget_decisions()
        self.reconciler.resync()
        self.evacuator.wake()
        elector = self.elector
        took_over = f" (took over from {elector.previous_holder})" if elector.previous_holder else ""
        self.events.record(
            ObjectRef("coordination.k8s.io/v1", "Lease", elector.name, elector.lease_uid, elector.namespace),
            "LeaderElection",
            f"{elector.identity} became leader{took_over}",
        )
        await self.notifier.start_delivering()  # deliveries from the leader only; undelivered ones resumed

    async def stopped_leading(self) -> None:
        self.metrics.leader.set(0)
        await self.notifier.stop_delivering()

    def compute_service_event(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.reconciler.service_deleted(body)
            self.evacuator.service_deleted(body)
        else:
            self.reconciler.service_seen(body)
            self.evacuator.service_seen(body)

    async def stop(self) -> None:
        # Deliveries stop while this replica still leads (their acknowledgements are written, in at
        # most 2 s), then writes stop, what is in flight is cancelled, and the Lease is released: the
        # standby takes over at its next attempt (a rolling update hands over within a retry period).
        await self.notifier.stop_delivering()
        await self.elector.resign()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.reconciler.stop()
        await self.elector.stop(release=True)
        if self.http is not None:
            await self.http.cleanup()
        await self.notifier.stop()
        await self.events.stop()
        await self.client.close()


class OperatorFactory:
    """Builds the operator from its configuration."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config

    def create_operator(self) -> Operator:
        config = self.config
        client = KubeClient(max_connections=config.fanout_concurrency + SPARE_CONNECTIONS)
        elector = LeaderElector(
            KubeClient(max_connections=ELECTION_CONNECTIONS),
            config.leader_election_lease,
            config.election_namespace,
            f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",  # a restarted process is a new candidate
            config.election_timing,
        )
        writer = LeaderOnlyClient(client, elector)
        events = EventRecorder(writer, "operator")
        metrics = OperatorMetrics()
        reconciler = Reconciler(writer, config, events, metrics, leading=elector.is_leader)
        events.before_posting = reconciler.told_so_far  # Events after the tenants' notifications
        metrics.registry.register(
            IndexCollector(reconciler.services, reconciler.servers, config.down_time, reporting=elector.is_leader)
        )
        evacuator = Evacuator(writer, reconciler, config, events, metrics)
        notifier = Notifier(
            writer,
            metrics,
            reconciler,
            namespaces=config.namespaces,
            egress=EgressPolicy(allowed=config.webhook_allow_cidrs, cluster=config.cluster_cidrs),
        )
        notifier.deliverer.before_status_write = reconciler.told_so_far  # subscriptions' status too
        reconciler.transition_listeners += [evacuator.on_transition, notifier.on_transition]
        reconciler.host_transition_listeners.append(notifier.on_host_transition)
        operator = Operator(
            config=config,
            client=client,
            elector=elector,
            events=events,
            metrics=metrics,
            reconciler=reconciler,
            leases=HeartbeatLeases(client, reconciler, config.lease_namespace),
            evacuator=evacuator,
            notifier=notifier,
            server_informers=self.create_server_informers(client, reconciler, evacuator),
        )
        elector.on_started_leading = operator.started_leading
        elector.on_stopped_leading = operator.stopped_leading
        return operator

    def create_server_informers(
        self, client: KubeClient, reconciler: Reconciler, evacuator: Evacuator
    ) -> list[Informer]:
        """One Server informer per watched namespace (one for all when none is named)."""
        informers = []
        for namespace in self.config.namespaces or [None]:
            informer = Informer(client, SERVERS, namespace, transform=slim_server_with_evacuation, shape=ServerFields)
            informer.add_handler(reconciler.server_changed)
            informer.add_handler(evacuator.server_changed)
            informers.append(informer)
        return informers
