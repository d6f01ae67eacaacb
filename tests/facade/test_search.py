"""Nova's server search rules (hoststate.facade.search), without a cluster."""

from __future__ import annotations

import asyncio

import pytest

from hoststate.facade import search
from hoststate.facade.api_version import APIVersion
from hoststate.facade.faults import HTTPBadRequest, HTTPForbidden


def parse(query: dict[str, list[str]], version: str = "2.96", *, admin: bool = False, project: str | None = "p1"):
    return search.parse(
        query, APIVersion.parse(version), allow_all_filters=admin, is_admin=admin, project_id=project, user_id="u1"
    )


def server(name: str, *, created: str = "2026-01-01T00:00:00Z", **spec) -> dict:
    return {
        "metadata": {"name": name, "namespace": "p1", "uid": f"{name}-uid", "creationTimestamp": created},
        "spec": {"host": "h1", **spec},
    }


def found(query: dict[str, list[str]], servers: list[dict], **kwargs) -> list[str]:
    return [
        s["metadata"]["name"]
        for s in asyncio.run(parse(query, **kwargs).apply(servers, lambda host: "zone-of-" + host))
    ]


@pytest.mark.parametrize(
    ("statuses", "vm_states", "task_states"),
    [
        (["ACTIVE"], ["active"], ["default"]),
        (["shutoff"], ["stopped"], ["default"]),
        (["REBOOT"], ["active"], ["reboot_pending", "reboot_started", "rebooting"]),
        (["RESIZE"], ["active", "stopped"], ["resize_finish", "resize_migrated", "resize_migrating", "resize_prep"]),
        (["MIGRATING"], ["active", "paused"], ["migrating"]),
        (["nonsense"], [], []),
    ],
)
def test_task_and_vm_state_from_status(statuses: list[str], vm_states: list[str], task_states: list[str]) -> None:
    assert search.task_and_vm_state_from_status(statuses) == (vm_states, task_states)


def test_a_tenant_s_filters_grow_with_the_version() -> None:
    servers = [server("a", vmState="stopped"), server("b")]
    assert found({"vm_state": ["stopped"]}, servers, version="2.82") == ["b", "a"]  # dropped: both, newest first
    assert found({"vm_state": ["stopped"]}, servers, version="2.83") == ["a"]
    assert found({"vm_state": ["stopped"]}, servers, version="2.1", admin=True) == ["a"]
    assert found({"host": ["other"]}, servers) == ["b", "a"]  # host is never a tenant's
    assert found({"host": ["other"]}, servers, admin=True) == []


def test_exact_and_regular_expression_filters() -> None:
    servers = [
        server("web-1", flavorId="1", keyName="mine"),
        server("web-10", flavorId="10", created="2025-01-01T00:00:00Z"),
    ]
    assert found({"flavor": ["1"]}, servers) == ["web-1"]  # exact
    assert found({"name": ["web-1"]}, servers) == ["web-1", "web-10"]  # searched anywhere
    assert found({"name": ["^web-1$"]}, servers) == ["web-1"]
    assert found({"key_name": ["in"]}, servers, version="2.83") == ["web-1"]  # null never matches
    assert found({"availability_zone": ["zone-of-h1"]}, servers, version="2.83") == ["web-1", "web-10"]
    assert found({"uuid": ["web-1"]}, servers, admin=True) == []  # exact: the whole uuid
    assert found({"uuid": ["web-1-uid"]}, servers, admin=True) == ["web-1"]
    assert found({"power_state": ["1"]}, servers, version="2.83") == ["web-1", "web-10"]
    assert found({"created_at": ["^2026-01-01 00:00"]}, servers, version="2.83") == ["web-1"]
    assert found({"description": ["x"]}, servers, admin=True) == ["web-1", "web-10"]  # not a column: ignored
    assert found({"kernel_id": ["."]}, servers, admin=True) == []  # none has a kernel


def test_ip_filters_match_fixed_addresses_of_their_version() -> None:
    addresses = {
        "net": [{"addr": "10.0.0.5"}, {"addr": "fd00::5", "version": 6}, {"addr": "172.24.4.9", "type": "floating"}]
    }
    servers = [server("vm", addresses=addresses), server("bare")]
    assert found({"ip": ["10\\.0"]}, servers) == ["vm"]
    assert found({"ip": ["0\\.5"]}, servers) == []  # matched from the start
    assert found({"ip": ["172"]}, servers) == []  # floating addresses are not searched
    assert found({"ip6": ["fd00"]}, servers) == ["vm"]
    assert found({"ip6": ["fd00"]}, servers, version="2.4") == ["vm", "bare"]  # a tenant's ip6 needs 2.5


def test_status_and_the_empty_answers() -> None:
    servers = [server("a", vmState="stopped"), server("b", taskState="rebooting"), server("c")]
    assert found({"status": ["REBOOT"]}, servers) == ["b"]
    assert found({"status": ["SHUTOFF"], "vm_state": ["active"]}, servers, admin=True) == ["a"]  # status wins
    with pytest.raises(HTTPBadRequest, match="Invalid status value"):
        parse({"status": ["bogus"]})
    assert found({"status": ["bogus"]}, servers, version="2.37") == []
    assert found({"deleted": ["true"]}, servers, admin=True) == []
    assert found({"deleted": ["no"]}, servers, admin=True) == ["c", "b", "a"]
    assert found({"tags": ["x"]}, servers) == [] and found({"not-tags-any": ["x"]}, servers) == ["c", "b", "a"]


def test_scope() -> None:
    assert (parse({}).project_id, parse({}).user_id) == ("p1", None)
    assert (parse({}, project=None).project_id, parse({}, project=None).user_id) == (None, "u1")
    assert parse({"tenant_id": ["p2"]}, admin=True).all_tenants
    assert not parse({"tenant_id": ["p1"]}, admin=True).all_tenants  # the caller's own
    assert not parse({"tenant_id": ["p2"], "all_tenants": ["0"]}, admin=True).all_tenants
    assert parse({"all_tenants": [""]}).all_tenants
    all_p2 = parse({"tenant_id": ["p2"]}, admin=True)
    assert all_p2.exact == (("project_id", ("p2",)),) and all_p2.project_id is None
    assert parse({"project_id": ["p2"]}, admin=True).exact == ()  # without all_tenants: the caller's project
    with pytest.raises(HTTPBadRequest, match="Invalid input received"):
        parse({"all_tenants": ["perhaps"]})
    with pytest.raises(HTTPBadRequest, match=r"Invalid filter field: pci_devices\."):
        parse({"pci_devices": ["x"]}, admin=True)


def test_sort_parameters() -> None:
    assert parse({}).sort == (("created_at", "desc"), ("uuid", "desc"))
    assert parse({"sort_key": ["display_name", "host"], "sort_dir": ["asc"]}, admin=True).sort == (
        ("display_name", "asc"),
        ("host", "asc"),
        ("created_at", "asc"),
        ("uuid", "asc"),
    )
    assert parse({"sort_key": ["instance_type_id"]}).sort[0] == ("instance_type", "desc")
    assert parse({"sort_key": ["vcpus", "uuid"], "sort_dir": ["asc", "desc"]}, "2.74").sort == (
        ("uuid", "desc"),
        ("created_at", "desc"),
    )
    with pytest.raises(HTTPForbidden, match="Only administrators can sort servers by node"):
        parse({"sort_key": ["node"]})
    with pytest.raises(HTTPBadRequest, match="Sort direction size exceeds sort key size"):
        parse({"sort_dir": ["asc", "asc"]})


def test_sorting_puts_null_first_when_ascending() -> None:
    servers = [server("b", keyName="k2"), server("none"), server("a", keyName="k1")]
    assert found({"sort_key": ["key_name"], "sort_dir": ["asc"]}, servers) == ["none", "a", "b"]
    assert found({"sort_key": ["key_name"]}, servers) == ["b", "a", "none"]
    older = server("older", created="2025-01-01T00:00:00Z")
    assert found({}, [older, server("newer")]) == ["newer", "older"]


@pytest.mark.parametrize("version", ["2.1", "2.26", "2.66", "2.74", "2.96"])
def test_every_parameter_of_the_schema_is_handled(version: str) -> None:
    """Each key Nova's schema accepts either filters, sorts or is refused with Nova's 400;
    keys outside it are dropped (before 2.75 Nova strips them)."""
    values = {
        "changes-since": "2026-01-01T00:00:00Z",
        "changes-before": "2026-01-01T00:00:00Z",
        "limit": "1",
        "locked": "false",
        "all_tenants": "true",
        "deleted": "false",
        "sort_dir": "asc",
        "status": "ACTIVE",
    }
    servers = [server("vm")]
    schema = search.schemas.query_params(APIVersion.parse(version))
    for key in [*schema["properties"], "not-in-the-schema"]:
        if key == "sort_key":
            for sort_key in schema["properties"]["sort_key"]["items"]["enum"]:
                asyncio.run(parse({key: [sort_key]}, version, admin=True).apply(list(servers), lambda host: None))
            continue
        query = {key: [values.get(key, "x")]}
        if key in search.schemas.JOINED_TABLE_QUERY_PARAMS:
            with pytest.raises(HTTPBadRequest, match="Invalid filter field"):
                parse(query, version, admin=True)
            continue
        asyncio.run(parse(query, version, admin=True).apply(list(servers), lambda host: None))


def test_the_query_schema_and_ignored_sort_keys_change_at_nova_s_versions() -> None:
    schemas = search.schemas
    expected = [
        ("2.1", schemas.query_params_v21, schemas.IGNORED_SORT_KEYS),
        ("2.25", schemas.query_params_v21, schemas.IGNORED_SORT_KEYS),
        ("2.26", schemas.query_params_v226, schemas.IGNORED_SORT_KEYS),
        ("2.65", schemas.query_params_v226, schemas.IGNORED_SORT_KEYS),
        ("2.66", schemas.query_params_v266, schemas.IGNORED_SORT_KEYS),
        ("2.73", schemas.query_params_v273, schemas.IGNORED_SORT_KEYS_V273),
        ("2.74", schemas.query_params_v273, schemas.IGNORED_SORT_KEYS_V273),
        ("2.75", schemas.query_params_v275, []),
        ("2.96", schemas.query_params_v275, []),
    ]
    for version, query_schema, ignored in expected:
        assert schemas.query_params(APIVersion.parse(version)) is query_schema, version
        assert schemas.ignored_sort_keys(APIVersion.parse(version)) == ignored, version


def test_an_empty_limit_is_refused_by_the_schema() -> None:
    """Nova's non_negative_integer has minLength 1: `?limit=` is a 400, not an int('') later."""
    from hoststate.facade.validation import validate_query

    with pytest.raises(HTTPBadRequest, match="Invalid input for query parameters limit"):
        validate_query(search.schemas.query_params(APIVersion.parse("2.1")), {"limit": [""]})


def test_filters_run_with_re2_and_refuse_what_it_lacks() -> None:
    """Linear-time patterns: what used to take minutes in Python's re answers at once; what RE2
    cannot run (backreferences, lookaround) and patterns over 255 characters are Nova's 400."""
    from hoststate.facade.validation import validate_query

    schema = search.schemas.query_params(APIVersion.parse("2.96"))
    servers = [server(f"vm-{i}", displayName="a" * 60) for i in range(50)]
    assert found({"name": ["(.*)" * 63 + "\x00"]}, servers) == []
    assert found({"name": ["(a|b)*a(a|b){40}c"]}, servers) == []
    assert found({"name": ["A"]}, servers) == []  # case-sensitive, as before
    refused = {
        "(a)\\1": "is not a 'regex': invalid escape sequence: \\\\1",
        "(?=a)": "is not a 'regex': invalid perl operator: \\(\\?=",
        "[": "is not a 'regex': missing \\]: \\[",
        "x" * 256: "is not a 'regex': longer than 255 characters",
    }
    for pattern, reason in refused.items():
        for key in ("name", "ip", "ip6", "key_name"):
            with pytest.raises(HTTPBadRequest, match=f"Invalid input for query parameters {key}. .*{reason}"):
                validate_query(schema, {key: [pattern]})
    validate_query(schema, {"name": ["x" * 255]})


def _reference_order(servers: list[dict], keys: list[tuple[str, str]]) -> list[str]:
    """The order a database gives (NULL first when ascending), by one stable sort per key."""
    ordered = list(servers)
    for key, direction in reversed(keys):
        value = {
            "display_name": lambda s: s["spec"].get("displayName"),
            "key_name": lambda s: s["spec"].get("keyName"),
            "created_at": lambda s: s["metadata"]["creationTimestamp"],
            "uuid": lambda s: s["metadata"]["uid"],
        }[key]
        ordered.sort(key=lambda s, v=value: (v(s) is not None, v(s)), reverse=direction == "desc")
    return [s["metadata"]["name"] for s in ordered]


@pytest.mark.parametrize(
    "sort",
    [
        [],
        [("display_name", "asc")],
        [("key_name", "desc"), ("display_name", "asc")],
        [("key_name", "asc"), ("display_name", "desc")],
    ],
)
def test_a_search_in_slices_finds_and_orders_as_one_pass(monkeypatch: pytest.MonkeyPatch, sort: list) -> None:
    """Thousands of servers, filtered in a thread and sorted in slices of one server: the same
    servers in the same order, and the event loop ran other work meanwhile."""
    import random

    monkeypatch.setattr(search, "SLICE_SECONDS", 0.0)
    rng = random.Random(12)
    servers = [
        server(
            f"vm-{i:04d}",
            created=f"2026-01-01T00:00:{rng.randrange(3):02d}Z",  # ties: the uuid decides
            displayName=rng.choice(["web", "db", "cache"]) + str(rng.randrange(5)),
            **({"keyName": rng.choice(["k1", "k2"])} if rng.random() < 0.7 else {}),
        )
        for i in range(3000)
    ]
    query = {"name": ["^(web|db)"]}
    if sort:
        query |= {"sort_key": [key for key, _ in sort], "sort_dir": [direction for _, direction in sort]}
    expected_keys = [*sort, *((key, (sort or [("", "desc")])[0][1]) for key in ("created_at", "uuid"))]
    wanted = [s for s in servers if s["spec"]["displayName"].startswith(("web", "db"))]

    async def search_beside_a_ticker() -> tuple[list[str], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        result = await parse(query).apply(servers, lambda host: None)
        task.cancel()
        return [s["metadata"]["name"] for s in result], ticks

    names, ticks = asyncio.run(search_beside_a_ticker())
    assert names == _reference_order(wanted, expected_keys)
    assert ticks > 1000  # the loop ran beside the filter and between the slices of the sort
