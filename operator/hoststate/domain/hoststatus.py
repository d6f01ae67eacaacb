"""host_status of a server: Nova's get_instance_host_status (nova/compute/api.py).

Precedence, as in Nova's code: no host or no nova-compute service -> "", forced down ->
DOWN, disabled -> MAINTENANCE, up -> UP, else UNKNOWN. DOWN beats MAINTENANCE: a
forced-down host in maintenance is still down and its tenants must fail over.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

COMPUTE_BINARY = "nova-compute"
DEFAULT_ZONE = "nova"  # Nova's default_availability_zone


class HostStatus(StrEnum):
    UP = "UP"
    UNKNOWN = "UNKNOWN"
    DOWN = "DOWN"
    MAINTENANCE = "MAINTENANCE"
    NONE = ""


# Every host_status value, as plain strings: the CRD enums, the metrics' label values, subscription defaults.
HOST_STATUSES: tuple[str, ...] = tuple(status.value for status in HostStatus)


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """What host status depends on, for one service."""

    forced_down: bool
    disabled: bool
    up: bool


def host_status(compute_service: ServiceFacts | None) -> HostStatus:
    """host_status for servers whose host has this nova-compute service (None: no host or no service)."""
    if compute_service is None:
        return HostStatus.NONE
    if compute_service.forced_down:
        return HostStatus.DOWN
    if compute_service.disabled:
        return HostStatus.MAINTENANCE
    return HostStatus.UP if compute_service.up else HostStatus.UNKNOWN


@dataclass(frozen=True, slots=True)
class ServiceView:
    """What a ComputeService's status shows."""

    state: str  # "up" | "down"
    service_status: str  # "enabled" | "disabled"
    host_status: HostStatus


def service_view(facts: ServiceFacts) -> ServiceView:
    return ServiceView(
        state="up" if facts.up and not facts.forced_down else "down",
        service_status="disabled" if facts.disabled else "enabled",
        host_status=host_status(facts),
    )
