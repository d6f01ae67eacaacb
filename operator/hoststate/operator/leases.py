"""Heartbeat Leases: one list, then a watch, in the lease namespace, by label.

Not a Kopf handler: Kopf would watch every Lease of the cluster (node heartbeats
included) in every namespace it serves. This is one label-selected stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..kube import LEASES, ApiError, KubeClient
from ..resources.lease import HEARTBEAT_SELECTOR, lease_renew_time
from .events import ObjectRef
from .reconciler import Reconciler

logger = logging.getLogger(__name__)


class LeaseWatcher:
    def __init__(self, client: KubeClient, reconciler: Reconciler, namespace: str) -> None:
        self.client = client
        self.reconciler = reconciler
        self.namespace = namespace
        self._errors: dict[str, str] = {}  # lease name -> last problem reported (report each once)
        self.on_event: Callable[[], None] | None = None

    async def list(self) -> str:
        """Load every heartbeat Lease; return the list's resourceVersion."""
        answer = await self.client.list(LEASES, self.namespace, labelSelector=HEARTBEAT_SELECTOR)
        for item in answer.get("items", []):
            self._seen(item)
        return answer["metadata"]["resourceVersion"]

    async def run(self, resource_version: str) -> None:
        """Watch forever from `resource_version`; relist when it is too old."""
        delay = 0.5
        while True:
            try:
                async for event in self.client.watch(
                    LEASES, resource_version, namespace=self.namespace, label_selector=HEARTBEAT_SELECTOR
                ):
                    delay = 0.5
                    resource_version = event["object"]["metadata"].get("resourceVersion", resource_version)
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        self.reconciler.heartbeat_gone(event["object"]["metadata"]["name"])
                    else:
                        self._seen(event["object"])
                    if self.on_event is not None:
                        self.on_event()
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                if error.status == 410:
                    logger.info("lease watch expired; relisting")
                    resource_version = await self._relist()
                    continue
                logger.warning("lease watch failed: %s; retrying in %.1fs", error, delay)
            except Exception as error:  # network trouble: retry, never crash
                logger.warning("lease watch interrupted: %s; retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def _relist(self) -> str:
        while True:
            try:
                return await self.list()
            except (TimeoutError, ApiError, OSError) as error:
                logger.warning("lease list failed: %s", error)
                await asyncio.sleep(2)

    def _seen(self, lease: dict[str, Any]) -> None:
        name = lease["metadata"]["name"]
        try:
            renewed = lease_renew_time(lease)
        except ValueError as error:
            self._report_bad_lease(lease, str(error))
            return
        service = self.reconciler.services.by_name.get(name)
        holder = (lease.get("spec") or {}).get("holderIdentity")
        if service is not None and holder and holder != service.host:
            self._report_bad_lease(lease, f"spec.holderIdentity {holder!r} is not the service's host {service.host!r}")
            return
        self._errors.pop(name, None)
        self.reconciler.heartbeat(name, renewed)

    def _report_bad_lease(self, lease: dict[str, Any], problem: str) -> None:
        name = lease["metadata"]["name"]
        if self._errors.get(name) == problem:
            return
        self._errors[name] = problem
        logger.warning("ignoring heartbeat Lease %s/%s: %s", self.namespace, name, problem)
        ref = ObjectRef("coordination.k8s.io/v1", "Lease", name, lease["metadata"].get("uid", ""), self.namespace)
        self.reconciler.events.record(ref, "BadHeartbeatLease", f"heartbeat ignored: {problem}", warning=True)
