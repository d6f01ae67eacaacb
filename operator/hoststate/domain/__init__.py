"""Pure domain rules: service liveness and host status. No I/O, no clocks of their own."""

from .hoststatus import (
    COMPUTE_BINARY,
    DEFAULT_ZONE,
    HOST_STATUSES,
    HostStatus,
    ServiceFacts,
    host_status,
    service_view,
)
from .liveness import effective_service_down_time, heartbeat_deadline, service_is_up

__all__ = [
    "COMPUTE_BINARY",
    "DEFAULT_ZONE",
    "HOST_STATUSES",
    "HostStatus",
    "ServiceFacts",
    "effective_service_down_time",
    "heartbeat_deadline",
    "host_status",
    "service_is_up",
    "service_view",
]
