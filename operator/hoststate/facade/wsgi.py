"""What Nova's wsgi.Resource does around every controller method, for aiohttp: request ids,
microversion negotiation, authentication, content-type and JSON body handling, the URL's
project id check, Nova-shaped faults, and per-microversion dispatch. Before any of it, the limits
Nova's deployment puts in front of the API (header line and body sizes), answered in Nova's shape.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from ..kube import ApiError
from . import api_version
from .api_version import APIVersion
from .auth import Authenticator
from .context import RequestContext
from .faults import (
    HTTPBadRequest,
    HTTPConflict,
    HTTPForbidden,
    HTTPInternalServerError,
    HTTPMethodNotAllowed,
    HTTPNotFound,
    HTTPRequestEntityTooLarge,
    HTTPUnsupportedMediaType,
    NovaError,
)
from .links import Links

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# oslo.middleware's [oslo_middleware] max_request_body_size: Nova refuses larger bodies with a 413.
MAX_REQUEST_BODY_SIZE = 114688
# Nova's [wsgi] max_header_line (room for big tokens). aiohttp itself refuses longer lines with a
# plain-text 400 that echoes the line's first 100 bytes (a token's, perhaps), so its own limit is set
# above this one: every line up to AIOHTTP_MAX_FIELD_SIZE gets Nova's 400 here, echoing nothing.
MAX_HEADER_LINE = 16384
AIOHTTP_MAX_FIELD_SIZE = 2 * MAX_HEADER_LINE
SUPPORTED_CONTENT_TYPES = ("application/json", "application/vnd.openstack.compute+json")
PUBLIC_ROUTES = {"versions", "version_v21", "version_v21_slash"}  # version discovery needs no token, as in Nova
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
PUBLIC_URL = web.AppKey("public_url", str)
CONTEXT = web.RequestKey("context", RequestContext)
VERSION = web.RequestKey("version", APIVersion)
BODY = web.RequestKey("body", object)
REQUEST_ID = web.RequestKey("request_id", str)


def context(request: web.Request) -> RequestContext:
    return request[CONTEXT]


def version(request: web.Request) -> APIVersion:
    return request[VERSION]


def body(request: web.Request) -> Any:
    return request.get(BODY)


def query_lists(request: web.Request) -> dict[str, list[str]]:
    """The query string as the schemas validate it: every parameter with all its values."""
    return {key: request.query.getall(key) for key in request.query}


def links(request: web.Request) -> Links:
    root = request.app.get(PUBLIC_URL) or str(request.url.origin())
    return Links(root=root.rstrip("/"), project_id=request.match_info.get("project_id", ""))


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)


@dataclass(frozen=True, slots=True)
class Versioned:
    """One controller method and the microversions it serves (Nova's @api_version)."""

    handler: Handler
    min_version: str = api_version.MIN_VERSION
    max_version: str = api_version.MAX_VERSION


def by_version(*methods: Versioned) -> Handler:
    """Dispatch on the request's microversion; none serving it is a 404, as Nova's VersionNotFoundForAPIMethod."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        requested = version(request)
        for method in methods:
            if APIVersion.parse(method.min_version) <= requested <= APIVersion.parse(method.max_version):
                return await method.handler(request)
        raise HTTPNotFound()

    return dispatch


def kube_error(error: ApiError) -> NovaError:
    """An API server refusal of a write made on the caller's behalf, as a Nova fault."""
    message = error.message or error.reason or str(error)
    if error.status == 403:
        return HTTPForbidden(message)
    if error.status == 404:
        return HTTPNotFound(message)
    if error.status == 409:
        return HTTPConflict(message)
    if error.status in (400, 422):
        return HTTPBadRequest(message)
    return HTTPInternalServerError(message)


def as_fault(error: Exception, request: web.Request, unexpected: str) -> NovaError:
    """Whatever a handler raised, as the fault the caller gets (`unexpected`: the 500's message, logged)."""
    if isinstance(error, NovaError):
        return error
    if isinstance(error, ApiError):
        return kube_error(error)
    if isinstance(error, web.HTTPNotFound):
        return HTTPNotFound()
    if isinstance(error, web.HTTPMethodNotAllowed):
        return HTTPMethodNotAllowed()
    if isinstance(error, web.HTTPException):
        return type("Fault", (NovaError,), {"code": error.status})(error.reason)
    log.exception("%s %s failed", request.method, request.path, exc_info=error)
    return HTTPInternalServerError(unexpected)


def media_type(request: web.Request) -> str:
    """The request's Content-Type without its parameters, lower case; "" when none is given."""
    return request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


async def read_json(request: web.Request, check_media_type: Callable[[str], None] | None = None) -> Any:
    """The body as JSON, UTF-8 only (Nova's jsonutils.loads, Keystone's json_body); None when empty. Over
    the app's client_max_size (MAX_REQUEST_BODY_SIZE) a 413, not JSON a 400: the same faults on both APIs,
    each rendering them its way. `check_media_type` sees a non-empty body's media type first, to refuse it."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise HTTPRequestEntityTooLarge() from None
    if not raw:
        return None
    if check_media_type is not None:
        check_media_type(media_type(request))
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nested too deep
        raise HTTPBadRequest("Malformed request body") from None


async def _read_body(request: web.Request) -> Any:
    """Nova's get_content_type and _get_request_content: JSON is assumed when no type is given."""
    given = media_type(request)
    if given and given != "text/plain" and given not in SUPPORTED_CONTENT_TYPES:
        raise HTTPUnsupportedMediaType("Unsupported Content-Type")
    return await read_json(request) if request.method in ("POST", "PUT") else None


def check_request_line_and_headers(request: web.Request) -> None:
    """What the server in front of Nova refuses before the API sees it, as Nova's 400s: header
    lines over MAX_HEADER_LINE (echoing nothing of them: they may hold a token), and a query string
    that is not UTF-8 once percent-decoded (aiohttp would otherwise search with U+FFFD in its place)."""
    if any(len(name) + len(value) + 2 > MAX_HEADER_LINE for name, value in request.raw_headers):
        raise HTTPBadRequest(f"Request header line too long (over {MAX_HEADER_LINE} bytes)")
    try:
        unquote_to_bytes(request.raw_path.partition("?")[2]).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPBadRequest("Query string is not UTF-8 encoded") from None


def _fault(error: NovaError) -> web.Response:
    return json_response(error.body(), status=error.code)


@web.middleware
async def nova_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = f"req-{uuid.uuid4()}"
    request[REQUEST_ID] = request_id
    negotiated: APIVersion | None = None
    try:
        check_request_line_and_headers(request)
        route_name = request.match_info.route.name
        if route_name not in PUBLIC_ROUTES:
            url_project = request.match_info.get("project_id")
            ctx = await request.app[AUTHENTICATOR].context(request.headers.get("X-Auth-Token"), url_project)
            request[CONTEXT] = ctx
        negotiated = request[VERSION] = api_version.requested_version(request.headers)
        request[BODY] = await _read_body(request)
        url_project = request.match_info.get("project_id")
        if url_project and url_project != request[CONTEXT].project_id:
            raise HTTPBadRequest(
                f"Malformed request URL: URL's project_id '{url_project}' doesn't match "
                f"Context's project_id '{request[CONTEXT].project_id}'"
            )
        response = await handler(request)
    except Exception as error:
        response = _fault(
            as_fault(
                error,
                request,
                "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach "
                "the Nova API log if possible.",
            )
        )
    response.headers["X-Compute-Request-Id"] = request_id
    response.headers["X-OpenStack-Request-Id"] = request_id
    response.headers["Vary"] = api_version.VARY
    if negotiated is not None:
        response.headers.update(api_version.response_headers(negotiated))
    return response
