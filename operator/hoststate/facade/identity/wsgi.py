"""What Keystone's WSGI stack does around the identity API's handlers, for aiohttp: the caller's
X-Auth-Token reviewed (TokenReview) except on the public routes, JSON bodies read (by the compute API's
reader, into its BODY), Keystone's error bodies and its WWW-Authenticate header on 401s."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from ..context import KubeIdentity
from ..faults import HTTPBadRequest, NovaError, keystone_body
from ..wsgi import (
    AUTHENTICATOR,
    BODY,
    Handler,
    as_fault,
    check_request_line_and_headers,
    json_response,
    links,
    read_json,
)

log = logging.getLogger(__name__)

PREFIX = "/identity"
# Version discovery and issuing a token need no X-Auth-Token, as in Keystone.
PUBLIC_ROUTES = {
    "identity_versions",
    "identity_versions_slash",
    "identity_v3",
    "identity_v3_slash",
    "identity_issue_token",
}
IDENTITY = web.RequestKey("identity", KubeIdentity)


def serves(path: str) -> bool:
    """Whether `path` is the identity API's."""
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def identity(request: web.Request) -> KubeIdentity:
    return request[IDENTITY]


def root(request: web.Request) -> str:
    """The root clients reach the facade at (--public-url, else the request's own)."""
    return links(request).root


def identity_url(request: web.Request) -> str:
    return f"{root(request)}{PREFIX}"


def _json_only(media_type: str) -> None:
    if media_type not in ("", "application/json"):
        raise HTTPBadRequest("Request must have a JSON body (Content-Type application/json)")


async def _read_json(request: web.Request) -> Any:
    """Keystone's json_body: a POST's body is JSON (when a type is given, application/json)."""
    return await read_json(request, _json_only) if request.method == "POST" else None


@web.middleware
async def keystone_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_request_line_and_headers(request)  # before any TokenReview, as on the compute API
        matched = request.match_info.http_exception is None  # else the handler raises Keystone's 404 or 405
        if matched and request.match_info.route.name not in PUBLIC_ROUTES:
            token = request.headers.get("X-Auth-Token")
            request[IDENTITY] = await request.app[AUTHENTICATOR].authenticate(token)
        request[BODY] = await _read_json(request)
        response = await handler(request)
    except Exception as error:
        response = _fault(
            as_fault(error, request, "An unexpected error prevented the server from fulfilling your request.")
        )
    if response.status == 401:
        response.headers["WWW-Authenticate"] = f'Keystone uri="{identity_url(request)}"'
    response.headers["X-OpenStack-Request-Id"] = f"req-{uuid.uuid4()}"
    response.headers["Vary"] = "X-Auth-Token"
    return response


def _fault(error: NovaError) -> web.Response:
    return json_response(keystone_body(error), status=error.code)
