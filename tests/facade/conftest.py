"""The facade under test: in-process (its own event loop in a thread) on 127.0.0.1, against the
suite's real API server, with users that are ServiceAccounts given RBAC roles."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import pytest
from aiohttp import web
from kubernetes import client as k8s

from hoststate import API_GROUP
from hoststate.devcluster import DevCluster, free_port
from hoststate.facade import FacadeConfig, create_app
from hoststate.facade.app import STATE
from hoststate.kube import KubeClient
from tests import kubeobjects

VERSION = f"{API_GROUP}/v1alpha1"


class RunningFacade:
    """A facade on a free loopback port, its event loop in a background thread."""

    def __init__(self, cluster: DevCluster, config: FacadeConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        info = kopf.ConnectionInfo(server=cluster.server, ca_path=str(cluster.ca_file), token=cluster.admin_token)
        self.runner = self.call(self._start(info, config))

    async def _start(self, info: kopf.ConnectionInfo, config: FacadeConfig) -> web.AppRunner:
        self.kube = KubeClient(info)
        self.app = create_app(self.kube, config)
        runner = web.AppRunner(self.app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """Wait until the facade's cache has `obj` as the API server returned it (read-your-writes)."""
        state = self.app[STATE]
        kind = obj["kind"]
        informer = {"ComputeService": state.services, "Server": state.servers, "Lease": state.leases}[kind]
        assert self.call(informer.wait_for(obj, deleted=deleted, timeout=30)), (
            f"facade never saw {kind} {obj['metadata']['name']}"
        )

    def stop(self) -> None:
        async def shutdown() -> None:
            await self.runner.cleanup()
            await self.kube.close()

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="session")
def facade(cluster: DevCluster) -> Iterator[RunningFacade]:
    running = RunningFacade(cluster, FacadeConfig())
    yield running
    running.stop()


@pytest.fixture(scope="session")
def policy_facade(cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFacade]:
    """A facade whose policy file shows host_status to owners (the NFV setting) and UNKNOWN to all."""
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    policy.write_text('"os_compute_api:servers:show:host_status": "rule:admin_or_owner"\n')
    running = RunningFacade(cluster, FacadeConfig(policy_file=policy))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def unknown_only_facade(cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFacade]:
    policy = tmp_path_factory.mktemp("policy-unknown") / "policy.json"
    policy.write_text(json.dumps({"os_compute_api:servers:show:host_status:unknown-only": "rule:admin_or_owner"}))
    running = RunningFacade(cluster, FacadeConfig(policy_file=policy))
    yield running
    running.stop()


# -- users ----------------------------------------------------------------------------------
ADMIN_CLUSTER_ROLE = "hoststate-facade-test-admin"
TENANT_ROLE = "hoststate-tenant"


@pytest.fixture(scope="session")
def admin_cluster_role(api_client: k8s.ApiClient) -> str:
    rbac = k8s.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role(
        k8s.V1ClusterRole(
            metadata=k8s.V1ObjectMeta(name=ADMIN_CLUSTER_ROLE),
            rules=[
                k8s.V1PolicyRule(
                    api_groups=[API_GROUP],
                    resources=["computeservices"],
                    verbs=["get", "list", "watch", "patch", "delete"],
                ),
                k8s.V1PolicyRule(api_groups=[API_GROUP], resources=["servers"], verbs=["get", "list", "watch"]),
            ],
        )
    )
    return ADMIN_CLUSTER_ROLE


def service_account_token(api_client: k8s.ApiClient, namespace: str, name: str) -> str:
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name)))
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    return core.create_namespaced_service_account_token(name, namespace, request).status.token


def make_tenant(api_client: k8s.ApiClient, namespace: str, name: str) -> str:
    """A member of project `namespace`: may get and list its servers."""
    rbac = k8s.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        k8s.V1Role(
            metadata=k8s.V1ObjectMeta(name=f"{TENANT_ROLE}-{name}"),
            rules=[k8s.V1PolicyRule(api_groups=[API_GROUP], resources=["servers"], verbs=["get", "list", "watch"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name=f"{TENANT_ROLE}-{name}"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=f"{TENANT_ROLE}-{name}"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
    )
    return service_account_token(api_client, namespace, name)


def make_admin(api_client: k8s.ApiClient, namespace: str, name: str, cluster_role: str) -> str:
    rbac = k8s.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name=f"{namespace}-{name}"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=cluster_role),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        )
    )
    return service_account_token(api_client, namespace, name)


@dataclass
class Users:
    """Tokens: an admin (project = the test namespace), the project's owner, another project's member."""

    admin: str
    owner: str
    other: str
    project: str
    other_project: str
    admin_name: str = field(default="")


@pytest.fixture
def users(api_client: k8s.ApiClient, namespace: str, admin_cluster_role: str) -> Users:
    other_project = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=other_project)))
    return Users(
        admin=make_admin(api_client, namespace, "ops", admin_cluster_role),
        owner=make_tenant(api_client, namespace, "alice"),
        other=make_tenant(api_client, other_project, "mallory"),
        project=namespace,
        other_project=other_project,
        admin_name=f"system:serviceaccount:{namespace}:ops",
    )


# -- objects --------------------------------------------------------------------------------
@dataclass
class World:
    """A compute service and a server on it, both seen by the facade."""

    service: dict[str, Any]
    server: dict[str, Any]
    host: str

    @property
    def server_id(self) -> str:
        return self.server["metadata"]["uid"]

    @property
    def service_uuid(self) -> str:
        return self.service["metadata"]["uid"]


def create_service(custom: k8s.CustomObjectsApi, host: str, **spec: Any) -> dict[str, Any]:
    return custom.create_cluster_custom_object(
        API_GROUP, "v1alpha1", "computeservices", kubeobjects.compute_service(host, **spec)
    )


def create_server(custom: k8s.CustomObjectsApi, namespace: str, name: str, host: str, **spec: Any) -> dict[str, Any]:
    body = kubeobjects.server(name, host, **spec)
    return custom.create_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, "servers", body)


SERVER_SPEC = {
    "displayName": "web-1",
    "userId": "alice",
    "flavorId": "1",
    "imageId": "70a599e0-31e7-49b7-b260-868f441e862b",
    "keyName": "mykey",
    "metadata": {"My Server Name": "Apache1"},
    "addresses": {"private": [{"addr": "192.168.1.30", "macAddr": "00:0c:29:0d:11:74"}]},
}


@pytest.fixture
def world(custom: k8s.CustomObjectsApi, namespace: str, unique_host: str, facade: RunningFacade) -> World:
    service = create_service(custom, unique_host)
    server = create_server(custom, namespace, "web-1", unique_host, **SERVER_SPEC)
    facade.sync(service)
    facade.sync(server)
    return World(service=service, server=server, host=unique_host)


def get_service(custom: k8s.CustomObjectsApi, world: World) -> dict[str, Any]:
    return custom.get_cluster_custom_object(API_GROUP, "v1alpha1", "computeservices", world.service["metadata"]["name"])


# -- HTTP ----------------------------------------------------------------------------------
@dataclass
class Response:
    status: int
    headers: Any
    body: Any


def http(
    url: str,
    method: str = "GET",
    *,
    token: str | None = None,
    version: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = {"Accept": "application/json", **(headers or {})}
    if token:
        all_headers["X-Auth-Token"] = token
    if version:
        all_headers["OpenStack-API-Version"] = f"compute {version}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            return Response(response.status, response.headers, json.loads(payload) if payload else None)
    except urllib.error.HTTPError as error:
        payload = error.read()
        return Response(error.code, error.headers, json.loads(payload) if payload else None)


# Nova's doc/api_samples, the subset the facade serves (copied: see nova_api_samples/README.md).
SAMPLES = Path(__file__).resolve().parent / "nova_api_samples"
