"""Invalid subscriptions are refused by the real API server, with a message a person understands."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

G, V = "hoststate.io", "v1alpha1"
REF = {"name": "webhook-key"}


def subscription(**spec: Any) -> dict:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "HostStatusSubscription",
        "metadata": {"name": "sub"},
        "spec": {"url": "https://hooks.example.com/hoststate", "signingKeySecretRef": REF, **spec},
    }


INVALID = [
    pytest.param(subscription(url="not a url"), "url must be an absolute URL with a host", id="garbage-url"),
    pytest.param(subscription(url="ftp://hooks.example.com/x"), "url must use https", id="ftp-scheme"),
    pytest.param(subscription(url="javascript:alert(1)"), "url must use https", id="javascript-scheme"),
    pytest.param(
        subscription(url="http://hooks.example.com/x"), "http is allowed only to loopback", id="http-to-public-host"
    ),
    pytest.param(
        subscription(url="http://127.0.0.1.example.com/x"), "http is allowed only to loopback", id="http-to-lookalike"
    ),
    pytest.param(
        subscription(url="https://user:pw@hooks.example.com/"), "url must not carry user info", id="user-info"
    ),
    pytest.param(subscription(url="https://169.254.169.254/latest/meta-data"), "link-local", id="metadata-service"),
    pytest.param(subscription(url="https://:443/x"), "spec.url in body should match", id="no-host"),
    pytest.param(subscription(url="https://" + "h" * 1020 + ".com"), "spec.url: Too long", id="url-too-long"),
    pytest.param(
        subscription(hostStatuses=["DOWN", "BROKEN"]),
        'spec.hostStatuses[1]: Unsupported value: "BROKEN": supported values: "", "UP", "UNKNOWN", "DOWN", "MAINTENANCE"',
        id="unknown-host-status",
    ),
    pytest.param(subscription(hostStatuses=[]), "spec.hostStatuses: Invalid value: 0", id="no-host-status"),
    pytest.param(subscription(hostStatuses=["DOWN", "DOWN"]), 'Duplicate value: "DOWN"', id="duplicate-host-status"),
    pytest.param(
        {**subscription(), "spec": {"url": "https://hooks.example.com/x"}},
        "spec.signingKeySecretRef: Required value",
        id="missing-secret-ref",
    ),
    pytest.param(
        subscription(signingKeySecretRef={"key": "k"}),
        "spec.signingKeySecretRef.name: Required value",
        id="secret-ref-without-name",
    ),
    pytest.param(
        subscription(signingKeySecretRef={"name": "Bad_Name"}),
        "spec.signingKeySecretRef.name in body should match",
        id="bad-secret-name",
    ),
    pytest.param(
        {**subscription(), "spec": {"signingKeySecretRef": REF}}, "spec.url: Required value", id="missing-url"
    ),
    pytest.param(
        subscription(serverSelector={"matchExpressions": [{"key": "tier", "operator": "In"}]}),
        "values must be non-empty with In and NotIn, and empty with Exists and DoesNotExist",
        id="in-without-values",
    ),
    pytest.param(
        subscription(serverSelector={"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}),
        "values must be non-empty with In and NotIn, and empty with Exists and DoesNotExist",
        id="exists-with-values",
    ),
    pytest.param(
        subscription(serverSelector={"matchExpressions": [{"key": "tier", "operator": "Like", "values": ["x"]}]}),
        'Unsupported value: "Like"',
        id="unknown-operator",
    ),
    pytest.param(
        subscription(serverSelector={"matchLabels": {"bad key!": "x"}}),
        "matchLabels keys must be valid label keys",
        id="bad-label-key",
    ),
    pytest.param(
        subscription(maxRetries=11), "spec.maxRetries in body should be less than or equal to 10", id="too-many-retries"
    ),
    pytest.param(
        subscription(timeoutSeconds=0),
        "spec.timeoutSeconds in body should be greater than or equal to 1",
        id="zero-timeout",
    ),
    pytest.param(subscription(secret="x"), 'unknown field "spec.secret"', id="unknown-field"),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
def test_invalid_subscriptions_are_refused(
    custom: k8s.CustomObjectsApi, namespace: str, body: dict, message: str
) -> None:
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            G, V, namespace, "hoststatussubscriptions", body, field_validation="Strict"
        )
    assert caught.value.status in (400, 422), caught.value.body  # 400: strict decoding (unknown fields)
    assert message in json.loads(caught.value.body)["message"]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/hoststate?tenant=a",
        "https://10.0.0.7:8443/hook",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]:9000/",
        "http://receiver.tenant-a.svc:8080/hook",
        "http://receiver.tenant-a.svc.cluster.local/hook",
    ],
)
def test_valid_urls_are_accepted_with_defaults(custom: k8s.CustomObjectsApi, namespace: str, url: str) -> None:
    created = custom.create_namespaced_custom_object(
        G, V, namespace, "hoststatussubscriptions", subscription(url=url), dry_run="All"
    )
    spec = created["spec"]
    assert spec["url"] == url
    assert spec["hostStatuses"] == ["UP", "UNKNOWN", "DOWN", "MAINTENANCE", ""]
    assert (spec["maxRetries"], spec["timeoutSeconds"], spec["signingKeySecretRef"]["key"]) == (5, 5, "key")
