"""A Server's host_status transition, and the reason it carries (in Events and tenant notifications)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .hoststatus import HostStatus

TRANSITION_REASONS = {
    HostStatus.DOWN: "ForcedDown",
    HostStatus.UNKNOWN: "HeartbeatMissing",
    HostStatus.MAINTENANCE: "ServiceDisabled",
    HostStatus.UP: "ServiceUp",
}


def transition_reason(new: HostStatus, host: str) -> str:
    """Why a server's host_status became `new`; an unset one has no service on its host, or no host."""
    return TRANSITION_REASONS.get(new) or ("NoComputeService" if host else "NoHost")


@dataclass(frozen=True, slots=True)
class ServerTransition:
    """A Server's hostStatus changed (as written by the operator)."""

    namespace: str
    name: str
    uid: str
    host: str
    old: str
    new: str
    reason: str  # ForcedDown | HeartbeatMissing | ServiceDisabled | ServiceUp | NoComputeService | NoHost
    time: datetime
