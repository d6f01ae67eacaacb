"""Conformance with Nova's API samples: each sample request, sent to the facade at the sample's
microversion, answers with the same keys (recursively) and JSON value types as Nova's response
sample. The values themselves differ (ids, hosts, times); the shapes must not.

How a sample is compared:
- objects: the same set of keys, except the documented ALLOWED differences below;
- arrays: every element has the shape of one of the sample's elements (Nova's elements may
  differ: a self link and a describedby link, a disabled service and an enabled one);
- scalars: the same JSON type (boolean is not integer), or one ALLOWED for that path.
The request bodies are Nova's samples with the host name `host1` replaced by the test's own
host (ComputeServices are cluster-scoped and tests must not share one).

Allowed differences, each where Nova itself answers that way for such a resource:
- `GET /` lists only v2.1: the legacy v2.0 API (`/v2`) is not served (404, see
  test_v2_is_not_served), so Nova's v2.0 entry is absent.
- os-services 2.53, PUT answers: `disabled_reason` may be null: Nova's sample service was
  disabled beforehand (reason "test2"); the test's is enabled, and Nova answers null for an
  enabled service (its own list samples show both).
- servers: `security_groups` is absent: the Server resource has none, and Nova leaves the key
  out for a server without security groups.
- servers: `os-extended-volumes:volumes_attached` is `[]`: no volumes are modelled; Nova shows
  `[]` for a server without volumes.
- servers: `OS-EXT-SRV-ATTR:root_device_name` and `OS-EXT-SRV-ATTR:user_data` are null: not
  modelled; Nova's schema allows null (a server booted without user data, before a root device
  is known).
- servers: `key_name` is a string (the sample's server has no key pair, so null there; Nova's
  schema is string or null): the test's server has one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.support.facade import RunningFacade, http

from .conftest import SAMPLES, Users, World, get_service

NULL, STRING, ARRAY = "null", "string", "array"


def json_type(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return ARRAY
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not JSON: {value!r}")


@dataclass(frozen=True)
class Allowed:
    """Documented differences, by path (`server.key_name`, `servers[].security_groups`)."""

    absent: frozenset[str] = frozenset()  # keys Nova's sample has that the facade leaves out
    empty: frozenset[str] = frozenset()  # arrays the facade answers empty
    types: dict[str, frozenset[str]] = field(default_factory=dict)  # further JSON types allowed


def shape_problems(actual: Any, expected: Any, path: str, allowed: Allowed) -> list[str]:
    """What in `actual` does not have the shape of Nova's `expected` (the sample's value at `path`)."""
    kind, expected_kind = json_type(actual), json_type(expected)
    if kind != expected_kind and kind not in allowed.types.get(path, frozenset()):
        return [f"{path}: {kind}, Nova has {expected_kind}"]
    problems: list[str] = []
    if kind == "object" and expected_kind == "object":
        for key in sorted(expected.keys() - actual.keys()):
            if f"{path}.{key}" not in allowed.absent:
                problems.append(f"{path}.{key}: missing")
        for key in sorted(actual.keys() - expected.keys()):
            problems.append(f"{path}.{key}: not in Nova's sample")
        for key in sorted(actual.keys() & expected.keys()):
            problems += shape_problems(actual[key], expected[key], f"{path}.{key}", allowed)
    elif kind == ARRAY and expected_kind == ARRAY and expected:
        if not actual and path not in allowed.empty:
            problems.append(f"{path}: empty, Nova's sample is not")
        # Elements may differ among themselves (a self link and a describedby link; a service
        # with a disabled_reason and one with null): each must have the shape of one of Nova's.
        for element in actual:
            candidates = [shape_problems(element, nova, f"{path}[]", allowed) for nova in expected]
            problems += min(candidates, key=len)
    return problems


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def request_body(name: str, host: str) -> Any:
    """Nova's request sample, for the test's host instead of Nova's `host1`."""
    body = sample(name)
    if body.get("host") == "host1":
        body["host"] = host
    return body


def assert_conforms(actual: Any, response_sample: str, allowed: Allowed = Allowed()) -> None:
    problems = shape_problems(actual, sample(response_sample), "", allowed)
    assert not problems, f"{response_sample}:\n" + "\n".join(problems)


def test_every_sample_is_covered() -> None:
    """Each response sample of the served APIs is exercised below (or listed as not served)."""
    covered = (
        {case[2] for case in SERVICE_ACTIONS_LEGACY + SERVICE_ACTIONS_2_53}
        | {case[1] for case in SERVICE_LISTS}
        | {
            "servers/v2.16/server-get-resp.json",
            "servers/v2.16/servers-details-resp.json",
            "servers/v2.16/servers-list-resp.json",
            "versions/versions-get-resp.json",
            "versions/v21-version-get-resp.json",
            "versions/v2-version-get-resp.json",  # not served: test_v2_is_not_served
        }
    )
    on_disk = {str(path.relative_to(SAMPLES)) for path in SAMPLES.rglob("*-resp.json")}
    assert on_disk and on_disk == covered


# -- versions ----------------------------------------------------------------------------
def test_versions(facade: RunningFacade) -> None:
    response = http(facade.url + "/")
    assert response.status == 200
    nova_v21 = next(v for v in sample("versions/versions-get-resp.json")["versions"] if v["id"] == "v2.1")
    # Only v2.1 is served: compare with Nova's v2.1 entry (its v2.0 entry is an allowed absence).
    assert [v["id"] for v in response.body["versions"]] == ["v2.1"]
    problems = shape_problems(response.body, {"versions": [nova_v21]}, "", Allowed())
    assert not problems, problems


@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/"])
def test_v21_version(facade: RunningFacade, path: str) -> None:
    response = http(facade.url + path)
    assert response.status == 200
    assert_conforms(response.body, "versions/v21-version-get-resp.json")


def test_v2_is_not_served(facade: RunningFacade, users: Users) -> None:
    """Nova's legacy v2.0 API (sample v2-version-get-resp.json) is not part of the facade."""
    response = http(facade.url + "/v2/", token=users.admin)
    assert response.status == 404
    assert response.body["itemNotFound"]["code"] == 404


# -- os-services --------------------------------------------------------------------------
SERVICE_LISTS = [
    ("2.1", "os-services/services-list-get-resp.json"),
    ("2.11", "os-services/v2.11/services-list-get-resp.json"),
    ("2.53", "os-services/v2.53/services-list-get-resp.json"),
    # Nova's list is unchanged up to 2.96 for services in reachable cells; its v2.69 sample shows
    # only the minimal entries of a down cell, which this facade (no cells) never answers.
    ("2.96", "os-services/v2.53/services-list-get-resp.json"),
]


@pytest.mark.parametrize(("microversion", "response_sample"), SERVICE_LISTS)
@pytest.mark.parametrize("disabled", [False, True], ids=["enabled", "disabled"])
def test_services_list(
    facade: RunningFacade,
    users: Users,
    world: World,
    custom: k8s.CustomObjectsApi,
    microversion: str,
    response_sample: str,
    disabled: bool,
) -> None:
    if disabled:  # disabled_reason is then a string, else null: both are in Nova's sample
        patched = custom.patch_cluster_custom_object(
            "hoststate.io",
            "v1alpha1",
            "computeservices",
            world.service["metadata"]["name"],
            {"spec": {"disabled": True, "disabledReason": "test2"}},
        )
        facade.sync(patched)
    url = f"{facade.url}/v2.1/{users.project}/os-services?host={world.host}"
    response = http(url, token=users.admin, version=microversion)
    assert response.status == 200
    assert len(response.body["services"]) == 1
    assert_conforms(response.body, response_sample)


# (microversion, request sample, response sample, the action in the URL)
SERVICE_ACTIONS_LEGACY = [
    (version, f"{prefix}service-{action}-put-req.json", f"{prefix}service-{action}-put-resp.json", url_action)
    for version, prefix in (("2.1", "os-services/"), ("2.11", "os-services/v2.11/"))
    for action, url_action in (("enable", "enable"), ("disable", "disable"), ("disable-log", "disable-log-reason"))
] + [
    (
        "2.11",
        "os-services/v2.11/service-force-down-put-req.json",
        "os-services/v2.11/service-force-down-put-resp.json",
        "force-down",
    )
]  # noqa: E501


@pytest.mark.parametrize(("microversion", "request_sample", "response_sample", "action"), SERVICE_ACTIONS_LEGACY)
def test_services_legacy_actions(
    facade: RunningFacade,
    users: Users,
    world: World,
    custom: k8s.CustomObjectsApi,
    microversion: str,
    request_sample: str,
    response_sample: str,
    action: str,
) -> None:
    payload = request_body(request_sample, world.host)
    url = f"{facade.url}/v2.1/{users.project}/os-services/{action}"
    response = http(url, "PUT", token=users.admin, version=microversion, body=payload)
    assert response.status == 200, response.body
    assert_conforms(response.body, response_sample)
    spec = get_service(custom, world)["spec"]
    if action == "force-down":
        assert spec["forcedDown"] is True
    else:
        assert spec["disabled"] is (action != "enable")
        assert spec.get("disabledReason") == payload.get("disabled_reason")


SERVICE_ACTIONS_2_53 = [
    ("2.53", f"os-services/v2.53/service-{action}-put-req.json", f"os-services/v2.53/service-{action}-put-resp.json")
    for action in ("enable", "disable", "disable-log", "force-down")
]


@pytest.mark.parametrize(("microversion", "request_sample", "response_sample"), SERVICE_ACTIONS_2_53)
def test_services_update_by_uuid(
    facade: RunningFacade,
    users: Users,
    world: World,
    custom: k8s.CustomObjectsApi,
    microversion: str,
    request_sample: str,
    response_sample: str,
) -> None:
    payload = sample(request_sample)
    url = f"{facade.url}/v2.1/{users.project}/os-services/{world.service_uuid}"
    response = http(url, "PUT", token=users.admin, version=microversion, body=payload)
    assert response.status == 200, response.body
    assert_conforms(response.body, response_sample, Allowed(types={".service.disabled_reason": frozenset({NULL})}))
    spec = get_service(custom, world)["spec"]
    if "forced_down" in payload:
        assert spec["forcedDown"] is payload["forced_down"]
    if "status" in payload:
        assert spec["disabled"] is (payload["status"] == "disabled")


# -- servers at 2.16 ---------------------------------------------------------------------
SERVER_ALLOWED = {
    "absent": {"security_groups"},
    "empty": {"os-extended-volumes:volumes_attached"},
    "types": {
        "OS-EXT-SRV-ATTR:root_device_name": {NULL},
        "OS-EXT-SRV-ATTR:user_data": {NULL},
        "key_name": {STRING},
    },
}


def server_allowed(prefix: str) -> Allowed:
    return Allowed(
        absent=frozenset(f"{prefix}.{key}" for key in SERVER_ALLOWED["absent"]),
        empty=frozenset(f"{prefix}.{key}" for key in SERVER_ALLOWED["empty"]),
        types={f"{prefix}.{key}": frozenset(types) for key, types in SERVER_ALLOWED["types"].items()},  # type: ignore[union-attr]
    )


def test_server_show(facade: RunningFacade, users: Users, world: World) -> None:
    response = http(f"{facade.url}/v2.1/{users.project}/servers/{world.server_id}", token=users.admin, version="2.16")
    assert response.status == 200
    assert response.body["server"]["host_status"] == "UP"
    assert_conforms(response.body, "servers/v2.16/server-get-resp.json", server_allowed(".server"))


def test_servers_detail(facade: RunningFacade, users: Users, world: World) -> None:
    """Nova's sample is GET servers/detail?limit=1: one server and a next link."""
    url = f"{facade.url}/v2.1/{users.project}/servers/detail?limit=1"
    response = http(url, token=users.admin, version="2.16")
    assert response.status == 200
    assert [s["id"] for s in response.body["servers"]] == [world.server_id]
    assert_conforms(response.body, "servers/v2.16/servers-details-resp.json", server_allowed(".servers[]"))


def test_servers_list(facade: RunningFacade, users: Users, world: World) -> None:
    """Nova's sample is GET servers?limit=1: one server and a next link."""
    response = http(f"{facade.url}/v2.1/{users.project}/servers?limit=1", token=users.admin, version="2.16")
    assert response.status == 200
    assert [s["id"] for s in response.body["servers"]] == [world.server_id]
    assert_conforms(response.body, "servers/v2.16/servers-list-resp.json")
