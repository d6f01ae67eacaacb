"""Which webhook URLs the operator POSTs to: the CRD's URL rules, again, in Python.

The API server enforces them at admission (resources/subscription.py); the notifier checks
again before each delivery, because the CRD in a cluster may come from an older, laxer version.

- https to any host, except link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata);
- http only to loopback (localhost, 127.0.0.0/8, ::1) and in-cluster Service names
  (*.svc, *.svc.cluster.local), where the traffic does not leave the node or the cluster;
- no user info (user:password@) and no other scheme;
- and one rule the CRD cannot express: an IPv4 address only as four decimal numbers, not in the
  forms resolvers also read as addresses (2130706433, 0x7f.1, 0177.0.0.1, 127.1).

These are the first, readable refusals. Where a name leads is judged when connecting, address
by address, by the egress policy (egress.py): that check is the authority.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from .egress import Address

CLUSTER_LOCAL_SUFFIXES = (".svc", ".svc.cluster.local")


def _ip(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_legacy_ipv4(host: str) -> bool:
    """An IPv4 address in a form other than dotted decimal, which inet_aton (and so resolvers) accept."""
    if _ip(host) is not None:
        return False
    try:
        socket.inet_aton(host)  # parses only: no lookup
    except (OSError, ValueError):
        return False
    return True


def host_address(url: str) -> Address | None:
    """The URL's host when it is an IP address (to be judged before any connect), else None."""
    try:
        return _ip(urlsplit(url).hostname or "")
    except ValueError:
        return None


def origin(url: str) -> str:
    """scheme://host[:port], what the operator's log shows of a webhook (paths and queries may hold secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never user info


def is_local_host(host: str) -> bool:
    """Loopback or an in-cluster Service name: where plain http is allowed."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(CLUSTER_LOCAL_SUFFIXES):
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def url_problem(url: str) -> str | None:
    """Why the operator will not POST to `url`, or None when it will."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        return f"url is not a valid URL: {error}"
    if parts.scheme not in ("https", "http"):
        return "url must use https (or http to a loopback or in-cluster host)"
    if not host:
        return "url must name a host"
    if "@" in parts.netloc:
        return "url must not carry user info (user:password@)"
    if is_legacy_ipv4(host):
        return "url must write an IPv4 address as four decimal numbers (like 192.0.2.10)"
    ip = _ip(host)
    if ip is not None and ip.is_link_local:
        return "url must not point at a link-local address"
    if parts.scheme == "http" and not is_local_host(host):
        return "url must use https; http is allowed only to loopback or in-cluster hosts"
    return None
