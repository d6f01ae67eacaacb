"""Evacuation tests: the real API server, the operator as a subprocess, the facade in-process.

Hosts live in a zone of their own per test (ComputeServices are cluster-scoped and other tests
leave theirs behind), so target choice and the storm guard see only this test's hosts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client as k8s

from hoststate import API_GROUP
from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.domain.evacuation import EVACUATION_ANNOTATION, HA_LABEL
from tests.kubeobjects import compute_service, server
from tests.support.accounts import cluster_role
from tests.support.facade import RunningFacade, http, make_admin, make_tenant
from tests.support.processes import REPORT_INTERVAL

G, V = API_GROUP, "v1alpha1"
EVACUATION_ADMIN_ROLE = "hoststate-evacuation-test-admin"
READ_ONLY_SERVERS_ADMIN_ROLE = "hoststate-evacuation-test-admin-no-server-patch"


def _cluster_role(api_client: k8s.ApiClient, name: str, server_verbs: list[str]) -> str:
    return cluster_role(
        api_client, name, {"computeservices": ["get", "list", "watch", "patch"], "servers": server_verbs}
    )


@pytest.fixture(scope="session")
def evacuation_admin_role(api_client: k8s.ApiClient) -> str:
    """A Nova admin (may patch computeservices) who may also move servers (patch servers)."""
    return _cluster_role(api_client, EVACUATION_ADMIN_ROLE, ["get", "list", "watch", "patch"])


@pytest.fixture(scope="session")
def read_only_servers_admin_role(api_client: k8s.ApiClient) -> str:
    """A Nova admin whose RBAC does not let them patch servers."""
    return _cluster_role(api_client, READ_ONLY_SERVERS_ADMIN_ROLE, ["get", "list", "watch"])


@dataclass
class Tokens:
    admin: str  # may patch servers
    admin_without_patch: str  # a Nova admin whose RBAC does not let them move servers
    owner: str  # member of the project
    other: str  # member of another project


@pytest.fixture
def tokens(api_client, namespace: str, evacuation_admin_role: str, read_only_servers_admin_role: str) -> Tokens:
    other = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=other)))
    return Tokens(
        admin=make_admin(api_client, namespace, "evac-ops", evacuation_admin_role),
        admin_without_patch=make_admin(api_client, namespace, "viewer-ops", read_only_servers_admin_role),
        owner=make_tenant(api_client, namespace, "alice"),
        other=make_tenant(api_client, other, "mallory"),
    )


class Fleet:
    """This test's hosts (in a zone of their own) and servers."""

    def __init__(self, custom: k8s.CustomObjectsApi, api_client: k8s.ApiClient, namespace: str) -> None:
        self.custom = custom
        self.api_client = api_client
        self.namespace = namespace
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.zone = f"zone-{tag}"

    def host(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def service_name(self, host: str) -> str:
        return f"{host}.nova-compute"

    def create_service(self, host: str, *, zone: str | None = None, **spec: Any) -> dict:
        body = compute_service(host, zone=zone or self.zone, **spec)
        return self.custom.create_cluster_custom_object(G, V, "computeservices", body)

    def service(self, host: str) -> dict:
        return self.custom.get_cluster_custom_object(G, V, "computeservices", self.service_name(host))

    def patch_service(self, host: str, **spec: Any) -> dict:
        return self.custom.patch_cluster_custom_object(G, V, "computeservices", self.service_name(host), {"spec": spec})

    def create_server(self, name: str, host: str, *, ha: bool = False, **spec: Any) -> dict:
        body = server(name, host, **spec)
        if ha:
            body["metadata"]["labels"] = {HA_LABEL: "true"}
        return self.custom.create_namespaced_custom_object(G, V, self.namespace, "servers", body)

    def server(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(G, V, self.namespace, "servers", name)

    def evacuation(self, name: str) -> dict | None:
        return (self.server(name).get("status") or {}).get("evacuation")

    def request(self, name: str) -> dict | None:
        raw = (self.server(name)["metadata"].get("annotations") or {}).get(EVACUATION_ANNOTATION)
        return json.loads(raw) if raw else None

    def wait_evacuation(self, name: str, state: str, timeout: float = 30) -> dict:
        return wait_for(
            lambda: (e := self.evacuation(name)) and e.get("state") == state and e,
            timeout=timeout,
            what=f"{name} evacuation {state}: {self.evacuation(name)}",
        )

    def wait_host_status(self, name: str, expected: str, timeout: float = 30) -> None:
        wait_for(
            lambda: (self.server(name).get("status") or {}).get("hostStatus") == expected,
            timeout=timeout,
            what=f"{name} hostStatus {expected}: {self.server(name).get('status')}",
        )

    def events(self, namespace: str, name: str, reason: str) -> list:
        events = k8s.CoreV1Api(self.api_client).list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        )
        return [e for e in events.items if e.reason == reason]

    def wait_event(self, namespace: str, name: str, reason: str, timeout: float = 30) -> list:
        return wait_for(lambda: self.events(namespace, name, reason), timeout=timeout, what=f"{reason} event on {name}")


@pytest.fixture
def fleet(custom: k8s.CustomObjectsApi, api_client: k8s.ApiClient, namespace: str) -> Fleet:
    return Fleet(custom, api_client, namespace)


def action(
    facade: RunningFacade,
    server_id: str,
    body: Any,
    *,
    token: str,
    version: str | None = "2.29",
    project: str | None = None,
):
    prefix = f"/v2.1/{project}" if project else "/v2.1"
    return http(f"{facade.url}{prefix}/servers/{server_id}/action", "POST", token=token, version=version, body=body)


@pytest.fixture
def wait_synced(facade: RunningFacade) -> Iterator[Any]:
    yield facade.sync


@pytest.fixture
def cleaning_agents(cluster: DevCluster, lease_namespace: str) -> Iterator[Any]:
    """Start `hoststate agent` for a host with the exec guest driver running `command`; stopped after the test."""
    started: list[HoststateProcess] = []

    def start(host: str, command: str) -> HoststateProcess:
        args = [
            "agent",
            f"--report-interval={REPORT_INTERVAL}",
            f"--lease-namespace={lease_namespace}",
            f"--host={host}",
            "--guest-driver=exec",
            f"--exec-command={command}",
        ]
        started.append(HoststateProcess(args, cluster.kubeconfig, "agent").start())
        return started[-1]

    yield start
    for process in started:
        process.stop()
