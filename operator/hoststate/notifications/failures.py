"""What a subscription's status says about a failed attempt: a category and a fixed sentence.

Never the error's own text. It would tell the tenant what answered at the address it named
(refused, reset, a TLS peer's certificate, a resolver's message): the operator would be the
tenant's scanner of every address it can reach. The operator's log keeps the details (DEBUG).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import aiohttp

from .egress import AddressNotAllowed


@dataclass(frozen=True)
class Failure:
    category: str  # CamelCase, as a condition's reason: AddressNotAllowed, DNSFailure, HTTPError, ...
    message: str
    retryable: bool

    def __str__(self) -> str:
        return f"{self.category}: {self.message}"


ADDRESS_NOT_ALLOWED = Failure(
    "AddressNotAllowed",
    "the webhook's host is, or resolves to, an address webhooks may not reach "
    "(loopback, link-local, private, cluster or reserved ranges)",
    retryable=False,
)
DNS_FAILURE = Failure("DNSFailure", "the webhook's host name did not resolve", retryable=True)
CONNECTION_REFUSED = Failure("ConnectionRefused", "the receiver refused the connection", retryable=True)
CONNECTION_FAILED = Failure("ConnectionFailed", "the connection failed or was closed early", retryable=True)
TLS_ERROR = Failure("TLSError", "the TLS handshake or the receiver's certificate failed", retryable=True)
INVALID_RESPONSE = Failure("InvalidResponse", "the receiver's answer was not valid HTTP", retryable=True)
INVALID_URL = Failure("InvalidURL", "the URL cannot be requested", retryable=False)


def is_retryable(status: int) -> bool:
    """Worth another attempt: the receiver is overloaded or broken, not refusing the event."""
    return status in (408, 425, 429) or status >= 500


def http_failure(status: int) -> Failure:
    """An answer outside 2xx: its code is the receiver's own word, the reason phrase is not kept."""
    if 300 <= status < 400:
        return Failure("Redirected", f"HTTP {status}; redirects are not followed", retryable=False)
    return Failure("HTTPError", f"HTTP {status}", retryable=is_retryable(status))


def timeout_failure(seconds: float) -> Failure:
    return Failure("Timeout", f"no answer within {seconds:g}s", retryable=True)


def client_failure(error: aiohttp.ClientError) -> Failure:
    """The category of an aiohttp error (the most specific first)."""
    if isinstance(error, aiohttp.ClientConnectorError):
        if isinstance(error.os_error, AddressNotAllowed):
            return ADDRESS_NOT_ALLOWED
        if isinstance(error, aiohttp.ClientConnectorDNSError):
            return DNS_FAILURE
        if isinstance(error, aiohttp.ClientSSLError):
            return TLS_ERROR
        if error.os_error.errno == errno.ECONNREFUSED:
            return CONNECTION_REFUSED
        return CONNECTION_FAILED
    if isinstance(error, aiohttp.ServerFingerprintMismatch):
        return TLS_ERROR
    if isinstance(error, aiohttp.InvalidURL):
        return INVALID_URL
    if isinstance(error, (aiohttp.ClientResponseError, aiohttp.ClientPayloadError)):
        return INVALID_RESPONSE
    return CONNECTION_FAILED
