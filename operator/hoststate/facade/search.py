"""Server search as Nova does it: the options of GET /servers and /servers/detail (servers.py
_get_servers), then the filters and sort order of nova.compute.api.API.get_all and the
database's instance_get_all_by_filters_sort, applied to the facade's cached Servers.

Nova compares most filters as regular expressions on a column (the database's REGEXP: found
anywhere in the value), a few exactly (EXACT below). They run with RE2, in time linear in the value
(validation.compile_pattern), never Python's backtracking `re`. Attributes the Server resource does
not model have the value Nova stores for a server without them (no kernel, no locks, no tags...),
so a filter on them finds what Nova would find for such servers.

A search over thousands of servers takes tens of milliseconds and more (half a second for a worst-case
pattern over 2,000 long names), and must not hold the event loop meanwhile: the filters run in a
worker thread, where RE2 releases the GIL while it matches, and the sort (pure Python) runs on the
loop in slices (`cooperatively`) that hand it back to other requests every SLICE_SECONDS. Measured
with bench/hostile_regex.py: another tenant's GETs wait less beside a filter in a thread than
beside one in slices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

from oslo_utils import strutils

from .api_version import APIVersion
from .common import changed_within, changes_window
from .faults import HTTPBadRequest, HTTPForbidden
from .schemas import servers as schemas
from .validation import compile_pattern
from .views import servers as views

Obj = dict[str, Any]
ZoneOf = Callable[[str], str | None]
Item = TypeVar("Item")
Result = TypeVar("Result")

# The longest a search holds the event loop at once: other requests wait at most this long per
# search in progress (an admin's GET between the slices of the sort of a tenant's 10,000 servers).
SLICE_SECONDS = 0.002


async def cooperatively(items: list[Item], work: Callable[[Item], Result]) -> list[Result]:
    """[work(item) for item in items], yielding to the event loop whenever a slice of SLICE_SECONDS is used."""
    results = []
    deadline = time.perf_counter() + SLICE_SECONDS
    for item in items:
        results.append(work(item))
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + SLICE_SECONDS
    return results


# servers.py _get_server_search_options: what a caller without allow_all_filters may use.
USER_OPTIONS = ("reservation_id", "name", "status", "image", "flavor", "ip", "changes-since", "all_tenants")
USER_OPTIONS_BY_VERSION = (
    ("2.5", ("ip6",)),
    ("2.26", schemas.TAG_FILTERS),
    ("2.66", ("changes-before",)),
    ("2.73", ("locked",)),
    (
        "2.83",
        (
            "availability_zone",
            "config_drive",
            "key_name",
            "created_at",
            "launched_at",
            "terminated_at",
            "power_state",
            "task_state",
            "vm_state",
            "progress",
            "user_id",
        ),
    ),
    ("2.90", ("hostname",)),
)
PAGING_SORTING = ("sort_key", "sort_dir", "limit", "marker")
ADMIN_ONLY_SORT_KEYS = ("host", "node")
DEFAULT_SORT_KEYS = ("created_at", "uuid")  # Nova's created_at, then its database id
DEFAULT_SORT = (("created_at", "desc"), ("uuid", "desc"))

# compute api filter_mapping: the option's name -> the column it filters.
COLUMN_OF_OPTION = {"image": "image_ref", "name": "display_name", "tenant_id": "project_id", "flavor": "instance_type"}
# The database's exact_match_filter_names (the rest are regular expressions).
EXACT = frozenset({"project_id", "user_id", "image_ref", "vm_state", "instance_type", "uuid", "host", "task_state"})
# Options handled apart from the column filters (or, like `description`, not a column: ignored).
NOT_COLUMNS = frozenset(
    {
        "status",
        "all_tenants",
        "deleted",
        "soft_deleted",
        "changes-since",
        "changes-before",
        "locked",
        "ip",
        "ip6",
        "description",
        *schemas.TAG_FILTERS,
        *PAGING_SORTING,
    }
)


def columns(zone_of: ZoneOf) -> dict[str, Callable[[Obj], Any]]:
    """What each instance column holds for a Server (the values its body shows)."""

    def spec(server: Obj) -> Obj:
        return server.get("spec") or {}

    def host(server: Obj) -> str | None:
        return spec(server).get("host") or None

    def zone(server: Obj) -> str | None:
        value = spec(server).get("availabilityZone")
        return value or (zone_of(value_host) if (value_host := host(server)) else None)

    return {
        "uuid": views.server_id,
        "display_name": views.server_name,
        "hostname": lambda s: s["metadata"]["name"],
        "project_id": lambda s: s["metadata"].get("namespace"),
        "user_id": lambda s: spec(s).get("userId") or None,
        "image_ref": lambda s: spec(s).get("imageId") or "",
        "instance_type": lambda s: spec(s).get("flavorId"),
        "vm_state": lambda s: spec(s).get("vmState", "active"),
        "task_state": lambda s: spec(s).get("taskState"),
        "power_state": lambda s: spec(s).get("powerState", 1),
        "host": host,
        "node": host,
        "availability_zone": zone,
        "key_name": lambda s: spec(s).get("keyName"),
        "launch_index": lambda s: 0,
        "reservation_id": lambda s: f"r-{views.server_id(s)[:8]}",
        "config_drive": lambda s: "",
        "auto_disk_config": lambda s: False,
        "progress": lambda s: 0,
        "locked": lambda s: False,
        "created_at": views.created_at,
        "launched_at": views.launched_at,
        "updated_at": views.last_update,
        **dict.fromkeys(
            (
                "kernel_id",
                "ramdisk_id",
                "root_device_name",
                "access_ip_v4",
                "access_ip_v6",
                "locked_by",
                "display_description",
                "terminated_at",
            ),
            lambda s: None,
        ),
    }


def _column_text(value: Any) -> str | None:
    """A column as the database's REGEXP sees it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def task_and_vm_state_from_status(statuses: Iterable[str]) -> tuple[list[str], list[str]]:
    """nova.api.openstack.common.task_and_vm_state_from_status."""
    wanted = {status.strip().lower() for status in statuses}
    vm_states, task_states = set(), set()
    for vm_state, task_map in views.STATE_MAP.items():
        for task_state, status in task_map.items():
            if status.lower() in wanted:
                vm_states.add(vm_state)
                task_states.add(task_state)
    return sorted(vm_states), sorted(task_states)


def _bool_option(value: str, *, strict: bool) -> bool:
    """common.is_all_tenants / is_locked: an unrecognised value is a 400."""
    try:
        return strutils.bool_from_string(value, strict=strict)
    except ValueError as error:
        raise HTTPBadRequest(f"Invalid input received: {error}") from None


@dataclass(frozen=True)
class ServerSearch:
    """A parsed search: hashable, so it is part of the response cache's key."""

    all_tenants: bool = False
    project_id: str | None = None  # the scope when not all_tenants (None: the caller's user)
    user_id: str | None = None
    exact: tuple[tuple[str, tuple[str, ...]], ...] = ()  # column -> accepted values
    regex: tuple[tuple[str, str], ...] = ()  # column -> pattern
    vm_states: tuple[str, ...] | None = None
    task_states: tuple[str, ...] | None = None
    changes_since: datetime | None = None
    changes_before: datetime | None = None
    locked: bool | None = None
    ip: str | None = None
    ip6: str | None = None
    nothing: bool = False  # Nova answers an empty list without searching
    sort: tuple[tuple[str, str], ...] = ()
    limit: int | None = None
    marker: str | None = None

    async def apply(self, servers: Iterable[Obj], zone_of: ZoneOf) -> list[Obj]:
        """The matching servers in the search's order: filtered in a worker thread, sorted in slices."""
        if self.nothing:
            return []
        servers = list(servers)  # taken at once: the cache may change while the search waits
        column = columns(zone_of)
        matches = self.matcher(column)  # reads only the servers and the zones: safe beside the loop
        kept = await asyncio.to_thread(lambda: [matches(server) for server in servers])
        matching = [server for server, keep in zip(servers, kept, strict=True) if keep]
        return await sort_servers(matching, self.sort, column)

    def matcher(self, column: Mapping[str, Callable[[Obj], Any]]) -> Callable[[Obj], bool]:
        """Whether a server passes every filter of the search."""
        tests: list[Callable[[Obj], bool]] = []
        for name, values in self.exact:
            tests.append(lambda s, name=name, values=values: _column_text(column[name](s)) in values)
        for name, pattern in self.regex:
            compiled = compile_pattern(pattern)
            tests.append(lambda s, name=name, compiled=compiled: _regex_match(compiled, column[name](s)))
        if self.vm_states is not None:
            tests.append(lambda s: column["vm_state"](s) in self.vm_states)
        if self.task_states is not None:
            tests.append(lambda s: column["task_state"](s) in self.task_states)
        if self.changes_since is not None or self.changes_before is not None:
            tests.append(lambda s: changed_within(views.last_update(s), self.changes_since, self.changes_before))
        if self.locked is not None:
            tests.append(lambda s: column["locked"](s) == self.locked)
        if self.ip is not None or self.ip6 is not None:
            tests.append(_ip_test(self.ip, self.ip6))
        return lambda server: all(test(server) for test in tests)


def _regex_match(pattern: Any, value: Any) -> bool:
    text = _column_text(value)
    return text is not None and pattern.search(text) is not None


def _ip_test(ip: str | None, ip6: str | None) -> Callable[[Obj], bool]:
    """compute api _ip_filter: matched from the start of fixed addresses of the matching IP version."""
    ipv4, ipv6 = compile_pattern(str(ip)), compile_pattern(str(ip6))

    def test(server: Obj) -> bool:
        for entries in ((server.get("spec") or {}).get("addresses") or {}).values():
            for entry in entries:
                if entry.get("type", "fixed") != "fixed" or not entry.get("addr"):
                    continue
                pattern = ipv4 if entry.get("version", 4) == 4 else ipv6
                if pattern.match(entry["addr"]):
                    return True
        return False

    return test


# Sort keys whose raw text sorts as the value does (RFC 3339 in UTC with a Z): no parsing.
SORT_TEXT = {"created_at": lambda s: s["metadata"].get("creationTimestamp"), "uuid": views.server_id}


async def sort_servers(
    servers: list[Obj], sort: tuple[tuple[str, str], ...], column: Mapping[str, Callable]
) -> list[Obj]:
    """NULL first when ascending (as MySQL). The keys are computed in slices (`cooperatively`); the
    sorts themselves compare them in C, a few milliseconds for 10,000 servers."""
    if sort == DEFAULT_SORT:  # the common case, kept cheap: neither key is ever null
        rows = await cooperatively(
            servers, lambda s: (s["metadata"].get("creationTimestamp", ""), s["metadata"]["uid"], s)
        )
        rows.sort(key=itemgetter(0, 1), reverse=True)
        return [row[-1] for row in rows]
    getters = [SORT_TEXT.get(key) or column[key] for key, _ in sort]
    rows = await cooperatively(servers, lambda s: (*((v is not None, v) for v in (g(s) for g in getters)), s))
    directions = {direction for _, direction in sort}
    if len(directions) == 1:
        rows.sort(key=itemgetter(*range(len(getters))), reverse=directions == {"desc"})
        return [row[-1] for row in rows]
    for index, (_, direction) in reversed(list(enumerate(sort))):  # stable: last key first
        rows.sort(key=itemgetter(index), reverse=direction == "desc")
    return [row[-1] for row in rows]


def parse(
    query: Mapping[str, list[str]],
    version: APIVersion,
    *,
    allow_all_filters: bool,
    is_admin: bool,
    project_id: str | None,
    user_id: str,
) -> ServerSearch:
    """servers.py _get_servers up to the compute API call. The query is already validated
    against the version's schema; each step below raises Nova's error for what it reads, in
    Nova's order."""
    query = _known_to_schema(query, version)
    options = _search_options(query, version, allow_all_filters=allow_all_filters)
    vm_states, task_states, no_status_matches = _status_filter(query, version)
    changes_since, changes_before = changes_window(options)
    all_tenants = _all_tenants(options, project_id)
    locked = _bool_option(options["locked"], strict=True) if "locked" in options else None
    exact, regex = _column_filters(options, all_tenants=all_tenants, vm_states=vm_states, task_states=task_states)
    return ServerSearch(
        all_tenants=all_tenants,
        project_id=None if all_tenants else project_id,
        user_id=None if all_tenants or project_id else user_id,
        exact=exact,
        regex=regex,
        vm_states=vm_states,
        task_states=task_states,
        changes_since=changes_since,
        changes_before=changes_before,
        locked=locked,
        ip=options.get("ip"),
        ip6=options.get("ip6"),
        nothing=no_status_matches or _finds_nothing(options),
        sort=_sort_params(query, version, is_admin),
        limit=int(query["limit"][-1]) if "limit" in query else None,
        marker=query["marker"][-1] if "marker" in query else None,
    )


def _known_to_schema(query: Mapping[str, list[str]], version: APIVersion) -> dict[str, list[str]]:
    """Keys the version's schema does not know are dropped, as Nova's validation strips them
    before 2.75 (from 2.75 the schema refuses them); internal ones (`_...`) stay, to be refused."""
    known = schemas.query_params(version)["properties"]
    return {key: values for key, values in query.items() if key in known or key.startswith("_")}


def _search_options(query: Mapping[str, list[str]], version: APIVersion, *, allow_all_filters: bool) -> dict[str, str]:
    """The filters the caller may use, each with its last value (_get_server_search_options);
    filters on joined tables and internal attributes are a 400."""
    options = {key: values[-1] for key, values in query.items()}
    if allow_all_filters:
        for key in PAGING_SORTING:
            options.pop(key, None)
    else:
        allowed = set(USER_OPTIONS)
        for since, names in USER_OPTIONS_BY_VERSION:
            if version.at_least(since):
                allowed.update(names)
        options = {key: value for key, value in options.items() if key in allowed}
    for key in options:
        if key in schemas.JOINED_TABLE_QUERY_PARAMS or key.startswith("_"):
            raise HTTPBadRequest(f"Invalid filter field: {key}.")
    return options


def _status_filter(
    query: Mapping[str, list[str]], version: APIVersion
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, bool]:
    """The VM and task states `status` stands for (None: no filter), and whether it matches no
    state at all (from 2.38 a 400; before it, an empty answer)."""
    if "status" not in query:
        return None, None, False
    vm_states, task_states = task_and_vm_state_from_status(query["status"])
    no_match = not vm_states and not task_states
    if no_match and version.at_least("2.38"):
        raise HTTPBadRequest("Invalid status value")
    # A status whose task state is any ('default') filters on the VM state only.
    return tuple(vm_states), None if "default" in task_states else tuple(task_states), no_match


def _all_tenants(options: Mapping[str, str], project_id: str | None) -> bool:
    """all_tenants, given empty or as a boolean; a tenant_id other than the caller's project means
    all tenants too, unless all_tenants says otherwise."""
    if "all_tenants" in options:
        return options["all_tenants"] == "" or _bool_option(options["all_tenants"], strict=True)
    return "tenant_id" in options and project_id != options["tenant_id"]


def _finds_nothing(options: Mapping[str, str]) -> bool:
    """Searches the facade answers with an empty list without looking."""
    # Deleted servers only: the facade keeps none.
    deleted_only = "deleted" in options and strutils.bool_from_string(options["deleted"], default=False)
    # Servers carry no tags: none has them (and not-tags keeps all).
    return deleted_only or "tags" in options or "tags-any" in options


def _column_filters(
    options: Mapping[str, str],
    *,
    all_tenants: bool,
    vm_states: tuple[str, ...] | None,
    task_states: tuple[str, ...] | None,
) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[tuple[str, str], ...]]:
    """The options that filter a column: (column, accepted values) compared exactly, and
    (column, pattern) as regular expressions."""
    exact: dict[str, tuple[str, ...]] = {}
    regex: dict[str, str] = {}
    for key, value in options.items():
        if key in NOT_COLUMNS or (not all_tenants and key in ("tenant_id", "project_id")):
            continue  # the project filters only apply across tenants; else the scope is the caller's
        name = COLUMN_OF_OPTION.get(key, key)
        if name in EXACT:
            exact[name] = (value,)
        else:
            regex[name] = value
    # status wins over vm_state and task_state: Nova sets them from it.
    if vm_states is not None:
        exact.pop("vm_state", None)
    if task_states is not None:
        exact.pop("task_state", None)
    return tuple(sorted(exact.items())), tuple(sorted(regex.items()))


def _sort_params(query: Mapping[str, list[str]], version: APIVersion, is_admin: bool) -> tuple[tuple[str, str], ...]:
    """common.get_sort_params, remove_invalid_sort_keys and the database's process_sort_params."""
    keys = [key.strip() for key in query.get("sort_key", [])]
    dirs = [direction.strip() for direction in query.get("sort_dir", [])]
    ignored = schemas.ignored_sort_keys(version)
    for key in list(keys):
        if key in ignored:
            index = keys.index(key)
            if len(dirs) > index:
                dirs.pop(index)
            keys.pop(index)
        elif key in ADMIN_ONLY_SORT_KEYS and not is_admin:
            raise HTTPForbidden(f"Only administrators can sort servers by {key}")
    keys = keys or ["created_at"]
    dirs = dirs or ["desc"]
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise HTTPBadRequest("Invalid input received: Unknown sort direction, must be 'desc' or 'asc'")
    if len(dirs) > len(keys):
        raise HTTPBadRequest("Invalid input received: Sort direction size exceeds sort key size")
    dirs += [dirs[0]] * (len(keys) - len(dirs))
    for key in DEFAULT_SORT_KEYS:
        if key not in keys:
            keys.append(key)
            dirs.append(dirs[0])
    renamed = {"instance_type_id": "instance_type"}
    return tuple((renamed.get(key, key), direction) for key, direction in zip(keys, dirs, strict=True))
