"""servers through the facade: bodies, host_status under policy, tenants' isolation."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s

from hoststate.devcluster.processes import wait_for
from hoststate.facade.config import FacadeConfig
from hoststate.kube import LEASES
from tests.support.facade import RunningFacade, http

from .conftest import Users, World, create_server


def patch_service(custom: k8s.CustomObjectsApi, facade: RunningFacade, world: World, **spec: object) -> None:
    patched = custom.patch_cluster_custom_object(
        "hoststate.io", "v1alpha1", "computeservices", world.service["metadata"]["name"], {"spec": spec}
    )
    facade.sync(patched)


def show(facade: RunningFacade, world: World, token: str, version: str = "2.16", prefix: str = "") -> dict:
    response = http(f"{facade.url}/v2.1{prefix}/servers/{world.server_id}", token=token, version=version)
    assert response.status == 200, response.body
    return response.body["server"]


def test_show_body(facade: RunningFacade, users: Users, world: World) -> None:
    server = show(facade, world, users.admin)
    assert server["id"] == world.server_id and server["name"] == "web-1" and server["status"] == "ACTIVE"
    assert server["tenant_id"] == users.project and server["user_id"] == "alice"
    assert server["OS-EXT-SRV-ATTR:host"] == world.host and server["host_status"] == "UP"
    assert server["addresses"]["private"][0] == {
        "addr": "192.168.1.30",
        "version": 4,
        "OS-EXT-IPS:type": "fixed",
        "OS-EXT-IPS-MAC:mac_addr": "00:0c:29:0d:11:74",
    }
    assert server["links"][0]["href"] == f"{facade.url}/v2.1/servers/{world.server_id}"
    assert len(server["hostId"]) == 56


def test_host_status_follows_the_service(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    patch_service(custom, facade, world, disabled=True)
    assert show(facade, world, users.admin)["host_status"] == "MAINTENANCE"
    patch_service(custom, facade, world, forcedDown=True)
    assert show(facade, world, users.admin)["host_status"] == "DOWN"  # DOWN beats MAINTENANCE
    patch_service(custom, facade, world, forcedDown=False, disabled=False)
    assert show(facade, world, users.admin)["host_status"] == "UP"


def test_host_status_needs_216(facade: RunningFacade, users: Users, world: World) -> None:
    assert "host_status" not in show(facade, world, users.admin, version="2.15")


def service_with_lease(
    facade: RunningFacade, custom: k8s.CustomObjectsApi, namespace: str, api_client: k8s.ApiClient, holder: str | None
) -> tuple[str, dict]:
    """A service whose Lease was renewed in 2020 by `holder` (None: the service's own host), and a server on it."""
    host = f"stale-{uuid.uuid4().hex[:8]}"
    service = custom.create_cluster_custom_object(
        "hoststate.io",
        "v1alpha1",
        "computeservices",
        {
            "apiVersion": "hoststate.io/v1alpha1",
            "kind": "ComputeService",
            "metadata": {"name": f"{host}.nova-compute"},
            "spec": {"host": host},
        },
    )
    try:
        k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="hoststate-system")))
    except k8s.ApiException as error:
        assert error.status == 409
    # Through the async client: the official one rewrites MicroTime strings the API server then refuses.
    lease = facade.call(
        facade.kube.create(
            LEASES,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": f"{host}.nova-compute"},
                "spec": {"holderIdentity": holder or host, "renewTime": "2020-01-01T00:00:00.000000Z"},
            },
            "hoststate-system",
        )
    )
    server = create_server(custom, namespace, "stale", host)
    facade.sync(service)
    facade.sync(server)
    facade.sync(lease)
    return host, server


def test_unknown_when_heartbeat_is_stale(
    facade: RunningFacade, users: Users, custom: k8s.CustomObjectsApi, namespace: str, api_client: k8s.ApiClient
) -> None:
    """A Lease renewed long ago: UNKNOWN, computed at read time."""
    host, server = service_with_lease(facade, custom, namespace, api_client, holder=None)
    body = http(f"{facade.url}/v2.1/servers/{server['metadata']['uid']}", token=users.admin, version="2.16").body[
        "server"
    ]
    assert body["host_status"] == "UNKNOWN"
    services = http(f"{facade.url}/v2.1/os-services?host={host}", token=users.admin).body["services"]
    assert services[0]["state"] == "down" and services[0]["updated_at"] == "2020-01-01T00:00:00.000000"


def test_a_lease_held_by_another_host_does_not_count(
    facade: RunningFacade, users: Users, custom: k8s.CustomObjectsApi, namespace: str, api_client: k8s.ApiClient
) -> None:
    """As for the operator (which reports it as BadHeartbeatLease): the service counts from its
    creation, as one that never reported, so the facade and the operator agree."""
    host, server = service_with_lease(facade, custom, namespace, api_client, holder="someone-else")
    body = http(f"{facade.url}/v2.1/servers/{server['metadata']['uid']}", token=users.admin, version="2.16").body[
        "server"
    ]
    assert body["host_status"] == "UP"
    services = http(f"{facade.url}/v2.1/os-services?host={host}", token=users.admin).body["services"]
    assert services[0]["state"] == "up" and not services[0]["updated_at"].startswith("2020")


def test_list_detail_and_name_filter(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    other = create_server(custom, namespace, "db-1", world.host, displayName="db-1")
    facade.sync(other)
    listed = http(f"{facade.url}/v2.1/servers", token=users.owner).body["servers"]
    assert {s["name"] for s in listed} == {"web-1", "db-1"} and set(listed[0]) == {"id", "links", "name"}
    named = http(f"{facade.url}/v2.1/servers?name=^web", token=users.owner).body["servers"]
    assert [s["id"] for s in named] == [world.server_id]
    detail = http(f"{facade.url}/v2.1/servers/detail?name=db", token=users.admin, version="2.16").body["servers"]
    assert [s["name"] for s in detail] == ["db-1"] and detail[0]["host_status"] == "UP"
    page = http(f"{facade.url}/v2.1/servers?limit=1", token=users.owner).body
    assert len(page["servers"]) == 1 and page["servers_links"][0]["rel"] == "next"
    rest = http(page["servers_links"][0]["href"], token=users.owner).body
    assert len(rest["servers"]) == 1 and rest["servers"][0]["id"] != page["servers"][0]["id"]
    bad = http(f"{facade.url}/v2.1/servers?limit=x", token=users.owner)
    assert bad.status == 400 and bad.body["badRequest"]["message"].startswith(
        "Invalid input for query parameters limit."
    )


def test_tenant_path_and_mismatch(facade: RunningFacade, users: Users, world: World) -> None:
    body = show(facade, world, users.owner, prefix=f"/{users.project}")
    assert body["links"][0]["href"] == f"{facade.url}/v2.1/{users.project}/servers/{world.server_id}"
    response = http(f"{facade.url}/v2.1/{users.other_project}/servers", token=users.owner)
    assert response.status == 400
    assert response.body["badRequest"]["message"] == (
        f"Malformed request URL: URL's project_id '{users.other_project}' doesn't match Context's project_id '{users.project}'"
    )


def test_not_found(facade: RunningFacade, users: Users) -> None:
    for server_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = http(f"{facade.url}/v2.1/servers/{server_id}", token=users.admin)
        assert response.status == 404
        assert response.body == {"itemNotFound": {"code": 404, "message": f"Instance {server_id} could not be found."}}


# -- policy matrix -------------------------------------------------------------------------------
# (who, default policy: show status / detail sees it / list count / force-down status) ...
@pytest.mark.parametrize(
    ("who", "show_status", "host_status", "listed", "force_down"),
    [
        ("admin", 200, "UP", 1, 200),
        ("owner", 200, None, 1, 403),
        ("other", 404, None, 0, 403),
        ("anonymous", 401, None, None, 401),
    ],
)
def test_policy_matrix_default(
    facade: RunningFacade,
    users: Users,
    world: World,
    who: str,
    show_status: int,
    host_status: str | None,
    listed: int | None,
    force_down: int,
) -> None:
    token = {"admin": users.admin, "owner": users.owner, "other": users.other, "anonymous": None}[who]
    shown = http(f"{facade.url}/v2.1/servers/{world.server_id}", token=token, version="2.16")
    assert shown.status == show_status
    if show_status == 200:
        assert shown.body["server"].get("host_status") == host_status
        assert ("OS-EXT-SRV-ATTR:host" in shown.body["server"]) == (who == "admin")
    detail = http(f"{facade.url}/v2.1/servers/detail", token=token, version="2.16")
    index = http(f"{facade.url}/v2.1/servers", token=token, version="2.16")
    if listed is None:
        assert detail.status == index.status == 401
    else:
        assert len(detail.body["servers"]) == len(index.body["servers"]) == listed
        assert all(s.get("host_status") == host_status for s in detail.body["servers"])
    down = http(
        f"{facade.url}/v2.1/os-services/{world.service_uuid}",
        "PUT",
        token=token,
        version="2.53",
        body={"forced_down": True},
    )
    assert down.status == force_down


def test_other_tenant_cannot_list_all_tenants(facade: RunningFacade, users: Users, world: World) -> None:
    response = http(f"{facade.url}/v2.1/servers/detail?all_tenants=1", token=users.other)
    assert response.status == 403
    assert (
        response.body["forbidden"]["message"]
        == "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed."
    )
    everyone = http(f"{facade.url}/v2.1/servers/detail?all_tenants=1&project_id={users.project}", token=users.admin)
    assert [s["id"] for s in everyone.body["servers"]] == [world.server_id]


def test_admin_or_owner_policy_file(policy_facade: RunningFacade, users: Users, world: World) -> None:
    policy_facade.sync(world.service)
    policy_facade.sync(world.server)
    owner = http(f"{policy_facade.url}/v2.1/servers/{world.server_id}", token=users.owner, version="2.16")
    assert owner.body["server"]["host_status"] == "UP"
    detail = http(f"{policy_facade.url}/v2.1/servers/detail", token=users.owner, version="2.16")
    assert detail.body["servers"][0]["host_status"] == "UP"
    other = http(f"{policy_facade.url}/v2.1/servers/{world.server_id}", token=users.other, version="2.16")
    assert other.status == 404


def test_unknown_only_policy(
    unknown_only_facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    unknown_only_facade.sync(world.server)
    patched = custom.patch_cluster_custom_object(
        "hoststate.io", "v1alpha1", "computeservices", world.service["metadata"]["name"], {"spec": {"forcedDown": True}}
    )
    unknown_only_facade.sync(patched)
    owner = http(f"{unknown_only_facade.url}/v2.1/servers/{world.server_id}", token=users.owner, version="2.16")
    assert "host_status" not in owner.body["server"]  # DOWN is not UNKNOWN: hidden
    admin = http(f"{unknown_only_facade.url}/v2.1/servers/{world.server_id}", token=users.admin, version="2.16")
    assert admin.body["server"]["host_status"] == "DOWN"


def test_a_changed_policy_file_applies_without_a_restart(cluster, tmp_path, users: Users, world: World) -> None:
    """Decisions are cached, but a rewritten policy file applies within a second, as Nova
    reloads a changed policy file."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('"os_compute_api:servers:show:host_status": "rule:admin_api"\n')
    running = RunningFacade(cluster, FacadeConfig(policy_file=policy))
    try:
        running.sync(world.service)
        running.sync(world.server)
        url = f"{running.url}/v2.1/servers/{world.server_id}"
        assert "host_status" not in http(url, token=users.owner, version="2.16").body["server"]

        policy.write_text('"os_compute_api:servers:show:host_status": "rule:admin_or_owner"\n')
        shown = wait_for(
            lambda: http(url, token=users.owner, version="2.16").body["server"].get("host_status"),
            what="the owner to see host_status after the policy change",
        )
        assert shown == "UP"
    finally:
        running.stop()
