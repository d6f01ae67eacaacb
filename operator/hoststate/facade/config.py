"""The facade's configuration (apart from app.py, so that `hoststate operator` parses its command
line without importing the facade)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..resources.lease import DEFAULT_LEASE_NAMESPACE


@dataclass(frozen=True)
class FacadeConfig:
    host: str = "0.0.0.0"
    port: int = 8774
    lease_namespace: str = DEFAULT_LEASE_NAMESPACE
    service_down_time: float = 60.0
    report_interval: float = 10.0
    policy_file: Path | None = None
    token_cache_ttl: float = 10.0
    public_url: str = ""  # the root clients reach, when behind a proxy; else the request's own
    metrics_port: int = 8081  # /metrics and /healthz; 0 turns them off
    metrics_host: str = "0.0.0.0"  # the pod's address, for its probes and Prometheus
