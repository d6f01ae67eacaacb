"""os-services bodies (ServiceController._get_service_detail and the legacy action answers)."""

from __future__ import annotations

from typing import Any

from ..api_version import APIVersion
from ..cache import ServiceState, integer_id
from .formats import nova_datetime

UUID_FOR_ID = "2.53"
FORCED_DOWN = "2.11"


def service_detail(service: ServiceState, version: APIVersion) -> dict[str, Any]:
    spec = service.spec
    detail: dict[str, Any] = {
        "binary": service.binary,
        "host": service.host,
        "id": service.uid if version.at_least(UUID_FOR_ID) else integer_id(service.uid),
        "zone": spec.get("zone", "nova"),
        "status": "disabled" if service.disabled else "enabled",
        "state": "up" if service.up else "down",
        "updated_at": nova_datetime(service.last_heartbeat),
        "disabled_reason": spec.get("disabledReason"),
    }
    if version.at_least(FORCED_DOWN):
        detail["forced_down"] = service.forced_down
    return detail


def services_list(services: list[ServiceState], version: APIVersion) -> dict[str, Any]:
    return {"services": [service_detail(service, version) for service in services]}


def enable_disable(host: str, binary: str, status: str, reason: str | None) -> dict[str, Any]:
    """The answer of PUT /os-services/{enable,disable,disable-log-reason} (before 2.53)."""
    body: dict[str, Any] = {"host": host, "binary": binary, "status": status}
    if reason:
        body["disabled_reason"] = reason
    return {"service": body}


def forced_down(host: str, binary: str, value: bool) -> dict[str, Any]:
    """The answer of PUT /os-services/force-down (2.11 to 2.52)."""
    return {"service": {"host": host, "binary": binary, "forced_down": value}}
