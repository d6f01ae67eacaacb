"""Which webhook URLs the operator POSTs to: the CRD's URL rules, again, in Python.

The API server enforces them at admission (resources/subscription.py); the notifier checks
again before each delivery, because the CRD in a cluster may come from an older, laxer version.

- https to any host, except link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata);
- http only to loopback (localhost, 127.0.0.0/8, ::1) and in-cluster Service names
  (*.svc, *.svc.cluster.local), where the traffic does not leave the node or the cluster;
- no user info (user:password@) and no other scheme.

Names are not resolved here: a public name that resolves to a private address is allowed
(a webhook is, by nature, a request the tenant chooses; restrict egress with a NetworkPolicy).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

CLUSTER_LOCAL_SUFFIXES = (".svc", ".svc.cluster.local")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


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
    ip = _ip(host)
    if ip is not None and ip.is_link_local:
        return "url must not point at a link-local address"
    if parts.scheme == "http" and not is_local_host(host):
        return "url must use https; http is allowed only to loopback or in-cluster hosts"
    return None
