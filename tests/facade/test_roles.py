"""Roles that fit the job (issue 12): each kind of user against each route, with the default policy.

- admin: may list servers in every namespace AND patch computeservices;
- service manager: may patch computeservices only (a fault monitor): os-services, no server;
- member of the project: its servers (host_status hidden, as Nova's default policy says);
- member of another project: its own servers only;
- no rights: an authenticated ServiceAccount bound to nothing.
A user's project is what Kubernetes vouches for, never the URL alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from kubernetes import client as k8s

from tests.support.facade import RunningFacade, http, make_admin, make_cluster_user, make_tenant, service_account_token

from .conftest import World, create_service

# Refused by the policy (Nova's 403), or not even shown (Nova's 404 for another project's server).
ALLOWED, FORBIDDEN, HIDDEN = "allowed", "forbidden", "hidden"
ROUTES = (
    "services-list",
    "services-update",
    "services-force-down",
    "services-delete",
    "servers-list",
    "servers-detail",
    "servers-show",
    "evacuate",
)
# user -> route -> outcome. Another project's server is not found (Nova's 404) before any policy;
# a member of another project lists its own servers (none of this project's).
OTHER_PROJECTS_SERVER = {"servers-show": HIDDEN, "evacuate": HIDDEN}
EXPECTED = {
    "admin": dict.fromkeys(ROUTES, ALLOWED),
    "service-manager": {
        **{route: ALLOWED if route.startswith("services") else FORBIDDEN for route in ROUTES},
        **OTHER_PROJECTS_SERVER,
    },
    "member": {route: ALLOWED if route.startswith("servers") else FORBIDDEN for route in ROUTES},
    "other-member": {
        **{route: ALLOWED if route in ("servers-list", "servers-detail") else FORBIDDEN for route in ROUTES},
        **OTHER_PROJECTS_SERVER,
    },
    "no-rights": dict.fromkeys(ROUTES, FORBIDDEN),
}


@pytest.fixture
def token_of(
    api_client: k8s.ApiClient, namespace: str, admin_cluster_role: str, service_manager_cluster_role: str
) -> dict[str, str]:
    other = f"t-{uuid.uuid4().hex[:10]}"
    ops = f"t-{uuid.uuid4().hex[:10]}"  # the fault monitor's own namespace, no servers in it
    core = k8s.CoreV1Api(api_client)
    for name in (other, ops):
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return {
        "admin": make_admin(api_client, namespace, "ops", admin_cluster_role),
        "service-manager": make_cluster_user(api_client, ops, "monitor", service_manager_cluster_role),
        "member": make_tenant(api_client, namespace, "alice"),
        "other-member": make_tenant(api_client, other, "mallory"),
        "no-rights": service_account_token(api_client, namespace, "nobody"),
    }


@dataclass
class Answer:
    status: int
    body: object


def call(facade: RunningFacade, route: str, token: str, world: World, spare_service_uuid: str) -> Answer:
    base = f"{facade.url}/v2.1"
    host = {"host": world.host, "binary": "nova-compute"}
    requests = {
        "services-list": ("GET", "/os-services", "2.53", None),
        "services-update": ("PUT", f"/os-services/{world.service_uuid}", "2.53", {"status": "disabled"}),
        "services-force-down": ("PUT", "/os-services/force-down", "2.11", {**host, "forced_down": True}),
        "services-delete": ("DELETE", f"/os-services/{spare_service_uuid}", "2.53", None),
        "servers-list": ("GET", "/servers", "2.16", None),
        "servers-detail": ("GET", "/servers/detail", "2.16", None),
        "servers-show": ("GET", f"/servers/{world.server_id}", "2.16", None),
        "evacuate": ("POST", f"/servers/{world.server_id}/action", "2.29", {"evacuate": {}}),
    }
    method, path, version, body = requests[route]
    response = http(base + path, method, token=token, version=version, body=body)
    return Answer(response.status, response.body)


def outcome(route: str, answer: Answer) -> str:
    if answer.status == 404 and route in ("servers-show", "evacuate"):
        assert "could not be found" in answer.body["itemNotFound"]["message"], answer.body
        return HIDDEN
    if answer.status == 403 and answer.body["forbidden"]["message"].startswith("Policy doesn't allow"):
        return FORBIDDEN
    if route == "evacuate":
        # Past the policy: Nova's refusal of this evacuation (the host is up, or no host to go
        # to), or, once the force-down made it possible, RBAC's refusal of the move made with
        # the caller's own token (the test admin may not patch servers).
        assert answer.status in (400, 409) or "cannot patch resource" in str(answer.body), answer.body
        return ALLOWED
    assert answer.status in (200, 202, 204), (route, answer.status, answer.body)
    return ALLOWED


@pytest.mark.parametrize("user", list(EXPECTED))
def test_each_role_against_each_route(
    facade: RunningFacade,
    world: World,
    token_of: dict[str, str],
    custom: k8s.CustomObjectsApi,
    unique_host: str,
    user: str,
) -> None:
    spare = create_service(custom, f"{unique_host}-spare")  # no servers on it: it may be deleted
    facade.sync(spare)
    token = token_of[user]
    seen = {}
    answers = {}
    for route in ROUTES:
        answers[route] = call(facade, route, token, world, spare["metadata"]["uid"])
        seen[route] = outcome(route, answers[route])
    assert seen == EXPECTED[user]

    listed = {s["id"] for s in (answers["servers-detail"].body or {}).get("servers", [])}
    if user in ("admin", "member"):
        assert world.server_id in listed
        shown = answers["servers-show"].body["server"]
        # host_status: Nova's default policy shows it to admins only.
        assert ("host_status" in shown) is (user == "admin"), shown
    if user == "other-member":
        assert world.server_id not in listed


def test_a_url_project_without_membership_gives_nothing(
    facade: RunningFacade, world: World, token_of: dict[str, str], namespace: str
) -> None:
    """A ServiceAccount's project is its namespace: naming another project in the URL is Nova's 400."""
    for user in ("service-manager", "other-member"):
        answer = http(f"{facade.url}/v2.1/{namespace}/servers/{world.server_id}", token=token_of[user], version="2.16")
        assert answer.status == 400 and "Malformed request URL" in answer.body["badRequest"]["message"]
