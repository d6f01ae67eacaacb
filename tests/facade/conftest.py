"""The facade tests' fixtures: facades with other policy files, users, and a service with a server.

The suite's facade itself (`facade`, RunningFacade) and the user helpers are tests/support/facade.py's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from hoststate import API_GROUP, API_VERSION
from hoststate.devcluster import DevCluster
from hoststate.facade.config import FacadeConfig
from tests import kubeobjects
from tests.support.accounts import cluster_role
from tests.support.facade import RunningFacade, make_admin, make_tenant


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


@pytest.fixture(scope="session")
def admin_cluster_role(api_client: k8s.ApiClient) -> str:
    verbs = {"computeservices": ["get", "list", "watch", "patch", "delete"], "servers": ["get", "list", "watch"]}
    return cluster_role(api_client, ADMIN_CLUSTER_ROLE, verbs)


SERVICE_MANAGER_CLUSTER_ROLE = "hoststate-facade-test-service-manager"


@pytest.fixture(scope="session")
def service_manager_cluster_role(api_client: k8s.ApiClient) -> str:
    """A fault monitor's rights: manage ComputeServices, read no tenant's servers."""
    verbs = {"computeservices": ["get", "list", "watch", "patch", "delete"]}
    return cluster_role(api_client, SERVICE_MANAGER_CLUSTER_ROLE, verbs)


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
        API_GROUP, API_VERSION, "computeservices", kubeobjects.compute_service(host, **spec)
    )


def create_server(custom: k8s.CustomObjectsApi, namespace: str, name: str, host: str, **spec: Any) -> dict[str, Any]:
    body = kubeobjects.server(name, host, **spec)
    return custom.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, "servers", body)


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
    return custom.get_cluster_custom_object(
        API_GROUP, API_VERSION, "computeservices", world.service["metadata"]["name"]
    )


# Nova's doc/api_samples, the subset the facade serves (copied: see nova_api_samples/README.md).
SAMPLES = Path(__file__).resolve().parent / "nova_api_samples"
