"""Least privilege for the returning host's agent, enforced by the API server: with the manifests'
RBAC (rbac-agent.yaml) and admission policy (admission-agent-evacuations.yaml), a host's identity
completes the evacuation records of servers evacuated from its host, and nothing else: not another
host's, not other status fields, not a record's facts, not a spec. The real agent runs with it."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from hoststate import API_GROUP, API_VERSION
from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.devcluster.stack import MANIFESTS_DIR, Kubectl
from hoststate.resources.lease import DEFAULT_LEASE_NAMESPACE
from tests.kubeobjects import server
from tests.support.accounts import refused_with
from tests.support.processes import REPORT_INTERVAL

NS = DEFAULT_LEASE_NAMESPACE  # the agents' ServiceAccounts live in the install namespace
G, V = API_GROUP, API_VERSION


@pytest.fixture(scope="module")
def policy(kubectl: Kubectl, lease_namespace: str) -> None:
    for name in ("rbac-agent.yaml", "admission-agent-evacuations.yaml"):
        kubectl("apply", "--server-side", "--force-conflicts", "-n", NS, "-f", str(MANIFESTS_DIR / name), capture=True)


class Agent:
    """A host's identity: the ServiceAccount hoststate-agent-<host>, bound as rbac-agent.yaml says."""

    def __init__(self, cluster: DevCluster, api_client: k8s.ApiClient, host: str, directory: Path) -> None:
        self.host = host
        self.account = f"hoststate-agent-{host}"
        core, rbac = k8s.CoreV1Api(api_client), k8s.RbacAuthorizationV1Api(api_client)
        core.create_namespaced_service_account(NS, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=self.account)))
        subject = k8s.RbacV1Subject(kind="ServiceAccount", name=self.account, namespace=NS)
        rbac.create_cluster_role_binding(
            k8s.V1ClusterRoleBinding(
                metadata=k8s.V1ObjectMeta(name=self.account),
                role_ref=k8s.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="hoststate-agent-evacuations"
                ),
                subjects=[subject],
            )
        )
        rbac.create_namespaced_role_binding(
            NS,
            k8s.V1RoleBinding(
                metadata=k8s.V1ObjectMeta(name=self.account),
                role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="hoststate-agent"),
                subjects=[subject],
            ),
        )
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        token = core.create_namespaced_service_account_token(self.account, NS, request).status.token
        ca = base64.b64encode(cluster.ca_file.read_bytes()).decode()
        self.kubeconfig = directory / f"{self.account}.kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "c", "cluster": {"server": cluster.server, "certificate-authority-data": ca}}
                    ],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        self.api = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        self.custom = k8s.CustomObjectsApi(self.api)


def evacuated(custom: k8s.CustomObjectsApi, namespace: str, name: str, source: str, target: str, state="done"):
    """A server moved from source to target, its record as the operator writes it."""
    body = custom.create_namespaced_custom_object(G, V, namespace, "servers", server(name, target))
    record = {
        "id": str(uuid.uuid4()),
        "sourceHost": source,
        "targetHost": target,
        "requestedTime": "2026-11-24T12:00:00Z",
        "trigger": "api",
        "requestedBy": "ops",
        "state": state,
        "completedTime": "2026-11-24T12:00:05Z",
        "message": "server is UP",
    }
    status = {"status": {"hostStatus": "UP", "evacuation": record}}
    return custom.patch_namespaced_custom_object_status(G, V, namespace, "servers", body["metadata"]["name"], status)


def completed(message: str = "gone") -> dict[str, Any]:
    return {"status": {"evacuation": {"state": "completed", "message": message}}}


def test_an_agent_completes_only_its_own_hosts_evacuations(
    policy: None,
    cluster: DevCluster,
    api_client: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:6]
    host, other, target = f"back-{tag}", f"other-{tag}", f"dest-{tag}"
    agent = Agent(cluster, api_client, host, tmp_path)
    evacuated(custom, namespace, "mine", host, target)
    evacuated(custom, namespace, "theirs", other, target)
    evacuated(custom, namespace, "to-me", other, host)

    def patch(name: str, body: dict) -> Any:
        return agent.custom.patch_namespaced_custom_object_status(G, V, namespace, "servers", name, body)

    def denied() -> bool:  # the binding takes a moment to be enforced; a dry run changes nothing meanwhile
        try:
            agent.custom.patch_namespaced_custom_object_status(
                G, V, namespace, "servers", "theirs", completed(), dry_run="All"
            )
        except k8s.ApiException as error:
            return error.status == 403 and "may complete only the evacuations from its host" in error.body
        return False

    wait_for(denied, timeout=30, interval=0.2, what="the agent-evacuations policy to be enforced")
    message = refused_with(lambda: patch("theirs", completed()))
    assert f"the agent of host {host} may complete only the evacuations from its host" in message
    assert "may complete only" in refused_with(lambda: patch("to-me", completed()))  # evacuated TO it: not its record
    # Its own record: only the state (to completed), message and cleanedUpTime.
    assert "may change only the state" in refused_with(
        lambda: patch("mine", {"status": {"hostStatus": "DOWN", **completed()["status"]}})
    )
    assert "may change only the state" in refused_with(
        lambda: patch("mine", {"status": {"evacuation": {"state": "completed", "targetHost": host}}})
    )
    assert "may only turn an accepted, done or failed evacuation completed" in refused_with(
        lambda: patch("mine", {"status": {"evacuation": {"state": "accepted"}}})
    )
    # RBAC: no spec changes (patch servers), no reads of one server by name (get).
    spec = refused_with(
        lambda: agent.custom.patch_namespaced_custom_object(
            G, V, namespace, "servers", "mine", {"spec": {"host": host}}
        )
    )
    assert 'cannot patch resource "servers"' in spec
    assert 'cannot get resource "servers"' in refused_with(
        lambda: agent.custom.get_namespaced_custom_object(G, V, namespace, "servers", "mine")
    )
    assert (
        custom.get_namespaced_custom_object(G, V, namespace, "servers", "mine")["status"]["evacuation"]["state"]
        == "done"
    )

    # The real agent, with this identity: lists by field selector, completes its one record.
    args = [
        "agent",
        f"--report-interval={REPORT_INTERVAL}",
        f"--lease-namespace={NS}",
        f"--host={host}",
        "--guest-driver=exec",
        "--exec-command=true",
    ]
    process = HoststateProcess(args, agent.kubeconfig, "agent").start()
    try:
        wait_for(
            lambda: (
                custom.get_namespaced_custom_object(G, V, namespace, "servers", "mine")["status"]["evacuation"]["state"]
                == "completed"
            ),
            what="its record completed",
        )
        assert "Forbidden" not in process.output()
    finally:
        process.stop()
    for name in ("theirs", "to-me"):
        record = custom.get_namespaced_custom_object(G, V, namespace, "servers", name)["status"]["evacuation"]
        assert record["state"] == "done"
