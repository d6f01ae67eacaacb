"""The OS-EXT-SRV-ATTR:* attributes rule (nova/policies/extended_server_attributes.py)."""

from __future__ import annotations

from oslo_policy import policy

from .base import ADMIN

EXTENDED_SERVER_ATTRIBUTES = "os_compute_api:os-extended-server-attributes"

RULES = [
    policy.RuleDefault(EXTENDED_SERVER_ATTRIBUTES, ADMIN, "Return extended attributes (OS-EXT-SRV-ATTR:*) for server."),
]
