"""Invalid objects are refused by the real API server with a message a person understands."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.kubeobjects import compute_service, server

GROUP, VERSION = "hoststate.io", "v1alpha1"


def refusal(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ApiException) as caught:
        call()
    body = json.loads(caught.value.body)
    return caught.value.status, body["message"]


def create_service(custom: k8s.CustomObjectsApi, body: dict, **kwargs: str) -> dict:
    return custom.create_cluster_custom_object(GROUP, VERSION, "computeservices", body, **kwargs)


H = "host-x"  # cluster-scoped objects that are refused never exist, so names may repeat

INVALID_SERVICES = [
    pytest.param(
        compute_service(H, name="other.nova-compute"),
        "metadata.name: Invalid value: metadata.name must be host-x.nova-compute (<host>.<binary>, the host lower-cased and _ turned into -)",
        id="name-not-host-dot-binary",
    ),
    pytest.param(
        compute_service("Compute_9", name="Compute_9.nova-compute"),
        "a lowercase RFC 1123 subdomain",
        id="name-keeps-capitals-and-underscore",
    ),
    pytest.param(
        compute_service("compute 1", name="compute-1.nova-compute"),
        "spec.host in body should match '^[a-zA-Z0-9-._]*$'",
        id="host-with-space",
    ),
    pytest.param(
        compute_service("h" * 256, name="h.nova-compute"),
        "spec.host: Too long: may not be more than 255",
        id="host-of-256-chars",
    ),
    pytest.param(
        compute_service("", name="x.nova-compute"),
        "spec.host in body should be at least 1 chars long",
        id="empty-host",
    ),
    pytest.param(
        {**compute_service(H), "spec": {"binary": "nova-compute"}},
        "spec.host: Required value",
        id="missing-host",
    ),
    pytest.param(
        compute_service(H, binary="Nova_Compute", name="host-x.Nova_Compute"),
        "spec.binary in body should match",
        id="binary-with-capitals",
    ),
    pytest.param(
        compute_service(H, disabledReason="firmware"),
        "spec.disabledReason: Invalid value: disabledReason is only allowed when disabled is true",
        id="disabled-reason-without-disabled",
    ),
    pytest.param(
        compute_service(H, disabled=True, disabledReason="r" * 256),
        "spec.disabledReason: Too long: may not be more than 255",
        id="disabled-reason-of-256-chars",
    ),
    pytest.param(
        compute_service(H, forcedDown="yes"),
        'spec.forcedDown: Invalid value: "string": spec.forcedDown in body must be of type boolean',
        id="forced-down-not-a-boolean",
    ),
    pytest.param(
        compute_service(H, zone=""),
        "spec.zone in body should be at least 1 chars long",
        id="empty-zone",
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID_SERVICES)
def test_invalid_compute_service_is_refused(custom: k8s.CustomObjectsApi, body: dict, message: str) -> None:
    status, text = refusal(lambda: create_service(custom, body))
    assert status == 422
    assert message in text


def test_unknown_field_is_refused_under_strict_validation(custom: k8s.CustomObjectsApi) -> None:
    body = compute_service(H, forcedDonw=True)
    status, text = refusal(lambda: create_service(custom, body, field_validation="Strict"))
    assert status == 400
    assert 'unknown field "spec.forcedDonw"' in text


@pytest.fixture
def existing_service(custom: k8s.CustomObjectsApi, unique_host: str):
    created = create_service(custom, compute_service(unique_host, disabled=True, disabledReason="maintenance"))
    yield created
    custom.delete_cluster_custom_object(GROUP, VERSION, "computeservices", created["metadata"]["name"])


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"spec": {"host": "elsewhere"}}, 'spec.host: Invalid value: "elsewhere": host is immutable'),
        ({"spec": {"binary": "nova-conductor"}}, 'spec.binary: Invalid value: "nova-conductor": binary is immutable'),
        ({"spec": {"disabled": False}}, "disabledReason is only allowed when disabled is true"),
        ({"status": {"hostStatus": "BROKEN"}}, 'status.hostStatus: Unsupported value: "BROKEN"'),
        ({"status": {"state": "sideways"}}, 'status.state: Unsupported value: "sideways"'),
    ],
    ids=["change-host", "change-binary", "enable-keeping-reason", "unknown-host-status", "unknown-state"],
)
def test_invalid_update_is_refused(
    custom: k8s.CustomObjectsApi, existing_service: dict, patch: dict, message: str
) -> None:
    name = existing_service["metadata"]["name"]
    if "status" in patch:
        call = lambda: custom.patch_cluster_custom_object_status(GROUP, VERSION, "computeservices", name, patch)  # noqa: E731
    else:
        call = lambda: custom.patch_cluster_custom_object(GROUP, VERSION, "computeservices", name, patch)  # noqa: E731
    status, text = refusal(call)
    assert status == 422
    assert message in text
    # Nothing was half-applied (an operator may be writing status meanwhile, so compare fields).
    after = custom.get_cluster_custom_object(GROUP, VERSION, "computeservices", name)
    assert after["spec"] == existing_service["spec"]
    for field, rejected in patch.get("status", {}).items():
        assert (after.get("status") or {}).get(field) != rejected


INVALID_SERVERS = [
    pytest.param(server("s1", host="bad host!"), "spec.host in body should match", id="host-bad-chars"),
    pytest.param(server("s2", host="h" * 256), "spec.host: Too long: may not be more than 255", id="host-256"),
    pytest.param(server("s3", vmState="running"), 'spec.vmState: Unsupported value: "running"', id="vm-state"),
    pytest.param(
        server("s4", powerState=9), "spec.powerState in body should be less than or equal to 7", id="power-state"
    ),
    pytest.param(server("s5", displayName=""), "spec.displayName in body should be at least 1 chars", id="name"),
    pytest.param(
        server("s6", addresses={"private": [{"addr": "10.0.0.1", "version": 5}]}),
        "spec.addresses.private[0].version: Unsupported value: 5",
        id="ip-version",
    ),
    # Nova's bounds (issue 12): no tenant can make a Server that nears the watch buffers.
    pytest.param(
        server("s7", metadata={"k": "v" * 256}), "spec.metadata.k: Too long: may not be more than 255", id="meta-value"
    ),
    pytest.param(
        server("s8", metadata={"k" * 256: "v"}),
        "spec.metadata: Invalid value: keys must be 1 to 255 characters long",
        id="metadata-key-256",
    ),
    pytest.param(
        server("s9", metadata={"": "v"}),
        "spec.metadata: Invalid value: keys must be 1 to 255 characters long",
        id="metadata-key-empty",
    ),
    pytest.param(
        server("s10", metadata={f"k{i}": "v" for i in range(129)}),
        "spec.metadata: Too many: 129: must have at most 128 items",
        id="metadata-129-items",
    ),
    pytest.param(
        server("s11", addresses={"private": [{"addr": "10.0.0.1"}] * 17}),
        "spec.addresses.private: Too many: 17: must have at most 16 items",
        id="addresses-17-on-a-network",
    ),
    pytest.param(
        server("s12", addresses={f"net{i}": [] for i in range(33)}),
        "spec.addresses: Too many: 33: must have at most 32 items",
        id="networks-33",
    ),
    pytest.param(
        server("s13", addresses={"n" * 256: []}),
        "spec.addresses: Invalid value: keys must be 1 to 255 characters long",
        id="network-name-256",
    ),
    pytest.param(
        server("s14", keyName="k" * 256), "spec.keyName: Too long: may not be more than 255", id="key-name-256"
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID_SERVERS)
def test_invalid_server_is_refused(custom: k8s.CustomObjectsApi, namespace: str, body: dict, message: str) -> None:
    status, text = refusal(lambda: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servers", body))
    assert status == 422
    assert message in text


def test_the_largest_server_nova_allows_is_accepted(custom: k8s.CustomObjectsApi, namespace: str) -> None:
    """Every bound at once (the CEL rules' cost fits the budget): 128 metadata items of 255-character
    keys and values, 32 networks of 16 addresses."""
    body = server(
        "largest",
        host="c1",
        displayName="n" * 255,
        metadata={f"{i:03}".ljust(255, "k"): "v" * 255 for i in range(128)},
        addresses={
            f"{i:02}".ljust(255, "n"): [{"addr": "fd00::1", "version": 6, "macAddr": "fa:16:3e:00:00:01"}] * 16
            for i in range(32)
        },
    )
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servers", body)
    assert len(created["spec"]["metadata"]) == 128 and len(created["spec"]["addresses"]) == 32


def test_unknown_server_host_status_is_refused(custom: k8s.CustomObjectsApi, namespace: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servers", server("vm", host="c1"))
    status, text = refusal(
        lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "servers", "vm", {"status": {"hostStatus": "up"}}
        )
    )
    assert status == 422
    assert (
        'status.hostStatus: Unsupported value: "up": supported values: "", "UP", "UNKNOWN", "DOWN", "MAINTENANCE"'
        in text
    )
