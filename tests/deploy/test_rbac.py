"""RBAC proven minimal: the real operator, facade and agent run with tokens of the manifests'
ServiceAccounts (never the admin token) and the rules of rbac-*.yaml.

- sufficient: the whole force-down flow works with exactly those rules;
- necessary: with any one permission taken away, the component fails (a Forbidden shows);
- confined: each identity is refused what it must not do (the agent cannot touch a
  ComputeService, the operator cannot change a spec, the facade writes only with its callers' tokens);
- one host, one voice: the admission policy (admission-heartbeat-leases.yaml) confines an agent to
  its own host's Lease, whether its host comes from the node its token is bound to (the DaemonSet)
  or from its ServiceAccount's name (a host outside Kubernetes).

The processes run with the arguments of the manifests' containers (deployment.yaml,
agent-daemonset.yaml); only ports, addresses and test-speed timings are changed.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import signal
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry

from hoststate import API_GROUP, API_VERSION
from hoststate.devcluster import DevCluster, free_port
from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.devcluster.scraper import parse, scrape, total
from hoststate.devcluster.stack import Kubectl
from hoststate.domain import COMPUTE_BINARY
from hoststate.kube import KubeClient
from hoststate.operator.leases import HEARTBEAT_POLICY, HeartbeatPolicyCheck
from hoststate.prometheus import OperatorMetrics
from hoststate.resources.computeservice import service_name
from hoststate.resources.lease import heartbeat_lease, renewal_patch
from tests.kubeobjects import compute_service, server
from tests.support.accounts import cluster_role, refused_with
from tests.support.processes import Operator

from .conftest import INSTALL_NAMESPACE, find

G, V = API_GROUP, API_VERSION
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
ADMISSION_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
TEST_TIMINGS = {"--service-down-time": "3", "--report-interval": "1", "--resync-period": "30"}


# -- identities -------------------------------------------------------------------------------
@dataclass
class Identity:
    name: str  # the ServiceAccount, in INSTALL_NAMESPACE
    kubeconfig: Path
    api: k8s.ApiClient

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)


class Identities:
    """Tokens (TokenRequest) and kubeconfigs for ServiceAccounts of the install namespace."""

    def __init__(self, cluster: DevCluster, api_client: k8s.ApiClient, directory: Path) -> None:
        self.cluster = cluster
        self.core = k8s.CoreV1Api(api_client)
        self.directory = directory
        self._clients: list[k8s.ApiClient] = []

    def token(self, service_account: str, namespace: str = INSTALL_NAMESPACE, node: str | None = None) -> str:
        """A token of the ServiceAccount; bound to the Node `node` (as a pod's token names its node) if given."""
        bound = None
        if node is not None:
            uid = self.core.read_node(node).metadata.uid
            bound = k8s.V1BoundObjectReference(api_version="v1", kind="Node", name=node, uid=uid)
        spec = k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600, bound_object_ref=bound)
        request = k8s.AuthenticationV1TokenRequest(spec=spec)
        return self.core.create_namespaced_service_account_token(service_account, namespace, request).status.token

    def __call__(self, service_account: str, node: str | None = None) -> Identity:
        ca = base64.b64encode(self.cluster.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "test", "cluster": {"server": self.cluster.server, "certificate-authority-data": ca}}
            ],
            "users": [{"name": service_account, "user": {"token": self.token(service_account, node=node)}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": service_account}}],
            "current-context": "test",
        }
        path = self.directory / f"{service_account}{'@' + node if node else ''}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        api = k8s_config.new_client_from_config(config_file=str(path))
        self._clients.append(api)
        return Identity(service_account, path, api)

    def close(self) -> None:
        for api in self._clients:
            api.close()


@pytest.fixture(scope="module")
def manifests_rbac(
    rendered: list[dict[str, Any]], kubectl: Kubectl, install_namespace: str, tmp_path_factory
) -> list[dict]:
    """The base's ServiceAccounts, roles and bindings, the agents' admission policy and the
    operator's election Lease, applied for real."""
    objects = [o for o in rendered if o["kind"] in RBAC_KINDS + ADMISSION_KINDS + ("Lease",)]
    path = tmp_path_factory.mktemp("rbac") / "rbac.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path), capture=True)
    return objects


@pytest.fixture(scope="module")
def identities(
    cluster: DevCluster, api_client: k8s.ApiClient, manifests_rbac: list[dict], tmp_path_factory
) -> Iterator[Identities]:
    made = Identities(cluster, api_client, tmp_path_factory.mktemp("kubeconfigs"))
    yield made
    made.close()


def node(api_client: k8s.ApiClient, name: str) -> str:
    """A Node object (no kubelet): what a DaemonSet pod's token is bound to."""
    k8s.CoreV1Api(api_client).create_node(k8s.V1Node(metadata=k8s.V1ObjectMeta(name=name)))
    return name


def heartbeat(host: str) -> dict[str, Any]:
    """The heartbeat Lease of host's nova-compute, as the agent creates it."""
    return heartbeat_lease(host, COMPUTE_BINARY, datetime.now(UTC), 60)


@pytest.fixture(scope="module")
def policy_enforced(identities: Identities, api_client: k8s.ApiClient) -> None:
    """Wait until the API server enforces the admission policy (it compiles it in the background)."""
    leases = k8s.CoordinationV1Api(identities("hoststate-agent").api)  # bound to no node: speaks for no host

    def refused() -> bool:
        try:
            leases.create_namespaced_lease(INSTALL_NAMESPACE, heartbeat("host-unbound"), dry_run="All")
        except k8s.ApiException as error:
            return error.status == 403 and "speaks for no host" in error.body
        return False

    wait_for(refused, timeout=30, interval=0.2, what="the heartbeat admission policy to be enforced")


# -- the processes, with the manifests' arguments ---------------------------------------------
def container(rendered: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    workload = next(o for o in rendered if o["kind"] == kind)
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def manifest_args(spec: dict[str, Any], overrides: dict[str, str], env: dict[str, str] | None = None) -> list[str]:
    """The container's args with $(VAR) expanded as the kubelet does, and `--flag=value` overrides."""
    args = [re.sub(r"\$\((\w+)\)", lambda m: (env or {})[m.group(1)], arg) for arg in spec["args"]]
    result = [arg for arg in args if arg.split("=", 1)[0] not in overrides]
    return result + [f"{flag}={value}" for flag, value in overrides.items()]


def port_of(args: list[str], flag: str) -> int:
    return int(next(a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")))


class Stack:
    """The manifests' operator, facade and agents, each with its own identity's kubeconfig."""

    def __init__(self, rendered: list[dict[str, Any]]) -> None:
        self.rendered = rendered
        self.processes: list[HoststateProcess] = []
        self.ports: dict[int, int] = {}  # container port (as in the manifests) -> the local one

    def _map_ports(self, spec: dict[str, Any], overrides: dict[str, str]) -> None:
        for flag in ("--port", "--metrics-port"):
            if flag in overrides and any(a.startswith(f"{flag}=") for a in spec["args"]):
                self.ports[port_of(spec["args"], flag)] = int(overrides[flag])

    def _start(self, args: list[str], identity: Identity, name: str) -> HoststateProcess:
        process = HoststateProcess(args, identity.kubeconfig, name).start()
        self.processes.append(process)
        return process

    def operator(self, identity: Identity, wait: bool = True) -> tuple[HoststateProcess, int]:
        spec = container(self.rendered, "Deployment", "operator")
        port = free_port()
        overrides = {"--metrics-port": str(port), "--lease-namespace": INSTALL_NAMESPACE, **TEST_TIMINGS}
        self._map_ports(spec, overrides)
        args = manifest_args(spec, overrides)
        process = self._start(args, identity, f"operator-{identity.name}")
        if wait:
            process.wait_for_output("hoststate operator started")
        return process, port

    def facade(self, identity: Identity) -> tuple[HoststateProcess, str]:
        spec = container(self.rendered, "Deployment", "facade")
        port = free_port()
        overrides = {"--host": "127.0.0.1", "--port": str(port), "--lease-namespace": INSTALL_NAMESPACE}
        overrides |= {k: v for k, v in TEST_TIMINGS.items() if k != "--resync-period"}
        if any(arg.startswith("--metrics-port=") for arg in spec["args"]):
            overrides["--metrics-port"] = str(free_port())
        self._map_ports(spec, overrides)
        process = self._start(manifest_args(spec, overrides), identity, f"facade-{identity.name}")
        return process, f"http://127.0.0.1:{port}"

    def agent(self, identity: Identity, host: str) -> HoststateProcess:
        spec = container(self.rendered, "DaemonSet", "agent")
        env = {"NODE_NAME": host, "HOSTSTATE_REPORT_INTERVAL": TEST_TIMINGS["--report-interval"]}
        args = manifest_args(spec, {"--lease-namespace": INSTALL_NAMESPACE}, env)
        return self._start(args, identity, f"agent-{identity.name}")

    def stop(self) -> None:
        for process in self.processes:  # signal them all first: they stop in parallel
            if process.running:
                process.proc.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.stop()
        self.processes.clear()


@pytest.fixture
def stack(rendered: list[dict[str, Any]]) -> Iterator[Stack]:
    made = Stack(rendered)
    yield made
    made.stop()


@pytest.fixture
def only_our_operator(operator_handle: Operator) -> None:
    """Stop the suite's admin operator so that only the RBAC-limited one acts; the operator
    tests restart it (ensure_running)."""
    operator_handle.stop()


# -- helpers ----------------------------------------------------------------------------------
def nova(url: str, method: str, path: str, token: str | None, version: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "OpenStack-API-Version": f"compute {version}",
            "X-OpenStack-Nova-API-Version": version,
            **({"X-Auth-Token": token} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except OSError:
        return 0, None  # not listening (yet)


def serving(facade: HoststateProcess, url: str) -> None:
    """Wait until the facade answers (its port opens once its cache has synced); fail if it died."""

    def answers() -> bool:
        if not facade.running:
            raise AssertionError(f"the facade exited:\n{facade.output()[-3000:]}")
        return nova(url, "GET", "/", None, "2.1")[0] == 200

    wait_for(answers, timeout=60, what="the facade to serve")


def host_statuses(custom: k8s.CustomObjectsApi, namespace: str, names: list[str]) -> set[str]:
    return {
        (custom.get_namespaced_custom_object(G, V, namespace, "servers", name).get("status") or {}).get(
            "hostStatus", ""
        )
        for name in names
    }


def forbidden(call) -> bool:
    try:
        call()
    except k8s.ApiException as error:
        return error.status == 403
    return False


FLEET_ADMIN_ROLE = "hoststate-deploy-test-fleet-admin"


@pytest.fixture(scope="module")
def fleet_admin_role(api_client: k8s.ApiClient) -> str:
    """What a fault monitor or a cloud admin gets: the facade makes them Nova admin."""
    verbs = {"computeservices": ["get", "list", "watch", "patch"], "servers": ["get", "list", "watch"]}
    return cluster_role(api_client, FLEET_ADMIN_ROLE, verbs)


def fleet_admin(api_client: k8s.ApiClient, identities: Identities, namespace: str, role: str) -> str:
    """A ServiceAccount in the tenant namespace `namespace`, bound to the fleet admin role: its token."""
    k8s.CoreV1Api(api_client).create_namespaced_service_account(
        namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="fleet-admin"))
    )
    k8s.RbacAuthorizationV1Api(api_client).create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name=f"{namespace}-fleet-admin"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="fleet-admin", namespace=namespace)],
        )
    )
    return identities.token("fleet-admin", namespace)


def forbidden_lines(*processes: HoststateProcess) -> list[str]:
    return [f"{p.name}: {line}" for p in processes for line in p.output().splitlines() if "forbidden" in line.lower()]


# -- sufficient --------------------------------------------------------------------------------
def test_force_down_flow_works_with_the_manifests_rbac(
    only_our_operator: None,
    policy_enforced: None,
    stack: Stack,
    identities: Identities,
    fleet_admin_role: str,
    api_client: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespace: str,
    unique_host: str,
) -> None:
    operator, metrics_port = stack.operator(identities("hoststate-operator"))
    facade, facade_url = stack.facade(identities("hoststate-facade"))
    agent = stack.agent(identities("hoststate-agent", node=node(api_client, unique_host)), unique_host)
    admin_token = fleet_admin(api_client, identities, namespace, fleet_admin_role)

    service = custom.create_cluster_custom_object(G, V, "computeservices", compute_service(unique_host))
    names = ["vm-1", "vm-2"]
    created = [
        custom.create_namespaced_custom_object(G, V, namespace, "servers", server(n, host=unique_host)) for n in names
    ]
    wait_for(lambda: host_statuses(custom, namespace, names) == {"UP"}, what="servers UP (agent's heartbeat seen)")

    # A fleet admin forces the host down through the Nova facade: TokenReview,
    # SubjectAccessReview, then a PATCH made with the caller's own token.
    serving(facade, facade_url)
    body = {"host": unique_host, "binary": "nova-compute", "forced_down": True}
    status, answer = nova(facade_url, "PUT", "/v2.1/os-services/force-down", admin_token, "2.11", body)
    assert status == 200 and answer["service"]["forced_down"] is True, (status, answer, facade.output()[-2000:])
    wait_for(lambda: host_statuses(custom, namespace, names) == {"DOWN"}, what="servers DOWN after force-down")

    # The facade's watch cache (its list/watch rights) shows it to the admin (host_status, 2.16).
    uid = created[0]["metadata"]["uid"]
    wait_for(
        lambda: (
            (nova(facade_url, "GET", f"/v2.1/servers/{uid}", admin_token, "2.16")[1] or {})
            .get("server", {})
            .get("host_status")
            == "DOWN"
        ),
        what="host_status DOWN through the facade",
    )

    # Unset it with kubectl's way (a plain patch): back UP, the agent still beating.
    custom.patch_cluster_custom_object(
        G, V, "computeservices", service["metadata"]["name"], {"spec": {"forcedDown": False}}
    )
    wait_for(lambda: host_statuses(custom, namespace, names) == {"UP"}, what="servers UP after unsetting forcedDown")

    # It was this operator's work (its own counters), without a single refused request.
    # (the force-down and the unset each fanned out to both servers)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    samples = wait_for(
        lambda: total(s := scrape(metrics_url), "hoststate_fanout_servers_patched_total") >= 2 * len(names) and s,
        what="this operator's fan-out counter",
    )
    assert total(samples, "hoststate_reconcile_errors_total") == 0
    # It trusts the agents' Leases: the admission policy stands.
    assert total(samples, "hoststate_heartbeat_policy_enforced") == 1
    # Its Events went to the tenant namespace (Servers) and to "default" (the ComputeService).
    core = k8s.CoreV1Api(api_client)

    def events_in(ns: str, name: str) -> list:
        return [e for e in core.list_namespaced_event(ns).items if e.involved_object.name == name]

    wait_for(lambda: events_in(namespace, names[0]), what="Server events in the tenant namespace")
    wait_for(lambda: events_in("default", service["metadata"]["name"]), what="ComputeService events in default")
    assert not forbidden_lines(operator, facade, agent)
    check_probes_and_scrapes(stack)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def check_probes_and_scrapes(stack: Stack) -> None:
    """The Deployment's probes and the ServiceMonitor's endpoints, resolved through the Service
    to container ports, answer on the real processes."""
    deployment = find(stack.rendered, "Deployment", "hoststate")
    named = {}  # port name -> container port
    for spec in deployment["spec"]["template"]["spec"]["containers"]:
        named |= {p["name"]: p["containerPort"] for p in spec["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            action = spec[probe]["httpGet"]
            status, _ = get(stack.ports[named[action["port"]]], action["path"])
            assert status == 200, f"{spec['name']} {probe} {action} answers {status}"
    service_ports = {p["name"]: p["targetPort"] for p in find(stack.rendered, "Service", "hoststate")["spec"]["ports"]}
    for endpoint in find(stack.rendered, "ServiceMonitor", "hoststate")["spec"]["endpoints"]:
        status, text = get(stack.ports[named[service_ports[endpoint["port"]]]], endpoint["path"])
        assert status == 200, f"scrape of {endpoint['port']} answers {status}"
        samples = parse(text)
        assert any(name.startswith("hoststate_") for name in samples), f"{endpoint['port']}: {sorted(samples)}"


# -- confined ----------------------------------------------------------------------------------
def test_each_identity_is_refused_what_it_must_not_do(
    identities: Identities, custom: k8s.CustomObjectsApi, unique_host: str, namespace: str
) -> None:
    name = custom.create_cluster_custom_object(G, V, "computeservices", compute_service(unique_host))["metadata"][
        "name"
    ]
    custom.create_namespaced_custom_object(G, V, namespace, "servers", server("vm", host=unique_host))
    down = {"spec": {"forcedDown": True}}
    agent, operator, facade = (identities(n) for n in ("hoststate-agent", "hoststate-operator", "hoststate-facade"))

    # The agent: only Leases. It cannot force a host down (nor up), nor fake a status.
    assert forbidden(lambda: agent.custom.patch_cluster_custom_object(G, V, "computeservices", name, down))
    assert forbidden(
        lambda: agent.custom.patch_cluster_custom_object_status(
            G, V, "computeservices", name, {"status": {"state": "up"}}
        )
    )
    assert forbidden(lambda: agent.custom.list_cluster_custom_object(G, V, "computeservices"))
    assert forbidden(lambda: k8s.CoordinationV1Api(agent.api).list_namespaced_lease("default"))
    # The operator writes statuses only: never a spec, never a delete, never a Secret.
    assert forbidden(lambda: operator.custom.patch_cluster_custom_object(G, V, "computeservices", name, down))
    assert forbidden(lambda: operator.custom.delete_namespaced_custom_object(G, V, namespace, "servers", "vm"))
    assert forbidden(lambda: k8s.CoreV1Api(operator.api).list_namespaced_secret(INSTALL_NAMESPACE))
    # The facade writes nothing as itself: a force-down is made as the caller.
    assert forbidden(lambda: facade.custom.patch_cluster_custom_object(G, V, "computeservices", name, down))
    assert forbidden(lambda: facade.custom.delete_cluster_custom_object(G, V, "computeservices", name))
    assert forbidden(lambda: k8s.CoreV1Api(facade.api).list_namespaced_secret(INSTALL_NAMESPACE))
    assert not custom.get_cluster_custom_object(G, V, "computeservices", name)["spec"].get("forcedDown")


def test_the_operator_writes_only_its_election_lease(
    identities: Identities, api_client: k8s.ApiClient, unique_host: str
) -> None:
    """Get and patch of the shipped election Lease, by name; no create, no other Lease."""
    leases = k8s.CoordinationV1Api(identities("hoststate-operator").api)
    leases.read_namespaced_lease("hoststate-operator", INSTALL_NAMESPACE)
    leases.patch_namespaced_lease("hoststate-operator", INSTALL_NAMESPACE, {"spec": {}}, dry_run="All")
    other = {"metadata": {"name": "hoststate-operator-2"}, "spec": {}}
    assert forbidden(lambda: leases.create_namespaced_lease(INSTALL_NAMESPACE, other, dry_run="All"))
    k8s.CoordinationV1Api(api_client).create_namespaced_lease(INSTALL_NAMESPACE, heartbeat(unique_host))
    renewal = renewal_patch(unique_host, datetime.now(UTC), 60)
    assert forbidden(lambda: leases.patch_namespaced_lease(service_name(unique_host), INSTALL_NAMESPACE, renewal))


# -- one host, one voice -----------------------------------------------------------------------
def renewal_patch_for(host: str) -> dict[str, Any]:
    return renewal_patch(host, datetime.now(UTC), 60)


def test_an_agent_renews_only_the_lease_of_the_node_its_token_is_bound_to(
    policy_enforced: None, identities: Identities, api_client: k8s.ApiClient, unique_host: str
) -> None:
    """The DaemonSet's identity: one ServiceAccount, each pod's token bound to its node."""
    host_a, host_b = node(api_client, f"{unique_host}-a"), node(api_client, f"{unique_host}-b")
    agent_a = k8s.CoordinationV1Api(identities("hoststate-agent", node=host_a).api)
    admin = k8s.CoordinationV1Api(api_client)
    lease_a, lease_b = service_name(host_a), service_name(host_b)

    # Its own Lease: created, renewed.
    agent_a.create_namespaced_lease(INSTALL_NAMESPACE, heartbeat(host_a))
    renewal = renewal_patch_for(host_a)
    agent_a.patch_namespaced_lease(lease_a, INSTALL_NAMESPACE, renewal)

    # Host B's Lease: neither created nor renewed, with a message naming both.
    create_b = refused_with(lambda: agent_a.create_namespaced_lease(INSTALL_NAMESPACE, heartbeat(host_b)))
    assert f"the agent of host {host_a} may write only its own heartbeat Leases ({host_a}.<binary>), " in create_b
    assert f"not Lease {lease_b}" in create_b
    admin.create_namespaced_lease(INSTALL_NAMESPACE, heartbeat(host_b))
    renew_b = refused_with(
        lambda: agent_a.patch_namespaced_lease(lease_b, INSTALL_NAMESPACE, renewal_patch_for(host_b))
    )
    assert f"not Lease {lease_b}" in renew_b
    # Nor its own Lease made to claim another holder.
    spoof = refused_with(lambda: agent_a.patch_namespaced_lease(lease_a, INSTALL_NAMESPACE, renewal_patch_for(host_b)))
    assert f"the agent of host {host_a} may not set spec.holderIdentity to {host_b} (Lease {lease_a})" in spoof
    assert admin.read_namespaced_lease(lease_a, INSTALL_NAMESPACE).spec.holder_identity == host_a

    # A token of the same ServiceAccount bound to no node speaks for no host.
    unbound = k8s.CoordinationV1Api(identities("hoststate-agent").api)
    nobody = refused_with(lambda: unbound.patch_namespaced_lease(lease_a, INSTALL_NAMESPACE, renewal))
    assert f"system:serviceaccount:{INSTALL_NAMESPACE}:hoststate-agent speaks for no host" in nobody


def test_a_host_outside_kubernetes_speaks_with_its_own_service_account(
    policy_enforced: None, identities: Identities, api_client: k8s.ApiClient, stack: Stack, unique_host: str
) -> None:
    """hoststate-agent-<host>, bound to the agent's Role: the real agent heartbeats its own host,
    and the same identity is refused, readably, for another host (host names as Nova has them)."""
    host, other = f"{unique_host}_A", f"{unique_host}-b"
    speaks_for = service_name(host).removesuffix(f".{COMPUTE_BINARY}")  # host-…-a
    account = f"hoststate-agent-{speaks_for}"
    core, rbac = k8s.CoreV1Api(api_client), k8s.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(
        INSTALL_NAMESPACE, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=account))
    )
    rbac.create_namespaced_role_binding(
        INSTALL_NAMESPACE,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name=account),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="hoststate-agent"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=account, namespace=INSTALL_NAMESPACE)],
        ),
    )
    identity = identities(account)
    own = stack.agent(identity, host)
    impostor = stack.agent(identity, other)

    leases = k8s.CoordinationV1Api(api_client)

    def renew_time(name: str) -> datetime | None:
        try:
            return leases.read_namespaced_lease(name, INSTALL_NAMESPACE).spec.renew_time
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise

    first = wait_for(lambda: renew_time(service_name(host)), what="the agent's own Lease")
    impostor.wait_for_output(f"the agent of host {speaks_for} may write only its own heartbeat Leases", timeout=60)
    wait_for(lambda: renew_time(service_name(host)) != first, what="a renewal")
    assert leases.read_namespaced_lease(service_name(host), INSTALL_NAMESPACE).spec.holder_identity == host
    assert renew_time(service_name(other)) is None
    assert own.running


def test_the_operator_trusts_leases_only_where_the_policy_denies(
    policy_enforced: None, cluster: DevCluster, api_client: k8s.ApiClient
) -> None:
    """The operator's check (operator/leases.py): the policy and a Deny binding stand, or the
    gauge says 0 and why; a binding in Warn only does not count."""
    admission = k8s.AdmissionregistrationV1Api(api_client)

    async def check() -> tuple[str | None, float]:
        info = kopf.ConnectionInfo(server=cluster.server, ca_path=str(cluster.ca_file), token=cluster.admin_token)
        registry = CollectorRegistry()
        async with KubeClient(info) as client:
            problem = await HeartbeatPolicyCheck(client, OperatorMetrics(registry).heartbeat_policy_enforced).check()
        return problem, registry.get_sample_value("hoststate_heartbeat_policy_enforced")

    assert asyncio.run(check()) == (None, 1)
    binding = {"spec": {"validationActions": ["Warn"]}}
    admission.patch_validating_admission_policy_binding(HEARTBEAT_POLICY, binding)
    try:
        problem, enforced = asyncio.run(check())
        assert enforced == 0 and problem == (
            f"no ValidatingAdmissionPolicyBinding of {HEARTBEAT_POLICY} denies (validationActions Deny, all Leases)"
        )
    finally:
        admission.patch_validating_admission_policy_binding(HEARTBEAT_POLICY, {"spec": {"validationActions": ["Deny"]}})


# -- necessary ---------------------------------------------------------------------------------
def permissions(role: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every rule of a Role or ClusterRole, one by one."""
    return [
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def without(role: dict[str, Any], permission: tuple[str, str, str]) -> dict[str, Any]:
    """The role with one (group, resource, verb) removed."""
    reduced = copy.deepcopy(role)
    rules = []
    for rule in reduced["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs = [v for v in rule["verbs"] if (group, resource, v) != permission]
                if verbs:
                    names = {"resourceNames": rule["resourceNames"]} if "resourceNames" in rule else {}
                    rules.append({"apiGroups": [group], "resources": [resource], "verbs": verbs, **names})
    reduced["rules"] = rules
    return reduced


class Ablation:
    """A copy of a component's roles, minus one permission, bound to a ServiceAccount of its own."""

    def __init__(self, rendered: list[dict[str, Any]], kubectl: Kubectl, identities: Identities, tmp: Path) -> None:
        self.rendered = rendered
        self.kubectl = kubectl
        self.identities = identities
        self.tmp = tmp

    def roles_of(self, service_account: str) -> list[dict[str, Any]]:
        bindings = [
            o
            for o in self.rendered
            if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
            and any(s["name"] == service_account for s in o["subjects"])
        ]
        return [find(self.rendered, b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings]

    def all_permissions(self, service_account: str) -> list[tuple[str, str, str]]:
        return [p for role in self.roles_of(service_account) for p in permissions(role)]

    def identity_without(self, service_account: str, permission: tuple[str, str, str]) -> Identity:
        name = f"ablated-{uuid.uuid4().hex[:8]}"
        objects: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": INSTALL_NAMESPACE}}
        ]
        for role in self.roles_of(service_account):
            reduced = without(role, permission)
            role_name = f"{name}-{role['metadata']['name']}"
            reduced["metadata"] = {
                "name": role_name,
                **({"namespace": INSTALL_NAMESPACE} if role["kind"] == "Role" else {}),
            }
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding" if role["kind"] == "Role" else "ClusterRoleBinding",
                "metadata": {"name": role_name, **({"namespace": INSTALL_NAMESPACE} if role["kind"] == "Role" else {})},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"], "name": role_name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": INSTALL_NAMESPACE}],
            }
            objects += [reduced, binding]
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(objects))
        self.kubectl("apply", "--server-side", "-f", str(path), capture=True)
        return self.identities(name)


@pytest.fixture
def ablation(rendered, kubectl, identities, tmp_path) -> Ablation:
    return Ablation(rendered, kubectl, identities, tmp_path)


def refusal(permission: tuple[str, str, str]) -> str:
    """How the API server words the refusal of exactly this permission."""
    group, resource, verb = permission
    return f'cannot {verb} resource "{resource}" in API group "{group}"'


# The operator reads these when it starts; it needs the others to act on a change.
OPERATOR_READS = [
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    (G, "computeservices", "list"),
    (G, "computeservices", "watch"),
    (G, "servers", "watch"),
    (G, "hoststatussubscriptions", "watch"),
    ("coordination.k8s.io", "leases", "watch"),
    ("coordination.k8s.io", "leases", "get"),  # the election Lease
    ("admissionregistration.k8s.io", "validatingadmissionpolicies", "get"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "list"),
]
OPERATOR_WRITES = [
    (G, "computeservices/status", "patch"),
    (G, "servers/status", "patch"),
    (G, "hoststatussubscriptions/status", "patch"),
    ("", "events", "create"),
    ("coordination.k8s.io", "leases", "patch"),  # taking and renewing the election Lease
]
OPERATOR_MOVES = [(G, "servers", "patch")]  # an automatic evacuation; not taken apart below
# The informers list with a watch list (one watch, authorized as a watch); list is what an API server that
# refuses watch lists makes them fall back to (paged lists). Not taken apart below: this API server serves
# watch lists, so the operator starts without them.
OPERATOR_FALLBACK_READS = [
    (G, "servers", "list"),
    (G, "hoststatussubscriptions", "list"),
    ("coordination.k8s.io", "leases", "list"),
]


def test_the_manifests_grant_what_the_code_uses(ablation: Ablation) -> None:
    """Each component's permissions, spelled out for review: the operator's are the lists the
    ablation tests below take apart (above), and the ones they leave."""
    assert sorted(ablation.all_permissions("hoststate-operator")) == sorted(
        OPERATOR_READS + OPERATOR_WRITES + OPERATOR_MOVES + OPERATOR_FALLBACK_READS
    )
    assert sorted(ablation.all_permissions("hoststate-agent")) == [
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "patch"),
        (G, "servers", "list"),  # with a guest driver: the servers evacuated from its host
        (G, "servers/status", "patch"),  # their records completed (admission-agent-evacuations.yaml)
    ]
    assert sorted(ablation.all_permissions("hoststate-facade")) == sorted(
        [
            (G, "computeservices", "list"),
            (G, "computeservices", "watch"),
            (G, "servers", "list"),
            (G, "servers", "watch"),
            ("coordination.k8s.io", "leases", "list"),
            ("coordination.k8s.io", "leases", "watch"),
            ("authentication.k8s.io", "tokenreviews", "create"),
            ("authorization.k8s.io", "subjectaccessreviews", "create"),
        ]
    )


def test_operator_needs_each_read(only_our_operator: None, ablation: Ablation, stack: Stack) -> None:
    # All at once: a missing read shows when the operator starts, whatever the others do.
    started = [
        (permission, stack.operator(ablation.identity_without("hoststate-operator", permission), wait=False)[0])
        for permission in OPERATOR_READS
    ]
    for permission, process in started:
        process.wait_for_output(refusal(permission), timeout=60)


@pytest.mark.parametrize("permission", OPERATOR_WRITES, ids=lambda p: f"{p[2]}-{p[1]}")
def test_operator_needs_each_write(
    only_our_operator: None,
    ablation: Ablation,
    stack: Stack,
    custom: k8s.CustomObjectsApi,
    namespace: str,
    unique_host: str,
    permission: tuple[str, str, str],
) -> None:
    # One operator at a time: a new service (its status to write, an Event to post), a
    # server on it (its status to patch) and a subscription (its status to write, here that
    # its Secret cannot be read), for this operator alone to act on.
    custom.create_cluster_custom_object(G, V, "computeservices", compute_service(unique_host, forcedDown=True))
    custom.create_namespaced_custom_object(G, V, namespace, "servers", server("vm", host=unique_host))
    subscription = {
        "apiVersion": f"{G}/{V}",
        "kind": "HostStatusSubscription",
        "metadata": {"name": "hook"},
        "spec": {"url": "http://127.0.0.1:9/hook", "signingKeySecretRef": {"name": "hook-key"}},
    }
    custom.create_namespaced_custom_object(G, V, namespace, "hoststatussubscriptions", subscription)
    process, _ = stack.operator(ablation.identity_without("hoststate-operator", permission))
    process.wait_for_output(refusal(permission), timeout=60)


@pytest.mark.parametrize(
    "permission",
    [("coordination.k8s.io", "leases", "create"), ("coordination.k8s.io", "leases", "patch")],
    ids=lambda p: p[2],
)
def test_agent_needs_each_permission(ablation: Ablation, stack: Stack, unique_host: str, permission) -> None:
    # A host that never beat: its Lease must be created (after the first patch finds none).
    agent = stack.agent(ablation.identity_without("hoststate-agent", permission), unique_host)
    agent.wait_for_output(refusal(permission), timeout=60)
