"""Delivery end to end: the real operator (subprocess), a real API server, webhooks on 127.0.0.1."""

from __future__ import annotations

import statistics
import uuid

from hoststate.devcluster.processes import wait_for
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.devcluster.scraper import scrape
from hoststate.notifications.cloudevents import CONTENT_TYPE, EVENT_TYPE, SIGNATURE_HEADER

from .conftest import Fleet, Tenant, signed_by, utc, wait_drained

LATENCIES: list[float] = []  # force-down request -> webhook receipt, seconds (reported, not asserted)


def test_force_down_and_back_up_are_delivered_signed(
    operator, operator_handle, agents, fleet: Fleet, tenant: Tenant, receiver: WebhookReceiver, unique_host: str
) -> None:
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe("ops", receiver.url)
    tenant.wait_ready("ops")
    vms = ["vm-a", "vm-b", "vm-c"]
    created = {vm: tenant.create_server(vm, unique_host) for vm in vms}
    tenant.wait_host_status(vms, "UP")
    wait_for(lambda: all(receiver.statuses(vm) == [("", "UP")] for vm in vms), what="the first UP of each server")

    detected = fleet.force_down(unique_host)
    wait_for(lambda: all(len(receiver.statuses(vm)) == 2 for vm in vms), what="DOWN events")
    latencies = [receiver.for_server(vm)[1].at - detected for vm in vms]
    LATENCIES.extend(latencies)
    print(
        f"\nforce-down to webhook, {len(vms)} servers: max {max(latencies) * 1000:.0f} ms, "
        f"median {statistics.median(latencies) * 1000:.0f} ms"
    )

    fleet.force_down(unique_host, down=False)
    wait_for(lambda: all(len(receiver.statuses(vm)) == 3 for vm in vms), what="UP events")

    for vm in vms:
        assert receiver.statuses(vm) == [("", "UP"), ("UP", "DOWN"), ("DOWN", "UP")]
        down = receiver.for_server(vm)[1]
        event = down.event
        assert down.headers["Content-Type"] == CONTENT_TYPE
        assert event["specversion"] == "1.0" and event["type"] == EVENT_TYPE
        assert event["source"] == f"/apis/hoststate.io/v1alpha1/namespaces/{tenant.namespace}/servers"
        assert event["subject"] == vm and event["datacontenttype"] == "application/json"
        uuid.UUID(event["id"])
        assert event["data"] == {
            "server_id": created[vm]["metadata"]["uid"],
            "server_name": vm,
            "project_id": tenant.namespace,
            "namespace": tenant.namespace,
            "host": unique_host,
            "old_host_status": "UP",
            "new_host_status": "DOWN",
            "reason": "ForcedDown",
            "time": event["time"],
        }
        assert utc(event["time"]).timestamp() >= detected - 1  # the operator's clock, not the test's
        assert [r.data["reason"] for r in receiver.for_server(vm)] == ["ServiceUp", "ForcedDown", "ServiceUp"]
        # The signature: HMAC-SHA256 of the raw body with the Secret's key, and no other key.
        assert all(signed_by(r, tenant.key) for r in receiver.for_server(vm))
        assert not signed_by(down, b"another key of 32 bytes........!")
        assert down.headers[SIGNATURE_HEADER].startswith("sha256=")
    ids = [r.event["id"] for r in receiver.delivered()]
    assert len(ids) == len(set(ids)) == 9

    # Status and metrics follow (the status write is throttled: wait for it).
    status = wait_for(lambda: (s := tenant.status("ops")).get("delivered") == 9 and s, what="status delivered 9")
    assert status["consecutiveFailures"] == 0 and status["lastSuccessTime"]
    assert status["observedGeneration"] == tenant.subscription("ops")["metadata"]["generation"]
    assert tenant.condition("ops", "Delivering")["reason"] == "Delivered"
    samples = scrape(operator_handle.metrics_url)
    assert samples['hoststate_notifications_total{result="delivered"}'] >= 9
    assert samples["hoststate_notification_latency_seconds_count"] >= 9


def test_filters_by_selector_and_host_status(
    operator, operator_handle, agents, fleet: Fleet, tenant: Tenant, receiver_factory, unique_host: str
) -> None:
    agents(unique_host)
    fleet.create(unique_host)
    db_down, web_all, not_db = receiver_factory(), receiver_factory(), receiver_factory()
    tenant.subscribe("db-down", db_down.url, serverSelector={"matchLabels": {"tier": "db"}}, hostStatuses=["DOWN"])
    tenant.subscribe(
        "web", web_all.url, serverSelector={"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}
    )
    tenant.subscribe(
        "not-db",
        not_db.url,
        serverSelector={"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
        hostStatuses=["UP", "DOWN"],
    )
    for name in ("db-down", "web", "not-db"):
        tenant.wait_ready(name)
    tenant.create_server("db-1", unique_host, labels={"tier": "db"})
    tenant.create_server("web-1", unique_host, labels={"tier": "web"})
    tenant.create_server("bare", unique_host)
    tenant.wait_host_status(["db-1", "web-1", "bare"], "UP")

    fleet.force_down(unique_host)
    tenant.wait_host_status(["db-1", "web-1", "bare"], "DOWN")
    fleet.force_down(unique_host, down=False)
    tenant.wait_host_status(["db-1", "web-1", "bare"], "UP")
    # At least what is expected, then a barrier, then exactly what is expected (so a failure shows the events).
    wait_for(
        lambda: len(web_all.delivered()) >= 3 and len(not_db.delivered()) >= 6 and db_down.delivered(), what="events"
    )
    wait_drained(operator_handle.metrics_url)

    assert [(r.data["server_name"], r.data["new_host_status"]) for r in db_down.delivered()] == [("db-1", "DOWN")]
    assert web_all.statuses("web-1") == [("", "UP"), ("UP", "DOWN"), ("DOWN", "UP")]
    assert {r.data["server_name"] for r in web_all.delivered()} == {"web-1"}
    # NotIn matches servers without the label too; "" (no host status) is filtered out by hostStatuses.
    assert {r.data["server_name"] for r in not_db.delivered()} == {"web-1", "bare"}
    assert not_db.statuses("bare") == [("", "UP"), ("UP", "DOWN"), ("DOWN", "UP")]


def test_retries_until_the_receiver_recovers(
    operator, operator_handle, agents, fleet: Fleet, tenant: Tenant, receiver_factory, unique_host: str
) -> None:
    healthy = False

    def answer(_seen, _event) -> int:
        return 200 if healthy else 500

    receiver = receiver_factory(answer)
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe("ops", receiver.url, maxRetries=10)
    tenant.wait_ready("ops")
    retries_before = scrape(operator_handle.metrics_url)["hoststate_notification_retries_total"]
    tenant.create_server("vm", unique_host)

    # Failing: the status says so (consecutive failures, the error, Delivering False) ...
    status = wait_for(
        lambda: (s := tenant.status("ops")).get("consecutiveFailures", 0) >= 2 and s, what="failures in status"
    )
    assert "HTTP 500" in status["lastError"] and status["lastErrorTime"]
    assert status["lastError"] == "HTTPError: HTTP 500"  # the category and the code, not the receiver's words
    assert tenant.condition("ops", "Delivering")["status"] == "False"
    assert tenant.condition("ops", "Ready")["status"] == "True"  # the subscription is fine; the receiver is not
    healthy = True
    wait_for(lambda: receiver.delivered(), what="the event delivered after the receiver recovered")

    # ... then it recovers: failures reset to 0, one event delivered.
    status = wait_for(
        lambda: (s := tenant.status("ops")).get("consecutiveFailures") == 0 and s.get("delivered") == 1 and s,
        what="failures reset in status",
    )
    assert tenant.condition("ops", "Delivering")["status"] == "True"
    # The server's first event and its retries (a host that misses a heartbeat under load adds events of its own).
    first = receiver.all()[0].event["id"]
    attempts = [r for r in receiver.all() if r.event["id"] == first]
    assert len(attempts) >= 3 and [r.answered for r in attempts[:-1]] == [500] * (len(attempts) - 1)
    # A retry is the same event: same id, same bytes, same signature; the attempt is numbered.
    assert len({r.body for r in attempts}) == 1
    assert [int(r.headers["X-Hoststate-Delivery-Attempt"]) for r in attempts] == list(range(1, len(attempts) + 1))
    assert all(signed_by(r, tenant.key) for r in attempts)
    retries = scrape(operator_handle.metrics_url)["hoststate_notification_retries_total"] - retries_before
    assert retries >= len(attempts) - 1


def test_five_hundred_twice_then_delivered(
    operator, agents, fleet: Fleet, tenant: Tenant, receiver_factory, unique_host: str
) -> None:
    def answer(seen, event) -> int:
        return 500 if sum(1 for r in seen if r.event["id"] == event["id"]) < 2 else 200

    receiver = receiver_factory(answer)
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe("ops", receiver.url)
    tenant.wait_ready("ops")
    tenant.create_server("vm", unique_host)
    wait_for(lambda: receiver.delivered(), what="delivery on the third attempt")
    assert [r.answered for r in receiver.all()] == [500, 500, 200]
    status = wait_for(lambda: (s := tenant.status("ops")).get("delivered") == 1 and s, what="delivered in status")
    assert status["consecutiveFailures"] == 0 and status["failed"] == 0
    assert "HTTP 500" in status["lastError"]  # kept for the record, with its time


def test_gives_up_after_max_retries(
    operator, agents, fleet: Fleet, tenant: Tenant, receiver_factory, unique_host: str
) -> None:
    receiver = receiver_factory(lambda _seen, _event: 503)
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe("ops", receiver.url, maxRetries=1)
    tenant.wait_ready("ops")
    tenant.create_server("vm", unique_host)
    status = wait_for(lambda: (s := tenant.status("ops")).get("failed") == 1 and s, what="the event given up")
    assert len(receiver.all()) == 2  # the attempt and one retry
    assert status["consecutiveFailures"] == 2 and status.get("delivered", 0) == 0


def test_events_of_a_server_arrive_in_order_under_a_burst(
    operator, operator_handle, agents, fleet: Fleet, tenant: Tenant, receiver_factory, unique_host: str
) -> None:
    # Every event fails once before it is accepted: each one is retried while the next
    # transitions of its server are already queued behind it.
    def answer(seen, event) -> int:
        return 200 if any(r.event["id"] == event["id"] for r in seen) else 500

    receiver = receiver_factory(answer)
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe("ops", receiver.url, maxRetries=10)
    tenant.wait_ready("ops")
    vms = [f"vm-{i}" for i in range(5)]
    for vm in vms:
        tenant.create_server(vm, unique_host)
    tenant.wait_host_status(vms, "UP")

    # A burst: down, up, down, up, down, each as soon as the previous one shows.
    for down in (True, False, True, False, True):
        fleet.force_down(unique_host, down=down)
        tenant.wait_host_status(vms, "DOWN" if down else "UP")
    expected = [("", "UP")] + [("UP", "DOWN"), ("DOWN", "UP")] * 2 + [("UP", "DOWN")]
    wait_for(lambda: all(len(receiver.statuses(vm)) == len(expected) for vm in vms), what="all events")
    wait_drained(operator_handle.metrics_url)

    for vm in vms:
        assert receiver.statuses(vm) == expected, vm
        times = [utc(r.data["time"]) for r in receiver.for_server(vm)]
        assert times == sorted(times)
    assert all(r.answered == 500 for r in receiver.all() if r not in receiver.delivered())
    assert len(receiver.all()) == 2 * len(receiver.delivered())


def test_a_tenant_never_receives_another_tenants_servers(
    operator, operator_handle, agents, fleet: Fleet, tenant_factory, receiver_factory, unique_host: str
) -> None:
    a, b = tenant_factory(None), tenant_factory(None)
    hook_a, hook_b = receiver_factory(), receiver_factory()
    agents(unique_host)
    fleet.create(unique_host)
    # Same subscription name, everything selected, on a shared host.
    a.subscribe("all", hook_a.url)
    b.subscribe("all", hook_b.url)
    a.wait_ready("all")
    b.wait_ready("all")
    servers_a = {a.create_server(f"a-{i}", unique_host)["metadata"]["uid"] for i in range(3)}
    servers_b = {b.create_server(f"b-{i}", unique_host)["metadata"]["uid"] for i in range(2)}
    a.wait_host_status(["a-0", "a-1", "a-2"], "UP")
    b.wait_host_status(["b-0", "b-1"], "UP")
    fleet.force_down(unique_host)
    a.wait_host_status(["a-0", "a-1", "a-2"], "DOWN")
    b.wait_host_status(["b-0", "b-1"], "DOWN")
    wait_for(lambda: len(hook_a.delivered()) == 6 and len(hook_b.delivered()) == 4, what="both tenants' events")
    wait_drained(operator_handle.metrics_url)

    for tenant, hook, uids in ((a, hook_a, servers_a), (b, hook_b, servers_b)):
        assert {r.data["server_id"] for r in hook.delivered()} == uids
        assert {r.data["namespace"] for r in hook.delivered()} == {tenant.namespace}
        assert len(hook.all()) == len(hook.delivered())
        # Each tenant's events are signed with its own key only.
        assert all(signed_by(r, tenant.key) for r in hook.all())
    assert not any(signed_by(r, b.key) for r in hook_a.all())


def test_missing_secret_is_reported_and_delivery_resumes_once_it_exists(
    operator, agents, fleet: Fleet, tenant: Tenant, receiver: WebhookReceiver, unique_host: str
) -> None:
    agents(unique_host)
    fleet.create(unique_host)
    tenant.subscribe("ops", receiver.url, secret="later-key", maxRetries=10)
    ready = wait_for(lambda: (c := tenant.condition("ops", "Ready")).get("status") == "False" and c, what="not ready")
    assert ready["reason"] == "SecretNotFound" and "later-key" in ready["message"]

    tenant.create_server("vm", unique_host)
    status = wait_for(lambda: (s := tenant.status("ops")).get("consecutiveFailures", 0) >= 1 and s, what="a failure")
    assert "signing key" in status["lastError"]
    assert receiver.all() == []  # never sent unsigned

    key = b"a key created after the subscription"
    tenant.create_secret("later-key", key)
    wait_for(lambda: receiver.delivered(), what="delivery once the Secret exists")
    assert signed_by(receiver.delivered()[0], key)
    wait_for(lambda: tenant.condition("ops", "Ready").get("status") == "True", what="ready again")


def test_short_signing_keys_are_refused(operator, tenant: Tenant, receiver: WebhookReceiver) -> None:
    tenant.create_secret("short", b"too short")
    tenant.subscribe("ops", receiver.url, secret="short")
    ready = wait_for(lambda: (c := tenant.condition("ops", "Ready")).get("status") == "False" and c, what="not ready")
    assert ready["reason"] == "SigningKeyTooShort"
    assert ready["message"] == "Secret short key 'key' is too short: at least 16 bytes needed"  # not how short


def test_webhooks_to_inside_addresses_are_refused_by_category(operator, tenant: Tenant) -> None:
    """Literal addresses are judged before any event (names when connecting: test_egress.py)."""
    for name, url in (("private", "https://10.0.0.1/hook"), ("mapped", "https://[::ffff:a9fe:a9fe]/latest")):
        tenant.subscribe(name, url)
    for name in ("private", "mapped"):
        ready = wait_for(
            lambda name=name: (c := tenant.condition(name, "Ready")).get("status") == "False" and c, what="refused"
        )
        assert ready["reason"] == "AddressNotAllowed", ready
        assert "10.0.0.1" not in ready["message"] and "a9fe" not in ready["message"]
