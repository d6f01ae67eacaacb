"""Heartbeat Leases: an informer on the lease namespace, by label, feeding the reconciler.

Not a Kopf handler: Kopf would watch every Lease of the cluster (node heartbeats
included) in every namespace it serves. This is one label-selected stream.

A Lease says which host is alive only where the admission policy of
deploy/manifests/admission-heartbeat-leases.yaml confines each agent to its own host's Lease;
without it any agent may keep any host "up". HeartbeatPolicyCheck checks, at start and then
periodically, that the policy and a Deny binding of it stand: the gauge
hoststate_heartbeat_policy_enforced says so (alert on 0) and each change is logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import Gauge

from ..kube import LEASES, ApiError, KubeClient
from ..kube.api_resources import Resource
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
        self.policy = HeartbeatPolicyCheck(client, reconciler.metrics.heartbeat_policy_enforced)
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


HEARTBEAT_POLICY = "hoststate-heartbeat-leases"
ADMISSION_POLICIES = Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", namespaced=False)
ADMISSION_POLICY_BINDINGS = Resource(
    "admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", namespaced=False
)
POLICY_CHECK_SECONDS = 60.0


def heartbeat_policy_problem(policy: dict[str, Any] | None, bindings: list[dict[str, Any]]) -> str | None:
    """Why heartbeat Leases cannot be trusted (None: they can): the policy is missing or fails
    open, or no binding of it denies (Warn or Audit only), or every binding is narrowed."""
    if policy is None:
        return f"ValidatingAdmissionPolicy {HEARTBEAT_POLICY} is missing"
    if (policy.get("spec") or {}).get("failurePolicy") == "Ignore":
        return f"ValidatingAdmissionPolicy {HEARTBEAT_POLICY} has failurePolicy Ignore"
    own = [b.get("spec") or {} for b in bindings if (b.get("spec") or {}).get("policyName") == HEARTBEAT_POLICY]
    if not any("Deny" in spec.get("validationActions", []) and not spec.get("matchResources") for spec in own):
        return f"no ValidatingAdmissionPolicyBinding of {HEARTBEAT_POLICY} denies (validationActions Deny, all Leases)"
    return None


class HeartbeatPolicyCheck:
    """Whether the admission policy that makes heartbeats trustworthy stands (see the module's doc)."""

    def __init__(self, client: KubeClient, enforced: Gauge) -> None:
        self.client = client
        self.enforced = enforced
        self.problem: str | None = ""  # "" until the first check

    async def check(self) -> str | None:
        try:
            policy: dict[str, Any] | None = await self.client.get(ADMISSION_POLICIES, HEARTBEAT_POLICY)
        except ApiError as error:
            if error.status != 404:
                raise
            policy = None
        bindings = (await self.client.list(ADMISSION_POLICY_BINDINGS)).get("items", [])
        problem = heartbeat_policy_problem(policy, bindings)
        self.enforced.set(0 if problem else 1)
        if problem != self.problem:
            if problem:
                logger.error("heartbeat Leases are not confined to their hosts: %s (see docs/security.md)", problem)
            else:
                logger.info("heartbeat Leases are confined to their hosts (%s stands)", HEARTBEAT_POLICY)
        self.problem = problem
        return problem

    async def run_every(self, seconds: float = POLICY_CHECK_SECONDS) -> None:
        while True:
            try:
                await self.check()
            except Exception as error:  # a failed check is logged and counts as not enforced
                self.enforced.set(0)
                self.problem = ""  # the next answer is logged, whatever it is
                logger.error("could not check %s: %s", HEARTBEAT_POLICY, error)
            await asyncio.sleep(seconds)
