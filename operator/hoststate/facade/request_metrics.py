"""The facade's Prometheus metrics: an aiohttp middleware counting and timing every request.

Labels are bounded: `route` is the matched resource's canonical pattern
(`/v2.1/{project_id}/servers/{server_id}`), never the raw URL, and `unmatched` for URLs
no route serves; `code` is the status code the client got (after Nova's fault handling).
"""

from __future__ import annotations

import time

from aiohttp import web

from ..prometheus import FacadeMetrics
from .wsgi import Handler

METRICS = web.AppKey("metrics", FacadeMetrics)
UNMATCHED = "unmatched"


def route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: it sees the status nova_middleware turned every error into."""
    metrics = request.app[METRICS]
    started = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as error:  # only if something bypassed nova_middleware
        code = error.status
        raise
    finally:
        route, method = route_label(request), request.method
        metrics.requests.labels(route=route, method=method, code=str(code)).inc()
        metrics.request_duration.labels(route=route, method=method).observe(time.perf_counter() - started)
