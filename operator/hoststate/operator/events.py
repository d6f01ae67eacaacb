"""Kubernetes Events, posted in the background so that they never slow a fan-out."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from ..kube import EVENTS, ApiError, KubeClient
from ..kube.leader import NotLeader
from ..kubetime import kube_time, utcnow

logger = logging.getLogger(__name__)

# Events of cluster-scoped objects go where kubectl describe looks for them.
CLUSTER_EVENTS_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str | None = None


class EventRecorder:
    """A bounded queue drained by a few workers; drops (and counts) what does not fit.

    Each post first awaits `before_posting` (the operator's: until the tenants being told now are told,
    at most its notify-first budget), so a fan-out's thousand Events do not compete with
    the next transition's notifications at the API server and on this core."""

    def __init__(self, client: KubeClient, component: str, *, workers: int = 4, capacity: int = 10_000) -> None:
        self.before_posting: Callable[[], Awaitable[None]] = partial(
            asyncio.sleep, 0
        )  # by default, nothing to wait for
        self._client = client
        self._component = component
        self._instance = socket.gethostname()
        self._queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=capacity)
        self._workers = workers
        self._tasks: list[asyncio.Task] = []
        self.dropped = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._drain(), name=f"events-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def record(self, ref: ObjectRef, reason: str, message: str, *, warning: bool = False) -> None:
        now = utcnow()
        namespace = ref.namespace or CLUSTER_EVENTS_NAMESPACE
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "name": ref.name,
                "uid": ref.uid,
                **({"namespace": ref.namespace} if ref.namespace else {}),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self._component},
            "reportingComponent": f"hoststate.io/{self._component}",
            "reportingInstance": self._instance,
            "firstTimestamp": kube_time(now),
            "lastTimestamp": kube_time(now),
            "count": 1,
        }
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _drain(self) -> None:
        while True:
            body = await self._queue.get()
            try:
                await self.before_posting()
                await self._client.create(EVENTS, body, namespace=body["metadata"]["namespace"])
            except NotLeader:  # a standby's (or a deposed leader's) Event: the leader reports what matters
                logger.debug("event %s not posted: not the leader", body["reason"])
            except (TimeoutError, ApiError, OSError) as error:
                logger.warning("could not post event %s: %s", body["reason"], error)
            finally:
                self._queue.task_done()
