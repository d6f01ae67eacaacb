"""Two operator replicas against the suite's API server: one leads and writes, the other stands by
warm; a killed leader is replaced within the bound, a frozen one writes nothing once it has lost the
Lease, and a stopped one hands over at once. Who wrote is read from the API server: each replica's
writes name it (its candidate identity) as their fieldManager in managedFields."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as k8s

from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import wait_for
from hoststate.kube.leader import ElectionTiming
from tests.kubeobjects import compute_service, server
from tests.support.processes import LEASE_NAMESPACE, Operator

G, V = "hoststate.io", "v1alpha1"
SERVERS = [f"vm-{i}" for i in range(5)]
TIMING = ElectionTiming()
# Lease duration and two retry periods bound a takeover; the rest is slack for a loaded 2-core machine.
TAKEOVER_BOUND = TIMING.lease_duration + 2 * TIMING.retry_period + 10


@pytest.fixture
def replicas(cluster: DevCluster, lease_namespace: str, operator_handle: Operator) -> Iterator[Callable[[], Operator]]:
    """Start operator replicas that elect on a Lease of their own. The suite's operator is stopped
    (it would write too); the operator tests restart it (ensure_running)."""
    operator_handle.stop()
    lease = f"election-{uuid.uuid4().hex[:8]}"
    started: list[Operator] = []

    def start() -> Operator:
        replica = Operator(cluster)
        replica.start(f"--leader-election-lease={lease}")
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.process is not None and replica.process.running:
            os.kill(replica.process.pid, signal.SIGCONT)  # a frozen one could not stop
        replica.stop()


def one_leader(replicas: list[Operator]) -> tuple[Operator, list[Operator]]:
    leaders = wait_for(lambda: [r for r in replicas if r.leading], timeout=30, what="a leader")
    assert len(leaders) == 1
    return leaders[0], [r for r in replicas if r is not leaders[0]]


class Host:
    """A heartbeating host with servers, and who wrote what on it."""

    def __init__(self, custom: k8s.CustomObjectsApi, namespace: str, host: str) -> None:
        self.custom, self.namespace = custom, namespace
        self.service = custom.create_cluster_custom_object(G, V, "computeservices", compute_service(host))
        self.name = self.service["metadata"]["name"]
        for vm in SERVERS:
            custom.create_namespaced_custom_object(G, V, namespace, "servers", server(vm, host=host))

    def servers(self) -> list[dict]:
        return [self.custom.get_namespaced_custom_object(G, V, self.namespace, "servers", vm) for vm in SERVERS]

    def all_show(self, status: str) -> bool:
        return all((s.get("status") or {}).get("hostStatus") == status for s in self.servers())

    def wait(self, status: str, timeout: float = 30) -> None:
        wait_for(lambda: self.all_show(status), timeout=timeout, what=f"every server {status}")

    def force_down(self, down: bool) -> None:
        self.custom.patch_cluster_custom_object(G, V, "computeservices", self.name, {"spec": {"forcedDown": down}})

    def objects(self) -> list[dict]:
        return [self.custom.get_cluster_custom_object(G, V, "computeservices", self.name), *self.servers()]

    def status_writers(self) -> set[str]:
        """The field managers of the status subresource of the service and its servers."""
        return set().union(*(status_writers(obj) for obj in self.objects()))

    def servers_written_by(self, identity: str) -> bool:
        return all(identity in status_writers(obj) for obj in self.servers())

    def versions(self) -> list[str]:
        return [obj["metadata"]["resourceVersion"] for obj in self.objects()]


def status_writers(obj: dict) -> set[str]:
    return {e["manager"] for e in obj["metadata"].get("managedFields", []) if e.get("subresource") == "status"}


@pytest.fixture
def host(custom: k8s.CustomObjectsApi, namespace: str, unique_host: str, agents) -> Host:
    agents(unique_host)
    return Host(custom, namespace, unique_host)


def host_status_events(api_client: k8s.ApiClient, namespace: str, name: str, status: str) -> list:
    events = k8s.CoreV1Api(api_client).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [e for e in events.items if e.reason == "HostStatusChanged" and f"is {status}" in e.message]


def election_events(api_client: k8s.ApiClient) -> list:
    events = k8s.CoreV1Api(api_client).list_namespaced_event(LEASE_NAMESPACE, field_selector="reason=LeaderElection")
    return events.items


def test_one_replica_writes_the_other_stands_by(replicas, host: Host, api_client, namespace: str) -> None:
    leader, (standby,) = one_leader([replicas(), replicas()])
    host.wait("UP")
    host.force_down(True)
    host.wait("DOWN")
    assert host.status_writers() == {leader.identity}
    wait_for(lambda: host_status_events(api_client, namespace, SERVERS[0], "DOWN"), what="the DOWN Event")
    time.sleep(1)  # a second writer's Event would have come by now
    assert len(host_status_events(api_client, namespace, SERVERS[0], "DOWN")) == 1
    assert standby.metric("hoststate_fanout_servers_patched_total") == 0
    assert standby.metric("hoststate_leader_transitions_total") == 0
    assert not standby.leading and leader.leading


def test_a_killed_leader_is_replaced_within_the_bound(replicas, host: Host, api_client) -> None:
    leader, (standby,) = one_leader([replicas(), replicas()])
    host.wait("UP")
    old = leader.identity
    assert leader.process is not None
    leader.process.kill()
    host.force_down(True)
    host.wait("DOWN", timeout=TAKEOVER_BOUND)
    assert standby.leading
    assert host.servers_written_by(standby.identity)  # the DOWN writes (the old leader's UP ones may stay)
    took_over = [e for e in election_events(api_client) if e.message.startswith(standby.identity)]
    assert took_over and f"took over from {old}" in took_over[-1].message


def test_a_frozen_leader_writes_nothing_after_losing_the_lease(replicas, host: Host) -> None:
    frozen, (standby,) = one_leader([replicas(), replicas()])
    host.wait("UP")
    assert frozen.process is not None
    os.kill(frozen.process.pid, signal.SIGSTOP)
    host.force_down(True)  # the frozen leader's watches buffer this and what follows
    host.wait("DOWN", timeout=TAKEOVER_BOUND)
    host.force_down(False)
    host.wait("UP")
    assert standby.leading
    assert host.servers_written_by(standby.identity)
    versions = host.versions()
    os.kill(frozen.process.pid, signal.SIGCONT)  # it wakes past its renew deadline with stale events
    frozen.process.wait_for_output("no longer leads")
    time.sleep(2 * TIMING.lease_duration)  # time to act on the buffered events, had it been allowed to
    assert host.versions() == versions  # nothing written since, by anyone
    assert standby.leading and not frozen.leading


def test_a_stopped_leader_hands_over_at_once(replicas, host: Host, api_client) -> None:
    leader, (standby,) = one_leader([replicas(), replicas()])
    host.wait("UP")
    old = leader.identity
    assert leader.process is not None
    process = leader.process
    leader.stop()  # SIGTERM
    assert f"{old} released the leader Lease" in process.output()
    wait_for(lambda: standby.leading, timeout=TAKEOVER_BOUND, what="the standby to lead")
    # Taken from nobody: the Lease was free, not expired (an expiry would say "took over from").
    became = [e for e in election_events(api_client) if e.message.startswith(standby.identity)]
    assert became and "took over" not in became[-1].message
    host.force_down(True)
    host.wait("DOWN")
    assert host.servers_written_by(standby.identity)
