"""Pure domain rules: service liveness, host status and its transitions. No I/O, no clocks of their own."""

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
from .transitions import (
    TRANSITION_REASONS,
    HostTransition,
    ServerTransition,
    host_transition_id,
    server_event_id,
    transition_reason,
)

__all__ = [
    "COMPUTE_BINARY",
    "DEFAULT_ZONE",
    "HOST_STATUSES",
    "HostStatus",
    "HostTransition",
    "ServiceFacts",
    "ServerTransition",
    "TRANSITION_REASONS",
    "effective_service_down_time",
    "heartbeat_deadline",
    "host_status",
    "host_transition_id",
    "server_event_id",
    "service_is_up",
    "service_view",
    "transition_reason",
]
