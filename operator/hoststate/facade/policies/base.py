"""The base rules the others are written with (nova/policies/base.py)."""

from __future__ import annotations

from oslo_policy import policy

ADMIN = "rule:context_is_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"

RULES = [
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
