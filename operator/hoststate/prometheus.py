"""Prometheus metrics of the operator and the facade (names follow Prometheus conventions), and
the /metrics endpoint that serves them.

The per-service and per-status gauges are not here: operator/index_metrics.py computes them at
scrape time from the operator's indexes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Fan-out of a host change to its servers: 1 ms .. 60 s.
FANOUT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)
# From a Server's status write to the tenant's webhook answering 2xx (retries included).
NOTIFICATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.fanout_duration = Histogram(
            "hoststate_fanout_duration_seconds",
            "From a host change being observed to the last of its servers patched.",
            buckets=FANOUT_BUCKETS,
            registry=self.registry,
        )
        self.fanout_servers = Counter(
            "hoststate_fanout_servers_patched_total", "Server statuses patched by fan-outs.", registry=self.registry
        )
        self.status_patch_duration = Histogram(
            "hoststate_status_patch_duration_seconds",
            "Latency of one Server status patch.",
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "hoststate_reconcile_errors_total",
            "Failed reconcile jobs (retried with backoff), by what was reconciled.",
            ["kind"],
            registry=self.registry,
        )
        self.heartbeat_policy_enforced = Gauge(
            "hoststate_heartbeat_policy_enforced",
            "1 when the heartbeat admission policy (hoststate-heartbeat-leases) and a Deny binding of it stand, so "
            "that an agent can renew only its own host's heartbeat Lease; 0 when not (any agent may keep any host up).",
            registry=self.registry,
        )
        self.heartbeat_expiries = Counter(
            "hoststate_heartbeat_expiries_total", "Services whose heartbeat deadline passed.", registry=self.registry
        )
        # Tenant notifications (hoststate.notifications).
        self.notifications = Counter(
            "hoststate_notifications_total",
            "Notification events by result: delivered (2xx), failed (retries exhausted or refused), "
            "dropped (queue full or subscription gone).",
            ["result"],
            registry=self.registry,
        )
        for result in ("delivered", "failed", "dropped"):
            self.notifications.labels(result=result)
        self.notification_retries = Counter(
            "hoststate_notification_retries_total", "Delivery attempts retried after a failure.", registry=self.registry
        )
        self.notification_latency = Histogram(
            "hoststate_notification_latency_seconds",
            "From a Server's hostStatus transition (its status write) to the webhook's 2xx, retries included.",
            buckets=NOTIFICATION_BUCKETS,
            registry=self.registry,
        )
        self.notifications_pending = Gauge(
            "hoststate_notifications_pending", "Notification events queued or in flight.", registry=self.registry
        )
        # Evacuation (hoststate.operator.evacuation).
        self.evacuations = Counter(
            "hoststate_evacuations_total",
            "Evacuations recorded by the operator in status.evacuation, by trigger (api, automatic) and state "
            "(accepted, done, failed).",
            ["trigger", "state"],
            registry=self.registry,
        )
        self.evacuations_in_flight = Gauge(
            "hoststate_evacuations_in_flight",
            "Evacuations requested and not yet done or failed (automatic ones are capped by --evacuation-concurrency).",
            registry=self.registry,
        )
        # Leader election among the operator's replicas (kube/leader.py).
        self.leader = Gauge(
            "hoststate_leader",
            "1 while this replica holds the leader Lease and may write, 0 while it stands by.",
            registry=self.registry,
        )
        self.leader_transitions = Counter(
            "hoststate_leader_transitions_total",
            "Times this replica became the leader (took the Lease over, or acquired it at start).",
            registry=self.registry,
        )
        self.evacuation_storm_guard = Gauge(
            "hoststate_evacuation_storm_guard_active",
            "1 while automatic evacuation is stopped in a scope (zone, or 'all') because more than "
            "--evacuation-storm-threshold of its nova-compute hosts are down.",
            ["zone"],
            registry=self.registry,
        )


class FacadeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "hoststate_facade_requests_total",
            "Nova facade requests, by route (the pattern, not the URL), method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "hoststate_facade_request_duration_seconds",
            "Nova facade request latency, by route and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )


async def serve_metrics(
    registry: CollectorRegistry,
    host: str,
    port: int,
    healthy: Callable[[], bool],
    ready: Callable[[], bool] | None = None,
) -> web.AppRunner:
    """/metrics, /healthz (live: `healthy`) and /readyz (`ready`, else `healthy`) on `host`:`port`
    (the pod's probes and Prometheus scrape it)."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def probe(check: Callable[[], bool], failed: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(_: web.Request) -> web.Response:
            return web.Response(text="ok") if check() else web.Response(status=503, text=failed)

        return answer

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", probe(healthy, "unhealthy"))
    app.router.add_get("/readyz", probe(ready or healthy, "not ready"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
