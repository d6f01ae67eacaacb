"""POST /servers/{id}/action {"evacuate": ...} through the facade: Nova's errors, the move made with
the caller's token, the operator's record, and hostStatus following the server."""

from __future__ import annotations

import pytest

from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.domain.hoststatus import COMPUTE_BINARY
from hoststate.facade.app import STATE
from tests.evacuation.conftest import Fleet, Tokens, action
from tests.support.facade import RunningFacade, http


@pytest.fixture
def down_source(fleet: Fleet, facade: RunningFacade, namespace: str):
    """A forced-down source host with one server on it, seen by the facade."""
    source = fleet.host("src")
    facade.sync(fleet.create_service(source, forcedDown=True))
    server = fleet.create_server("vm", source, userId="alice")
    facade.sync(server)
    return source, server


def target(fleet: Fleet, facade: RunningFacade, agents, name: str, **spec) -> str:
    """A heartbeating host, once the facade has seen its first heartbeat (its checks read it)."""
    host = fleet.host(name)
    facade.sync(fleet.create_service(host, **spec))
    agents(host)
    state = facade.app[STATE]
    wait_for(lambda: state.service_by_host_and_binary(host, COMPUTE_BINARY).last_heartbeat, what=f"{host}'s heartbeat")
    return host


def test_evacuate_to_a_given_host(
    operator: HoststateProcess, facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, down_source, namespace: str
) -> None:
    source, server = down_source
    dest = target(fleet, facade, agents, "dest")
    fleet.wait_host_status("vm", "DOWN")

    answer = action(facade, server["metadata"]["uid"], {"evacuate": {"host": dest, "force": False}}, token=tokens.admin)

    assert (answer.status, answer.body) == (200, None)  # 2.14+: no body
    moved = fleet.server("vm")
    assert moved["spec"]["host"] == dest
    request = fleet.request("vm")
    assert (request["sourceHost"], request["targetHost"], request["trigger"]) == (source, dest, "api")
    assert request["requestedBy"] == f"system:serviceaccount:{namespace}:evac-ops"
    # Written with the caller's own token: managedFields name them.
    assert any(
        f["manager"] == f"system:serviceaccount:{namespace}:evac-ops" for f in moved["metadata"]["managedFields"]
    )
    record = fleet.wait_evacuation("vm", "done")
    assert (record["sourceHost"], record["targetHost"], record["id"]) == (source, dest, request["id"])
    assert record["completedTime"] and record["requestedTime"]
    fleet.wait_host_status("vm", "UP")  # hostStatus follows the new host
    assert fleet.wait_event(namespace, "vm", "Evacuated")


def test_evacuate_chooses_the_emptiest_healthy_host_of_the_zone(
    operator: HoststateProcess, facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, down_source, namespace: str
) -> None:
    source, server = down_source
    busy = target(fleet, facade, agents, "busy")
    empty = target(fleet, facade, agents, "empty")
    target(fleet, facade, agents, "disabled", disabled=True)
    target(fleet, facade, agents, "forced", forcedDown=True)
    target(fleet, facade, agents, "elsewhere", zone=f"other-{fleet.tag}")  # emptier, but another zone
    for i in range(2):
        facade.sync(fleet.create_server(f"load-{i}", busy))

    answer = action(facade, server["metadata"]["uid"], {"evacuate": {}}, token=tokens.admin, project=namespace)

    assert answer.status == 200, answer.body
    assert fleet.server("vm")["spec"]["host"] == empty
    assert fleet.wait_evacuation("vm", "done")["targetHost"] == empty
    fleet.wait_host_status("vm", "UP")


def test_legacy_microversion_returns_admin_pass(
    facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, down_source
) -> None:
    _, server = down_source
    dest = target(fleet, facade, agents, "dest")
    uid = server["metadata"]["uid"]
    body = {"evacuate": {"host": dest, "onSharedStorage": True, "adminPass": "x"}}
    refused = action(facade, uid, body, token=tokens.admin, version="2.1")
    assert refused.status == 400
    assert refused.body["badRequest"]["message"] == "admin password can't be changed on existing disk"
    missing = action(facade, uid, {"evacuate": {"host": dest}}, token=tokens.admin, version="2.13")
    assert missing.status == 400 and "onSharedStorage" in missing.body["badRequest"]["message"]

    answer = action(
        facade, uid, {"evacuate": {"host": dest, "onSharedStorage": "false"}}, token=tokens.admin, version="2.1"
    )
    assert answer.status == 200
    assert isinstance(answer.body["adminPass"], str) and len(answer.body["adminPass"]) == 12


def test_force_at_2_29_skips_the_target_check(
    facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, down_source
) -> None:
    _, server = down_source
    uid = server["metadata"]["uid"]
    dest = target(fleet, facade, agents, "dest", disabled=True)
    forced_without_host = action(facade, uid, {"evacuate": {"force": True}}, token=tokens.admin)
    assert forced_without_host.status == 400
    assert forced_without_host.body["badRequest"]["message"] == "Can't force to a non-provided destination"
    checked = action(facade, uid, {"evacuate": {"host": dest}}, token=tokens.admin)  # force defaults to False
    assert checked.status == 400
    assert checked.body["badRequest"]["message"].startswith("No valid host was found.")
    assert fleet.server("vm")["spec"]["host"] != dest

    forced = action(facade, uid, {"evacuate": {"host": dest, "force": "true"}}, token=tokens.admin)
    assert forced.status == 200, forced.body
    assert fleet.server("vm")["spec"]["host"] == dest


def test_at_268_force_is_gone(facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, down_source) -> None:
    """2.68 removes `force` (refused by the schema); the given host is then always checked."""
    _, server = down_source
    uid = server["metadata"]["uid"]
    dest = target(fleet, facade, agents, "dest")
    refused = action(facade, uid, {"evacuate": {"host": dest, "force": True}}, token=tokens.admin, version="2.68")
    assert (refused.status, refused.body["badRequest"]["message"]) == (
        400,
        f"Invalid input for field/attribute evacuate. Value: {{'host': '{dest}', 'force': True}}. "
        "Additional properties are not allowed ('force' was unexpected)",
    )
    assert fleet.server("vm")["spec"]["host"] != dest  # nothing half-applied

    answer = action(facade, uid, {"evacuate": {"host": dest}}, token=tokens.admin, version="2.68")
    assert (answer.status, answer.body) == (200, None)
    moved = fleet.server("vm")
    assert (moved["spec"]["host"], moved["spec"]["vmState"]) == (dest, "active")  # the state it had


def test_at_295_the_server_is_stopped_on_the_target(
    operator: HoststateProcess, facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, down_source
) -> None:
    """2.95: "Any evacuated instances will be now stopped at destination" (the body is 2.68's)."""
    _, server = down_source
    uid = server["metadata"]["uid"]
    dest = target(fleet, facade, agents, "dest")
    assert action(facade, uid, {"evacuate": {"force": False}}, token=tokens.admin, version="2.95").status == 400

    answer = action(facade, uid, {"evacuate": {}}, token=tokens.admin, version="2.95")  # the target is chosen
    assert (answer.status, answer.body) == (200, None)
    moved = fleet.server("vm")
    assert (moved["spec"]["host"], moved["spec"]["vmState"], moved["spec"]["powerState"]) == (dest, "stopped", 4)
    assert fleet.request("vm")["targetState"] == "stopped"
    fleet.wait_evacuation("vm", "done")
    shown = http(f"{facade.url}/v2.1/servers/{uid}", token=tokens.admin, version="2.95").body["server"]
    assert (shown["status"], shown["OS-EXT-STS:vm_state"], shown["OS-EXT-SRV-ATTR:host"]) == (
        "SHUTOFF",
        "stopped",
        dest,
    )


# -- Nova's error paths -----------------------------------------------------------------------
def test_source_service_still_up(facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents) -> None:
    source = target(fleet, facade, agents, "src")  # heartbeating: up
    dest = target(fleet, facade, agents, "dest")
    server = fleet.create_server("vm", source)
    facade.sync(server)
    answer = action(facade, server["metadata"]["uid"], {"evacuate": {"host": dest}}, token=tokens.admin)
    assert (answer.status, answer.body) == (
        400,
        {"badRequest": {"code": 400, "message": f"Compute service of {source} is still in use."}},
    )
    assert fleet.server("vm")["spec"]["host"] == source


def test_unknown_target_host(facade: RunningFacade, tokens: Tokens, down_source) -> None:
    _, server = down_source
    answer = action(facade, server["metadata"]["uid"], {"evacuate": {"host": "no-such-host"}}, token=tokens.admin)
    assert (answer.status, answer.body["itemNotFound"]["message"]) == (404, "Compute host no-such-host not found.")


def test_target_is_the_source(facade: RunningFacade, tokens: Tokens, down_source) -> None:
    source, server = down_source
    answer = action(facade, server["metadata"]["uid"], {"evacuate": {"host": source}}, token=tokens.admin)
    assert (answer.status, answer.body["badRequest"]["message"]) == (400, "The target host can't be the same one.")


@pytest.mark.parametrize(
    ("spec", "attr", "state"),
    [
        ({"vmState": "paused"}, "vm_state", "paused"),
        ({"vmState": "active", "taskState": "rebuilding"}, "task_state", "rebuilding"),
    ],
)
def test_invalid_server_state(facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, spec, attr, state) -> None:
    source = fleet.host("src")
    facade.sync(fleet.create_service(source, forcedDown=True))
    dest = target(fleet, facade, agents, "dest")
    server = fleet.create_server("vm", source, **spec)
    facade.sync(server)
    uid = server["metadata"]["uid"]
    answer = action(facade, uid, {"evacuate": {"host": dest}}, token=tokens.admin)
    assert answer.status == 409
    assert (
        answer.body["conflictingRequest"]["message"]
        == f"Cannot 'evacuate' instance {uid} while it is in {attr} {state}"
    )


def test_policy_admin_only(facade: RunningFacade, tokens: Tokens, down_source, namespace: str) -> None:
    _, server = down_source
    uid = server["metadata"]["uid"]
    owner = action(facade, uid, {"evacuate": {}}, token=tokens.owner, project=namespace)
    assert (owner.status, owner.body["forbidden"]["message"]) == (
        403,
        "Policy doesn't allow os_compute_api:os-evacuate to be performed.",
    )
    stranger = action(facade, uid, {"evacuate": {}}, token=tokens.other)
    assert (stranger.status, stranger.body["itemNotFound"]["message"]) == (404, f"Instance {uid} could not be found.")


def test_rbac_decides_the_write(facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, down_source) -> None:
    """A Nova admin whose Kubernetes RBAC does not let them patch servers: the API server refuses the
    patch made with their token, nothing moves."""
    source, server = down_source
    dest = target(fleet, facade, agents, "dest")
    answer = action(facade, server["metadata"]["uid"], {"evacuate": {"host": dest}}, token=tokens.admin_without_patch)
    assert answer.status == 403
    assert fleet.server("vm")["spec"]["host"] == source


def test_action_dispatch(facade: RunningFacade, tokens: Tokens, down_source) -> None:
    _, server = down_source
    url = f"{facade.url}/v2.1/servers/{server['metadata']['uid']}/action"
    unknown = http(url, "POST", token=tokens.admin, body={"os-frobnicate": None})
    assert (unknown.status, unknown.body["badRequest"]["message"]) == (400, "There is no such action: os-frobnicate")
    two = http(url, "POST", token=tokens.admin, body={"evacuate": {}, "os-stop": None})
    assert (two.status, two.body["badRequest"]["message"]) == (400, "Malformed request body")
    invalid = http(url, "POST", token=tokens.admin, version="2.29", body={"evacuate": {"host": "a b"}})
    assert invalid.status == 400 and invalid.body["badRequest"]["message"].startswith(
        "Invalid input for field/attribute host."
    )
