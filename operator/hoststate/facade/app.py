"""The facade's aiohttp application: routes mirror Nova's, with and without the project id."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..heap import freeze_start_up
from ..kube import KubeClient
from ..kube.health import informers_live, informers_ready
from ..prometheus import FacadeMetrics, serve_metrics
from .auth import Authenticator
from .cache import ClusterState
from .config import FacadeConfig
from .controllers import versions
from .controllers.migrations import MigrationController
from .controllers.server_actions import ServerActionController
from .controllers.servers import ServerController
from .controllers.services import ServiceController
from .identity import PREFIX as IDENTITY_PREFIX
from .identity import keystone_middleware, serves
from .identity.controllers import domains
from .identity.controllers import versions as identity_versions
from .identity.controllers.projects import ProjectController
from .identity.controllers.tokens import TokenController
from .identity.controllers.users import UserController
from .policy import PolicyEngine
from .request_metrics import METRICS, metrics_middleware
from .wsgi import (
    AIOHTTP_MAX_FIELD_SIZE,
    AUTHENTICATOR,
    MAX_REQUEST_BODY_SIZE,
    PUBLIC_URL,
    Handler,
    Versioned,
    by_version,
    nova_middleware,
)

log = logging.getLogger(__name__)

STATE = web.AppKey("state", ClusterState)


def add_routes(
    app: web.Application,
    services: ServiceController,
    servers: ServerController,
    actions: ServerActionController | None = None,
    migrations: MigrationController | None = None,
) -> None:
    app.router.add_get("/", versions.index, name="versions")
    app.router.add_get("/v2.1", versions.show_v21, name="version_v21")
    app.router.add_get("/v2.1/", versions.show_v21, name="version_v21_slash")
    for prefix in ("/v2.1", "/v2.1/{project_id}"):
        app.router.add_get(f"{prefix}/os-services", services.index)
        app.router.add_put(
            f"{prefix}/os-services/{{id}}",
            by_version(
                Versioned(services.update_legacy, max_version="2.52"),
                Versioned(services.update, min_version="2.53"),
            ),
        )
        app.router.add_delete(f"{prefix}/os-services/{{id}}", services.delete)
        app.router.add_get(f"{prefix}/servers", servers.index)
        app.router.add_get(f"{prefix}/servers/detail", servers.detail)
        app.router.add_get(f"{prefix}/servers/{{server_id}}", servers.show)
        if actions is not None:
            app.router.add_post(f"{prefix}/servers/{{server_id}}/action", actions.action)
        if migrations is not None:
            app.router.add_get(f"{prefix}/os-migrations", migrations.index)


def add_identity_routes(app: web.Application, state: ClusterState) -> None:
    """Keystone's v3 API under /identity, as far as the clients need it (facade/identity)."""
    tokens, projects, users = TokenController(), ProjectController(state), UserController(state)
    v3 = f"{IDENTITY_PREFIX}/v3"
    app.router.add_get(IDENTITY_PREFIX, identity_versions.index, name="identity_versions")
    app.router.add_get(f"{IDENTITY_PREFIX}/", identity_versions.index, name="identity_versions_slash")
    app.router.add_get(v3, identity_versions.show_v3, name="identity_v3")
    app.router.add_get(f"{v3}/", identity_versions.show_v3, name="identity_v3_slash")
    app.router.add_post(f"{v3}/auth/tokens", tokens.issue, name="identity_issue_token")
    app.router.add_get(f"{v3}/auth/tokens", tokens.validate)
    app.router.add_get(f"{v3}/auth/projects", projects.auth_projects)
    app.router.add_get(f"{v3}/projects", projects.index)
    app.router.add_get(f"{v3}/projects/{{project_id}}", projects.show)
    app.router.add_get(f"{v3}/users", users.index)
    app.router.add_get(f"{v3}/users/{{user_id}}", users.show)
    app.router.add_get(f"{v3}/users/{{user_id}}/projects", projects.user_projects)
    app.router.add_get(f"{v3}/domains", domains.index)
    app.router.add_get(f"{v3}/domains/{{domain_id}}", domains.show)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keystone's conventions around the identity API, Nova's around the compute API."""
    if serves(request.path):
        return await keystone_middleware(request, handler)
    return await nova_middleware(request, handler)


def create_app(
    kube: KubeClient,
    config: FacadeConfig,
    state: ClusterState | None = None,
    metrics: FacadeMetrics | None = None,
) -> web.Application:
    """The application; its cache starts (and is synced) when the app starts.

    Requests are counted in `metrics` (a fresh registry when none is given); serving them is
    `serve_metrics_while_running`'s job, so that apps made in tests bind no metrics port.
    """
    policy = PolicyEngine(config.policy_file)
    state = state or ClusterState(
        kube,
        lease_namespace=config.lease_namespace,
        service_down_time=config.service_down_time,
        report_interval=config.report_interval,
    )
    app = web.Application(
        middlewares=[metrics_middleware, api_middleware],
        client_max_size=MAX_REQUEST_BODY_SIZE,
        handler_args={"max_field_size": AIOHTTP_MAX_FIELD_SIZE},
    )
    app[METRICS] = metrics or FacadeMetrics()
    app[AUTHENTICATOR] = Authenticator(kube, policy, cache_ttl=config.token_cache_ttl)
    app[PUBLIC_URL] = config.public_url
    app[STATE] = state
    add_routes(
        app,
        ServiceController(state, policy, kube),
        ServerController(state, policy),
        ServerActionController(state, policy, kube),
        MigrationController(state, policy),
    )
    add_identity_routes(app, state)

    async def cache(app: web.Application) -> AsyncIterator[None]:
        await state.start()
        freeze_start_up()  # the cache is listed: no later collection walks it (heap.py)
        yield
        await state.stop()

    app.cleanup_ctx.append(cache)
    return app


def serve_metrics_while_running(app: web.Application, host: str, port: int) -> None:
    """/metrics, /healthz and /readyz on `host`:`port` from before the cache syncs until the app
    stops. Ready (/readyz): the cache has listed everything. Live (/healthz): its watches run and
    make progress (kube/health.py), also while the first lists are still loading."""
    state = app[STATE]

    async def metrics_server(app: web.Application) -> AsyncIterator[None]:
        runner = await serve_metrics(
            app[METRICS].registry,
            host,
            port,
            healthy=lambda: informers_live(state.informers),
            ready=lambda: informers_ready(state.informers),
        )
        try:
            yield
        finally:
            await runner.cleanup()

    app.cleanup_ctx.insert(0, metrics_server)


def run(config: FacadeConfig) -> int:
    """`hoststate facade`: serve until SIGINT/SIGTERM."""

    async def make_app() -> web.Application:
        kube = KubeClient()
        app = create_app(kube, config)
        if config.metrics_port:
            serve_metrics_while_running(app, config.metrics_host, config.metrics_port)

        async def close_kube(app: web.Application) -> AsyncIterator[None]:
            yield
            with contextlib.suppress(Exception):
                await kube.close()

        app.cleanup_ctx.insert(0, close_kube)
        return app

    web.run_app(make_app(), host=config.host, port=config.port, print=lambda *_: None)
    return 0
