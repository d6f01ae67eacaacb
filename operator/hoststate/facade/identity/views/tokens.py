"""Token bodies (keystone/models/token_model.py and its render): the user, the project scope, roles,
times and the catalog."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ....kubetime import kube_micro_time
from .resources import DEFAULT_DOMAIN_REF

REGION = "RegionOne"
INTERFACES = ("public", "internal", "admin")


def keystone_time(value: datetime) -> str:
    """Keystone's token times: UTC, microseconds, Z."""
    return kube_micro_time(value.astimezone(UTC))


def _service(service_type: str, name: str, url: str) -> dict[str, Any]:
    endpoints = [
        {"id": f"{service_type}-{interface}", "interface": interface, "region": REGION, "region_id": REGION, "url": url}
        for interface in INTERFACES
    ]
    return {"id": service_type, "type": service_type, "name": name, "endpoints": endpoints}


def catalog(root: str, identity_url: str, project_id: str) -> list[dict[str, Any]]:
    """The compute API (its URL names the project: the scope travels there) and this identity API.
    No image, network or volume service: clients fall back (docs/facade.md)."""
    return [_service("compute", "nova", f"{root}/v2.1/{project_id}"), _service("identity", "keystone", identity_url)]


def token(
    *,
    user_id: str,
    project_id: str | None,
    roles: tuple[str, ...],
    issued_at: datetime,
    expires_at: datetime,
    audit_id: str,
    catalog: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """A token; unscoped (no project, roles or catalog) when `project_id` is None."""
    body: dict[str, Any] = {
        "methods": ["token"],
        "user": {"id": user_id, "name": user_id, "domain": DEFAULT_DOMAIN_REF, "password_expires_at": None},
        "audit_ids": [audit_id],
        "issued_at": keystone_time(issued_at),
        "expires_at": keystone_time(expires_at),
    }
    if project_id is not None:
        body["project"] = {"id": project_id, "name": project_id, "domain": DEFAULT_DOMAIN_REF}
        body["is_domain"] = False
        body["roles"] = [{"id": role, "name": role} for role in roles]
        if catalog is not None:
            body["catalog"] = catalog
    return {"token": body}
