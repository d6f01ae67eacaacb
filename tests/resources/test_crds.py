"""The CRDs on a real API server: established, samples accepted, kubectl prints the columns."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s

from hoststate.resources.crd import ALL_CRDS

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def test_crds_are_established(api_client: k8s.ApiClient) -> None:
    ext = k8s.ApiextensionsV1Api(api_client)
    for info in ALL_CRDS:
        crd = ext.read_custom_resource_definition(info.name)
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions.get("Established") == "True", crd.status.conditions
        assert conditions.get("NamesAccepted") == "True"


def test_samples_are_accepted_and_printed_like_nova(kubectl) -> None:
    kubectl("apply", "--server-side", "-f", str(SAMPLES))

    services = kubectl("get", "csvc", capture=True).stdout
    header = services.splitlines()[0].split()
    assert header[:9] == ["NAME", "HOST", "BINARY", "ZONE", "STATUS", "STATE", "FORCED", "DOWN", "UPDATED"]
    assert "compute-4.nova-compute" in services and "Compute_4" in services

    servers = kubectl("get", "srv", "-A", capture=True).stdout
    assert servers.splitlines()[0].split()[:8] == [
        "NAMESPACE",
        "NAME",
        "DISPLAY",
        "NAME",
        "STATUS",
        "HOST",
        "HOST",
        "STATUS",
    ]
    rows = {line.split()[1]: line.split() for line in servers.splitlines()[1:]}
    assert rows["web-1"][0] == "tenant-a" and "compute1" in rows["web-1"]
    assert "building" in rows["pending-1"]


def test_short_names_and_category(kubectl) -> None:
    listed = kubectl("api-resources", "--api-group=hoststate.io", "-o", "wide", capture=True).stdout
    assert "csvc" in listed and "srv" in listed
    assert "hoststate" in listed


def test_kubectl_explain_teaches_the_fields(kubectl) -> None:
    spec = kubectl("explain", "computeservice.spec", capture=True).stdout
    assert "forcedDown" in spec and "fenced the host" in spec
    assert "disabledReason" in spec and "only allowed with" in spec
    status = kubectl("explain", "server.status.hostStatus", capture=True).stdout
    assert "MAINTENANCE" in status


def test_defaults_are_applied(custom: k8s.CustomObjectsApi, unique_host: str) -> None:
    from tests.kubeobjects import compute_service

    body = compute_service(unique_host)
    del body["spec"]["binary"]
    created = custom.create_cluster_custom_object("hoststate.io", "v1alpha1", "computeservices", body)
    try:
        assert created["spec"] == {
            "host": unique_host,
            "binary": "nova-compute",
            "zone": "nova",
            "disabled": False,
            "forcedDown": False,
        }
    finally:
        custom.delete_cluster_custom_object("hoststate.io", "v1alpha1", "computeservices", created["metadata"]["name"])
