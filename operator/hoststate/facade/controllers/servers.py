"""servers (nova/api/openstack/compute/servers.py): GET /servers, /servers/detail, /servers/{id},
with and without the project id in the path. Served from the facade's cache."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ...domain import HostStatus
from .. import search
from ..api_version import APIVersion
from ..cache import ClusterState
from ..common import get_instance, limited, next_page_query
from ..context import RequestContext
from ..policies import servers as policies
from ..policies.extended_server_attributes import EXTENDED_SERVER_ATTRIBUTES
from ..policy import PolicyEngine
from ..schemas import servers as schemas
from ..validation import validate_query
from ..views import servers as views
from ..wsgi import context, links, query_lists, version


class ServerController:
    def __init__(self, state: ClusterState, policy: PolicyEngine) -> None:
        self.state = state
        self.policy = policy
        self.rendered = views.RenderedServers()
        self.responses = ResponseCache()
        # One search at a time per caller's project, in arrival order: however many connections a
        # tenant opens, its searches take one slice per turn of the event loop, beside everyone else's.
        self.searching: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        state.servers.add_handler(self._forget_deleted)

    def _forget_deleted(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if kind == "DELETED" and old is not None:
            self.rendered.forget(old["metadata"]["uid"])

    async def index(self, request: web.Request) -> web.Response:
        return await self._list(request, is_detail=False)

    async def detail(self, request: web.Request) -> web.Response:
        return await self._list(request, is_detail=True)

    async def show(self, request: web.Request) -> web.Response:
        ctx = context(request)
        server_id = request.match_info["server_id"]
        server = get_instance(self.state, ctx, server_id)
        project_id = server["metadata"]["namespace"]
        self.policy.can(ctx, policies.SHOW, target={"project_id": project_id})
        visibility = self._visibility(ctx, project_id)
        body = self._detail(request, server, visibility, {}, show=True)
        return web.Response(text=f'{{"server": {body}}}', content_type="application/json")

    # -- helpers ----------------------------------------------------------------------------
    def _visibility(self, ctx: RequestContext, project_id: str | None) -> views.Visibility:
        target = {"project_id": project_id}
        extended = self.policy.can(ctx, EXTENDED_SERVER_ATTRIBUTES, target=target, fatal=False)
        # Nova's _get_host_status_unknown_only: all values, else only UNKNOWN, else none.
        if self.policy.can(ctx, policies.SHOW_HOST_STATUS, target=target, fatal=False):
            unknown_only: bool | None = False
        elif self.policy.can(ctx, policies.SHOW_HOST_STATUS_UNKNOWN_ONLY, target=target, fatal=False):
            unknown_only = True
        else:
            unknown_only = None
        return views.Visibility(extended_attributes=extended, host_status=unknown_only)

    def _detail(
        self,
        request: web.Request,
        server: dict[str, Any],
        visibility: views.Visibility,
        statuses: dict[str, HostStatus],
        *,
        show: bool = False,
    ) -> str:
        """The server's body as JSON text: cached rendering, host_status computed now
        (once per host per request: `statuses`)."""
        host = server.get("spec", {}).get("host", "")
        api_version = version(request)
        body = self.rendered.body(
            server,
            links=links(request),
            version=api_version,
            extended=visibility.extended_attributes,
            zone=self.state.zone_of_host(host) if host else None,
            show=show,
        )
        if host not in statuses:
            statuses[host] = self.state.host_status_of_host(host)
        return views.with_host_status(body, api_version, visibility, statuses[host])

    async def _list(self, request: web.Request, *, is_detail: bool) -> web.Response:
        ctx = context(request)
        self.policy.can(ctx, policies.DETAIL if is_detail else policies.INDEX)
        query = query_lists(request)
        criteria = self._criteria(ctx, query, version(request), is_detail=is_detail)
        visibility = self._visibility(ctx, ctx.project_id) if is_detail else None
        # Everything the answer depends on but the time (host statuses, checked on a hit).
        scope = criteria.project_id or ""
        cache_key = (
            scope,
            self.state.server_generations[scope],
            self.state.service_generation,
            is_detail,
            version(request),
            links(request),
            visibility,
            criteria,
        )
        if (cached := self.responses.get(cache_key, self.state.host_status_of_host)) is not None:
            return web.Response(body=cached, content_type="application/json")
        async with self.searching[ctx.project_id or ctx.user_id]:
            found = await criteria.apply(self._candidates(criteria), self.state.zone_of_host)
            servers, limit = limited(found, views.server_id, criteria.marker, criteria.limit)
            statuses: dict[str, HostStatus] = {}
            encoded = await self._render_list(request, query, servers, limit, visibility, statuses)
        self.responses.put(cache_key, statuses, encoded)
        return web.Response(body=encoded, content_type="application/json")

    def _criteria(
        self, ctx: RequestContext, query: dict[str, list[str]], api_version: APIVersion, *, is_detail: bool
    ) -> search.ServerSearch:
        """The query validated and parsed; searching all tenants needs its own rule."""
        validate_query(schemas.query_params(api_version), query)
        criteria = search.parse(
            query,
            api_version,
            allow_all_filters=self.policy.can(ctx, policies.ALLOW_ALL_FILTERS, fatal=False),
            is_admin=ctx.is_admin,
            project_id=ctx.project_id,
            user_id=ctx.user_id,
        )
        if criteria.all_tenants:
            self.policy.can(ctx, policies.DETAIL_ALL_TENANTS if is_detail else policies.INDEX_ALL_TENANTS)
        return criteria

    def _candidates(self, criteria: search.ServerSearch) -> Iterable[dict[str, Any]]:
        """The servers in the search's scope: a project's, a user's, or all."""
        if criteria.project_id:
            return self.state.servers_of_project(criteria.project_id)
        if criteria.user_id:  # Nova lists the user's own servers when the token has no project
            return (s for s in self.state.all_servers() if s.get("spec", {}).get("userId") == criteria.user_id)
        return self.state.all_servers()

    async def _render_list(
        self,
        request: web.Request,
        query: dict[str, list[str]],
        servers: list[dict[str, Any]],
        limit: int | None,
        visibility: views.Visibility | None,
        statuses: dict[str, HostStatus],
    ) -> bytes:
        """The answer's JSON, and in `statuses` the host statuses it shows. Assembled from JSON
        fragments: re-serialising 1,000 cached bodies would dominate. Rendered in slices, as searched."""
        link_builder = links(request)
        if visibility is not None:  # the detail list
            bodies = await search.cooperatively(servers, lambda s: self._detail(request, s, visibility, statuses))
        else:
            bodies = await search.cooperatively(servers, lambda s: json.dumps(views.summary(s, link_builder)))
        items = ", ".join(bodies)
        text = f'{{"servers": [{items}]'
        next_query = next_page_query({k: v[-1] for k, v in query.items()}, servers, limit, views.server_id)
        if next_query is not None:
            collection = "servers" if visibility is None else "servers/detail"
            next_link = [{"href": link_builder.collection(collection, **next_query), "rel": "next"}]
            text += f', "servers_links": {json.dumps(next_link)}'
        return (text + "}").encode()


class ResponseCache:
    """Whole list responses, valid while their project's servers are unchanged (the state's
    generation counter is part of the key) and the host statuses they show still hold (checked
    at read time, once per host: host_status changes with time, as in Nova)."""

    def __init__(self, size: int = 256) -> None:
        self._entries: OrderedDict[tuple, tuple[dict[str, HostStatus], bytes]] = OrderedDict()
        self._size = size

    def get(self, key: tuple, host_status_now: Callable[[str], HostStatus]) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        statuses, body = entry
        if any(host_status_now(host) != value for host, value in statuses.items()):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return body

    def put(self, key: tuple, statuses: dict[str, HostStatus], body: bytes) -> None:
        self._entries[key] = (statuses, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
