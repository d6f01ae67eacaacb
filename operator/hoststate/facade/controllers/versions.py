"""GET /, /v2.1, /v2.1/: version discovery (no token needed)."""

from __future__ import annotations

from aiohttp import web

from ..views import versions as views
from ..wsgi import json_response, links


async def index(request: web.Request) -> web.Response:
    return json_response(views.versions(links(request).root))


async def show_v21(request: web.Request) -> web.Response:
    return json_response(views.version_v21(links(request).root))
