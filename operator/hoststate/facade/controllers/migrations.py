"""GET /os-migrations (nova/api/openstack/compute/migrations.py): the evacuations, as Nova's
migration records (migration_type evacuation): accepted, done, completed, failed.

A server carries its latest evacuation (annotation hoststate.io/evacuation and status.evacuation),
so each server shows at most one migration. Filters as Nova's DB query: host (source or target),
source_compute, instance_uuid, status, migration_type; from 2.59 paging by limit and marker and
changes-since, from 2.66 changes-before, from 2.80 user_id and project_id. Sorted as Nova from
2.59 (created_at, then id, newest first); before it in the same order.
"""

from __future__ import annotations

from aiohttp import web

from ..cache import ClusterState
from ..common import changed_within, changes_window, limited, next_page_query
from ..policies import migrations as policies
from ..policy import PolicyEngine
from ..schemas import migrations as schemas
from ..validation import validate_query
from ..views import migrations as views
from ..wsgi import context, json_response, links, query_lists, version

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
            limit = int(opts["limit"]) if "limit" in opts else None
            migrations, limit = limited(migrations, _uuid, opts.get("marker"), limit)
            next_query = next_page_query(opts, migrations, limit, _uuid)
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
    window = {"changes-since": since_allowed, "changes-before": before_allowed}
    since, before = changes_window({key: opts[key] for key, allowed in window.items() if allowed and key in opts})
    if since is not None or before is not None:
        migrations = [m for m in migrations if changed_within(m.updated_at, since, before)]
    return migrations


def _uuid(migration: views.Migration) -> str:
    return migration.uuid
