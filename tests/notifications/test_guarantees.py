"""The delivery guarantees end to end (real operator, real API server, webhooks on 127.0.0.1): one
request per host transition, signed and filtered; nothing lost when the operator is SIGKILLed during a
delivery, duplicates with the same id and each server's order kept; a tenant's hanging webhooks do not
hold another tenant's events."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from hoststate.devcluster.processes import wait_for
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.devcluster.scraper import scrape
from hoststate.domain import server_event_id
from hoststate.notifications.cloudevents import BATCH_CONTENT_TYPE, SIGNATURE_HEADER, verify

from .conftest import Fleet, G, Tenant, V, utc, wait_drained


def recorded(custom: k8s.CustomObjectsApi, host: str, new: str) -> dict:
    """The host's last recorded transition to `new` (ComputeService status.recentTransitions)."""
    status = custom.get_cluster_custom_object(G, V, "computeservices", f"{host}.nova-compute").get("status") or {}
    return [t for t in status["recentTransitions"] if t["newHostStatus"] == new][-1]


def test_one_request_per_host_transition_signed_and_filtered(
    operator, operator_handle, agents, fleet: Fleet, tenant: Tenant, receiver: WebhookReceiver, custom, unique_host
) -> None:
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe(
        "batched",
        receiver.url,
        delivery="PerHostTransition",
        hostStatuses=["DOWN"],
        serverSelector={"matchLabels": {"tier": "db"}},
    )
    tenant.wait_ready("batched")
    uids = {
        name: tenant.create_server(name, unique_host, {"tier": tier})["metadata"]["uid"]
        for name, tier in (("db-1", "db"), ("db-2", "db"), ("web-1", "web"))
    }
    tenant.wait_host_status(list(uids), "UP")

    fleet.force_down(unique_host)
    wait_for(lambda: len(receiver.delivered()) >= 2, what="the batch")
    wait_drained(operator_handle.metrics_url)

    received = receiver.delivered()
    assert len({r.body for r in received}) == 1  # one request ...
    request = received[0]
    assert request.headers["Content-Type"] == BATCH_CONTENT_TYPE
    events = json.loads(request.body)  # ... a JSON array of the structured events
    assert sorted(e["data"]["server_name"] for e in events) == ["db-1", "db-2"]  # the selector; UP filtered out
    assert verify(tenant.key, request.body, request.headers[SIGNATURE_HEADER])  # signed as a whole
    transition = recorded(custom, unique_host, "DOWN")["id"]
    assert {e["id"] for e in events} == {server_event_id(transition, uids[n], "DOWN") for n in ("db-1", "db-2")}
    assert {e["data"]["reason"] for e in events} == {"ForcedDown"}
    status = wait_for(lambda: (s := tenant.status("batched")).get("delivered") == 2 and s, what="2 delivered")
    assert status["acknowledgedThrough"]


def test_sigkill_during_a_delivery_loses_nothing(
    operator, operator_handle, agents, fleet: Fleet, tenant: Tenant, receiver_factory, custom, unique_host
) -> None:
    # A receiver slow enough (5 ms a request, one at a time) that the kill lands mid-delivery.
    def answer(_seen, _event) -> int:
        time.sleep(0.005)
        return 200

    receiver = receiver_factory(answer)
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe("ops", receiver.url, hostStatuses=["DOWN"])
    tenant.wait_ready("ops")
    names = [f"vm-{i:03d}" for i in range(200)]
    uids = {name: tenant.create_server(name, unique_host)["metadata"]["uid"] for name in names}
    tenant.wait_host_status(names, "UP")

    fleet.force_down(unique_host)
    wait_for(lambda: len(receiver.delivered()) >= 20, what="the delivery under way")
    operator_handle.process.kill()  # type: ignore[union-attr]
    before_restart = len({r.data["server_id"] for r in receiver.delivered()})
    operator_handle.start()
    wait_for(
        lambda: {r.data["server_id"] for r in receiver.delivered()} >= set(uids.values()),
        timeout=60,
        what="every server's DOWN event",
    )
    wait_drained(operator_handle.metrics_url)

    assert before_restart < len(names)  # the kill did land during the delivery
    transition = recorded(custom, unique_host, "DOWN")["id"]
    for name, uid in uids.items():
        events = receiver.for_server(name)
        # Duplicates (sent before the kill, not yet acknowledged) carry the same id: the transition's.
        assert {r.event["id"] for r in events} == {server_event_id(transition, uid, "DOWN")}, name
        assert {(r.data["old_host_status"], r.data["new_host_status"]) for r in events} == {("UP", "DOWN")}

    # Acknowledged in the subscription's status (a later restart does not send them again).
    def acknowledged() -> bool:
        status = tenant.status("ops")
        through = status.get("acknowledgedThrough")
        return transition in [a["id"] for a in status.get("acknowledged") or []] or (
            through is not None and utc(through) >= decided
        )

    decided = utc(recorded(custom, unique_host, "DOWN")["time"])
    wait_for(acknowledged, what="the transition acknowledged in status")


@pytest.fixture
def hanging_webhook() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    listener.close()


def test_a_tenants_hanging_webhooks_do_not_hold_another_tenants_events(
    operator, operator_handle, agents, fleet: Fleet, tenant_factory, receiver_factory, hanging_webhook, unique_host
) -> None:
    a, b = tenant_factory(None), tenant_factory(None)
    hook_b = receiver_factory()
    agents(unique_host)
    fleet.create(unique_host)
    for i in range(5):
        a.subscribe(f"hangs-{i}", hanging_webhook, timeoutSeconds=30, maxRetries=10)
    b.subscribe("ops", hook_b.url, hostStatuses=["DOWN"])
    for name in [f"hangs-{i}" for i in range(5)]:
        a.wait_ready(name)
    b.wait_ready("ops")
    servers_a = [f"a-{i:02d}" for i in range(40)]
    servers_b = [f"b-{i}" for i in range(5)]
    for name in servers_a:
        a.create_server(name, unique_host)
    for name in servers_b:
        b.create_server(name, unique_host)
    a.wait_host_status(servers_a, "UP")
    b.wait_host_status(servers_b, "UP")
    retries = scrape(operator_handle.metrics_url)["hoststate_notification_retries_total"]

    fleet.force_down(unique_host)
    wait_for(lambda: {r.data["server_name"] for r in hook_b.delivered()} == set(servers_b), what="tenant B's events")

    # B has all its events while every attempt to A's webhooks still hangs: none has ended, none retried.
    samples = scrape(operator_handle.metrics_url)
    assert samples["hoststate_notification_retries_total"] == retries
    assert samples["hoststate_notifications_pending"] > 0
    assert all(a.status(f"hangs-{i}").get("delivered", 0) == 0 for i in range(5))
    a.delete_subscriptions()  # their queues go with them
