"""Where webhooks may connect: every address the operator is about to connect to, checked then.

The URL rules (url_policy.py) refuse what the URL shows; where a name leads is known only once
it is resolved, and the answer may change between a check and the connect (DNS rebinding), or
lead anywhere through a CNAME (an ExternalName Service). So the check runs in the delivery
connector's socket factory: aiohttp calls it with each address it connects to, resolved or
literal, and a refused address raises before a socket exists. Redirects are not followed
(delivery.py), so no other address is reached.

Refused unless an allowed CIDR (the operator's --webhook-allow-cidr) holds the address: anything
not globally routable (loopback, link-local and cloud metadata, private, shared/CGNAT,
unspecified, reserved, documentation ranges), multicast, and the cluster's own CIDRs
(--cluster-cidr: Service and Pod ranges, in case they are public addresses). An IPv6 address
that carries an IPv4 one (IPv4-mapped, NAT64 64:ff9b::/96, 6to4) is judged by the IPv4 address,
where its packets end up.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): neither private nor public
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052): the IPv4 address is the low 32 bits


class AddressNotAllowed(OSError):
    """A webhook address outside the policy (an OSError: aiohttp reports it as a failed connect)."""


def embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), else the address itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour or address


def parse_cidrs(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs from option values ("10.0.0.0/8", "::1/128"); ValueError names a bad one."""
    return tuple(ipaddress.ip_network(value.strip()) for value in values)


@dataclass(frozen=True)
class EgressPolicy:
    allowed: tuple[Network, ...] = ()  # permitted whatever else is true of them
    cluster: tuple[Network, ...] = ()  # the cluster's Service and Pod ranges: refused

    def refusal(self, address: Address) -> str | None:
        """Why a webhook may not connect to `address` (a range's name, for the operator's log), or None."""
        target = embedded_ipv4(address)
        if any(candidate in network for network in self.allowed for candidate in (address, target)):
            return None
        if any(target in network for network in self.cluster):
            return "cluster"
        for name in ("unspecified", "loopback", "link_local", "multicast", "private"):
            if getattr(target, f"is_{name}"):
                return name.replace("_", "-")
        if target in SHARED:
            return "shared (CGNAT)"
        if target.is_reserved or not target.is_global:
            return "reserved"
        return None

    def socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """aiohttp's TCPConnector(socket_factory=): a socket for an allowed address, else AddressNotAllowed."""
        family, type_, proto, _, sockaddr = addr_info
        address = ipaddress.ip_address(sockaddr[0])
        reason = self.refusal(address)
        if reason is not None:
            raise AddressNotAllowed(errno.EACCES, f"webhook address {address} refused: {reason}")
        return socket.socket(family, type_, proto)
