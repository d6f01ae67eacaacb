"""The evacuate action rule (nova/policies/evacuate.py)."""

from __future__ import annotations

from oslo_policy import policy

from .base import ADMIN

EVACUATE = "os_compute_api:os-evacuate"

RULES = [
    policy.RuleDefault(EVACUATE, ADMIN, "Evacuate a server from a failed host to a new host."),
]
