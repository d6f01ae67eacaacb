"""The os-migrations view (MigrationsController._output in nova/api/openstack/compute/migrations.py):
an evacuation as Nova's migration record, its fields per microversion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...domain import evacuation as rules
from ...kubetime import parse_kube_time_leniently
from ..api_version import APIVersion
from ..links import Links
from .formats import nova_datetime

EVACUATION = "evacuation"  # Nova's MigrationType.EVACUATION
EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True, slots=True)
class Migration:
    """A server's latest evacuation: its request, and its record once the operator wrote it."""

    uuid: str  # the evacuation's id
    instance_uuid: str
    project_id: str
    user_id: str
    source: str
    target: str
    status: str
    created_at: datetime
    updated_at: datetime | None

    @property
    def id(self) -> int:
        """Nova's integer id: hoststate has none, so a stable one from the uuid (31 bits)."""
        return int(self.uuid.replace("-", "")[:8], 16) & 0x7FFFFFFF if _hex(self.uuid) else 0

    @classmethod
    def of(cls, server: dict[str, Any]) -> Migration | None:
        meta = server["metadata"]
        request = rules.parse_request(meta.get("annotations"))
        if request is None:
            return None
        record = (server.get("status") or {}).get("evacuation") or {}
        if record.get("id") != request.id:
            record = {}  # not yet recorded by the operator
        times = [parse_kube_time_leniently(record.get(k)) for k in ("cleanedUpTime", "completedTime")]
        requested = parse_kube_time_leniently(request.requested_time)
        return cls(
            uuid=request.id,
            instance_uuid=meta.get("uid", ""),
            project_id=meta["namespace"],
            user_id=request.requested_by,
            source=request.source_host,
            target=request.target_host,
            status=record.get("state", rules.ACCEPTED),
            created_at=requested or EPOCH,
            updated_at=next((t for t in times if t is not None), requested if record else None),
        )


def migration(m: Migration, version: APIVersion, *, add_host: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "created_at": nova_datetime(m.created_at),
        "dest_compute": m.target if add_host else None,
        "dest_host": None,  # Nova's is the target's IP address; hoststate knows host names only
        "dest_node": m.target if add_host else None,
        "id": m.id,
        "instance_uuid": m.instance_uuid,
        "new_instance_type_id": None,  # an evacuation keeps the flavor: Nova leaves both unset
        "old_instance_type_id": None,
        "source_compute": m.source if add_host else None,
        "source_node": m.source if add_host else None,
        "status": m.status,
        "updated_at": nova_datetime(m.updated_at),
    }
    if version.at_least("2.23"):
        body["migration_type"] = EVACUATION  # links only for live migrations in progress
    if version.at_least("2.59"):
        body["uuid"] = m.uuid
    if version.at_least("2.80"):
        body.update(user_id=m.user_id, project_id=m.project_id)
    return body


def migrations_list(
    migrations: list[Migration], version: APIVersion, links: Links, *, add_host: bool, next_query: dict | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"migrations": [migration(m, version, add_host=add_host) for m in migrations]}
    if next_query is not None:
        body["migrations_links"] = [{"href": links.collection("os-migrations", **next_query), "rel": "next"}]
    return body


def _hex(value: str) -> bool:
    try:
        int(value.replace("-", "")[:8], 16)
        return True
    except ValueError:
        return False
