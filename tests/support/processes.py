"""The operator and the agents under test, as real `hoststate` subprocesses (a pytest plugin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as k8s

from hoststate.devcluster import DevCluster, free_port
from hoststate.devcluster.processes import HoststateProcess, candidate_identity
from hoststate.devcluster.scraper import scrape
from hoststate.domain import COMPUTE_BINARY
from hoststate.resources.lease import DEFAULT_LEASE_NAMESPACE

DOWN_TIME = 3.0  # seconds; the agents in these tests beat every second
REPORT_INTERVAL = 1.0
LEASE_NAMESPACE = DEFAULT_LEASE_NAMESPACE
WEBHOOK_RECEIVERS = "127.0.0.1/32"  # the tests' receivers listen there; webhooks reach no other local address


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
                f"--webhook-allow-cidr={WEBHOOK_RECEIVERS}",
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

    @property
    def identity(self) -> str:
        """Its leader-election candidate name: the Lease's holder, and the fieldManager of its writes."""
        assert self.process is not None
        return candidate_identity(self.process.output())

    def metric(self, name: str) -> float | None:
        """A metric's value (without labels) from its /metrics, or None when not exported."""
        return scrape(self.metrics_url).get(name)

    @property
    def leading(self) -> bool:
        return self.metric("hoststate_leader") == 1.0

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
def agents(cluster: DevCluster, lease_namespace: str) -> Iterator[Callable[..., HoststateProcess]]:
    """Start `hoststate agent` for some hosts; all are stopped after the test."""
    started: list[HoststateProcess] = []

    def start(*hosts: str, binary: str = COMPUTE_BINARY) -> HoststateProcess:
        args = [
            "agent",
            f"--report-interval={REPORT_INTERVAL}",
            f"--lease-namespace={lease_namespace}",
            f"--binary={binary}",
            *(f"--host={host}" for host in hosts),
        ]
        process = HoststateProcess(args, cluster.kubeconfig, "agent").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
