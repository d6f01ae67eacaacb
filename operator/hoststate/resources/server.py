"""Server: a tenant's virtual machine as the facade shows it. Namespaced: the namespace is the project."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from ..domain.evacuation import EVACUATION_ID_MAX_LENGTH
from .common import (
    CONDITIONS_FIELD,
    NOVA_HOST_MAX_LENGTH,
    NOVA_HOST_PATTERN,
    Condition,
    HostStatusValue,
    KubeModel,
    NovaKey,
    NovaString,
)

# Nova has no hard limit on a server's networks and addresses, only quotas (Neutron's default port
# quota is 50 a project, max_fixed_ips_per_port 5); these bounds are far above real servers and
# keep the largest Server well under the watch buffers: 32 networks x 16 addresses of at most
# 45 + 17 characters is under 70 KB.
MAX_NETWORKS = 32
MAX_ADDRESSES_PER_NETWORK = 16
# Nova's default metadata_items quota: at most 128 metadata items a server.
MAX_METADATA_ITEMS = 128

# nova/compute/vm_states.py
VmState = Literal[
    "active",
    "building",
    "paused",
    "suspended",
    "stopped",
    "rescued",
    "resized",
    "soft-delete",
    "deleted",
    "error",
    "shelved",
    "shelved_offloaded",
]


class Address(KubeModel):
    """One address of the server on a network (Nova's `addresses` entries)."""

    addr: str = Field(max_length=45, description="IPv4 or IPv6 address.")
    version: Literal[4, 6] = Field(default=4, description="IP version, 4 or 6.")
    type: Literal["fixed", "floating"] = Field(default="fixed", description="fixed or floating.")
    mac_addr: str | None = Field(
        default=None,
        max_length=17,
        pattern=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$",
        description="MAC address of the port.",
    )


class ServerSpec(KubeModel):
    """Where the server runs and the VM fields Nova's API shows."""

    host: str = Field(
        default="",
        max_length=NOVA_HOST_MAX_LENGTH,
        pattern=NOVA_HOST_PATTERN,
        description="Compute host the server runs on, as in its ComputeService's spec.host; empty when not placed.",
    )
    display_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The server's name in Nova's API; metadata.name when absent.",
    )
    user_id: str | None = Field(default=None, max_length=255, description="Id of the user who owns the server.")
    vm_state: VmState = Field(default="active", description="Nova's vm_state (active, stopped, error, ...).")
    power_state: int = Field(
        default=1,
        ge=0,
        le=7,
        description="Nova's power_state: 0 NOSTATE, 1 RUNNING, 3 PAUSED, 4 SHUTDOWN, 6 CRASHED, 7 SUSPENDED.",
    )
    task_state: str | None = Field(default=None, max_length=255, description="Nova's task_state; absent when idle.")
    availability_zone: str | None = Field(default=None, max_length=255, description="Availability zone of the server.")
    flavor_id: str | None = Field(default=None, max_length=255, description="Flavor the server was built from.")
    image_id: str | None = Field(default=None, max_length=255, description="Image the server was built from.")
    key_name: str | None = Field(default=None, max_length=255, description="Key pair injected into the server.")
    addresses: dict[NovaKey, Annotated[list[Address], Field(max_length=MAX_ADDRESSES_PER_NETWORK)]] | None = Field(
        default=None,
        max_length=MAX_NETWORKS,
        description=(
            f"Addresses by network name (1 to 255 characters): at most {MAX_NETWORKS} networks "
            f"of at most {MAX_ADDRESSES_PER_NETWORK} addresses."
        ),
    )
    metadata: dict[NovaKey, NovaString] | None = Field(
        default=None,
        max_length=MAX_METADATA_ITEMS,
        description=(
            f"Nova server metadata: at most {MAX_METADATA_ITEMS} items (Nova's default quota), "
            "keys of 1 to 255 characters and values of at most 255, as Nova allows."
        ),
    )


class Evacuation(KubeModel):
    """The server's latest evacuation, as the operator recorded it from the request
    (annotation hoststate.io/evacuation) written together with the move of spec.host."""

    id: str = Field(
        max_length=EVACUATION_ID_MAX_LENGTH, description="Id of the evacuation request (in the annotation)."
    )
    source_host: str = Field(max_length=NOVA_HOST_MAX_LENGTH, description="Host the server was evacuated from.")
    target_host: str = Field(max_length=NOVA_HOST_MAX_LENGTH, description="Host the server was evacuated to.")
    requested_time: datetime = Field(description="When the evacuation was requested.")
    trigger: Literal["api", "automatic"] = Field(
        default="api", description="api: the Nova facade's evacuate action; automatic: the operator (HA servers)."
    )
    requested_by: str | None = Field(default=None, max_length=512, description="User who requested it.")
    state: Literal["accepted", "done", "completed", "failed"] = Field(
        description=(
            "Nova's migration states. accepted: the server was moved and is not yet UP on the target; "
            "done: it shows UP on the target (confirmed); completed: the source host's agent made sure "
            "its copy of the guest is gone; failed: the target went down or lost its service, the "
            "server was moved elsewhere, or it was not UP within the operator's evacuation timeout."
        )
    )
    completed_time: datetime | None = Field(default=None, description="When it became done or failed.")
    cleaned_up_time: datetime | None = Field(
        default=None, description="When the source host's agent completed it (its guest gone)."
    )
    message: str | None = Field(default=None, max_length=1024, description="Why it is in this state.")


class ServerStatus(KubeModel):
    """The host status the operator derived from the server's host."""

    host_status: HostStatusValue | None = Field(
        default=None,
        description=(
            "Nova's host_status: UP, UNKNOWN (heartbeat missing), DOWN (forced down), MAINTENANCE "
            "(service disabled), or empty when the server has no host or its host no nova-compute service."
        ),
    )
    host_status_changed_time: datetime | None = Field(default=None, description="When hostStatus last changed.")
    conditions: list[Condition] | None = CONDITIONS_FIELD
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status was computed from."
    )
    evacuation: Evacuation | None = Field(
        default=None, description="The latest evacuation of this server; written by the operator only."
    )


# Field selectors the API server answers (CRD selectableFields, GA in 1.32): a host's agent lists
# only the servers evacuated from its host, never the fleet.
SELECTABLE_FIELDS = [{"jsonPath": ".spec.host"}, {"jsonPath": ".status.evacuation.sourceHost"}]


class Server(KubeModel):
    """A tenant's server (virtual machine); its namespace is its project."""

    spec: ServerSpec
    status: ServerStatus | None = None
