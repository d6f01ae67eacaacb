"""Users (keystone/api/users.py): GET /v3/users and /v3/users/{id}. A user is a Kubernetes user name
(the token's user) or a Server's userId; a caller sees themselves, an admin any of them."""

from __future__ import annotations

from aiohttp import web

from ...cache import ClusterState
from ...policies.base import ADMIN_ROLE
from ...wsgi import AUTHENTICATOR, json_response
from ..views import resources as views
from ..wsgi import identity, identity_url
from .projects import forbidden


class UserController:
    def __init__(self, state: ClusterState) -> None:
        self.state = state

    async def _is_admin(self, request: web.Request) -> bool:
        return ADMIN_ROLE in await request.app[AUTHENTICATOR].roles_in(identity(request), None)

    def _known(self) -> set[str]:
        return {user for server in self.state.all_servers() if (user := server.get("spec", {}).get("userId"))}

    async def index(self, request: web.Request) -> web.Response:
        me = identity(request).username
        name = request.query.get("name")
        if await self._is_admin(request):
            names = {name} if name is not None else self._known() | {me}
        elif name is not None:
            names = {name} & {me}  # Keystone's list_users is the admin's; a name look-up finds oneself
        else:
            raise forbidden("identity:list_users")
        users = [views.user(identity_url(request), user) for user in sorted(names)]
        return json_response(views.collection("users", users, str(request.url)))

    async def show(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        if user_id != identity(request).username and not await self._is_admin(request):
            raise forbidden("identity:get_user")
        return json_response({"user": views.user(identity_url(request), user_id)})
