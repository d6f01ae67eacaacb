"""Heartbeat Leases: an informer on the lease namespace, by label, feeding the reconciler.

Not a Kopf handler: Kopf would watch every Lease of the cluster (node heartbeats
included) in every namespace it serves. This is one label-selected stream.
"""

from __future__ import annotations

import logging
from typing import Any

from ..kube import LEASES, KubeClient
from ..kube.informer import Informer
from ..resources.lease import HEARTBEAT_SELECTOR, lease_heartbeat, lease_renew_time
from .events import ObjectRef
from .reconciler import Reconciler

logger = logging.getLogger(__name__)


class HeartbeatLeases:
    def __init__(self, client: KubeClient, reconciler: Reconciler, namespace: str) -> None:
        self.reconciler = reconciler
        self.namespace = namespace
        self.informer = Informer(client, LEASES, namespace, label_selector=HEARTBEAT_SELECTOR)
        self.informer.add_handler(self._changed)
        self._errors: dict[str, str] = {}  # lease name -> last problem reported (each reported once)

    def _changed(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if kind == "DELETED":
            assert old is not None
            self.reconciler.heartbeat_gone(old["metadata"]["name"])
        else:
            assert new is not None
            self._seen(new)

    def _seen(self, lease: dict[str, Any]) -> None:
        name = lease["metadata"]["name"]
        service = self.reconciler.services.by_name.get(name)
        try:
            # Without its service yet, only the Lease's own form can be checked.
            renewed = lease_heartbeat(lease, service.host) if service is not None else lease_renew_time(lease)
        except ValueError as error:
            self._report_bad_lease(lease, str(error))
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
