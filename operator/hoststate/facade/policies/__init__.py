"""Nova's policy rules for the routes the facade serves, one module per resource as in
nova/policies/: names (constants) and default check strings. The engine that enforces them is
facade/policy.py.

A Nova-format policy file overrides any of them, e.g.
`"os_compute_api:servers:show:host_status": "rule:admin_or_owner"`.
"""

from __future__ import annotations

from oslo_policy import policy

from . import base, evacuate, extended_server_attributes, migrations, servers, services


def list_rules() -> list[policy.RuleDefault]:
    return [
        *base.RULES,
        *services.RULES,
        *servers.RULES,
        *extended_server_attributes.RULES,
        *evacuate.RULES,
        *migrations.RULES,
    ]
