"""Per-service and per-status gauges, computed at scrape time from the operator's indexes (a custom
collector), so the hot path does no metric bookkeeping for them."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..domain import HOST_STATUSES
from ..kubetime import utcnow
from .indexes import ServerIndex, ServiceIndex

SERVICE_LABELS = ("host", "binary", "zone")


class IndexCollector(Collector):
    """With several replicas only the leader reports samples (a standby's indexes hold the same
    fleet, and `sum(...)` over replicas would count it twice); every replica declares the families."""

    def __init__(
        self,
        services: ServiceIndex,
        servers: ServerIndex,
        down_time: float,
        reporting: Callable[[], bool] = lambda: True,
    ) -> None:
        self.services = services
        self.servers = servers
        self.down_time = down_time
        self.reporting = reporting

    def collect(self) -> Iterator[GaugeMetricFamily]:
        services = self.services
        now = utcnow()
        up = GaugeMetricFamily(
            "hoststate_service_up", "1 when the service is up (Nova's state).", labels=SERVICE_LABELS
        )
        forced = GaugeMetricFamily(
            "hoststate_service_forced_down", "1 when the service is forced down.", labels=SERVICE_LABELS
        )
        disabled = GaugeMetricFamily(
            "hoststate_service_disabled", "1 when the service is disabled.", labels=SERVICE_LABELS
        )
        heartbeat = GaugeMetricFamily(
            "hoststate_service_last_heartbeat_timestamp_seconds",
            "Unix time of the service's last heartbeat (its creation time if it never reported).",
            labels=SERVICE_LABELS,
        )
        reporting = self.reporting()
        for record in services.by_name.values() if reporting else ():
            labels = [record.host, record.binary, record.zone]
            facts = services.facts(record, now, self.down_time)
            up.add_metric(labels, 1.0 if facts.up else 0.0)
            forced.add_metric(labels, 1.0 if record.forced_down else 0.0)
            disabled.add_metric(labels, 1.0 if record.disabled else 0.0)
            heartbeat.add_metric(labels, services.last_heartbeat(record).timestamp())
        yield from (up, forced, disabled, heartbeat)

        servers = GaugeMetricFamily(
            "hoststate_servers", "Servers by the host status they show.", labels=["host_status"]
        )
        tally = Tally(record.host_status or "" for record in self.servers.by_key.values()) if reporting else Tally()
        for value in HOST_STATUSES if reporting else ():
            servers.add_metric([value], float(tally.get(value, 0)))
        yield servers
