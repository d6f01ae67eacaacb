"""Kubernetes RBAC has the last word on writes: a policy file may let anyone through at the
Nova layer, but the facade writes with the caller's own token, so a caller whom RBAC does not
let patch or delete computeservices gets Nova's 403 and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from hoststate import API_GROUP
from hoststate.devcluster import DevCluster
from hoststate.facade.config import FacadeConfig
from tests.support.facade import Response, RunningFacade, http

from .conftest import Users, World, create_service, get_service


@pytest.fixture(scope="module")
def permissive_facade(cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFacade]:
    """Any authenticated user passes Nova's policy for os-services (list, update, delete)."""
    policy = tmp_path_factory.mktemp("policy-permissive") / "policy.yaml"
    policy.write_text(
        '"os_compute_api:os-services:list": "@"\n'
        '"os_compute_api:os-services:update": "@"\n'
        '"os_compute_api:os-services:delete": "@"\n'
    )
    running = RunningFacade(cluster, FacadeConfig(policy_file=policy))
    yield running
    running.stop()


def assert_forbidden_by_rbac(response: Response, users: Users, verb: str) -> None:
    assert response.status == 403, response.body
    fault = response.body["forbidden"]
    assert fault["code"] == 403
    # The API server's refusal, naming the caller rather than the facade.
    assert f"system:serviceaccount:{users.project}:alice" in fault["message"]
    assert f'cannot {verb} resource "computeservices"' in fault["message"]


@pytest.mark.parametrize(
    ("version", "path", "body"),
    [
        ("2.11", "os-services/force-down", "legacy"),
        ("2.53", "os-services/{uuid}", {"forced_down": True}),
        ("2.53", "os-services/{uuid}", {"status": "disabled", "disabled_reason": "maintenance"}),
        ("2.1", "os-services/disable", "legacy"),
    ],
    ids=["force-down-2.11", "force-down-2.53", "disable-2.53", "disable-2.1"],
)
def test_policy_allows_but_rbac_forbids_the_patch(
    permissive_facade: RunningFacade,
    users: Users,
    world: World,
    custom: k8s.CustomObjectsApi,
    version: str,
    path: str,
    body: object,
) -> None:
    permissive_facade.sync(world.service)
    before = get_service(custom, world)
    if body == "legacy":
        body = {"host": world.host, "binary": "nova-compute"}
        if path.endswith("force-down"):
            body["forced_down"] = True
    # The owner passes Nova's policy here (the list answers) but may only read servers in Kubernetes.
    listing = http(f"{permissive_facade.url}/v2.1/os-services?host={world.host}", token=users.owner, version=version)
    assert listing.status == 200 and len(listing.body["services"]) == 1

    url = f"{permissive_facade.url}/v2.1/{path.format(uuid=world.service_uuid)}"
    response = http(url, "PUT", token=users.owner, version=version, body=body)

    assert_forbidden_by_rbac(response, users, "patch")
    # Nothing changed (compared by content: an operator, if running, may write the status).
    after = get_service(custom, world)
    assert after["spec"] == before["spec"] and after["spec"].get("forcedDown", False) is False
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_policy_allows_but_rbac_forbids_the_delete(
    permissive_facade: RunningFacade, users: Users, custom: k8s.CustomObjectsApi, unique_host: str
) -> None:
    service = create_service(custom, unique_host)  # no servers on it: Nova's 409 does not apply
    permissive_facade.sync(service)
    url = f"{permissive_facade.url}/v2.1/os-services/{service['metadata']['uid']}"

    response = http(url, "DELETE", token=users.owner, version="2.53")

    assert_forbidden_by_rbac(response, users, "delete")
    still = custom.get_cluster_custom_object(API_GROUP, "v1alpha1", "computeservices", service["metadata"]["name"])
    assert still["metadata"]["uid"] == service["metadata"]["uid"] and "deletionTimestamp" not in still["metadata"]


def test_the_same_write_succeeds_for_an_rbac_admin(
    permissive_facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    """The control: the refusal above is RBAC's, not the facade's."""
    permissive_facade.sync(world.service)
    url = f"{permissive_facade.url}/v2.1/os-services/{world.service_uuid}"
    response = http(url, "PUT", token=users.admin, version="2.53", body={"forced_down": True})
    assert response.status == 200, response.body
    assert get_service(custom, world)["spec"]["forcedDown"] is True
