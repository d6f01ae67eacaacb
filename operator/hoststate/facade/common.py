"""Helpers the facade's controllers share (as nova/api/openstack/common.py is for Nova's)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from oslo_utils import timeutils, uuidutils

from ..domain import evacuation as rules
from .cache import ClusterState
from .context import RequestContext
from .faults import HTTPBadRequest, HTTPNotFound

T = TypeVar("T")

MAX_LIMIT = 1000  # Nova's [api] max_limit default


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


def limited(
    items: list[T], id_of: Callable[[T], str], marker: str | None, limit: int | None
) -> tuple[list[T], int | None]:
    """Nova's paging (common.limited and the DB's marker): the items after the one whose id is `marker`
    (unknown: a 400), at most `limit` and never more than MAX_LIMIT of them; and the limit applied
    (None when all fitted), for next_page_query."""
    if marker:
        after = next((index + 1 for index, item in enumerate(items) if id_of(item) == marker), None)
        if after is None:
            raise HTTPBadRequest(f"Marker {marker} could not be found.")
        items = items[after:]
    if limit is not None:
        limit = min(limit, MAX_LIMIT)
    elif len(items) > MAX_LIMIT:
        limit = MAX_LIMIT
    return (items if limit is None else items[:limit]), limit


def next_page_query(
    query: Mapping[str, str], page: list[T], limit: int | None, id_of: Callable[[T], str]
) -> dict[str, str] | None:
    """The query of the next page's link (Nova's _get_collection_links): the same with the limit and the
    last item as marker, when the page is full; else None (no link)."""
    if limit is None or not page or len(page) != limit:
        return None
    following = {key: value for key, value in query.items() if key not in ("limit", "marker")}
    following.update(limit=str(limit), marker=id_of(page[-1]))
    return following


def changes_window(options: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """changes-since and changes-before, read as Nova reads them (timeutils.parse_isotime: UTC when the
    value names no zone); an unreadable one, or a window that ends before it begins, is a 400."""
    since, before = (_change_time(options, name) for name in ("changes-since", "changes-before"))
    if since is not None and before is not None and since > before:
        raise HTTPBadRequest("The value of changes-since must be less than or equal to changes-before.")
    return since, before


def _change_time(options: Mapping[str, str], name: str) -> datetime | None:
    if name not in options:
        return None
    try:
        return timeutils.parse_isotime(options[name])
    except ValueError:
        raise HTTPBadRequest(f"Invalid filter field: {name}.") from None


def changed_within(changed: datetime | None, since: datetime | None, before: datetime | None) -> bool:
    """Whether a last change at `changed` is in the window (no time: in none, as a NULL in Nova's query)."""
    return changed is not None and (since is None or changed >= since) and (before is None or changed <= before)
