"""Webhook receivers (small aiohttp servers on 127.0.0.1 in the test process) and tenants
(a namespace with its signing-key Secret and subscriptions) for the notification tests."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from hoststate.devcluster.processes import wait_for
from hoststate.notifications.cloudevents import SIGNATURE_HEADER, verify
from tests.kubeobjects import compute_service, server

G, V = "hoststate.io", "v1alpha1"
SUBSCRIPTIONS = "hoststatussubscriptions"


@dataclass
class Received:
    """One request as the receiver saw it, and what it answered."""

    body: bytes
    headers: dict[str, str]
    answered: int
    at: float  # time.time() on arrival

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def data(self) -> dict[str, Any]:
        return self.event["data"]


@dataclass
class Receiver:
    """A webhook on 127.0.0.1. `answer(received_so_far, event)` picks each response's status code."""

    answer: Callable[[list[Received], dict[str, Any]], int] = lambda _seen, _event: 200
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="webhook receiver")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        assert self._started.wait(10), "receiver did not start"
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            with self._lock:
                seen = list(self.requests)
            status = self.answer(seen, json.loads(body))
            with self._lock:
                self.requests.append(Received(body, dict(request.headers), status, time.time()))
            return web.Response(status=status, text="ok" if status < 300 else "no")

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- reading ------------------------------------------------------------------
    def all(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        return [r for r in self.all() if 200 <= r.answered < 300]

    def for_server(self, name: str) -> list[Received]:
        return [r for r in self.delivered() if r.data["server_name"] == name]

    def statuses(self, name: str) -> list[tuple[str, str]]:
        return [(r.data["old_host_status"], r.data["new_host_status"]) for r in self.for_server(name)]


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(answer: Callable[[list[Received], dict[str, Any]], int] | None = None) -> Receiver:
        receiver = Receiver(answer) if answer else Receiver()
        started.append(receiver.start())
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receiver_factory: Callable[..., Receiver]) -> Receiver:
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


def scrape(url: str) -> dict[str, float]:
    """Samples by name and labels, e.g. 'hoststate_notifications_total{result="delivered"}'."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_drained(metrics_url: str) -> None:
    """Until the operator has nothing queued or in flight: every event offered so far was
    delivered or given up (a barrier, so 'received nothing else' can be asserted)."""
    wait_for(lambda: scrape(metrics_url).get("hoststate_notifications_pending") == 0, what="notifications drained")


def signed_by(received: Received, key: bytes) -> bool:
    return verify(key, received.body, received.headers.get(SIGNATURE_HEADER))


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
