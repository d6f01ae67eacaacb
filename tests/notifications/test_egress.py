"""Webhooks reach only what they should: the egress policy, judged on the addresses actually
connected to, and failures reported by category.

No packet goes to a refused address: names are resolved by a resolver of the test's own (its
answers are what a hostile DNS would say) and the policy refuses before a socket exists, which
each test checks. The only connections made are to servers of this test on 127.0.0.1, allowed
explicitly, as the operator's tests and `make run` allow it.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from hoststate.notifications import Notifier
from hoststate.notifications.delivery import Deliverer, Pending
from hoststate.notifications.egress import AddressNotAllowed, EgressPolicy, embedded_ipv4, parse_cidrs
from hoststate.notifications.failures import client_failure
from hoststate.notifications.secrets import SigningKeyError, SigningKeys
from hoststate.notifications.subscriptions import SubscriptionSpec
from hoststate.notifications.url_policy import origin
from hoststate.prometheus import OperatorMetrics

from .test_logic import T0, FakeFleet, _Keys, _Metrics, body

LOCAL_RECEIVERS = EgressPolicy(allowed=parse_cidrs(["127.0.0.1/32"]))
CLUSTER = parse_cidrs(["34.118.224.0/20"])  # a cluster's Service range, public addresses as GKE may use


# -- the policy, address by address ------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved (Python counts 240/4 among the private ranges)
        ("255.255.255.255", "private"),
        ("192.0.2.10", "private"),  # documentation
        ("2001:db8::1", "private"),  # documentation
        ("34.118.224.10", "cluster"),
        # IPv4 inside IPv6 is judged as IPv4: where the packets end up.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:a9fe:a9fe", "link-local"),
        ("::ffff:10.1.2.3", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4
        ("2002:0a00:0001::1", "private"),
        ("2001::1", "private"),  # Teredo: the IPv4 it carries is obfuscated, the range is refused whole
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert EgressPolicy(cluster=CLUSTER).refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:0808:0808::1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert EgressPolicy(cluster=CLUSTER).refusal(ipaddress.ip_address(address)) is None


def test_the_allowlist_permits_exactly_its_ranges() -> None:
    policy = EgressPolicy(allowed=parse_cidrs(["127.0.0.1/32", "34.118.224.7/32", "fd00:1::/64"]), cluster=CLUSTER)
    allowed = ["127.0.0.1", "::ffff:127.0.0.1", "34.118.224.7", "fd00:1::5"]
    refused = ["127.0.0.2", "::1", "169.254.169.254", "34.118.224.8", "fd00:2::5", "10.0.0.1"]
    assert [a for a in allowed if policy.refusal(ipaddress.ip_address(a)) is not None] == []
    assert [a for a in refused if policy.refusal(ipaddress.ip_address(a)) is None] == []


def test_embedded_ipv4() -> None:
    v4 = ipaddress.IPv4Address("169.254.169.254")
    assert {embedded_ipv4(ipaddress.ip_address(a)) for a in ("::ffff:a9fe:a9fe", "64:ff9b::a9fe:a9fe")} == {v4}
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1")) == ipaddress.ip_address("2606:4700::1")


def test_bad_cidrs_are_refused() -> None:
    with pytest.raises(ValueError, match="10.0.0.1/8"):
        parse_cidrs(["10.0.0.1/8"])  # host bits set: a typo more likely than a range
    with pytest.raises(ValueError):
        parse_cidrs(["localhost"])


def test_the_socket_factory_refuses_before_a_socket_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[Any] = []
    monkeypatch.setattr("hoststate.notifications.egress.socket.socket", lambda *a: created.append(a))
    info = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("169.254.169.254", 80))
    with pytest.raises(AddressNotAllowed, match="169.254.169.254 refused: link-local"):
        EgressPolicy().socket_factory(info)
    info6 = (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::ffff:127.0.0.1", 80, 0, 0))
    with pytest.raises(AddressNotAllowed):
        EgressPolicy().socket_factory(info6)
    assert created == []
    LOCAL_RECEIVERS.socket_factory((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80)))
    assert created == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)]


# -- through the delivery session: names resolved by the test, refused before any connect -------------
class Answers(AbstractResolver):
    """DNS as the test says: each name's addresses (a hostile resolver, a rebinding, a CNAME)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(errno.ENOENT, f"{host}: Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        pass


class Recording:
    """The policy, recording each address the connector asked to connect to and each socket made."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.asked: list[str] = []
        self.connected: list[str] = []
        self.refusal = policy.refusal

    def socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        self.asked.append(addr_info[4][0])
        sock = self.policy.socket_factory(addr_info)
        self.connected.append(addr_info[4][0])
        return sock


@pytest.fixture
async def receiver() -> AsyncIterator[TestServer]:
    """A webhook on 127.0.0.1: /hook answers 200, /status/{code} that code, /redirect a 307 to /elsewhere."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        await request.read()
        if request.path == "/redirect":
            return web.Response(status=307, headers={"Location": "/elsewhere"})
        if request.path.startswith("/status/"):
            return web.Response(status=int(request.path.rsplit("/", 1)[1]), reason="Secret Internal Banner v1.2")
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server.seen = seen  # type: ignore[attr-defined]
    yield server
    await server.close()


@pytest.fixture
async def deliverer_factory() -> AsyncIterator[Callable[..., tuple[Deliverer, Recording]]]:
    made: list[Deliverer] = []

    def make(answers: dict[str, list[str]] | None = None, policy: EgressPolicy = LOCAL_RECEIVERS):
        deliverer = Deliverer(None, _Metrics(), keys=_Keys(), resolver=Answers(answers or {}))  # type: ignore[arg-type]
        recording = Recording(policy)
        deliverer.egress = recording  # type: ignore[assignment]
        made.append(deliverer)
        return deliverer, recording

    yield make
    for deliverer in made:
        await deliverer.close()


async def attempt(deliverer: Deliverer, url: str):
    spec = SubscriptionSpec.from_body(body(url=url, timeoutSeconds=5))
    return await deliverer.attempt(spec, Pending("e1", b"{}", T0), 1)


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("hooks.tenant-a.svc", ["127.0.0.2"]),  # a name resolving to loopback (not the allowed 127.0.0.1)
        ("metadata.tenant-a.svc", ["169.254.169.254"]),
        ("external.tenant-a.svc", ["10.0.0.7"]),  # an ExternalName Service: a CNAME to anywhere inside
        ("mapped.tenant-a.svc", ["::ffff:a9fe:a9fe"]),
        ("nat64.tenant-a.svc", ["64:ff9b::a9fe:a9fe"]),
        ("six.tenant-a.svc", ["::1", "fe80::1"]),
    ],
)
async def test_names_resolving_inside_are_refused_before_any_connect(
    deliverer_factory, receiver: TestServer, host: str, addresses: list[str]
) -> None:
    deliverer, recording = deliverer_factory({host: addresses})
    outcome = await attempt(deliverer, f"http://{host}:{receiver.port}/hook")
    assert not outcome.ok and not outcome.retryable
    assert outcome.error.startswith("AddressNotAllowed: ")
    assert outcome.ready == ("False", "AddressNotAllowed", outcome.error.removeprefix("AddressNotAllowed: "))
    assert {ipaddress.ip_address(a) for a in recording.asked} == {ipaddress.ip_address(a) for a in addresses}
    assert recording.connected == []  # refused before a socket existed: no packet left
    assert not any(a in outcome.error for a in addresses)  # the status does not say where the name leads


async def test_a_rebinding_answer_reaches_only_the_allowed_address(deliverer_factory, receiver: TestServer) -> None:
    deliverer, recording = deliverer_factory({"hooks.tenant-a.svc": ["169.254.169.254", "127.0.0.1"]})
    outcome = await attempt(deliverer, f"http://hooks.tenant-a.svc:{receiver.port}/hook")
    assert outcome.ok
    assert recording.asked == ["169.254.169.254", "127.0.0.1"] and recording.connected == ["127.0.0.1"]
    assert receiver.seen == ["/hook"]  # type: ignore[attr-defined]


async def test_an_allowed_receiver_by_name_gets_the_event(deliverer_factory, receiver: TestServer) -> None:
    deliverer, recording = deliverer_factory({"receiver.tenant-a.svc": ["127.0.0.1"]})
    assert (await attempt(deliverer, f"http://receiver.tenant-a.svc:{receiver.port}/hook")).ok
    assert recording.connected == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("url", "category"),
    [
        ("https://10.0.0.1/hook", "AddressNotAllowed"),
        ("https://[::ffff:a9fe:a9fe]/latest/meta-data", "AddressNotAllowed"),
        ("https://[::ffff:127.0.0.2]/hook", "AddressNotAllowed"),
        ("https://100.64.1.1/hook", "AddressNotAllowed"),
        ("https://[64:ff9b::a9fe:a9fe]/", "AddressNotAllowed"),
        ("http://2130706433/", "InvalidURL"),  # 127.0.0.1 in decimal
        ("https://0x7f000001/", "InvalidURL"),  # in hex
        ("https://0177.0.0.1/", "InvalidURL"),  # in octal
        ("https://127.1/", "InvalidURL"),
        ("https://169.254.169.254/", "InvalidURL"),  # the CRD's rule, again
    ],
)
async def test_literal_addresses_are_refused_before_any_lookup(deliverer_factory, url: str, category: str) -> None:
    deliverer, recording = deliverer_factory()
    outcome = await attempt(deliverer, url)
    assert outcome.error.startswith(f"{category}: ") and not outcome.retryable
    assert outcome.ready is not None and outcome.ready[:2] == ("False", category)
    assert recording.asked == [] and deliverer.resolver.asked == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433:{port}/",  # aiohttp refuses a non-canonical IPv4 itself
        "http://0x7f.1:{port}/",  # not an IP to aiohttp: resolved (as glibc reads it, 127.0.0.1), then refused
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://127.0.0.1:{port}/",  # the receiver itself, not allowed this time
    ],
)
async def test_the_connector_refuses_what_the_url_check_would_let_through(
    receiver: TestServer, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket factory is the authority: a request that skips the URL check (the session used
    directly) connects only where the policy allows, whatever the resolver says."""
    connected: list[Any] = []
    real_socket = socket.socket
    monkeypatch.setattr(
        "hoststate.notifications.egress.socket.socket", lambda *a: connected.append(a) or real_socket(*a)
    )
    resolver = Answers({"0x7f.1": ["127.0.0.1"]})
    deliverer = Deliverer(None, _Metrics(), keys=_Keys(), resolver=resolver)  # type: ignore[arg-type]
    try:
        with pytest.raises(aiohttp.ClientError) as caught:
            await deliverer.session("tenant-a").post(
                url.format(port=receiver.port), data=b"{}", timeout=aiohttp.ClientTimeout(5)
            )
    finally:
        await deliverer.close()
    assert client_failure(caught.value).category in ("AddressNotAllowed", "InvalidURL")
    assert connected == [] and receiver.seen == []  # type: ignore[attr-defined]


# -- failures are reported by category, never by their text ---------------------------------------
@pytest.mark.parametrize(
    ("path", "error", "retryable"),
    [
        ("/status/500", "HTTPError: HTTP 500", True),
        ("/status/503", "HTTPError: HTTP 503", True),
        ("/status/404", "HTTPError: HTTP 404", False),
        ("/status/429", "HTTPError: HTTP 429", True),
        ("/redirect", "Redirected: HTTP 307; redirects are not followed", False),
    ],
)
async def test_http_answers_are_reported_by_their_code(
    deliverer_factory, receiver: TestServer, path: str, error: str, retryable: bool
) -> None:
    deliverer, _ = deliverer_factory({"receiver.tenant-a.svc": ["127.0.0.1"]})
    outcome = await attempt(deliverer, f"http://receiver.tenant-a.svc:{receiver.port}{path}")
    assert (outcome.error, outcome.retryable) == (error, retryable)
    assert outcome.ready is not None and outcome.ready[0] == "True"  # the subscription is fine; the receiver is not
    assert receiver.seen == [path]  # type: ignore[attr-defined]  # a redirect is not followed


async def test_connection_failures_name_a_category_not_the_error(deliverer_factory, receiver: TestServer) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: refused
    deliverer, _ = deliverer_factory({"refused.tenant-a.svc": ["127.0.0.1"]})
    cases = {
        f"http://refused.tenant-a.svc:{port}/": "ConnectionRefused: the receiver refused the connection",
        "http://unknown.tenant-a.svc/": "DNSFailure: the webhook's host name did not resolve",
        f"https://refused.tenant-a.svc:{receiver.port}/hook": "TLSError: the TLS handshake or the receiver's "
        "certificate failed",  # TLS to a plain HTTP server
    }
    for url, error in cases.items():
        outcome = await attempt(deliverer, url)
        assert outcome.error == error and outcome.retryable, url
        assert "Errno" not in outcome.error and "127.0.0.1" not in outcome.error


async def test_a_timeout_is_a_category(deliverer_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    deliverer, _ = deliverer_factory({"slow.tenant-a.svc": ["127.0.0.1"]})

    def post(*_: Any, **__: Any) -> Any:
        raise aiohttp.ServerTimeoutError("Timeout on reading data from socket")

    monkeypatch.setattr(deliverer.session("tenant-a"), "post", post)
    outcome = await attempt(deliverer, "http://slow.tenant-a.svc/hook")
    assert (outcome.error, outcome.retryable) == ("Timeout: no answer within 5s", True)


# -- what statuses and the log do not say ---------------------------------------------------------------
class _Secrets:
    """A KubeClient's get() answering one Secret (the data as the API server gives it: base64)."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data

    async def get(self, *_: Any) -> dict[str, Any]:
        return {"data": self.data}


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        ("dG9vIHNob3J0", "SigningKeyTooShort", "Secret k key 'key' is too short: at least 16 bytes needed"),
        ("YWJjZ", "SecretKeyMissing", "Secret k key 'key' is not valid base64"),
        ("YWJjZA", "SecretKeyMissing", "Secret k key 'key' is not valid base64"),
    ],
)
async def test_a_bad_key_is_reported_without_its_length(value: str, reason: str, message: str) -> None:
    keys = SigningKeys(_Secrets({"key": value}))  # type: ignore[arg-type]
    with pytest.raises(SigningKeyError) as caught:
        await keys.get("tenant-a", "k", "key")
    assert (caught.value.reason, str(caught.value)) == (reason, message)


async def test_the_log_shows_a_webhooks_origin_only(caplog: pytest.LogCaptureFixture) -> None:
    subscription = body(url="https://u:pw@hooks.example.com:8443/t/0123456789abcdef?token=s3cret")
    notifier = Notifier(None, OperatorMetrics(), FakeFleet(), keys=_Keys())  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="hoststate.notifications"):
        await notifier.start_delivering()
        notifier._subscription_event("ADDED", None, subscription)
        await notifier.stop()
    assert "delivering to https://hooks.example.com:8443" in caplog.text
    assert "0123456789abcdef" not in caplog.text and "s3cret" not in caplog.text and "pw" not in caplog.text
    assert origin("http://[::1]:9000/hook") == "http://[::1]:9000"
