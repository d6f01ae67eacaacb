"""Server rules for the routes served (nova/policies/servers.py)."""

from __future__ import annotations

from oslo_policy import policy

from .base import ADMIN, PROJECT_READER_OR_ADMIN

INDEX = "os_compute_api:servers:index"
DETAIL = "os_compute_api:servers:detail"
INDEX_ALL_TENANTS = "os_compute_api:servers:index:get_all_tenants"
DETAIL_ALL_TENANTS = "os_compute_api:servers:detail:get_all_tenants"
ALLOW_ALL_FILTERS = "os_compute_api:servers:allow_all_filters"
SHOW = "os_compute_api:servers:show"
SHOW_HOST_STATUS = "os_compute_api:servers:show:host_status"
SHOW_HOST_STATUS_UNKNOWN_ONLY = "os_compute_api:servers:show:host_status:unknown-only"

RULES = [
    policy.RuleDefault(INDEX, PROJECT_READER_OR_ADMIN, "List all servers."),
    policy.RuleDefault(DETAIL, PROJECT_READER_OR_ADMIN, "List all servers with detailed information."),
    policy.RuleDefault(INDEX_ALL_TENANTS, ADMIN, "List all servers for all projects."),
    policy.RuleDefault(DETAIL_ALL_TENANTS, ADMIN, "List all servers with details for all projects."),
    policy.RuleDefault(ALLOW_ALL_FILTERS, ADMIN, "Allow all filters when listing servers."),
    policy.RuleDefault(SHOW, PROJECT_READER_OR_ADMIN, "Show a server."),
    policy.RuleDefault(SHOW_HOST_STATUS, ADMIN, "Show a server with additional host status information."),
    policy.RuleDefault(
        SHOW_HOST_STATUS_UNKNOWN_ONLY,
        ADMIN,
        "Show a server with additional host status information, only if host status is UNKNOWN.",
    ),
]
