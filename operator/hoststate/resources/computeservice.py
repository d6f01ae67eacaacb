"""ComputeService: one Nova service (host, binary), cluster-scoped, named `<host>.<binary>`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from ..domain.hoststatus import COMPUTE_BINARY, DEFAULT_ZONE
from .common import (
    CONDITIONS_FIELD,
    NOVA_HOST_MAX_LENGTH,
    NOVA_HOST_PATTERN,
    Condition,
    HostStatusValue,
    KubeModel,
    cel,
)


class ComputeServiceSpec(KubeModel):
    """What the fleet operator wants for this service: enabled or disabled, forced down or not."""

    model_config = KubeModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.disabledReason) || self.disabled",
                    "disabledReason is only allowed when disabled is true",
                    fieldPath=".disabledReason",
                )
            ]
        }
    )

    host: str = Field(
        min_length=1,
        max_length=NOVA_HOST_MAX_LENGTH,
        pattern=NOVA_HOST_PATTERN,
        description=(
            "Compute host name as Nova knows it (letters, digits, '-', '.', '_'; 1 to 255 characters). "
            "Immutable: a host is a new service."
        ),
        json_schema_extra={"x-kubernetes-validations": [cel("self == oldSelf", "host is immutable")]},
    )
    binary: str = Field(
        default=COMPUTE_BINARY,
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Nova service binary, for example nova-compute. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [cel("self == oldSelf", "binary is immutable")]},
    )
    zone: str = Field(
        default=DEFAULT_ZONE,
        min_length=1,
        max_length=255,
        description="Availability zone of the host.",
    )
    disabled: bool = Field(
        default=False,
        description=(
            "Disable the service for maintenance: no new servers are scheduled here and the host's "
            "servers show host_status MAINTENANCE."
        ),
    )
    disabled_reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Why the service is disabled (at most 255 characters); only allowed with disabled: true.",
    )
    forced_down: bool = Field(
        default=False,
        description=(
            "Force the service down (Nova API 2.11): the caller has fenced the host. Its servers show "
            "host_status DOWN at once, whatever the heartbeat says, until this is set back to false."
        ),
    )


RECENT_TRANSITIONS = 16  # host transitions kept in status: what a new leader redelivers from


class RecordedTransition(KubeModel):
    """A host transition as the operator decided it, recorded before its tenant events are sent."""

    id: str = Field(max_length=36, description="The transition's id (a UUID); tenant event ids derive from it.")
    old_host_status: HostStatusValue = Field(description="The host status before.")
    new_host_status: HostStatusValue = Field(description="The host status decided.")
    reason: str = Field(max_length=63, description="ForcedDown, HeartbeatMissing, ServiceDisabled or ServiceUp.")
    time: datetime = Field(description="When the operator decided it.")


class ComputeServiceStatus(KubeModel):
    """What the operator observed: liveness from heartbeats and the host status servers get."""

    state: Literal["up", "down"] | None = Field(
        default=None, description="up when not forced down and the heartbeat is fresh (Nova's service state)."
    )
    service_status: Literal["enabled", "disabled"] | None = Field(
        default=None, description="enabled or disabled, as Nova's service list prints it."
    )
    host_status: HostStatusValue | None = Field(
        default=None, description="The host_status every server on this host gets (UP, UNKNOWN, DOWN, MAINTENANCE)."
    )
    last_heartbeat_time: datetime | None = Field(
        default=None, description="Last heartbeat renewal seen on the service's Lease (Nova's updated_at)."
    )
    forced_down_time: datetime | None = Field(default=None, description="When forcedDown was last set to true.")
    state_changed_time: datetime | None = Field(default=None, description="When state last changed.")
    host_status_changed_time: datetime | None = Field(default=None, description="When hostStatus last changed.")
    conditions: list[Condition] | None = CONDITIONS_FIELD
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status was computed from."
    )
    recent_transitions: list[RecordedTransition] | None = Field(
        default=None,
        max_length=RECENT_TRANSITIONS,
        description=(
            "The host's last transitions, oldest first: the tenant notifications not yet acknowledged "
            "by a subscription are redelivered from these after an operator restart or a leader change."
        ),
    )


class ComputeService(KubeModel):
    """A Nova compute service: one per (host, binary), named `<host>.<binary>` with the host
    lower-cased and '_' turned into '-' (host Compute_4, binary nova-compute: compute-4.nova-compute)."""

    spec: ComputeServiceSpec
    status: ComputeServiceStatus | None = None


# The name rule makes (host, binary) unique. Kubernetes names allow neither '_' nor capitals,
# Nova host names do: compare against the host lower-cased with '_' turned into '-'.
NAME_RULE = cel(
    "self.metadata.name == self.spec.host.lowerAscii().replace('_', '-') + '.' + self.spec.binary",
    "metadata.name must be <host>.<binary>, with the host lower-cased and '_' turned into '-'",
    messageExpression=(
        "'metadata.name must be ' + self.spec.host.lowerAscii().replace('_', '-') + '.' + self.spec.binary"
        " + ' (<host>.<binary>, the host lower-cased and _ turned into -)'"
    ),
    reason="FieldValueInvalid",
    fieldPath=".metadata.name",
)


def service_name(host: str, binary: str = COMPUTE_BINARY) -> str:
    """The ComputeService (and Lease) name of (host, binary): what NAME_RULE demands."""
    return f"{host.lower().replace('_', '-')}.{binary}"
