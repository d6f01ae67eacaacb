"""Webhook receivers (hoststate.devcluster.receiver, on 127.0.0.1 in the test process) and tenants
(a namespace with its signing-key Secret and subscriptions) for the notification tests."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s

from hoststate import API_GROUP, API_VERSION
from hoststate.devcluster.processes import wait_for
from hoststate.devcluster.receiver import Answer, Received, WebhookReceiver
from hoststate.devcluster.scraper import scrape
from hoststate.notifications.cloudevents import SIGNATURE_HEADER, verify
from tests.kubeobjects import compute_service, server

G, V = API_GROUP, API_VERSION
SUBSCRIPTIONS = "hoststatussubscriptions"


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    def make(answer: Answer | None = None) -> WebhookReceiver:
        receiver = WebhookReceiver(answer) if answer else WebhookReceiver()
        started.append(receiver.start())
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receiver_factory: Callable[..., WebhookReceiver]) -> WebhookReceiver:
    return receiver_factory()


class Tenant:
    """A namespace with a signing key, its subscriptions and servers (official client, admin)."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.key = secrets.token_bytes(32)
        self.subscriptions: list[str] = []

    def create_secret(self, name: str = "webhook-key", key: bytes | None = None, item: str = "key") -> None:
        import base64

        data = {item: base64.b64encode(key if key is not None else self.key).decode()}
        self.core.create_namespaced_secret(
            self.namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), data=data)
        )

    def subscribe(self, name: str, url: str, secret: str = "webhook-key", **spec: Any) -> dict:
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "HostStatusSubscription",
            "metadata": {"name": name},
            "spec": {"url": url, "signingKeySecretRef": {"name": secret}, **spec},
        }
        created = self.custom.create_namespaced_custom_object(G, V, self.namespace, SUBSCRIPTIONS, body)
        self.subscriptions.append(name)
        return created

    def subscription(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(G, V, self.namespace, SUBSCRIPTIONS, name)

    def status(self, name: str) -> dict:
        return self.subscription(name).get("status") or {}

    def condition(self, name: str, type_: str) -> dict:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == type_), {})

    def wait_ready(self, name: str) -> dict:
        return wait_for(
            lambda: (c := self.condition(name, "Ready")).get("status") == "True" and c,
            what=f"subscription {name} Ready: {self.status(name)}",
        )

    def create_server(self, name: str, host: str, labels: dict[str, str] | None = None) -> dict:
        body = server(name, host=host)
        if labels:
            body["metadata"]["labels"] = labels
        return self.custom.create_namespaced_custom_object(G, V, self.namespace, "servers", body)

    def host_status(self, name: str) -> str | None:
        obj = self.custom.get_namespaced_custom_object(G, V, self.namespace, "servers", name)
        return (obj.get("status") or {}).get("hostStatus")

    def wait_host_status(self, names: list[str], expected: str) -> None:
        wait_for(lambda: all(self.host_status(n) == expected for n in names), what=f"{names} {expected}")

    def delete_subscriptions(self) -> None:
        for name in self.subscriptions:
            try:
                self.custom.delete_namespaced_custom_object(G, V, self.namespace, SUBSCRIPTIONS, name)
            except k8s.ApiException as error:
                if error.status != 404:
                    raise


@pytest.fixture
def tenant_factory(api_client: k8s.ApiClient) -> Iterator[Callable[[str | None], Tenant]]:
    made: list[Tenant] = []

    def make(namespace: str | None = None) -> Tenant:
        if namespace is None:
            namespace = f"t-{uuid.uuid4().hex[:10]}"
            k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        tenant = Tenant(api_client, namespace)
        tenant.create_secret()
        made.append(tenant)
        return tenant

    yield make
    for tenant in made:  # their queues go with them: nothing pending leaks into the next test
        tenant.delete_subscriptions()


@pytest.fixture
def tenant(tenant_factory: Callable[[str | None], Tenant], namespace: str) -> Tenant:
    return tenant_factory(namespace)


class Fleet:
    """ComputeServices (cluster-scoped) for the tests' hosts."""

    def __init__(self, custom: k8s.CustomObjectsApi) -> None:
        self.custom = custom

    def create(self, host: str) -> str:
        """Create the host's service and wait until it is up: a server created before its agent's
        first heartbeat is seen would start UNKNOWN, one more event than the tests expect."""
        name = self.custom.create_cluster_custom_object(G, V, "computeservices", compute_service(host))["metadata"][
            "name"
        ]
        wait_for(
            lambda: (
                (self.custom.get_cluster_custom_object(G, V, "computeservices", name).get("status") or {}).get(
                    "hostStatus"
                )
                == "UP"
            ),
            what=f"{name} UP",
        )
        return name

    def force_down(self, host: str, down: bool = True) -> float:
        """Patch spec.forcedDown; return time.time() just before the request (the detection)."""
        started = time.time()
        self.custom.patch_cluster_custom_object(
            G, V, "computeservices", f"{host}.nova-compute", {"spec": {"forcedDown": down}}
        )
        return started


@pytest.fixture
def fleet(custom: k8s.CustomObjectsApi) -> Fleet:
    return Fleet(custom)


def wait_drained(metrics_url: str) -> None:
    """Until the operator has nothing queued or in flight: every event offered so far was
    delivered or given up (a barrier, so 'received nothing else' can be asserted)."""
    wait_for(lambda: scrape(metrics_url).get("hoststate_notifications_pending") == 0, what="notifications drained")


def signed_by(received: Received, key: bytes) -> bool:
    return verify(key, received.body, received.headers.get(SIGNATURE_HEADER))


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
