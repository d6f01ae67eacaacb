"""Fixtures: one real control plane per test session, a fresh namespace per test, the package's
own client of it (a pytest plugin)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kopf
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from hoststate.devcluster import DevCluster, control_plane_bin_dir
from hoststate.devcluster.stack import Kubectl, install_crds
from hoststate.kube import KubeClient


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    return control_plane_bin_dir()


@pytest.fixture(scope="session")
def cluster(bin_dir: Path) -> Iterator[DevCluster]:
    with DevCluster(bin_dir=bin_dir) as dev:
        install_crds(Kubectl(bin_dir / "kubectl", dev.kubeconfig))
        yield dev


@pytest.fixture(scope="session")
def kubectl(cluster: DevCluster, bin_dir: Path) -> Kubectl:
    return Kubectl(bin_dir / "kubectl", cluster.kubeconfig)


@pytest.fixture(scope="session")
def api_client(cluster: DevCluster) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def custom(api_client: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api_client)


@pytest.fixture
async def kube(cluster: DevCluster) -> AsyncIterator[KubeClient]:
    """hoststate.kube's client of the API server, with the admin token."""
    client = KubeClient(
        kopf.ConnectionInfo(server=cluster.server, ca_path=str(cluster.ca_file), token=cluster.admin_token)
    )
    yield client
    await client.close()


@pytest.fixture
def namespace(api_client: k8s.ApiClient) -> str:
    """A fresh namespace (there is no namespace controller, so they are never deleted)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def unique_host() -> str:
    """A host name no other test uses (ComputeServices are cluster-scoped)."""
    return f"host-{uuid.uuid4().hex[:8]}"
