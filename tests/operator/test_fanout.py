"""Fan-out to many servers, crash convergence, and clean objects (no Kopf traces)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s

from hoststate.devcluster.processes import wait_for
from tests.kubeobjects import compute_service, server
from tests.support.processes import LEASE_NAMESPACE, Operator

G, V = "hoststate.io", "v1alpha1"


def create_servers(custom: k8s.CustomObjectsApi, namespace: str, host: str, count: int, prefix: str) -> list[str]:
    names = [f"{prefix}-{i:04d}" for i in range(count)]
    for name in names:
        custom.create_namespaced_custom_object(G, V, namespace, "servers", server(name, host=host))
    return names


def host_statuses(custom: k8s.CustomObjectsApi, namespace: str) -> dict[str, tuple[str | None, str, str]]:
    """name -> (hostStatus, host, resourceVersion) for every server in the namespace."""
    items = custom.list_namespaced_custom_object(G, V, namespace, "servers")["items"]
    return {
        i["metadata"]["name"]: (
            (i.get("status") or {}).get("hostStatus"),
            i["spec"]["host"],
            i["metadata"]["resourceVersion"],
        )
        for i in items
    }


def wait_all(custom, namespace: str, host: str, expected: str, timeout: float = 60) -> float:
    """Wait until every server on `host` shows `expected`; return when it was first seen (monotonic)."""
    wait_for(
        lambda: all(s == expected for s, h, _ in host_statuses(custom, namespace).values() if h == host),
        timeout=timeout,
        interval=0.02,
        what=f"all servers on {host} to show {expected}",
    )
    return time.monotonic()


def patch_service(custom, name: str, spec: dict) -> None:
    custom.patch_cluster_custom_object(G, V, "computeservices", name, {"spec": spec})


def test_fanout_reaches_exactly_the_servers_of_the_host(operator, agents, custom, namespace, unique_host) -> None:
    bystander = unique_host + "-other"
    agents(unique_host, bystander)
    for host in (unique_host, bystander):
        custom.create_cluster_custom_object(G, V, "computeservices", compute_service(host))
    create_servers(custom, namespace, unique_host, 300, "vm")
    create_servers(custom, namespace, bystander, 20, "bystander")
    wait_all(custom, namespace, unique_host, "UP")
    wait_all(custom, namespace, bystander, "UP")
    before = {n: rv for n, (_, h, rv) in host_statuses(custom, namespace).items() if h == bystander}

    started = time.monotonic()
    patch_service(custom, f"{unique_host}.nova-compute", {"forcedDown": True})
    down = wait_all(custom, namespace, unique_host, "DOWN") - started
    started = time.monotonic()
    patch_service(custom, f"{unique_host}.nova-compute", {"forcedDown": False})
    up = wait_all(custom, namespace, unique_host, "UP") - started
    # A figure for the record, not an assertion (observed by polling every 20 ms).
    print(f"\n300 servers: force-down to last DOWN {down:.3f}s, unset to last UP {up:.3f}s")

    after = {n: rv for n, (_, h, rv) in host_statuses(custom, namespace).items() if h == bystander}
    assert after == before, "servers on another host were written"


def test_crash_in_the_middle_of_a_fanout_converges(
    operator_handle: Operator, agents, custom, namespace, unique_host
) -> None:
    # One patch at a time, so that the fan-out is still going when the operator is killed.
    operator_handle.start("--fanout-concurrency=1")
    agents(unique_host)
    custom.create_cluster_custom_object(G, V, "computeservices", compute_service(unique_host))
    names = create_servers(custom, namespace, unique_host, 300, "vm")
    wait_all(custom, namespace, unique_host, "UP")

    patch_service(custom, f"{unique_host}.nova-compute", {"forcedDown": True})
    wait_for(
        lambda: sum(s == "DOWN" for s, _, _ in host_statuses(custom, namespace).values()) >= 10,
        interval=0.01,
        what="the fan-out to start",
    )
    operator_handle.process.kill()
    at_kill = [s for s, _, _ in host_statuses(custom, namespace).values()]
    assert 10 <= at_kill.count("DOWN") < len(names), "the operator was not killed mid-fan-out"

    operator_handle.start()
    wait_all(custom, namespace, unique_host, "DOWN")


def test_no_finalizers_and_no_kopf_traces(operator, agents, custom, namespace, unique_host) -> None:
    agents(unique_host)
    custom.create_cluster_custom_object(G, V, "computeservices", compute_service(unique_host))
    create_servers(custom, namespace, unique_host, 3, "vm")
    wait_all(custom, namespace, unique_host, "UP")
    patch_service(custom, f"{unique_host}.nova-compute", {"forcedDown": True})
    wait_all(custom, namespace, unique_host, "DOWN")

    objects = custom.list_cluster_custom_object(G, V, "computeservices")["items"]
    objects += custom.list_cluster_custom_object(G, V, "servers")["items"]
    assert objects
    for obj in objects:
        meta = obj["metadata"]
        assert not meta.get("finalizers"), meta
        assert not [k for k in meta.get("annotations", {}) if "kopf" in k], meta
        assert "kopf" not in str(obj.get("status", {})), obj["status"]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"holderIdentity": "{host}"}, "spec.renewTime is missing"),
        ({"holderIdentity": "someone-else", "renewTime": "2026-11-24T10:00:00.000000Z"}, "is not the service's host"),
    ],
    ids=["no-renew-time", "wrong-holder"],
)
def test_bad_lease_is_reported_not_fatal(
    operator, agents, custom, api_client, unique_host, namespace, spec, problem
) -> None:
    name = f"{unique_host}.nova-compute"
    custom.create_cluster_custom_object(G, V, "computeservices", compute_service(unique_host))
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": {"hoststate.io/heartbeat": "true"}},
        "spec": {key: value.format(host=unique_host) for key, value in spec.items()},
    }
    # Through the generic path: the typed Lease API re-formats the time strings we want as-is.
    custom.create_namespaced_custom_object("coordination.k8s.io", "v1", LEASE_NAMESPACE, "leases", lease)

    events = wait_for(
        lambda: [
            e
            for e in k8s.CoreV1Api(api_client)
            .list_namespaced_event(LEASE_NAMESPACE, field_selector=f"involvedObject.name={name}")
            .items
            if e.reason == "BadHeartbeatLease"
        ],
        what="BadHeartbeatLease event",
    )
    assert problem in events[0].message and events[0].type == "Warning"
    operator.wait_for_output(f"ignoring heartbeat Lease {LEASE_NAMESPACE}/{name}")

    # Still working for everyone else.
    healthy = unique_host + "-ok"
    agents(healthy)
    custom.create_cluster_custom_object(G, V, "computeservices", compute_service(healthy))
    create_servers(custom, namespace, healthy, 1, "vm")
    wait_all(custom, namespace, healthy, "UP")
    assert operator.running
