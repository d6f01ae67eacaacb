"""The operator's leader election is classified ahead of its fan-out by API Priority and Fairness
(deploy/manifests/flowschemas.yaml), against the suite's real API server, as the manifests'
ServiceAccount (the admin token is exempt from APF). The API server names the FlowSchema and the
priority level of every request it answers in the X-Kubernetes-PF-* headers."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from hoststate import API_GROUP, API_VERSION
from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import wait_for
from hoststate.devcluster.stack import Kubectl, operator_kubeconfig
from hoststate.kube import LEASES, SERVERS
from tests.kubeobjects import server

ELECTION_LEASE = "hoststate-operator"


class Caller:
    """Requests with a kubeconfig's token; what APF made of each (FlowSchema, priority level) by name."""

    def __init__(self, cluster: DevCluster, kubeconfig: Path, api_client: k8s.ApiClient) -> None:
        self.server = cluster.server
        self.token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        self.context = ssl.create_default_context(cafile=str(cluster.ca_file))
        flowcontrol = k8s.FlowcontrolApiserverV1Api(api_client)
        self.names = {item.metadata.uid: item.metadata.name for item in flowcontrol.list_flow_schema().items}
        self.names |= {
            item.metadata.uid: item.metadata.name for item in flowcontrol.list_priority_level_configuration().items
        }

    def classified(self, method: str, path: str, body: dict | None = None) -> tuple[str, str]:
        request = urllib.request.Request(
            f"{self.server}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/merge-patch+json"},
        )
        with urllib.request.urlopen(request, context=self.context) as response:
            headers = response.headers
        flow_schema = headers["X-Kubernetes-PF-FlowSchema-UID"]
        level = headers["X-Kubernetes-PF-PriorityLevel-UID"]
        return self.names.get(flow_schema, flow_schema), self.names.get(level, level)


@pytest.fixture
def operator_identity(
    cluster: DevCluster, kubectl: Kubectl, api_client: k8s.ApiClient, lease_namespace: str, tmp_path: Path
) -> Caller:
    kubeconfig = operator_kubeconfig(kubectl, tmp_path)
    caller = Caller(cluster, kubeconfig, api_client)
    assert {"hoststate-operator-leader-election", "hoststate-operator-status-fan-out"} <= set(caller.names.values())
    return caller


def test_the_election_is_in_the_leader_election_level_and_the_fan_out_a_flow_of_its_own(
    operator_identity: Caller, custom: k8s.CustomObjectsApi, namespace: str, lease_namespace: str
) -> None:
    lease = LEASES.path(lease_namespace, ELECTION_LEASE)
    # The API server applies new FlowSchemas in the background: until then, ServiceAccounts' defaults.
    wait_for(
        lambda: operator_identity.classified("GET", lease) == ("hoststate-operator-leader-election", "leader-election"),
        timeout=30,
        interval=0.2,
        what="the election's read classified as leader election",
    )
    renewal = {"metadata": {"labels": {"hoststate.io/test": "apf"}}}  # dry run: the holder is not disturbed
    assert operator_identity.classified("PATCH", f"{lease}?dryRun=All", renewal) == (
        "hoststate-operator-leader-election",
        "leader-election",
    )

    custom.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, "servers", server("vm-apf", host="h"))
    status = {"status": {"hostStatus": "UP"}}
    assert operator_identity.classified(
        "PATCH", SERVERS.path(namespace, "vm-apf", "status") + "?dryRun=All", status
    ) == (
        "hoststate-operator-status-fan-out",
        "workload-low",
    )
    # Reading the heartbeat Leases (list and watch) is no election: the ServiceAccounts' default.
    assert operator_identity.classified("GET", LEASES.path(lease_namespace)) == ("service-accounts", "workload-low")
