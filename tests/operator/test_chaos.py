"""Chaos, short form (issue 10): two operator replicas and a host of 200 servers on a private control
plane, one fault each: SIGKILL of the leader 0.25 s after a force-down, SIGKILL of kube-apiserver or of
etcd in the middle of the fan-out (each restarted as it was), the standby and then the leader killed
and one replica started again. After each, every Server read from the API server shows the right
hostStatus, the tenant's webhook (subscribed to DOWN and UP, on 127.0.0.1) got every server's event of
the final host transition (duplicates allowed: they carry the same id, and no event carries an id of a
transition that was not recorded), and the operator still follows the next change, with its events.

The control plane is this module's own (a DevCluster): a test that kills a part of it cannot break the
suite's, and whatever a test killed is restarted after it, failed or not. No timing is asserted beyond
generous bounds; bench/chaos.py measures the convergence."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from hoststate import API_GROUP, API_VERSION
from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import HoststateProcess, answers_ok, wait_for
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.devcluster.stack import Kubectl, install_crds
from hoststate.domain import server_event_id
from tests.kubeobjects import compute_service, server
from tests.support.processes import LEASE_NAMESPACE, REPORT_INTERVAL, Operator

pytestmark = pytest.mark.cluster  # its own control plane, not the `cluster` fixture

G, V = API_GROUP, API_VERSION
SERVER_COUNT = 200
CONVERGENCE_BOUND = 120  # seconds; a loaded 2-core machine, a restarted API server, a takeover
SIGNING_KEY = "webhook-key"


@pytest.fixture(scope="module")
def private_cluster(bin_dir: Path) -> Iterator[DevCluster]:
    with DevCluster(bin_dir=bin_dir) as dev:
        install_crds(Kubectl(bin_dir / "kubectl", dev.kubeconfig))
        api = k8s_config.new_client_from_config(config_file=str(dev.kubeconfig))
        k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=LEASE_NAMESPACE)))
        api.close()
        yield dev


class Fleet:
    """One host with its agent and SERVER_COUNT servers in a namespace of their own, the operator
    replicas, and the faults."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = k8s.CustomObjectsApi(self.api)
        self.namespace = f"chaos-{uuid.uuid4().hex[:8]}"
        host = f"host-{uuid.uuid4().hex[:8]}"
        k8s.CoreV1Api(self.api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=self.namespace)))
        self.service = self.custom.create_cluster_custom_object(G, V, "computeservices", compute_service(host))[
            "metadata"
        ]["name"]
        self.names = [f"vm-{i:03d}" for i in range(SERVER_COUNT)]
        self.uids = {
            self.custom.create_namespaced_custom_object(G, V, self.namespace, "servers", server(name, host=host))[
                "metadata"
            ]["uid"]
            for name in self.names
        }
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        k8s.CoreV1Api(self.api).create_namespaced_secret(
            self.namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=SIGNING_KEY), data={"key": key})
        )
        self.receiver = WebhookReceiver().start()
        self.recorded: set[str] = set()  # ids of the host transitions recorded before the last force-down
        self.agent = HoststateProcess(
            ["agent", f"--report-interval={REPORT_INTERVAL}", f"--lease-namespace={LEASE_NAMESPACE}", f"--host={host}"],
            cluster.kubeconfig,
            "agent",
        ).start()
        self.replicas: list[Operator] = []

    # -- operator replicas ---------------------------------------------------------------------
    def start_replica(self) -> Operator:
        replica = Operator(self.cluster)
        replica.start()
        self.replicas.append(replica)
        wait_for(lambda: ready(replica), timeout=60, what="the replica to be ready")
        return replica

    def leader_and_standby(self) -> tuple[Operator, Operator]:
        running = [r for r in self.replicas if r.process is not None and r.process.running]
        leaders = wait_for(lambda: [r for r in running if r.leading], timeout=30, what="a leader")
        assert len(leaders) == 1
        (standby,) = (r for r in running if r is not leaders[0])
        return leaders[0], standby

    # -- the tenant's webhook ------------------------------------------------------------------
    def subscribe(self) -> None:
        """Subscribe the receiver to the host's DOWN and UP transitions (one event per server), once Ready."""
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "HostStatusSubscription",
            "metadata": {"name": "chaos"},
            "spec": {
                "url": self.receiver.url,
                "signingKeySecretRef": {"name": SIGNING_KEY},
                "hostStatuses": ["DOWN", "UP"],
            },
        }
        self.custom.create_namespaced_custom_object(G, V, self.namespace, "hoststatussubscriptions", body)

        def ready() -> bool:
            got = self.custom.get_namespaced_custom_object(G, V, self.namespace, "hoststatussubscriptions", "chaos")
            conditions = (got.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(ready, timeout=30, what="the subscription Ready")

    def transitions(self) -> list[dict]:
        """The host transitions recorded in the ComputeService's status, oldest first."""
        status = self.custom.get_cluster_custom_object(G, V, "computeservices", self.service).get("status") or {}
        return status.get("recentTransitions") or []

    def notified(self, expected: str) -> None:
        """Every server got its event of the host's last transition to `expected` recorded since the last
        force-down (waited for); each event to `expected` since then carries the id of such a transition
        for its server (a duplicate, sent again after a fault, has the same id)."""
        recorded = [
            t["id"] for t in self.transitions() if t["id"] not in self.recorded and t["newHostStatus"] == expected
        ]
        assert recorded, f"no transition to {expected} recorded"
        final = {server_event_id(recorded[-1], uid, expected) for uid in self.uids}

        def missing() -> set[str]:
            return final - {r.event["id"] for r in self.receiver.with_status(expected)}

        wait_for(
            lambda: not missing(), timeout=CONVERGENCE_BOUND, interval=0.2, what=f"every server's {expected} event"
        )
        for received in self.receiver.with_status(expected):
            uid = received.data["server_id"]
            assert uid in self.uids
            assert received.event["id"] in {server_event_id(t, uid, expected) for t in recorded}, received.data

    # -- the fleet, read from the API server ---------------------------------------------------
    def force_down(self, down: bool) -> str:
        """Force the host down (or back up); the resourceVersion of the Servers' list just before. What
        the webhook got so far is forgotten."""
        self.recorded = {t["id"] for t in self.transitions()}
        self.receiver.clear()
        version = self.custom.list_namespaced_custom_object(G, V, self.namespace, "servers", limit=1)["metadata"][
            "resourceVersion"
        ]
        self.custom.patch_cluster_custom_object(G, V, "computeservices", self.service, {"spec": {"forcedDown": down}})
        return version

    def wrong(self, expected: str) -> list[str]:
        """The servers whose hostStatus is not `expected`, as the API server has them."""
        items = self.custom.list_namespaced_custom_object(G, V, self.namespace, "servers")["items"]
        assert len(items) == SERVER_COUNT
        return [s["metadata"]["name"] for s in items if (s.get("status") or {}).get("hostStatus") != expected]

    def converge(self, expected: str) -> None:
        """Wait until every server shows `expected` (an API server away is waited for too); none is left wrong."""

        def settled() -> bool:
            try:
                return not self.wrong(expected)
            except (k8s.ApiException, OSError, urllib3.exceptions.HTTPError):  # the API server is away
                return False

        wait_for(settled, timeout=CONVERGENCE_BOUND, interval=0.2, what=f"every server {expected}")
        assert self.wrong(expected) == []

    def first_written(self, version: str, expected: str) -> None:
        """Return as soon as a watch from `version` shows a server with hostStatus `expected`: the fan-out
        has begun."""
        stream = k8s_watch.Watch()
        for event in stream.stream(
            self.custom.list_namespaced_custom_object,
            G,
            V,
            self.namespace,
            "servers",
            resource_version=version,
            timeout_seconds=60,
        ):
            if (event["object"].get("status") or {}).get("hostStatus") == expected:
                stream.stop()
                return
        raise AssertionError(f"no server became {expected} within 60 s")

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.agent.stop()
        self.receiver.stop()
        self.api.close()


def ready(replica: Operator) -> bool:
    return answers_ok(f"http://127.0.0.1:{replica.metrics_port}/readyz")


@pytest.fixture
def fleet(private_cluster: DevCluster) -> Iterator[Fleet]:
    """The fleet with two replicas (one leads), every server UP; afterwards the control plane is
    whole again, whatever the test killed."""
    if not private_cluster.healthy:
        private_cluster.revive()
    made = Fleet(private_cluster)
    try:
        made.start_replica()
        made.start_replica()
        made.leader_and_standby()
        made.converge("UP")
        made.subscribe()
        yield made
    finally:
        made.stop()
        private_cluster.revive()


def test_leader_killed_after_a_force_down(fleet: Fleet) -> None:
    leader, standby = fleet.leader_and_standby()
    fleet.force_down(True)
    time.sleep(0.25)
    assert leader.process is not None
    leader.process.kill()
    fleet.converge("DOWN")
    fleet.notified("DOWN")
    # The killed leader may have written and told all of it in its 0.25 s: the standby takes over
    # once the Lease expires (2 s), whether or not anything was left for it.
    wait_for(lambda: standby.leading, timeout=15, what="the standby leading")
    fleet.force_down(False)
    fleet.converge("UP")
    fleet.notified("UP")


@pytest.mark.parametrize("part", ["kube-apiserver", "etcd"])
def test_control_plane_killed_mid_fan_out(fleet: Fleet, private_cluster: DevCluster, part: str) -> None:
    version = fleet.force_down(True)
    fleet.first_written(version, "DOWN")
    private_cluster.kill(part)
    private_cluster.restart(part)
    fleet.converge("DOWN")
    fleet.notified("DOWN")
    fleet.force_down(False)  # the watches came back: the next change is followed too
    fleet.converge("UP")
    fleet.notified("UP")


def test_standby_then_leader_killed_then_one_started(fleet: Fleet) -> None:
    leader, standby = fleet.leader_and_standby()
    for replica in (standby, leader):
        assert replica.process is not None
        replica.process.kill()
    fleet.force_down(True)  # nobody runs: nothing changes until a replica starts
    fleet.start_replica()
    fleet.converge("DOWN")
    fleet.notified("DOWN")
    fleet.force_down(False)
    fleet.converge("UP")
    fleet.notified("UP")
