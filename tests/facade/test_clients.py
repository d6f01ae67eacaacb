"""Unmodified python-openstackclient and openstacksdk against the facade
(auth type admin_token, endpoint /v2.1), each change checked through the Kubernetes API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kubernetes import client as k8s

from tests.support.facade import RunningFacade

from .conftest import Users, World, get_service

BIN = Path(sys.executable).parent


def run(facade: RunningFacade, users: Users, *argv: str, **env: str) -> str:
    """Run a client as the admin user (a ServiceAccount in the test's project)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "NOVACLIENT_"))} | {
        "OS_AUTH_TYPE": "admin_token",
        "OS_TOKEN": users.admin,
        "OS_ENDPOINT": f"{facade.url}/v2.1",
        **env,
    }
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_openstack_service_set_down_up(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    run(facade, users, "openstack", "compute", "service", "set", "--down", world.host, "nova-compute")
    assert get_service(custom, world)["spec"]["forcedDown"] is True
    out = run(facade, users, "openstack", "compute", "service", "list", "--long", "--host", world.host)
    assert world.host in out and "down" in out
    run(facade, users, "openstack", "compute", "service", "set", "--up", world.host, "nova-compute")
    assert get_service(custom, world)["spec"]["forcedDown"] is False


def test_openstack_server_show_host_status(facade: RunningFacade, users: Users, world: World) -> None:
    out = run(facade, users, "openstack", "server", "show", world.server_id, "-f", "value", "-c", "host_status")
    assert out.strip() == "UP"


SDK_SCRIPT = """
import sys
import openstack
conn = openstack.connect(auth_type="admin_token", auth={"endpoint": sys.argv[1], "token": sys.argv[2]})
host, uuid, server_id = sys.argv[3:6]
conn.compute.update_service_forced_down(None, host=host, binary="nova-compute", forced=True)
print("by-host", conn.compute.get_server(server_id).host_status)
service = next(s for s in conn.compute.services() if s.id == uuid)
conn.compute.update_service_forced_down(service, forced=False)
print("by-uuid", conn.compute.get_server(server_id).host_status)
"""


def test_openstacksdk(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SDK_SCRIPT,
            f"{facade.url}/v2.1",
            users.admin,
            world.host,
            world.service_uuid,
            world.server_id,
        ],
        env={k: v for k, v in os.environ.items() if not k.startswith("OS_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["by-host", "DOWN", "by-uuid", "UP"]
    assert get_service(custom, world)["spec"]["forcedDown"] is False
