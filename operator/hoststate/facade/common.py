"""Helpers the facade's controllers share (as nova/api/openstack/common.py is for Nova's)."""

from __future__ import annotations

from typing import Any

from oslo_utils import uuidutils

from ..domain import evacuation as rules
from .cache import ClusterState
from .context import RequestContext
from .faults import HTTPNotFound


def get_instance(state: ClusterState, ctx: RequestContext, server_id: str) -> dict[str, Any]:
    """Nova's get_instance (instance_get_by_uuid with project_only): other projects' servers do not exist."""
    server = state.server_by_uid(server_id.lower()) if uuidutils.is_uuid_like(server_id) else None
    if server is None or (not ctx.is_admin and server["metadata"]["namespace"] != ctx.project_id):
        raise HTTPNotFound(f"Instance {server_id} could not be found.")
    return server


def invalid_state_message(action: str, server_id: str, attr: str, state: str | None) -> str:
    """nova.api.openstack.common.raise_http_conflict_for_instance_invalid_state."""
    if state is not None:
        return f"Cannot '{action}' instance {server_id} while it is in {attr} {state}"
    return f"Instance {server_id} is in an invalid state for '{action}'"


def pending_evacuations_from(state: ClusterState, host: str) -> list[str]:
    """Servers (namespace/name) evacuated from `host` whose record is not `completed`."""
    return rules.pending_evacuations_from(
        host,
        (
            (
                f"{server['metadata']['namespace']}/{server['metadata']['name']}",
                rules.parse_request(server["metadata"].get("annotations")),
                (server.get("status") or {}).get("evacuation"),
            )
            for server in state.all_servers()
        ),
    )


def force_up_refused_message(host: str) -> str:
    """Nova's refusal of force-up while evacuations from the host remain (bug 1922053), word for
    word: the host's agent turns them `completed` when it starts (hoststate.agent.cleanup)."""
    return (
        f"Unable to force up host {host} as `done` evacuation migration records remain associated with "
        "the host. Ensure the compute service has been restarted, allowing these records to move to "
        "`completed` before retrying this request."
    )
