"""The base rules the others are written with (nova/policies/base.py)."""

from __future__ import annotations

from oslo_policy import policy

# The roles the facade gives (facade/auth.py maps them from RBAC rights). `service_manager` is ours,
# not Keystone's `service`: Nova gives `service` to other OpenStack services (service_api rules),
# and a fault monitor that may force hosts down must pass os-services and nothing else.
ADMIN_ROLE = "admin"
SERVICE_MANAGER_ROLE = "service_manager"
MEMBER_ROLE = "member"
READER_ROLE = "reader"

ADMIN = "rule:context_is_admin"
ADMIN_OR_SERVICE_MANAGER = "rule:admin_or_service_manager"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"

RULES = [
    policy.RuleDefault(
        "context_is_admin", f"role:{ADMIN_ROLE}", "Decides what is required for the 'is_admin:True' check."
    ),
    policy.RuleDefault(
        "admin_or_owner",
        "is_admin:True or project_id:%(project_id)s",
        "Default rule for most non-Admin APIs (legacy; kept so policy files can name it).",
    ),
    policy.RuleDefault("admin_api", "is_admin:True", "Default rule for most Admin APIs (legacy)."),
    policy.RuleDefault(
        "service_manager_api", f"role:{SERVICE_MANAGER_ROLE}", "May manage compute services (force down, disable)."
    ),
    policy.RuleDefault("admin_or_service_manager", "rule:context_is_admin or rule:service_manager_api", ""),
    policy.RuleDefault("project_member_api", "role:member and project_id:%(project_id)s", "Project member."),
    policy.RuleDefault("project_reader_api", "role:reader and project_id:%(project_id)s", "Project reader."),
    policy.RuleDefault("project_member_or_admin", "rule:project_member_api or rule:context_is_admin", ""),
    policy.RuleDefault("project_reader_or_admin", "rule:project_reader_api or rule:context_is_admin", ""),
]
