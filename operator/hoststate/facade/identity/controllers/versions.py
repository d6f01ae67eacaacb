"""GET /identity and /identity/v3: version discovery (no token needed)."""

from __future__ import annotations

from aiohttp import web

from ...wsgi import json_response
from ..views import versions as views
from ..wsgi import identity_url


async def index(request: web.Request) -> web.Response:
    return json_response(views.versions(identity_url(request)), status=300)


async def show_v3(request: web.Request) -> web.Response:
    return json_response({"version": views.version_v3(identity_url(request))})
