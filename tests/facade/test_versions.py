"""Version discovery and microversion negotiation, as Nova does them."""

from __future__ import annotations

import pytest

from hoststate.facade.api_version import MAX_VERSION
from tests.support.facade import RunningFacade, http

from .conftest import Users


def test_root_lists_v21_without_a_token(facade: RunningFacade) -> None:
    response = http(facade.url + "/")
    assert response.status == 200
    (v21,) = response.body["versions"]
    assert v21["id"] == "v2.1" and v21["status"] == "CURRENT"
    assert v21["version"] == MAX_VERSION and v21["min_version"] == "2.1"
    assert v21["links"] == [{"rel": "self", "href": facade.url + "/v2.1/"}]


@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/"])
def test_v21_document(facade: RunningFacade, path: str) -> None:
    response = http(facade.url + path)
    assert response.status == 200
    version = response.body["version"]
    assert version["id"] == "v2.1" and version["version"] == MAX_VERSION
    assert {"rel": "self", "href": facade.url + "/v2.1/"} in version["links"]
    assert version["media-types"][0]["type"] == "application/vnd.openstack.compute+json;version=2.1"


def test_default_is_21_with_both_headers_and_vary(facade: RunningFacade, users: Users) -> None:
    response = http(facade.url + "/v2.1/os-services", token=users.admin)
    assert response.status == 200
    assert response.headers["OpenStack-API-Version"] == "compute 2.1"
    assert response.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert response.headers["Vary"] == "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    assert response.headers["X-Compute-Request-Id"].startswith("req-")


def test_latest_is_the_maximum(facade: RunningFacade, users: Users) -> None:
    response = http(facade.url + "/v2.1/os-services", token=users.admin, version="latest")
    assert response.headers["OpenStack-API-Version"] == f"compute {MAX_VERSION}"


def test_standard_header_wins_over_legacy(facade: RunningFacade, users: Users) -> None:
    response = http(
        facade.url + "/v2.1/os-services",
        token=users.admin,
        version="2.11",
        headers={"X-OpenStack-Nova-API-Version": "2.3"},
    )
    assert response.headers["X-OpenStack-Nova-API-Version"] == "2.11"


def test_legacy_header_alone(facade: RunningFacade, users: Users) -> None:
    response = http(
        facade.url + "/v2.1/os-services", token=users.admin, headers={"X-OpenStack-Nova-API-Version": "2.12"}
    )
    assert response.headers["OpenStack-API-Version"] == "compute 2.12"


@pytest.mark.parametrize("bad", ["2", "2.x", "02.1", "2.01", "abc", "2.1.1"])
def test_malformed_version_is_400(facade: RunningFacade, users: Users, bad: str) -> None:
    response = http(facade.url + "/v2.1/os-services", token=users.admin, version=bad)
    assert response.status == 400
    assert response.body == {
        "badRequest": {
            "code": 400,
            "message": f"API Version String {bad} is of invalid format. Must be of format MajorNum.MinorNum.",
        }
    }


@pytest.mark.parametrize("out_of_range", ["2.0", "2.999", "3.0", "1.5"])
def test_out_of_range_version_is_406(facade: RunningFacade, users: Users, out_of_range: str) -> None:
    response = http(facade.url + "/v2.1/os-services", token=users.admin, version=out_of_range)
    assert response.status == 406
    message = f"Version {out_of_range} is not supported by the API. Minimum is 2.1 and maximum is {MAX_VERSION}."
    assert response.body == {"computeFault": {"code": 406, "message": message}}


def test_unknown_route_is_item_not_found(facade: RunningFacade, users: Users) -> None:
    response = http(facade.url + "/v2.1/os-nothing", token=users.admin)
    assert response.status == 404
    assert response.body == {"itemNotFound": {"code": 404, "message": "The resource could not be found."}}
