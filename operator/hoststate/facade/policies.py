"""Nova's policy rules for the routes the facade serves: names and default check strings as in
nova/policies/base.py, servers.py, services.py, extended_server_attributes.py and evacuate.py.

A Nova-format policy file overrides any of them, e.g.
`"os_compute_api:servers:show:host_status": "rule:admin_or_owner"`.
"""

from __future__ import annotations

from oslo_policy import policy

ADMIN = "rule:context_is_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"

BASE_RULES = [
    policy.RuleDefault("context_is_admin", "role:admin", "Decides what is required for the 'is_admin:True' check."),
    policy.RuleDefault(
        "admin_or_owner",
        "is_admin:True or project_id:%(project_id)s",
        "Default rule for most non-Admin APIs (legacy; kept so policy files can name it).",
    ),
    policy.RuleDefault("admin_api", "is_admin:True", "Default rule for most Admin APIs (legacy)."),
    policy.RuleDefault("project_member_api", "role:member and project_id:%(project_id)s", "Project member."),
    policy.RuleDefault("project_reader_api", "role:reader and project_id:%(project_id)s", "Project reader."),
    policy.RuleDefault("project_member_or_admin", "rule:project_member_api or rule:context_is_admin", ""),
    policy.RuleDefault("project_reader_or_admin", "rule:project_reader_api or rule:context_is_admin", ""),
]

SERVICES = "os_compute_api:os-services:%s"
SERVICES_RULES = [
    policy.RuleDefault(SERVICES % "list", ADMIN, "List all running Compute services in a region."),
    policy.RuleDefault(SERVICES % "update", ADMIN, "Update a Compute service."),
    policy.RuleDefault(SERVICES % "delete", ADMIN, "Delete a Compute service."),
]

SERVERS = "os_compute_api:servers:%s"
SERVERS_RULES = [
    policy.RuleDefault(SERVERS % "index", PROJECT_READER_OR_ADMIN, "List all servers."),
    policy.RuleDefault(SERVERS % "detail", PROJECT_READER_OR_ADMIN, "List all servers with detailed information."),
    policy.RuleDefault(SERVERS % "index:get_all_tenants", ADMIN, "List all servers for all projects."),
    policy.RuleDefault(SERVERS % "detail:get_all_tenants", ADMIN, "List all servers with details for all projects."),
    policy.RuleDefault(SERVERS % "allow_all_filters", ADMIN, "Allow all filters when listing servers."),
    policy.RuleDefault(SERVERS % "show", PROJECT_READER_OR_ADMIN, "Show a server."),
    policy.RuleDefault(SERVERS % "show:host_status", ADMIN, "Show a server with additional host status information."),
    policy.RuleDefault(
        SERVERS % "show:host_status:unknown-only",
        ADMIN,
        "Show a server with additional host status information, only if host status is UNKNOWN.",
    ),
]

EXTENDED_SERVER_ATTRIBUTES = "os_compute_api:os-extended-server-attributes"
EXTENDED_SERVER_ATTRIBUTES_RULES = [
    policy.RuleDefault(EXTENDED_SERVER_ATTRIBUTES, ADMIN, "Return extended attributes (OS-EXT-SRV-ATTR:*) for server."),
]


EVACUATE = "os_compute_api:os-evacuate"  # nova/policies/evacuate.py
EVACUATE_RULES = [
    policy.RuleDefault(EVACUATE, ADMIN, "Evacuate a server from a failed host to a new host."),
]


def list_rules() -> list[policy.RuleDefault]:
    return [*BASE_RULES, *SERVICES_RULES, *SERVERS_RULES, *EXTENDED_SERVER_ATTRIBUTES_RULES, *EVACUATE_RULES]
