"""Host status transitions: a host's (decided once, for all its servers) and a Server's, the reason
they carry (in Events and tenant notifications), and their deterministic ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from .hoststatus import HostStatus

TRANSITION_REASONS = {
    HostStatus.DOWN: "ForcedDown",
    HostStatus.UNKNOWN: "HeartbeatMissing",
    HostStatus.MAINTENANCE: "ServiceDisabled",
    HostStatus.UP: "ServiceUp",
}

# The namespace of hoststate's UUIDv5 ids: the same transition gets the same id whoever computes it.
ID_NAMESPACE = uuid.UUID("5d0f2c52-8f43-4f55-9c57-2f1e3c0b7a11")


def transition_reason(new: HostStatus, host: str) -> str:
    """Why a server's host_status became `new`; an unset one has no service on its host, or no host."""
    return TRANSITION_REASONS.get(new) or ("NoComputeService" if host else "NoHost")


def host_transition_id(service_uid: str, old: str, new: str, time: datetime) -> str:
    """A host transition's id: its service, its values and the moment it was decided."""
    return str(uuid.uuid5(ID_NAMESPACE, f"host/{service_uid}/{old}/{new}/{time.isoformat()}"))


def server_event_id(transition_id: str, server_uid: str, new: str) -> str:
    """The id of a Server's event for a transition: the same for every sender and every retry."""
    return str(uuid.uuid5(uuid.UUID(transition_id), f"{server_uid}/{new}"))


@dataclass(frozen=True, slots=True)
class ServerTransition:
    """A Server's hostStatus changed: decided for its host (announced) or written for it alone."""

    namespace: str
    name: str
    uid: str
    host: str
    old: str
    new: str
    reason: str  # ForcedDown | HeartbeatMissing | ServiceDisabled | ServiceUp | NoComputeService | NoHost
    time: datetime
    # The host transition that announced it (its id); "" for a Server's own change (created, moved).
    host_transition: str = ""
    # True on the status write of a change already announced with its host transition.
    announced: bool = False

    @property
    def event_id(self) -> str:
        """Deterministic: from the host transition's id, or from this transition's own values."""
        if self.host_transition:
            return server_event_id(self.host_transition, self.uid, self.new)
        return str(uuid.uuid5(ID_NAMESPACE, f"server/{self.uid}/{self.old}/{self.new}/{self.time.isoformat()}"))


@dataclass(frozen=True, slots=True)
class HostTransition:
    """A host's status changed, as the operator decided it: once for all the servers on the host.

    Recorded in its ComputeService's status (a short ring) before its events are released, so
    that whoever leads next re-expands it to the servers on the host with the same ids."""

    id: str
    host: str
    old: str
    new: str
    reason: str
    time: datetime

    def for_server(self, namespace: str, name: str, uid: str, old: str | None = None) -> ServerTransition:
        old = self.old if old is None else old
        return ServerTransition(namespace, name, uid, self.host, old, self.new, self.reason, self.time, self.id)
