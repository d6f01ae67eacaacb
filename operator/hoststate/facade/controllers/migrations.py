"""GET /os-migrations (nova/api/openstack/compute/migrations.py): the evacuations, as Nova's
migration records (migration_type evacuation): accepted, done, completed, failed.

A server carries its latest evacuation (annotation hoststate.io/evacuation and status.evacuation),
so each server shows at most one migration. Filters as Nova's DB query: host (source or target),
source_compute, instance_uuid, status, migration_type; from 2.59 paging by limit and marker and
changes-since, from 2.66 changes-before, from 2.80 user_id and project_id. Sorted as Nova from
2.59 (created_at, then id, newest first); before it in the same order.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from oslo_utils import timeutils

from ..cache import ClusterState
from ..faults import HTTPBadRequest
from ..policies import migrations as policies
from ..policy import PolicyEngine
from ..schemas import migrations as schemas
from ..validation import validate_query
from ..views import migrations as views
from ..wsgi import context, json_response, links, query_lists, version

MAX_LIMIT = 1000  # Nova's [api] max_limit default
EXACT_FILTERS = {  # query parameter -> the Migration attribute it must equal
    "source_compute": "source",
    "instance_uuid": "instance_uuid",
    "status": "status",
    "user_id": "user_id",
    "project_id": "project_id",
}


class MigrationController:
    def __init__(self, state: ClusterState, policy: PolicyEngine) -> None:
        self.state = state
        self.policy = policy

    async def index(self, request: web.Request) -> web.Response:
        requested = version(request)
        query = query_lists(request)
        validate_query(schemas.index_query(requested), query)
        ctx = context(request)
        self.policy.can(ctx, policies.INDEX, target={"project_id": ctx.project_id})
        opts = {key: values[-1] for key, values in query.items() if values}  # Nova: dict.update(req.GET)
        if not requested.at_least("2.80"):
            opts.pop("project_id", None)
            opts.pop("user_id", None)
        if not opts.get("project_id") or opts["project_id"] != ctx.project_id:
            self.policy.can(ctx, policies.INDEX_ALL_PROJECTS, target={"project_id": ctx.project_id})
        add_host = self.policy.can(ctx, policies.INDEX_HOST, target={"project_id": ctx.project_id}, fatal=False)

        migrations = [m for server in self.state.all_servers() if (m := views.Migration.of(server)) is not None]
        migrations = _filter(migrations, opts, requested.at_least("2.59"), requested.at_least("2.66"))
        migrations.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        next_query = None
        if requested.at_least("2.59"):
            migrations, limit = _page(migrations, opts)
            if limit is not None and migrations and len(migrations) == limit:
                next_query = {k: v for k, v in opts.items() if k not in ("limit", "marker")}
                next_query.update(limit=str(limit), marker=migrations[-1].uuid)
        body = views.migrations_list(migrations, requested, links(request), add_host=add_host, next_query=next_query)
        return json_response(body)


def _filter(
    migrations: list[views.Migration], opts: dict[str, str], since_allowed: bool, before_allowed: bool
) -> list[views.Migration]:
    if opts.get("migration_type", views.EVACUATION) != views.EVACUATION:
        return []
    if "hidden" in opts and opts["hidden"].lower() not in ("0", "false", "f", "no", "n", "off"):
        return []  # evacuations are never hidden (Nova hides only cross-cell resize records)
    if host := opts.get("host"):
        migrations = [m for m in migrations if host in (m.source, m.target)]
    for key, attribute in EXACT_FILTERS.items():
        if key in opts:
            migrations = [m for m in migrations if getattr(m, attribute) == opts[key]]
    since = _time(opts.get("changes-since")) if since_allowed else None
    before = _time(opts.get("changes-before")) if before_allowed else None
    if since and before and before < since:
        raise HTTPBadRequest("The value of changes-since must be less than or equal to changes-before.")
    if since:
        migrations = [m for m in migrations if m.updated_at is not None and m.updated_at >= since]
    if before:
        migrations = [m for m in migrations if m.updated_at is not None and m.updated_at <= before]
    return migrations


def _page(migrations: list[views.Migration], opts: dict[str, str]) -> tuple[list[views.Migration], int | None]:
    if marker := opts.get("marker"):
        uuids = [m.uuid for m in migrations]
        if marker not in uuids:
            raise HTTPBadRequest(f"Marker {marker} could not be found.")
        migrations = migrations[uuids.index(marker) + 1 :]
    limit = min(int(opts["limit"]), MAX_LIMIT) if "limit" in opts else None
    if limit is None and len(migrations) > MAX_LIMIT:
        limit = MAX_LIMIT
    return (migrations[:limit] if limit is not None else migrations), limit


def _time(value: str | None) -> datetime | None:
    return timeutils.parse_isotime(value) if value else None  # aware: UTC when the value names no zone
