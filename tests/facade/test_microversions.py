"""What changes for servers and os-services between 2.53 and the facade's maximum (2.96): the
fields Nova adds (2.63, 2.71, 2.73, 2.90, 2.96), strict queries (2.75), filters a tenant may use
(2.66, 2.73, 2.83, 2.90), and the search options every version has (status, sort, time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubernetes import client as k8s

from hoststate.facade.api_version import MAX_VERSION
from tests.support.facade import RunningFacade, http

from .conftest import Users, World, create_server


def servers(facade: RunningFacade, query: str, token: str, version: str = MAX_VERSION, detail: bool = False):
    return http(f"{facade.url}/v2.1/servers{'/detail' if detail else ''}?{query}", token=token, version=version)


def names(facade: RunningFacade, query: str, token: str, version: str = MAX_VERSION) -> list[str]:
    response = servers(facade, query, token, version)
    assert response.status == 200, response.body
    return [s["name"] for s in response.body["servers"]]


def test_fields_added_up_to_the_maximum(facade: RunningFacade, users: Users, world: World) -> None:
    url = f"{facade.url}/v2.1/servers/{world.server_id}"
    tenant_view = http(url, token=users.owner, version="2.96").body["server"]
    assert tenant_view["trusted_image_certificates"] is None  # 2.63: none given at boot
    assert tenant_view["server_groups"] == []  # 2.71: show only
    assert tenant_view["locked"] is False and tenant_view["locked_reason"] is None  # 2.73
    assert tenant_view["OS-EXT-SRV-ATTR:hostname"] == "web-1"  # 2.90: visible to everyone
    assert "OS-EXT-SRV-ATTR:host" not in tenant_view and "host_status" not in tenant_view  # still admin-only
    assert tenant_view["pinned_availability_zone"] is None  # 2.96: no zone asked for at boot

    before = http(url, token=users.owner, version="2.89").body["server"]
    assert "OS-EXT-SRV-ATTR:hostname" not in before and "pinned_availability_zone" not in before
    assert "server_groups" in before and "trusted_image_certificates" in before
    oldest = http(url, token=users.owner, version="2.62").body["server"]
    assert not {"trusted_image_certificates", "server_groups", "locked_reason"} & set(oldest)

    detail = servers(facade, "", users.admin, detail=True).body["servers"][0]
    assert "server_groups" not in detail  # Nova leaves it out of the list
    assert detail["locked_reason"] is None and detail["host_status"] == "UP"


def test_pinned_availability_zone_is_the_zone_asked_for(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    pinned = create_server(custom, namespace, "pinned", world.host, availabilityZone="az-2")
    facade.sync(pinned)
    body = http(f"{facade.url}/v2.1/servers/{pinned['metadata']['uid']}", token=users.owner, version="2.96").body
    assert body["server"]["pinned_availability_zone"] == "az-2"
    assert body["server"]["OS-EXT-AZ:availability_zone"] == "az-2"


def test_unknown_query_parameters_are_refused_from_275(facade: RunningFacade, users: Users, world: World) -> None:
    assert names(facade, "bogus=1", users.owner, version="2.74") == ["web-1"]  # ignored before
    refused = servers(facade, "bogus=1", users.owner, version="2.75")
    # Nova's schema keeps `_`-prefixed keys for its own 400, hence jsonschema's wording.
    assert (refused.status, refused.body) == (
        400,
        {"badRequest": {"code": 400, "message": "'bogus' does not match any of the regexes: '^_'"}},
    )
    services = f"{facade.url}/v2.1/os-services?host={world.host}&bogus=1"
    assert http(services, token=users.admin, version="2.74").status == 200
    refused = http(services, token=users.admin, version="2.75")
    assert (refused.status, refused.body["badRequest"]["message"]) == (
        400,
        "Additional properties are not allowed ('bogus' was unexpected)",
    )
    # Known to Nova, but not to be used: refused at every version.
    assert (
        servers(facade, "_secret=1", users.admin, version="2.1").body["badRequest"]["message"]
        == "Invalid filter field: _secret."
    )
    joined = servers(facade, "security_groups=x", users.admin, version="2.1")
    assert (joined.status, joined.body["badRequest"]["message"]) == (400, "Invalid filter field: security_groups.")


def test_status_filter(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    facade.sync(create_server(custom, namespace, "off", world.host, vmState="stopped", powerState=4))
    facade.sync(create_server(custom, namespace, "rebooting", world.host, taskState="rebooting"))
    assert sorted(names(facade, "status=SHUTOFF", users.owner)) == ["off"]
    # ACTIVE is vm_state active whatever the task: Nova lists the rebooting server too.
    assert sorted(names(facade, "status=active", users.owner)) == ["rebooting", "web-1"]
    assert names(facade, "status=REBOOT", users.owner) == ["rebooting"]
    # Several statuses: their vm_states, and the task states only when none is a default (Nova's rule).
    assert sorted(names(facade, "status=SHUTOFF&status=REBOOT", users.owner)) == ["off", "rebooting", "web-1"]
    assert sorted(names(facade, "status=REBOOT&status=MIGRATING", users.owner)) == ["rebooting"]
    assert names(facade, "status=nonsense", users.owner, version="2.37") == []
    invalid = servers(facade, "status=nonsense", users.owner, version="2.38")
    assert (invalid.status, invalid.body["badRequest"]["message"]) == (400, "Invalid status value")


def test_filters_a_tenant_may_use_depend_on_the_version(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    facade.sync(create_server(custom, namespace, "off", world.host, vmState="stopped", powerState=4, keyName="other"))
    # vm_state and key_name are admin filters before 2.83: a tenant's are dropped silently.
    assert sorted(names(facade, "vm_state=stopped", users.owner, version="2.82")) == ["off", "web-1"]
    assert names(facade, "vm_state=stopped", users.owner, version="2.83") == ["off"]
    assert names(facade, "key_name=^my", users.owner, version="2.83") == ["web-1"]
    assert names(facade, "power_state=4", users.owner, version="2.83") == ["off"]
    assert sorted(names(facade, "hostname=^off$", users.owner, version="2.89")) == ["off", "web-1"]
    assert names(facade, "hostname=^off$", users.owner, version="2.90") == ["off"]
    assert names(facade, "vm_state=stopped", users.admin, version="2.1") == ["off"]  # an admin's always apply
    # image and flavor are everyone's; flavor is an exact match.
    assert names(facade, "image=70a599e0-31e7-49b7-b260-868f441e862b", users.owner) == ["web-1"]
    assert names(facade, "flavor=1", users.owner) == ["web-1"] and names(facade, "flavor=11", users.owner) == []
    # ip: a regular expression matched from the start of a fixed address.
    assert names(facade, "ip=192.168.1.3", users.owner) == ["web-1"] and names(facade, "ip=168", users.owner) == []


def test_locked_and_tags(facade: RunningFacade, users: Users, world: World) -> None:
    assert names(facade, "locked=false", users.owner) == ["web-1"]
    assert names(facade, "locked=true", users.owner) == []  # nothing is locked
    bad = servers(facade, "locked=maybe", users.owner)
    assert bad.status == 400 and bad.body["badRequest"]["message"].startswith(
        "Invalid input received: Unrecognized value 'maybe'"
    )
    assert names(facade, "locked=true", users.owner, version="2.72") == ["web-1"]  # not a filter before 2.73
    assert names(facade, "tags=db", users.owner) == [] and names(facade, "tags-any=db,web", users.owner) == []
    assert names(facade, "not-tags=db", users.owner) == ["web-1"]  # servers carry no tags


def test_changes_since_and_before(facade: RunningFacade, users: Users, world: World) -> None:
    def iso(delta: timedelta) -> str:
        return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")

    hour = timedelta(hours=1)
    assert names(facade, f"changes-since={iso(-hour)}", users.owner) == ["web-1"]
    assert names(facade, f"changes-since={iso(hour)}", users.owner) == []
    assert names(facade, f"changes-before={iso(hour)}", users.owner) == ["web-1"]
    assert names(facade, f"changes-before={iso(-hour)}", users.owner) == []
    assert names(facade, f"changes-before={iso(-hour)}", users.owner, version="2.65") == ["web-1"]  # from 2.66
    crossed = servers(facade, f"changes-since={iso(hour)}&changes-before={iso(-hour)}", users.owner)
    assert (
        crossed.body["badRequest"]["message"]
        == "The value of changes-since must be less than or equal to changes-before."
    )
    bad = servers(facade, "changes-since=yesterday", users.owner)
    assert bad.status == 400 and "'yesterday' is not a 'date-time'" in bad.body["badRequest"]["message"]


def test_sort(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi, namespace: str) -> None:
    for name in ("b-vm", "a-vm"):
        facade.sync(create_server(custom, namespace, name, world.host))
    assert names(facade, "sort_key=display_name&sort_dir=asc", users.owner) == ["a-vm", "b-vm", "web-1"]
    assert names(facade, "sort_key=display_name", users.owner) == ["web-1", "b-vm", "a-vm"]  # desc by default
    host_sort = servers(facade, "sort_key=host", users.owner)
    assert (host_sort.status, host_sort.body["forbidden"]["message"]) == (
        403,
        "Only administrators can sort servers by host",
    )
    assert servers(facade, "sort_key=host", users.admin).status == 200
    # Keys Nova once accepted are ignored before 2.75 and refused from it.
    # (An ignored key takes its direction with it.)
    ignored = "sort_key=vcpus&sort_key=display_name&sort_dir=desc&sort_dir=asc"
    assert names(facade, ignored, users.owner, version="2.74") == ["a-vm", "b-vm", "web-1"]
    assert servers(facade, "sort_key=vcpus", users.owner, version="2.75").status == 400
    bad_dir = servers(facade, "sort_key=display_name&sort_dir=up", users.owner)
    assert (
        bad_dir.body["badRequest"]["message"]
        == "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'"
    )
    too_many = servers(facade, "sort_key=display_name&sort_dir=asc&sort_dir=desc", users.owner)
    assert too_many.body["badRequest"]["message"] == "Invalid input received: Sort direction size exceeds sort key size"


def test_tenant_id_means_all_tenants(facade: RunningFacade, users: Users, world: World) -> None:
    """Nova: a tenant_id other than the caller's project turns all_tenants on (and its policy)."""
    assert names(facade, f"tenant_id={users.project}", users.admin) == ["web-1"]
    assert names(facade, f"tenant_id={users.other_project}", users.admin) == []
    assert servers(facade, f"tenant_id={users.project}", users.other).status == 200  # a tenant's is dropped
    assert servers(facade, f"tenant_id={users.project}&all_tenants=1", users.other).status == 403
