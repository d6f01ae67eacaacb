"""os-services rules (nova/policies/services.py), which also accept the service manager: the
right to patch computeservices, without reading every tenant's servers."""

from __future__ import annotations

from oslo_policy import policy

from .base import ADMIN_OR_SERVICE_MANAGER

LIST = "os_compute_api:os-services:list"
UPDATE = "os_compute_api:os-services:update"
DELETE = "os_compute_api:os-services:delete"

RULES = [
    policy.RuleDefault(LIST, ADMIN_OR_SERVICE_MANAGER, "List all running Compute services in a region."),
    policy.RuleDefault(UPDATE, ADMIN_OR_SERVICE_MANAGER, "Update a Compute service."),
    policy.RuleDefault(DELETE, ADMIN_OR_SERVICE_MANAGER, "Delete a Compute service."),
]
