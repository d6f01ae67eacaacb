"""The os-migrations rules (nova/policies/migrations.py)."""

from __future__ import annotations

from oslo_policy import policy

from .base import ADMIN

POLICY_ROOT = "os_compute_api:os-migrations:%s"
INDEX = POLICY_ROOT % "index"
INDEX_ALL_PROJECTS = POLICY_ROOT % "index:all_projects"
INDEX_HOST = POLICY_ROOT % "index:host"

RULES = [
    # Nova's default is PROJECT_MANAGER_OR_ADMIN; the facade gives no manager role, so: admin.
    policy.RuleDefault(INDEX, ADMIN, "List migrations without host info."),
    policy.RuleDefault(INDEX_ALL_PROJECTS, ADMIN, "List migrations for all or cross projects."),
    policy.RuleDefault(INDEX_HOST, ADMIN, "List migrations with host info."),
]
