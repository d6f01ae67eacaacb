"""os-services rules (nova/policies/services.py)."""

from __future__ import annotations

from oslo_policy import policy

from .base import ADMIN

LIST = "os_compute_api:os-services:list"
UPDATE = "os_compute_api:os-services:update"
DELETE = "os_compute_api:os-services:delete"

RULES = [
    policy.RuleDefault(LIST, ADMIN, "List all running Compute services in a region."),
    policy.RuleDefault(UPDATE, ADMIN, "Update a Compute service."),
    policy.RuleDefault(DELETE, ADMIN, "Delete a Compute service."),
]
