"""The notifications' pure parts: events, signatures, selectors, the URL policy, specs, backoff,
delivery state; and a Channel's per-server ordering with a scripted receiver (no HTTP, no API)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from datetime import UTC, datetime

import pytest

from hoststate.domain.transitions import ServerTransition
from hoststate.notifications.cloudevents import (
    CONTENT_TYPE,
    EVENT_TYPE,
    build_event,
    encode,
    sign,
    verify,
)
from hoststate.notifications.delivery import (
    BACKOFF_CAP,
    STATUS_WRITES_IN_FLIGHT,
    Channel,
    NamespacePool,
    Outcome,
    Pending,
    backoff_delay,
)
from hoststate.notifications.failures import is_retryable
from hoststate.notifications.selector import selector_matches
from hoststate.notifications.status import DeliveryState
from hoststate.notifications.subscriptions import SubscriptionSpec
from hoststate.notifications.url_policy import url_problem

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def transition(**changes) -> ServerTransition:
    fields = dict(
        namespace="tenant-a",
        name="web-1",
        uid="4f1c-uid",
        host="compute1",
        old="UP",
        new="DOWN",
        reason="ForcedDown",
        time=T0,
    )
    return ServerTransition(**{**fields, **changes})


# -- events and signatures --------------------------------------------------------------------
def test_event_is_a_cloudevent_with_the_transition() -> None:
    event = build_event(transition(), "id-1")
    assert {k: v for k, v in event.items() if k != "data"} == {
        "specversion": "1.0",
        "id": "id-1",
        "source": "/apis/hoststate.io/v1alpha1/namespaces/tenant-a/servers",
        "type": EVENT_TYPE,
        "subject": "web-1",
        "time": "2026-03-01T12:00:00.250000Z",
        "datacontenttype": "application/json",
    }
    assert event["data"] == {
        "server_id": "4f1c-uid",
        "server_name": "web-1",
        "project_id": "tenant-a",
        "namespace": "tenant-a",
        "host": "compute1",
        "old_host_status": "UP",
        "new_host_status": "DOWN",
        "reason": "ForcedDown",
        "time": "2026-03-01T12:00:00.250000Z",
    }
    assert CONTENT_TYPE.startswith("application/cloudevents+json")


def test_encoding_is_compact_json_and_keeps_unicode() -> None:
    body = encode(build_event(transition(name="wéb"), "id"))
    assert json.loads(body)["subject"] == "wéb"
    assert b" " not in body and "wéb".encode() in body


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    key, body = b"k" * 32, encode(build_event(transition(), "id"))
    signature = sign(key, body)
    assert signature == "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert verify(key, body, signature)
    assert not verify(b"x" * 32, body, signature)
    assert not verify(key, body + b" ", signature)
    assert not verify(key, body, None)
    assert not verify(key, body, signature.upper())


# -- selectors --------------------------------------------------------------------------------
LABELS = {"tier": "db", "app": "shop"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"tier": "db"}}, True),
        ({"matchLabels": {"tier": "db", "app": "blog"}}, False),
        ({"matchLabels": {"zone": "a"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Like", "values": ["x"]}]}, False),
        (
            {"matchLabels": {"app": "shop"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]},
            True,
        ),
        (
            {"matchLabels": {"app": "shop"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]},
            False,
        ),
    ],
)
def test_label_selector_semantics(selector, matches: bool) -> None:
    assert selector_matches(selector, LABELS) is matches


def test_selector_on_a_server_without_labels() -> None:
    assert selector_matches({"matchLabels": {"tier": "db"}}, None) is False
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, None) is True


# -- the URL policy (the CRD's rules, again) -------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x",
        "https://10.1.2.3:8443/",
        "http://127.0.0.1:8080/hook",
        "http://127.3.4.5/",
        "http://localhost/x",
        "http://LOCALHOST/x",
        "http://[::1]:9000/",
        "http://recv.tenant.svc:80/x",
        "http://recv.tenant.svc.cluster.local/x",
    ],
)
def test_allowed_urls(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "must use https"),
        ("file:///etc/passwd", "must use https"),
        ("not a url", "must use https"),
        ("https:///path", "must name a host"),
        ("http://example.com/x", "http is allowed only to loopback"),
        ("http://127.0.0.1.example.com/x", "http is allowed only to loopback"),
        ("http://10.0.0.1/x", "http is allowed only to loopback"),
        ("https://user:pw@example.com/", "user info"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://example.com:99999/", "not a valid URL"),
    ],
)
def test_refused_urls(url: str, problem: str) -> None:
    assert problem in (url_problem(url) or "")


# -- subscription specs ----------------------------------------------------------------------
def body(**spec) -> dict:
    return {
        "metadata": {"namespace": "tenant-a", "name": "ops", "uid": "u1", "generation": 3},
        "spec": {"url": "https://h.example.com/", "signingKeySecretRef": {"name": "k"}, **spec},
    }


def test_spec_defaults_are_the_crds() -> None:
    spec = SubscriptionSpec.from_body(body())
    assert spec.host_statuses == {"UP", "UNKNOWN", "DOWN", "MAINTENANCE", ""}
    assert (spec.secret_name, spec.secret_key, spec.max_retries, spec.timeout) == ("k", "key", 5, 5.0)
    assert spec.selector is None and spec.generation == 3 and spec.key == ("tenant-a", "ops")


def test_a_subscription_wants_only_its_namespace_its_statuses_and_its_labels() -> None:
    spec = SubscriptionSpec.from_body(
        body(hostStatuses=["DOWN", "UNKNOWN"], serverSelector={"matchLabels": {"ha": "yes"}})
    )
    assert spec.wants("tenant-a", "DOWN", {"ha": "yes"})
    assert not spec.wants("tenant-b", "DOWN", {"ha": "yes"})  # the tenant boundary, whatever the labels
    assert not spec.wants("tenant-a", "UP", {"ha": "yes"})
    assert not spec.wants("tenant-a", "DOWN", {"ha": "no"})
    assert not spec.wants("tenant-a", "DOWN", None)


# -- retries -----------------------------------------------------------------------------------
def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    assert [backoff_delay(n, jitter=lambda: 0.5) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(20, jitter=lambda: 0.5) == BACKOFF_CAP
    assert backoff_delay(0, jitter=lambda: 0.0) == pytest.approx(0.4)
    assert backoff_delay(0, jitter=lambda: 1.0) == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (500, True),
        (502, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (301, False),
    ],
)
def test_what_is_retried(status: int, retry: bool) -> None:
    assert is_retryable(status) is retry


# -- delivery state and its status patch -------------------------------------------------------------
def test_delivery_state_counts_and_tells_when_health_changes() -> None:
    state = DeliveryState.from_status({"delivered": 7, "failed": 1})
    state.generation = 2
    assert state.attempt_failed("HTTP 500", T0) is True  # healthy -> failing: write now
    assert state.attempt_failed("HTTP 500", T0) is False  # still failing: may wait
    assert state.consecutive_failures == 2
    assert state.succeeded(T0) is True  # failing -> healthy: write now
    assert state.succeeded(T0) is False
    patch = state.patch()["status"]
    assert patch["delivered"] == 9 and patch["failed"] == 1 and patch["consecutiveFailures"] == 0
    assert patch["lastError"] == "HTTP 500" and patch["observedGeneration"] == 2
    assert patch["lastSuccessTime"] == patch["lastErrorTime"] == "2026-03-01T12:00:00Z"
    assert [(c["type"], c["status"], c["reason"]) for c in patch["conditions"]] == [("Delivering", "True", "Delivered")]


def test_delivery_state_resumes_from_status() -> None:
    status = DeliveryState(delivered=3, consecutive_failures=1, last_error="x", last_error_time=T0)
    status.set_condition("Ready", "True", "Valid", "ok", T0)
    again = DeliveryState.from_status(status.patch()["status"])
    assert (again.delivered, again.consecutive_failures, again.last_error) == (3, 1, "x")
    assert again.conditions["Ready"].since == T0.replace(microsecond=0)
    assert again.set_condition("Ready", "True", "Valid", "still ok", T0) is False
    assert again.set_condition("Ready", "False", "SecretNotFound", "gone", T0) is True


def test_errors_are_truncated_for_status() -> None:
    state = DeliveryState()
    state.attempt_failed("x" * 5000, T0)
    assert len(state.patch()["status"]["lastError"]) == 1024


# -- a Channel keeps each server's events in order across retries ----------------------------------------
class ScriptedDeliverer:
    """Stands in for the HTTP side: fails attempts at random, records what it accepted."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.accepted: list[tuple[str, int]] = []
        self.metrics = _Metrics()
        self.keys = _Keys()
        self.client = _NoStatusWrites()
        self.pools: dict[str, NamespacePool] = {}
        self.status_writes = asyncio.Semaphore(STATUS_WRITES_IN_FLIGHT)

    def pool(self, namespace: str) -> NamespacePool:
        return self.pools.setdefault(namespace, NamespacePool())

    async def release(self, namespace: str) -> None:
        pass

    async def close(self) -> None:
        pass

    def url_refusal(self, _url: str) -> None:
        return None

    async def before_status_write(self) -> None:
        return None

    async def attempt(self, spec, pending: Pending, number: int) -> Outcome:
        await asyncio.sleep(self.random.random() / 1000)
        if self.random.random() < 0.4:
            return Outcome(False, "HTTP 500", retryable=True)
        server, seq = json.loads(pending.body)
        self.accepted.append((server, seq))
        return Outcome(True)


class _Counter:
    def labels(self, **_):
        return self

    def inc(self, *_):
        pass

    def observe(self, *_):
        pass


class _Metrics:
    notifications = notification_retries = notification_latency = _Counter()


class _Keys:
    def forget(self, *_):
        pass

    async def get(self, *_):
        return b"k" * 32


class _NoStatusWrites:
    async def patch(self, *_, **__):
        return {}


class FakeFleet:
    """The Reconciler as the Notifier reads it: recorded host transitions and servers per host."""

    def __init__(self) -> None:
        self.transitions: list = []
        self.servers: dict[str, list] = {}
        self.labels: dict[tuple[str, str], dict[str, str]] = {}
        self.unrecorded_since = None

    def recorded_transitions(self) -> list:
        return sorted(self.transitions, key=lambda t: t.time)

    def oldest_unrecorded(self):
        return self.unrecorded_since

    def servers_on_host(self, host: str) -> list:
        return self.servers.get(host, [])

    def labels_of(self, namespace: str, name: str):
        return self.labels.get((namespace, name), {})


async def test_channel_delivers_each_servers_events_in_order_despite_retries(monkeypatch) -> None:
    monkeypatch.setattr("hoststate.notifications.delivery.backoff_delay", lambda retry: 0.001 * (1 + retry))
    deliverer = ScriptedDeliverer(seed=7)
    spec = SubscriptionSpec.from_body(body(maxRetries=10, url="http://127.0.0.1:1/"))
    channel = Channel(spec, deliverer, None, concurrency=4)  # type: ignore[arg-type]
    for seq in range(20):
        for server in ("a", "b", "c"):
            channel.offer(server, Pending(f"{server}{seq}", json.dumps([server, seq]).encode(), T0))
    while channel.pending:
        await asyncio.sleep(0.01)
    await channel.close()
    for server in ("a", "b", "c"):
        assert [seq for s, seq in deliverer.accepted if s == server] == list(range(20))
    assert channel.state.delivered == 60 and channel.state.consecutive_failures == 0


async def test_a_full_queue_drops_new_events_and_counts_them() -> None:
    deliverer = ScriptedDeliverer(seed=1)
    channel = Channel(SubscriptionSpec.from_body(body()), deliverer, None, max_pending=2)  # type: ignore[arg-type]
    offered = [channel.offer("a", Pending(str(i), json.dumps(["a", i]).encode(), T0)) for i in range(3)]
    assert offered == [True, True, False]
    assert channel.state.failed == 1
    assert await channel.close() == 2


async def test_a_channel_works_a_thousand_servers_with_its_few_workers(monkeypatch) -> None:
    deliverer = ScriptedDeliverer(seed=3)
    channel = Channel(SubscriptionSpec.from_body(body(maxRetries=10)), deliverer, None, concurrency=4)  # type: ignore[arg-type]
    monkeypatch.setattr("hoststate.notifications.delivery.backoff_delay", lambda retry: 0.0)
    for i in range(1000):
        channel.offer(f"s{i}", Pending(f"e{i}", json.dumps([f"s{i}", 0]).encode(), T0))
    assert len(channel._workers) == 4  # not a task per server
    while channel.pending:
        await asyncio.sleep(0.01)
    assert len(deliverer.accepted) == 1000
    await channel.close()


async def test_a_refreshed_key_replaces_the_cached_one_and_an_api_server_away_keeps_it() -> None:
    import base64

    from hoststate.kube import ApiError
    from hoststate.notifications.secrets import SigningKeys

    answers: list = [b"first key of 16+ bytes", ApiError(500, None, "GET", "/"), b"second key of 16+ bytes"]

    class Secrets:
        async def get(self, *_):
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return {"data": {"key": base64.b64encode(answer).decode()}}

    keys = SigningKeys(Secrets())  # type: ignore[arg-type]
    assert await keys.get("ns", "k", "key") == b"first key of 16+ bytes"
    await keys.refresh("ns", "k")  # the API server answers 500: the cached key stays
    assert await keys.get("ns", "k", "key") == b"first key of 16+ bytes"
    await keys.refresh("ns", "k")
    assert await keys.get("ns", "k", "key") == b"second key of 16+ bytes"
    assert answers == []
