"""Force-down, maintenance, heartbeats and moves, end to end through real objects."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from kubernetes import client as k8s

from hoststate.devcluster.processes import wait_for
from tests.kubeobjects import compute_service, server
from tests.support.processes import DOWN_TIME, LEASE_NAMESPACE

G, V = "hoststate.io", "v1alpha1"


class Objects:
    """Reads and writes of hoststate objects through the official client."""

    def __init__(self, custom: k8s.CustomObjectsApi, namespace: str) -> None:
        self.custom = custom
        self.namespace = namespace

    def create_service(self, host: str, **spec) -> dict:
        return self.custom.create_cluster_custom_object(G, V, "computeservices", compute_service(host, **spec))

    def service(self, name: str) -> dict:
        return self.custom.get_cluster_custom_object(G, V, "computeservices", name)

    def patch_service(self, name: str, spec: dict) -> dict:
        return self.custom.patch_cluster_custom_object(G, V, "computeservices", name, {"spec": spec})

    def delete_service(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(G, V, "computeservices", name)

    def create_server(self, name: str, host: str = "") -> dict:
        return self.custom.create_namespaced_custom_object(G, V, self.namespace, "servers", server(name, host=host))

    def server(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(G, V, self.namespace, "servers", name)

    def host_status(self, name: str) -> str | None:
        return (self.server(name).get("status") or {}).get("hostStatus")

    def patch_server(self, name: str, spec: dict) -> dict:
        return self.custom.patch_namespaced_custom_object(G, V, self.namespace, "servers", name, {"spec": spec})

    def wait_host_status(self, names: list[str], expected: str, timeout: float = 15) -> None:
        wait_for(
            lambda: all(self.host_status(n) == expected for n in names),
            timeout=timeout,
            what=f"{names} to show hostStatus {expected!r}: {[self.host_status(n) for n in names]}",
        )


@pytest.fixture
def objects(custom: k8s.CustomObjectsApi, namespace: str) -> Objects:
    return Objects(custom, namespace)


def events_for(api_client: k8s.ApiClient, namespace: str, name: str) -> list:
    events = k8s.CoreV1Api(api_client).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return events.items


def test_force_down_and_back_up(operator, agents, objects: Objects, unique_host: str, api_client, namespace) -> None:
    agents(unique_host)
    service = objects.create_service(unique_host)
    name = service["metadata"]["name"]
    vms = ["vm-a", "vm-b", "vm-c"]
    for vm in vms:
        objects.create_server(vm, host=unique_host)
    objects.wait_host_status(vms, "UP")

    objects.patch_service(name, {"forcedDown": True})
    objects.wait_host_status(vms, "DOWN")
    status = wait_for(lambda: (s := objects.service(name)["status"]).get("state") == "down" and s, what="service down")
    assert status["hostStatus"] == "DOWN"
    assert status["forcedDownTime"]
    assert status["observedGeneration"] == objects.service(name)["metadata"]["generation"]
    up = next(c for c in status["conditions"] if c["type"] == "Up")
    assert (up["status"], up["reason"]) == ("False", "ForcedDown")

    objects.patch_service(name, {"forcedDown": False})
    objects.wait_host_status(vms, "UP")
    status = wait_for(lambda: (s := objects.service(name)["status"]).get("state") == "up" and s, what="service up")
    assert "forcedDownTime" not in status

    reasons = [
        e.reason
        for e in wait_for(
            lambda: events_for(api_client, namespace, "vm-a")[1:] and events_for(api_client, namespace, "vm-a"),
            what="server events",
        )
    ]
    assert "HostStatusChanged" in reasons
    service_events = wait_for(
        lambda: [e for e in events_for(api_client, "default", name) if e.reason == "ServiceDown"],
        what="ServiceDown event",
    )
    assert "forced down" in service_events[0].message


def test_disabled_gives_maintenance_and_down_wins(operator, agents, objects: Objects, unique_host: str) -> None:
    agents(unique_host)
    name = objects.create_service(unique_host)["metadata"]["name"]
    objects.create_server("vm", host=unique_host)
    objects.wait_host_status(["vm"], "UP")

    objects.patch_service(name, {"disabled": True, "disabledReason": "firmware"})
    objects.wait_host_status(["vm"], "MAINTENANCE")
    assert objects.service(name)["status"]["serviceStatus"] == "disabled"

    objects.patch_service(name, {"forcedDown": True})
    objects.wait_host_status(["vm"], "DOWN")

    objects.patch_service(name, {"forcedDown": False})
    objects.wait_host_status(["vm"], "MAINTENANCE")
    objects.patch_service(name, {"disabled": False, "disabledReason": None})
    objects.wait_host_status(["vm"], "UP")


def test_heartbeat_expiry_and_recovery(operator, agents, objects: Objects, unique_host: str, custom) -> None:
    agent = agents(unique_host)
    name = objects.create_service(unique_host)["metadata"]["name"]
    objects.create_server("vm", host=unique_host)
    objects.wait_host_status(["vm"], "UP")

    leases = k8s.CoordinationV1Api(custom.api_client)
    wait_for(
        lambda: leases.list_namespaced_lease(LEASE_NAMESPACE, field_selector=f"metadata.name={name}").items,
        what="the agent's Lease",
    )
    agent.stop()
    last_beat = leases.read_namespaced_lease(name, LEASE_NAMESPACE).spec.renew_time
    objects.wait_host_status(["vm"], "UNKNOWN", timeout=DOWN_TIME + 10)

    changed = datetime.fromisoformat(objects.server("vm")["status"]["hostStatusChangedTime"].replace("Z", "+00:00"))
    deadline = last_beat + timedelta(seconds=DOWN_TIME)
    # The requirement: UNKNOWN within the deadline plus one second (status times
    # have one-second precision, hence the extra second of tolerance on the early side).
    assert deadline - timedelta(seconds=1) <= changed <= deadline + timedelta(seconds=1), (last_beat, changed)
    assert objects.service(name)["status"]["state"] == "down"

    agents(unique_host)
    objects.wait_host_status(["vm"], "UP")
    assert objects.service(name)["status"]["state"] == "up"


def test_deleted_service_leaves_servers_unset(operator, agents, objects: Objects, unique_host: str) -> None:
    agents(unique_host)
    name = objects.create_service(unique_host)["metadata"]["name"]
    objects.create_server("vm", host=unique_host)
    objects.wait_host_status(["vm"], "UP")
    objects.delete_service(name)
    objects.wait_host_status(["vm"], "")


def test_server_on_unknown_host(operator, objects: Objects, unique_host: str, api_client, namespace) -> None:
    objects.create_server("vm", host=unique_host)
    objects.create_server("unplaced")
    objects.wait_host_status(["vm", "unplaced"], "")
    warnings = wait_for(
        lambda: [e for e in events_for(api_client, namespace, "vm") if e.reason == "UnknownHost"],
        what="UnknownHost event",
    )
    assert warnings[0].type == "Warning" and unique_host in warnings[0].message
    assert f"host {unique_host!r}, which has no nova-compute service" in operator.output()


def test_server_moved_between_hosts(operator, agents, objects: Objects, unique_host: str) -> None:
    other = unique_host + "-b"
    agents(unique_host, other)
    objects.create_service(unique_host)
    other_name = objects.create_service(other)["metadata"]["name"]
    objects.patch_service(other_name, {"forcedDown": True})
    objects.create_server("vm", host=unique_host)
    objects.wait_host_status(["vm"], "UP")

    objects.patch_server("vm", {"host": other})
    objects.wait_host_status(["vm"], "DOWN")
    objects.patch_server("vm", {"host": ""})
    objects.wait_host_status(["vm"], "")


def test_non_compute_service_does_not_set_host_status(operator, agents, objects: Objects, unique_host: str) -> None:
    agents(unique_host, binary="nova-scheduler")
    objects.create_service(unique_host, binary="nova-scheduler")
    objects.create_server("vm", host=unique_host)
    objects.wait_host_status(["vm"], "")
    name = f"{unique_host}.nova-scheduler"
    wait_for(lambda: objects.service(name).get("status", {}).get("state") == "up", what="scheduler service up")


def test_new_service_without_heartbeat_is_up_until_down_time(operator, objects: Objects, unique_host: str) -> None:
    """As Nova, a service that never reported counts from its creation time."""
    name = objects.create_service(unique_host)["metadata"]["name"]
    objects.create_server("vm", host=unique_host)
    objects.wait_host_status(["vm"], "UNKNOWN", timeout=DOWN_TIME + 10)
    assert objects.service(name)["status"]["state"] == "down"
