"""Fixtures: one real control plane per test session, a fresh namespace per test.

Tests that need the API server carry the `cluster` marker (added automatically to every
test that uses the `cluster` fixture), so `make unit` can run the rest without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from hoststate.devcluster import DevCluster, control_plane_bin_dir, free_port
from hoststate.devcluster.processes import HoststateProcess
from hoststate.devcluster.stack import Kubectl, install_crds


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs the local kube-apiserver")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


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
def namespace(api_client: k8s.ApiClient) -> str:
    """A fresh namespace (there is no namespace controller, so they are never deleted)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def unique_host() -> str:
    """A host name no other test uses (ComputeServices are cluster-scoped)."""
    return f"host-{uuid.uuid4().hex[:8]}"


# -- the operator and agents, as real subprocesses -----------------------------------------
DOWN_TIME = 3.0  # seconds; the agents in these tests beat every second
REPORT_INTERVAL = 1.0
LEASE_NAMESPACE = "hoststate-system"


class Operator:
    """The operator under test; tests may kill and restart it."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.process: HoststateProcess | None = None
        self.metrics_port = 0

    def start(self, *extra_args: str) -> HoststateProcess:
        self.stop()
        self.metrics_port = free_port()
        self.process = HoststateProcess(
            [
                "operator",
                f"--service-down-time={DOWN_TIME}",
                f"--report-interval={REPORT_INTERVAL}",
                f"--lease-namespace={LEASE_NAMESPACE}",
                "--resync-period=30",
                f"--metrics-port={self.metrics_port}",
                *extra_args,
            ],
            self.cluster.kubeconfig,
            "operator",
        ).start()
        self.process.wait_for_output("hoststate operator started")
        return self.process

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def ensure_running(self) -> HoststateProcess:
        if self.process is None or not self.process.running:
            return self.start()
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture(scope="session")
def lease_namespace(api_client: k8s.ApiClient) -> str:
    core = k8s.CoreV1Api(api_client)
    try:
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=LEASE_NAMESPACE)))
    except k8s.ApiException as error:
        if error.status != 409:
            raise
    return LEASE_NAMESPACE


@pytest.fixture(scope="session")
def operator_handle(cluster: DevCluster, lease_namespace: str) -> Iterator[Operator]:
    handle = Operator(cluster)
    yield handle
    handle.stop()


@pytest.fixture
def operator(operator_handle: Operator) -> HoststateProcess:
    """A running operator (started once, restarted if a test killed it)."""
    return operator_handle.ensure_running()


@pytest.fixture
def agents(cluster: DevCluster, lease_namespace: str) -> Iterator[callable]:
    """Start `hoststate agent` for some hosts; all are stopped after the test."""
    started: list[HoststateProcess] = []

    def start(*hosts: str, binary: str = "nova-compute") -> HoststateProcess:
        args = [
            "agent",
            f"--report-interval={REPORT_INTERVAL}",
            f"--lease-namespace={lease_namespace}",
            f"--binary={binary}",
        ]
        for host in hosts:
            args.append(f"--host={host}")
        process = HoststateProcess(args, cluster.kubeconfig, "agent").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
