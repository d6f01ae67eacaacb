"""servers (nova/api/openstack/compute/servers.py): GET /servers, /servers/detail, /servers/{id},
with and without the project id in the path. Served from the facade's cache."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from oslo_utils import strutils, uuidutils

from ..context import RequestContext
from ..faults import HTTPBadRequest, HTTPNotFound
from ..policies import EXTENDED_SERVER_ATTRIBUTES, SERVERS
from ..policy import PolicyEngine
from ..schemas import servers as schemas
from ..state import ClusterState, parse_time
from ..validation import validate_query
from ..views import servers as views
from ..wsgi import context, json_response, links, version

MAX_LIMIT = 1000  # Nova's [api] max_limit default
# Filters a non-admin may use (Nova's remove_invalid_options keeps only these, of those served).
USER_FILTERS = {"name", "status", "all_tenants", "limit", "marker"}


class ServerController:
    def __init__(self, state: ClusterState, policy: PolicyEngine) -> None:
        self.state = state
        self.policy = policy

    async def index(self, request: web.Request) -> web.Response:
        return await self._list(request, is_detail=False)

    async def detail(self, request: web.Request) -> web.Response:
        return await self._list(request, is_detail=True)

    async def show(self, request: web.Request) -> web.Response:
        ctx = context(request)
        server_id = request.match_info["server_id"]
        server = self._get_instance(ctx, server_id)
        project_id = server["metadata"]["namespace"]
        self.policy.can(ctx, SERVERS % "show", target={"project_id": project_id})
        visibility = self._visibility(ctx, project_id)
        return json_response({"server": self._detail(request, server, visibility)})

    # -- helpers ----------------------------------------------------------------------------
    def _get_instance(self, ctx: RequestContext, server_id: str) -> dict[str, Any]:
        """Nova's instance_get_by_uuid with project_only: other projects' servers do not exist."""
        server = self.state.server_by_uid(server_id.lower()) if uuidutils.is_uuid_like(server_id) else None
        if server is None or (not ctx.is_admin and server["metadata"]["namespace"] != ctx.project_id):
            raise HTTPNotFound(f"Instance {server_id} could not be found.")
        return server

    def _visibility(self, ctx: RequestContext, project_id: str | None) -> views.Visibility:
        target = {"project_id": project_id}
        extended = self.policy.can(ctx, EXTENDED_SERVER_ATTRIBUTES, target=target, fatal=False)
        # Nova's _get_host_status_unknown_only: all values, else only UNKNOWN, else none.
        if self.policy.can(ctx, SERVERS % "show:host_status", target=target, fatal=False):
            unknown_only: bool | None = False
        elif self.policy.can(ctx, SERVERS % "show:host_status:unknown-only", target=target, fatal=False):
            unknown_only = True
        else:
            unknown_only = None
        return views.Visibility(extended_attributes=extended, host_status=unknown_only)

    def _detail(self, request: web.Request, server: dict[str, Any], visibility: views.Visibility) -> dict[str, Any]:
        host = server.get("spec", {}).get("host", "")
        return views.detail(
            server,
            links=links(request),
            version=version(request),
            visibility=visibility,
            host_status=self.state.host_status(server),
            zone=self.state.zone_of_host(host) if host else None,
        )

    async def _list(self, request: web.Request, *, is_detail: bool) -> web.Response:
        ctx = context(request)
        self.policy.can(ctx, SERVERS % ("detail" if is_detail else "index"))
        query = {key: request.query.getall(key) for key in request.query}
        validate_query(schemas.query_params, query)
        opts = {key: values[-1] for key, values in query.items()}
        if not self.policy.can(ctx, SERVERS % "allow_all_filters", fatal=False):
            opts = {key: value for key, value in opts.items() if key in USER_FILTERS}

        all_tenants = _is_all_tenants(opts)
        if all_tenants:
            self.policy.can(ctx, SERVERS % ("detail:get_all_tenants" if is_detail else "index:get_all_tenants"))
            project = opts.get("project_id") or opts.get("tenant_id")
            servers = [s for s in self.state.all_servers() if not project or s["metadata"]["namespace"] == project]
        elif ctx.project_id:
            servers = [s for s in self.state.all_servers() if s["metadata"]["namespace"] == ctx.project_id]
        else:
            # Nova lists the user's own servers when the token has no project.
            servers = [s for s in self.state.all_servers() if s.get("spec", {}).get("userId") == ctx.user_id]

        if name := opts.get("name"):
            pattern = _name_pattern(name)
            servers = [s for s in servers if pattern.search(views.server_name(s))]
        if status := opts.get("status"):
            servers = [s for s in servers if _status(s) == status.upper()]
        if host := opts.get("host"):
            servers = [s for s in servers if s.get("spec", {}).get("host") == host]

        # Nova's default order: newest first.
        servers.sort(key=lambda s: (parse_time(s["metadata"].get("creationTimestamp")), views.server_id(s)), reverse=True)
        servers, limit = _paginate(servers, opts)

        link_builder = links(request)
        if is_detail:
            visibility = self._visibility(ctx, ctx.project_id)
            items = [self._detail(request, s, visibility) for s in servers]
        else:
            items = [views.summary(s, link_builder) for s in servers]
        result: dict[str, Any] = {"servers": items}
        if limit is not None and servers and len(servers) == limit:
            next_query = {k: v for k, v in opts.items() if k not in ("limit", "marker")}
            next_query.update(limit=str(limit), marker=views.server_id(servers[-1]))
            collection = "servers/detail" if is_detail else "servers"
            result["servers_links"] = [{"href": link_builder.collection(collection, **next_query), "rel": "next"}]
        return json_response(result)


def _is_all_tenants(opts: dict[str, str]) -> bool:
    """nova.api.openstack.common.is_all_tenants: the empty string turns it on."""
    if "all_tenants" not in opts:
        return False
    if opts["all_tenants"] == "":
        return True
    try:
        return strutils.bool_from_string(opts["all_tenants"], strict=True)
    except ValueError as error:
        raise HTTPBadRequest(f"Invalid input received: {error}") from None


def _name_pattern(name: str) -> re.Pattern[str]:
    """Nova matches the name as a regular expression."""
    try:
        return re.compile(name)
    except re.error:
        return re.compile(re.escape(name))


def _status(server: dict[str, Any]) -> str:
    spec = server.get("spec", {})
    return views.status_from_state(spec.get("vmState", "active"), spec.get("taskState"))


def _paginate(servers: list[dict[str, Any]], opts: dict[str, str]) -> tuple[list[dict[str, Any]], int | None]:
    if marker := opts.get("marker"):
        ids = [views.server_id(s) for s in servers]
        if marker not in ids:
            raise HTTPBadRequest(f"Marker {marker} could not be found.")
        servers = servers[ids.index(marker) + 1 :]
    limit = None
    if "limit" in opts:
        limit = min(int(opts["limit"]), MAX_LIMIT)
        servers = servers[:limit]
    elif len(servers) > MAX_LIMIT:
        limit = MAX_LIMIT
        servers = servers[:limit]
    return servers, limit
