"""Evacuations as Nova's migration records through the facade: GET /os-migrations (fields per
microversion, filters, paging, policy), `openstack server migration list` and `nova migration-list`,
unmodified, against the suite's API server with the operator and a returning host's agent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hoststate.devcluster.processes import HoststateProcess, wait_for
from tests.evacuation.conftest import Fleet, Tokens, action
from tests.support.facade import RunningFacade, http

BIN = Path(sys.executable).parent


@pytest.fixture
def evacuations(
    operator: HoststateProcess, facade: RunningFacade, fleet: Fleet, tokens: Tokens, agents, cleaning_agents
):
    """Two servers evacuated from a forced-down host: one completed by its returning agent
    (hosted on `back`), one done (from `down`); one server never evacuated."""
    back, down, dest = fleet.host("back"), fleet.host("down"), fleet.host("dest")
    for host in (back, down):
        facade.sync(fleet.create_service(host, forcedDown=True))
    fleet.create_service(dest)
    agents(dest)
    servers = {name: fleet.create_server(name, host) for name, host in (("a", back), ("b", down), ("c", down))}
    for server in servers.values():
        facade.sync(server)
    wait_for(lambda: fleet.service(dest).get("status", {}).get("state") == "up", what="dest up")
    facade.sync(fleet.service(dest))
    for name in ("a", "b"):
        answer = action(facade, servers[name]["metadata"]["uid"], {"evacuate": {"host": dest}}, token=tokens.admin)
        assert answer.status == 200, answer.body
        fleet.wait_evacuation(name, "done")
    cleaning_agents(back, "true")
    fleet.wait_evacuation("a", "completed")
    for name in servers:
        facade.sync(fleet.server(name))
    return {"back": back, "down": down, "dest": dest, **{n: fleet.server(n)["metadata"]["uid"] for n in servers}}


def migrations(facade: RunningFacade, token: str, version: str, query: str = "") -> dict:
    answer = http(f"{facade.url}/v2.1/os-migrations{query}", token=token, version=version)
    assert answer.status == 200, answer.body
    return answer.body


def test_evacuations_are_migration_records_per_microversion(
    facade: RunningFacade, tokens: Tokens, evacuations, namespace: str
) -> None:
    e = evacuations
    mine = f"?host={e['dest']}"
    legacy = migrations(facade, tokens.admin, "2.1", mine)["migrations"]
    assert sorted((m["instance_uuid"], m["status"]) for m in legacy) == sorted(
        [(e["a"], "completed"), (e["b"], "done")]
    )
    record = next(m for m in legacy if m["instance_uuid"] == e["a"])
    assert set(record) == {
        "created_at", "dest_compute", "dest_host", "dest_node", "id", "instance_uuid", "new_instance_type_id",
        "old_instance_type_id", "source_compute", "source_node", "status", "updated_at",
    }  # fmt: skip
    assert (record["source_compute"], record["dest_compute"], record["source_node"]) == (
        e["back"],
        e["dest"],
        e["back"],
    )
    assert isinstance(record["id"], int) and record["updated_at"] >= record["created_at"]

    at_223 = migrations(facade, tokens.admin, "2.23", mine)["migrations"]
    assert {m["migration_type"] for m in at_223} == {"evacuation"} and "links" not in at_223[0]
    at_259 = migrations(facade, tokens.admin, "2.59", mine)["migrations"]
    assert all("uuid" in m and "user_id" not in m for m in at_259)
    assert [m["created_at"] for m in at_259] == sorted((m["created_at"] for m in at_259), reverse=True)
    at_280 = migrations(facade, tokens.admin, "2.80", mine)["migrations"]
    assert {(m["project_id"], m["user_id"]) for m in at_280} == {
        (namespace, f"system:serviceaccount:{namespace}:evac-ops")
    }


def test_filters_and_paging(facade: RunningFacade, tokens: Tokens, evacuations) -> None:
    e = evacuations

    def uuids(version: str, query: str) -> list[str]:
        return [m["instance_uuid"] for m in migrations(facade, tokens.admin, version, query)["migrations"]]

    assert uuids("2.1", f"?host={e['back']}") == [e["a"]]  # as source
    assert sorted(uuids("2.1", f"?host={e['dest']}")) == sorted([e["a"], e["b"]])  # as target
    assert uuids("2.1", f"?source_compute={e['down']}") == [e["b"]]
    assert uuids("2.1", f"?host={e['dest']}&status=done") == [e["b"]]
    assert uuids("2.1", f"?instance_uuid={e['a']}") == [e["a"]]
    assert uuids("2.1", f"?instance_uuid={e['c']}") == []  # never evacuated
    assert uuids("2.1", f"?host={e['dest']}&migration_type=live-migration") == []
    assert uuids("2.23", f"?host={e['dest']}&migration_type=evacuation")

    first = migrations(facade, tokens.admin, "2.59", f"?host={e['dest']}&limit=1")
    assert len(first["migrations"]) == 1 and first["migrations_links"][0]["rel"] == "next"
    marker = first["migrations"][0]["uuid"]
    rest = migrations(facade, tokens.admin, "2.59", f"?host={e['dest']}&limit=1&marker={marker}")["migrations"]
    assert [m["instance_uuid"] for m in first["migrations"] + rest] == uuids("2.59", f"?host={e['dest']}")
    unknown = http(f"{facade.url}/v2.1/os-migrations?marker=nope", token=tokens.admin, version="2.59")
    assert (unknown.status, unknown.body["badRequest"]["message"]) == (400, "Marker nope could not be found.")
    assert uuids("2.59", f"?host={e['dest']}&changes-since=2999-01-01T00:00:00Z") == []
    unknown_param = http(f"{facade.url}/v2.1/os-migrations?foo=1", token=tokens.admin, version="2.59")
    assert unknown_param.status == 400


def test_only_admins_list_migrations(facade: RunningFacade, tokens: Tokens, evacuations) -> None:
    answer = http(f"{facade.url}/v2.1/os-migrations", token=tokens.owner, version="2.80")
    assert answer.status == 403
    assert answer.body["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:os-migrations:index to be performed."
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client(facade: RunningFacade, token: str, namespace: str, *argv: str, tmp_path: Path) -> str:
    """An unmodified client's shell. openstackclient: a clouds.yaml whose token (auth type v3token)
    the facade's identity API exchanges for one with a catalog (`server migration list` asks for
    the identity service). novaclient: keystoneauth's admin_token plugin; its shell also insists on
    a project and an auth URL, never contacted (tests/facade/test_novaclient.py says why)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "NOVA_", "NOVACLIENT_"))}
    if argv[0] == "openstack":
        auth = {"auth_url": f"{facade.url}/identity/v3", "token": token, "project_name": namespace}
        cloud = {"auth_type": "v3token", "auth": {**auth, "project_domain_name": "Default"}}
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(json.dumps({"clouds": {"admin": {**cloud, "compute_api_version": "2.80"}}}))
        environment |= {"OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": "admin"}
    else:
        environment |= {
            "OS_AUTH_TYPE": "admin_token",
            "OS_ENDPOINT": f"{facade.url}/v2.1",
            "OS_TOKEN": token,
            "OS_PROJECT_ID": namespace,
            "OS_AUTH_URL": f"http://127.0.0.1:{closed_port()}/identity/v3",
        }
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_openstack_server_migration_list(
    facade: RunningFacade, tokens: Tokens, evacuations, namespace: str, tmp_path: Path
) -> None:
    e = evacuations
    argv = ("server", "migration", "list", "--type", "evacuation", "--host", e["dest"], "-f", "json")
    out = client(facade, tokens.admin, namespace, "openstack", *argv, tmp_path=tmp_path)
    rows = {row["Server UUID"]: row for row in json.loads(out)}
    assert set(rows) == {e["a"], e["b"]}
    assert (rows[e["a"]]["Status"], rows[e["a"]]["Source Compute"], rows[e["a"]]["Dest Compute"]) == (
        "completed",
        e["back"],
        e["dest"],
    )
    assert rows[e["b"]]["Status"] == "done" and rows[e["b"]]["Type"] == "evacuation"


def test_nova_migration_list(
    facade: RunningFacade, tokens: Tokens, evacuations, namespace: str, tmp_path: Path
) -> None:
    e = evacuations
    argv = ("nova", "migration-list", "--migration-type", "evacuation", "--host", e["back"])
    out = client(facade, tokens.admin, namespace, *argv, tmp_path=tmp_path)
    assert e["a"] in out and "completed" in out and e["b"] not in out
    argv = ("nova", "migration-list", "--status", "done", "--host", e["dest"])
    out = client(facade, tokens.admin, namespace, *argv, tmp_path=tmp_path)
    assert e["b"] in out and e["a"] not in out
