"""os-services through the facade, checked through the Kubernetes API."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s

from hoststate.facade.cache import integer_id
from tests.support.facade import Response, RunningFacade, http

from .conftest import Users, World, create_server, create_service, get_service


def services_url(facade: RunningFacade, tail: str = "") -> str:
    return f"{facade.url}/v2.1/os-services{tail}"


def put_by_uuid(facade: RunningFacade, users: Users, world: World, body: dict) -> Response:
    """PUT /os-services/{uuid} (2.53) on the world's service, as the admin."""
    return http(services_url(facade, f"/{world.service_uuid}"), "PUT", token=users.admin, version="2.53", body=body)


def test_list_filters_and_id_types(facade: RunningFacade, users: Users, world: World) -> None:
    old = http(services_url(facade, f"?host={world.host}"), token=users.admin)
    (entry,) = old.body["services"]
    assert entry["id"] == integer_id(world.service_uuid) and "forced_down" not in entry
    assert entry["state"] == "up" and entry["status"] == "enabled" and entry["zone"] == "nova"
    v211 = http(services_url(facade, f"?host={world.host}&binary=nova-compute"), token=users.admin, version="2.11")
    assert v211.body["services"][0]["forced_down"] is False
    v253 = http(services_url(facade, f"?host={world.host}"), token=users.admin, version="2.53")
    assert v253.body["services"][0]["id"] == world.service_uuid
    none = http(services_url(facade, f"?host={world.host}&binary=nova-scheduler"), token=users.admin)
    assert none.body == {"services": []}


def test_force_down_legacy_form(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    body = {"host": world.host, "binary": "nova-compute", "forced_down": True}
    response = http(services_url(facade, "/force-down"), "PUT", token=users.admin, version="2.11", body=body)
    assert response.status == 200
    assert response.body == {"service": body}
    assert get_service(custom, world)["spec"]["forcedDown"] is True
    listed = http(services_url(facade, f"?host={world.host}"), token=users.admin, version="2.11")
    assert listed.body["services"][0]["forced_down"] is True and listed.body["services"][0]["state"] == "down"
    body["forced_down"] = "false"  # Nova's parameter_types.boolean takes strings too
    response = http(services_url(facade, "/force-down"), "PUT", token=users.admin, version="2.52", body=body)
    assert response.body["service"]["forced_down"] is False
    assert get_service(custom, world)["spec"]["forcedDown"] is False


def test_force_down_needs_211(facade: RunningFacade, users: Users, world: World) -> None:
    body = {"host": world.host, "binary": "nova-compute"}
    response = http(services_url(facade, "/force-down"), "PUT", token=users.admin, version="2.10", body=body)
    assert response.status == 404
    assert response.body == {"itemNotFound": {"code": 404, "message": "Unknown action"}}


def test_force_down_by_uuid(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi) -> None:
    response = put_by_uuid(facade, users, world, {"forced_down": True})
    assert response.status == 200
    service = response.body["service"]
    assert service["id"] == world.service_uuid and service["forced_down"] is True and service["state"] == "down"
    assert get_service(custom, world)["spec"]["forcedDown"] is True
    assert put_by_uuid(facade, users, world, {"forced_down": False}).status == 200
    assert get_service(custom, world)["spec"]["forcedDown"] is False


def test_enable_disable_legacy(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi) -> None:
    body = {"host": world.host, "binary": "nova-compute", "disabled_reason": "firmware"}
    response = http(services_url(facade, "/disable-log-reason"), "PUT", token=users.admin, body=body)
    assert response.body == {"service": {**body, "status": "disabled"}}
    spec = get_service(custom, world)["spec"]
    assert spec["disabled"] is True and spec["disabledReason"] == "firmware"
    body = {"host": world.host, "binary": "nova-compute"}
    assert http(services_url(facade, "/enable"), "PUT", token=users.admin, body=body).body == {
        "service": {**body, "status": "enabled"}
    }
    spec = get_service(custom, world)["spec"]
    assert spec["disabled"] is False and "disabledReason" not in spec
    assert (
        http(services_url(facade, "/disable"), "PUT", token=users.admin, body=body).body["service"]["status"]
        == "disabled"
    )
    assert get_service(custom, world)["spec"]["disabled"] is True


def test_status_by_uuid(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi) -> None:
    response = put_by_uuid(facade, users, world, {"status": "disabled", "disabled_reason": "maintenance"})
    assert (
        response.body["service"]["status"] == "disabled"
        and response.body["service"]["disabled_reason"] == "maintenance"
    )
    assert get_service(custom, world)["spec"]["disabledReason"] == "maintenance"
    response = put_by_uuid(facade, users, world, {"status": "enabled"})
    assert response.body["service"]["disabled_reason"] is None
    assert get_service(custom, world)["spec"]["disabled"] is False


ERRORS_253 = [
    ({"status": "enabled", "disabled_reason": "x"}, "Specifying 'disabled_reason' with status 'enabled' is invalid."),
    ({}, "No updates were requested. Fields 'status' or 'forced_down' should be specified."),
    ({"forced_down": "maybe"}, None),
    ({"status": "off"}, None),
    ({"unknown": 1}, "Additional properties are not allowed ('unknown' was unexpected)"),
    ({"status": "disabled", "disabled_reason": "x" * 256}, None),
]


@pytest.mark.parametrize(("body", "message"), ERRORS_253)
def test_update_by_uuid_errors(
    facade: RunningFacade, users: Users, world: World, body: dict, message: str | None
) -> None:
    response = put_by_uuid(facade, users, world, body)
    assert response.status == 400
    if message:
        assert response.body == {"badRequest": {"code": 400, "message": message}}
    else:
        assert response.body["badRequest"]["message"].startswith("Invalid input for field/attribute ")


def test_update_by_uuid_not_found_and_invalid(facade: RunningFacade, users: Users) -> None:
    missing = str(uuid.uuid4())
    response = http(
        services_url(facade, f"/{missing}"), "PUT", token=users.admin, version="2.53", body={"forced_down": True}
    )
    assert (
        response.status == 404 and response.body["itemNotFound"]["message"] == f"Service {missing} could not be found."
    )
    response = http(
        services_url(facade, "/force-down"), "PUT", token=users.admin, version="2.53", body={"forced_down": True}
    )
    assert response.status == 400 and response.body["badRequest"]["message"] == "Invalid uuid force-down"


def test_legacy_errors(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi) -> None:
    def force_down(body: dict, version: str = "2.11") -> Response:
        return http(services_url(facade, "/force-down"), "PUT", token=users.admin, version=version, body=body)

    missing = force_down({"host": world.host, "binary": "nova-compute"})
    assert missing.body == {"badRequest": {"code": 400, "message": "Missing forced_down field"}}
    reason = http(
        services_url(facade, "/disable-log-reason"),
        "PUT",
        token=users.admin,
        body={"host": world.host, "binary": "nova-compute"},
    )
    assert reason.body["badRequest"]["message"] == "Missing disabled reason field"
    create_service(custom, world.host, binary="nova-scheduler")
    scheduler = force_down({"host": world.host, "binary": "nova-scheduler", "forced_down": True})
    assert scheduler.body["badRequest"]["message"] == (
        "Updating a nova-scheduler service is not supported. Only nova-compute services can be updated."
    )
    nohost = force_down({"host": "nohost-x", "binary": "nova-compute", "forced_down": True})
    assert (
        nohost.status == 404 and nohost.body["itemNotFound"]["message"] == "Host 'nohost-x' is not mapped to any cell"
    )
    bad_host = force_down({"host": "a b", "binary": "nova-compute", "forced_down": True})
    assert bad_host.status == 400 and bad_host.body["badRequest"]["message"].startswith(
        "Invalid input for field/attribute host."
    )
    unknown = http(
        services_url(facade, "/reboot"), "PUT", token=users.admin, body={"host": world.host, "binary": "nova-compute"}
    )
    assert unknown.status == 404 and unknown.body["itemNotFound"]["message"] == "Unknown action"
    extra = force_down({"host": world.host, "binary": "nova-compute", "forced_down": True}, version="2.1")
    assert extra.status == 400 and "Additional properties are not allowed" in extra.body["badRequest"]["message"]


def test_malformed_json_and_content_type(facade: RunningFacade, users: Users, world: World) -> None:
    url = services_url(facade, "/force-down")
    bad_json = http(
        url, "PUT", token=users.admin, version="2.11", raw=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400 and bad_json.body == {
        "badRequest": {"code": 400, "message": "Malformed request body"}
    }
    xml = http(url, "PUT", token=users.admin, version="2.11", raw=b"<x/>", headers={"Content-Type": "application/xml"})
    assert xml.status == 415 and xml.body == {"badMediaType": {"code": 415, "message": "Unsupported Content-Type"}}
    empty = http(url, "PUT", token=users.admin, version="2.11", raw=b"", headers={"Content-Type": "application/json"})
    assert empty.status == 400 and empty.body["badRequest"]["message"] == "None is not of type 'object'"
    wrong_type = http(url, "PUT", token=users.admin, version="2.11", body={"host": 5, "binary": "nova-compute"})
    assert (
        wrong_type.body["badRequest"]["message"]
        == "Invalid input for field/attribute host. Value: 5. 5 is not of type 'string'"
    )


def test_delete(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    busy = http(services_url(facade, f"/{world.service_uuid}"), "DELETE", token=users.admin, version="2.53")
    assert busy.status == 409
    assert busy.body["conflictingRequest"]["message"] == (
        "Unable to delete compute service that is hosting instances. Migrate or delete the instances first."
    )
    assert http(services_url(facade, "/abc"), "DELETE", token=users.admin).body["badRequest"]["message"] == (
        "Invalid input received: id must be an integer"
    )
    assert (
        http(services_url(facade, "/abc"), "DELETE", token=users.admin, version="2.53").body["badRequest"]["message"]
        == "Invalid uuid abc"
    )
    assert (
        http(services_url(facade, "/12"), "DELETE", token=users.admin).body["itemNotFound"]["message"]
        == "Service 12 not found."
    )
    idle = create_service(custom, world.host + "-idle")
    facade.sync(idle)
    legacy_id = integer_id(idle["metadata"]["uid"])
    assert http(services_url(facade, f"/{legacy_id}"), "DELETE", token=users.admin).status == 204
    with pytest.raises(k8s.ApiException) as gone:
        custom.get_cluster_custom_object("hoststate.io", "v1alpha1", "computeservices", idle["metadata"]["name"])
    assert gone.value.status == 404


def test_services_need_admin(facade: RunningFacade, users: Users, world: World) -> None:
    for token in (users.owner, users.other):
        response = http(services_url(facade), token=token)
        assert response.status == 403
        assert (
            response.body["forbidden"]["message"]
            == "Policy doesn't allow os_compute_api:os-services:list to be performed."
        )
        body = {"host": world.host, "binary": "nova-compute", "forced_down": True}
        assert http(services_url(facade, "/force-down"), "PUT", token=token, version="2.11", body=body).status == 403
    assert http(services_url(facade)).status == 401
    assert http(services_url(facade), token="not-a-token").body == {
        "unauthorized": {"code": 401, "message": "The request you have made requires authentication."}
    }


def test_force_down_is_audited_as_the_caller(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    """The patch is made with the caller's token, and managedFields name them, not the facade."""
    put_by_uuid(facade, users, world, {"forced_down": True})
    entries = get_service(custom, world)["metadata"]["managedFields"]
    (patch,) = [
        e for e in entries if "f:forcedDown" in e.get("fieldsV1", {}).get("f:spec", {}) and e["operation"] == "Update"
    ]
    assert patch["manager"] == users.admin_name


def test_create_server_then_delete_conflict_counts_only_this_host(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    other = create_service(custom, world.host + "-b")
    server = create_server(custom, namespace, "elsewhere", world.host + "-c")
    facade.sync(other)
    facade.sync(server)
    assert (
        http(services_url(facade, f"/{other['metadata']['uid']}"), "DELETE", token=users.admin, version="2.53").status
        == 204
    )
