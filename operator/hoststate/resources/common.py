"""Pieces shared by the custom resource models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from ..domain.hoststatus import HOST_STATUSES

# Nova's host name rule (nova/api/validation/parameter_types.py: `hostname`).
NOVA_HOST_PATTERN = r"^[a-zA-Z0-9-._]*$"
NOVA_HOST_MAX_LENGTH = 255
# Nova's column and schema sizes for names and free text (display_name, key_name, availability_zone,
# disabled_reason, metadata keys and values: nova/db/main/models.py, nova/api/validation).
NOVA_STRING_MAX_LENGTH = 255

# A map key of 1 to 255 characters. The CRD generator turns the bound into a CEL rule (OpenAPI has
# no keyword for key length that the API server enforces); the map's maxProperties keeps the
# rule's estimated cost within the CRD's budget.
NovaKey = Annotated[str, StringConstraints(min_length=1, max_length=NOVA_STRING_MAX_LENGTH)]
NovaString = Annotated[str, Field(max_length=NOVA_STRING_MAX_LENGTH)]

# The values of domain.HostStatus, the unset one first: the API server quotes the CRD's enum in this
# order when it refuses a value.
HostStatusValue = Literal[tuple(sorted(HOST_STATUSES, key=bool))]


class KubeModel(BaseModel):
    """Base for CR parts: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=False,
    )


def cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    return {"rule": rule, "message": message, **extra}


class Condition(KubeModel):
    """A standard Kubernetes condition (the shape of metav1.Condition)."""

    type: str = Field(max_length=316, description="Type of the condition, in CamelCase (for example Up).")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


CONDITIONS_FIELD: Any = Field(
    default=None,
    max_length=16,
    description="Standard conditions, one per type.",
    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
)
