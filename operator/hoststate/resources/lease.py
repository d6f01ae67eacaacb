"""Heartbeat Leases (coordination.k8s.io/v1): one per service, named like the service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..kubetime import kube_micro_time, parse_kube_time
from .computeservice import service_name

DEFAULT_LEASE_NAMESPACE = "hoststate-system"
HEARTBEAT_LABEL = "hoststate.io/heartbeat"
HEARTBEAT_SELECTOR = f"{HEARTBEAT_LABEL}=true"


def heartbeat_lease(host: str, binary: str, now: datetime, duration: int) -> dict[str, Any]:
    """A new heartbeat Lease for the service (host, binary)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": service_name(host, binary),
            "labels": {HEARTBEAT_LABEL: "true", "hoststate.io/binary": binary},
        },
        "spec": {
            "holderIdentity": host,
            "leaseDurationSeconds": duration,
            "acquireTime": kube_micro_time(now),
            "renewTime": kube_micro_time(now),
        },
    }


def renewal_patch(host: str, now: datetime, duration: int) -> dict[str, Any]:
    return {"spec": {"holderIdentity": host, "renewTime": kube_micro_time(now), "leaseDurationSeconds": duration}}


def lease_renew_time(lease: dict[str, Any]) -> datetime:
    """A heartbeat Lease's renewTime; ValueError with a readable reason when it has none."""
    renewed = (lease.get("spec") or {}).get("renewTime")
    if not renewed:
        raise ValueError("spec.renewTime is missing")
    try:
        moment = parse_kube_time(renewed)
    except ValueError as error:
        raise ValueError(f"spec.renewTime {renewed!r} is not an RFC 3339 time") from error
    assert moment is not None
    return moment


def lease_heartbeat(lease: dict[str, Any], host: str) -> datetime:
    """The heartbeat a Lease reports for the service of `host`: its renewTime, unless the Lease
    is malformed or held by another host (ValueError saying why). The operator and the facade
    both count heartbeats through this, so they agree on every service's state."""
    renewed = lease_renew_time(lease)
    holder = (lease.get("spec") or {}).get("holderIdentity")
    if holder and holder != host:
        raise ValueError(f"spec.holderIdentity {holder!r} is not the service's host {host!r}")
    return renewed
