"""The facade under test: in-process (its own event loop in a thread) on 127.0.0.1, against the
suite's real API server, and its users: ServiceAccounts given RBAC roles (a pytest plugin)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import kopf
import pytest
from aiohttp import web
from kubernetes import client as k8s

from hoststate import API_GROUP
from hoststate.devcluster import DevCluster, free_port
from hoststate.facade.app import STATE, create_app
from hoststate.facade.config import FacadeConfig
from hoststate.kube import KubeClient

TENANT_ROLE = "hoststate-tenant"


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


# -- users ------------------------------------------------------------------------------------
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
    """A Nova admin: `cluster_role` lets it list servers in every namespace and patch computeservices."""
    return make_cluster_user(api_client, namespace, name, cluster_role)


def make_cluster_user(api_client: k8s.ApiClient, namespace: str, name: str, cluster_role: str) -> str:
    """A ServiceAccount of `namespace` bound to `cluster_role` in every namespace: its token."""
    rbac = k8s.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name=f"{namespace}-{name}"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=cluster_role),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        )
    )
    return service_account_token(api_client, namespace, name)


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
