"""Projects (keystone/api/projects.py, auth.py, users.py): GET /v3/projects, /v3/projects/{id},
/v3/auth/projects, /v3/users/{id}/projects. A project is a namespace; each caller sees only the ones
they may access (get servers there)."""

from __future__ import annotations

from aiohttp import web

from ...cache import ClusterState
from ...faults import HTTPForbidden
from ...wsgi import AUTHENTICATOR, json_response
from ..views import resources as views
from ..wsgi import identity, identity_url


def forbidden(action: str) -> HTTPForbidden:
    # keystone.exception.ForbiddenAction
    return HTTPForbidden(f"You are not authorized to perform the requested action: {action}.")


class ProjectController:
    def __init__(self, state: ClusterState) -> None:
        self.state = state

    async def _visible(self, request: web.Request, names: set[str] | None = None) -> list[str]:
        """The caller's projects among `names`; None: among the namespaces the facade knows (those
        holding Servers) and the caller's own ServiceAccount namespace."""
        who = identity(request)
        if names is None:
            names = {server["metadata"]["namespace"] for server in self.state.all_servers()}
            names |= {who.service_account_namespace} if who.service_account_namespace else set()
        return await request.app[AUTHENTICATOR].projects_of(who, names)

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        names = {query["name"]} if "name" in query else None
        projects = []
        if query.get("domain_id", views.DEFAULT_DOMAIN_ID) == views.DEFAULT_DOMAIN_ID:
            projects = [views.project(identity_url(request), name) for name in await self._visible(request, names)]
        return json_response(views.collection("projects", projects, str(request.url)))

    async def index(self, request: web.Request) -> web.Response:
        return await self._list(request)

    async def auth_projects(self, request: web.Request) -> web.Response:
        return await self._list(request)

    async def user_projects(self, request: web.Request) -> web.Response:
        if request.match_info["user_id"] != identity(request).username:
            raise forbidden("identity:list_user_projects")
        return await self._list(request)

    async def show(self, request: web.Request) -> web.Response:
        """Any namespace the caller may access (Kubernetes does not tell the facade which exist);
        another is Keystone's 403, with which clients go on using the name as the id."""
        project_id = request.match_info["project_id"]
        if not await request.app[AUTHENTICATOR].may_access(identity(request), project_id):
            raise forbidden("identity:get_project")
        return json_response({"project": views.project(identity_url(request), project_id)})
