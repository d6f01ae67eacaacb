"""Domains (keystone/api/domains.py): only `default`, which holds every project and user."""

from __future__ import annotations

from aiohttp import web

from ...faults import HTTPNotFound
from ...wsgi import json_response
from ..views import resources as views
from ..wsgi import identity_url


async def index(request: web.Request) -> web.Response:
    name = request.query.get("name")
    domains = [views.domain(identity_url(request))] if name in (None, views.DEFAULT_DOMAIN_NAME) else []
    return json_response(views.collection("domains", domains, str(request.url)))


async def show(request: web.Request) -> web.Response:
    domain_id = request.match_info["domain_id"]
    if domain_id != views.DEFAULT_DOMAIN_ID:
        raise HTTPNotFound(f"Could not find domain: {domain_id}.")
    return json_response({"domain": views.domain(identity_url(request))})
