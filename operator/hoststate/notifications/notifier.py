"""The notifier: subscriptions from a watch cache, Server transitions in, signed CloudEvents out.

`on_transition` is the Reconciler's transition listener. It runs on the fan-out's path, so it
only matches and queues (no I/O, no await); delivery runs in each subscription's Channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..domain.transitions import ServerTransition
from ..kube import HOST_STATUS_SUBSCRIPTIONS, KubeClient
from ..kube.informer import Informer
from ..prometheus import OperatorMetrics
from .cloudevents import build_event, encode, new_event_id
from .delivery import Channel, Deliverer, Pending
from .egress import EgressPolicy
from .secrets import SigningKeys
from .subscriptions import SubscriptionKey, SubscriptionSpec
from .url_policy import origin

logger = logging.getLogger(__name__)

LabelsOf = Callable[[str, str], Mapping[str, str] | None]  # (namespace, name) -> the Server's labels


class Notifier:
    def __init__(
        self,
        client: KubeClient,
        metrics: OperatorMetrics,
        labels_of: LabelsOf,
        *,
        namespaces: tuple[str, ...] = (),
        keys: SigningKeys | None = None,
        egress: EgressPolicy | None = None,
        status_period: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self.labels_of = labels_of
        self.status_period = status_period
        self.deliverer = Deliverer(client, metrics, keys=keys, egress=egress)
        self.channels: dict[SubscriptionKey, Channel] = {}
        self.by_namespace: dict[str, set[str]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.informers = [Informer(client, HOST_STATUS_SUBSCRIPTIONS, ns) for ns in (namespaces or [None])]
        for informer in self.informers:
            informer.add_handler(self._subscription_event)
        metrics.notifications_pending.set_function(self.pending)

    def start(self) -> list[asyncio.Task[None]]:
        """Start watching subscriptions (without waiting: events before the first list go nowhere,
        as they would with no subscription)."""
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
        return sum(channel.pending for channel in self.channels.values())

    # -- subscriptions ------------------------------------------------------------------
    def _subscription_event(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if kind == "DELETED":
            assert old is not None
            self._remove((old["metadata"]["namespace"], old["metadata"]["name"]))
            return
        assert new is not None
        spec = SubscriptionSpec.from_body(new)
        channel = self.channels.get(spec.key)
        if channel is not None and channel.spec.uid != spec.uid:  # deleted and created again
            self._remove(spec.key)
            channel = None
        if channel is None:
            self.channels[spec.key] = Channel(spec, self.deliverer, new.get("status"), status_period=self.status_period)
            self.by_namespace.setdefault(spec.namespace, set()).add(spec.name)
            logger.info("subscription %s/%s: delivering to %s", spec.namespace, spec.name, origin(spec.url))
        elif spec.generation != channel.spec.generation:
            channel.update(spec)  # a status write (ours) keeps the generation: nothing to do
            logger.info("subscription %s/%s: generation %d", spec.namespace, spec.name, spec.generation)

    def _remove(self, key: SubscriptionKey) -> None:
        channel = self.channels.pop(key, None)
        names = self.by_namespace.get(key[0])
        if names is not None:
            names.discard(key[1])
            if not names:
                del self.by_namespace[key[0]]
        if channel is not None:
            task = asyncio.create_task(self._close(key, channel), name=f"close {key[0]}/{key[1]}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(key: SubscriptionKey, channel: Channel) -> None:
        dropped = await channel.close()
        logger.info("subscription %s/%s removed (%d queued events dropped)", *key, dropped)

    # -- transitions ----------------------------------------------------------------------
    def on_transition(self, transition: ServerTransition) -> None:
        names = self.by_namespace.get(transition.namespace)
        if not names:
            return  # the namespace is the boundary: only its own subscriptions are looked at
        labels = self.labels_of(transition.namespace, transition.name)
        pending: Pending | None = None
        for name in names:
            channel = self.channels[(transition.namespace, name)]
            if not channel.spec.wants(transition.namespace, transition.new, labels):
                continue
            if pending is None:  # one event (one id, one body) for every subscription that wants it
                event_id = new_event_id()
                pending = Pending(event_id, encode(build_event(transition, event_id)), transition.time)
            channel.offer(transition.uid, pending)

    async def stop(self) -> None:
        for informer in self.informers:
            await informer.stop()
        await asyncio.gather(*self._closing, return_exceptions=True)
        dropped = 0
        for key in list(self.channels):
            channel = self.channels.pop(key)
            dropped += await channel.close()
        self.by_namespace.clear()
        await self.deliverer.close()
        if dropped:
            logger.warning("notifier stopped with %d events undelivered", dropped)
