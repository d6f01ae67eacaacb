"""Unmodified python-novaclient, through its shell (`nova ...`), against the facade.

How novaclient 18.x runs without Keystone (read from novaclient/shell.py):
- keystoneauth's `admin_token` plugin (OS_AUTH_TYPE=admin_token, OS_ENDPOINT, OS_TOKEN) sends
  the token as X-Auth-Token to that endpoint for every request and never fetches a catalog.
- The shell still insists on OS_PROJECT_ID (or _NAME) and OS_AUTH_URL before it builds the
  session, whatever the plugin, and has no option for them with this plugin: they must be
  environment variables. The project is the caller's namespace (what the facade derives
  too); OS_AUTH_URL is never contacted: it points at a closed loopback port, so a request to it
  would fail the command.
- Do not pass OS_ENDPOINT_OVERRIDE/--os-endpoint-override with the token: with both, the shell
  skips the plugin and builds a Keystone `Token` plugin, which does contact OS_AUTH_URL
  (DiscoveryFailure; that is how an earlier attempt failed).
The microversion is negotiated from GET on the endpoint (`/v2.1`, its "version" document),
so with no OS_COMPUTE_API_VERSION the commands run at the facade's maximum (2.96, novaclient's too).
Every command's effect or output is checked against the objects read from the API server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from kubernetes import client as k8s

from hoststate.facade.api_version import MAX_VERSION
from tests.support.facade import RunningFacade

from .conftest import Users, World, get_service

NOVA = Path(sys.executable).parent / "nova"


def closed_port() -> int:
    """A loopback port nobody listens on (bound then released; nothing else here binds it again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nova(facade: RunningFacade, users: Users, *argv: str, **env: str) -> str:
    """`nova ARGV` as the admin user (a ServiceAccount of the test's project); returns stdout."""
    return nova_run(facade, users, *argv, **env).stdout


def nova_run(facade: RunningFacade, users: Users, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "NOVA_", "NOVACLIENT_"))} | {
        "OS_AUTH_TYPE": "admin_token",
        "OS_ENDPOINT": f"{facade.url}/v2.1",
        "OS_TOKEN": users.admin,
        "OS_PROJECT_ID": users.project,
        "OS_AUTH_URL": f"http://127.0.0.1:{closed_port()}/identity/v3",
        **env,
    }
    result = subprocess.run(
        [str(NOVA), *argv], env=environment, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"nova {' '.join(argv)}: {result.stdout}\n{result.stderr}"
    return result


def rows(table: str) -> list[list[str]]:
    """The data rows of a prettytable, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|")
    ][1:]


def header(table: str) -> list[str]:
    first = next(line for line in table.splitlines() if line.startswith("|"))
    return [cell.strip() for cell in first.strip().strip("|").split("|")]


def test_nova_negotiates_the_facade_maximum(facade: RunningFacade, users: Users) -> None:
    out = nova(facade, users, "version-list")
    assert ["v2.1", "CURRENT", "2013-07-23T11:33:21Z", "2.1", MAX_VERSION] in rows(out)
    # With no OS_COMPUTE_API_VERSION, the shell asks for what GET /v2.1 advertised.
    debug = nova_run(facade, users, "--debug", "service-list").stderr
    assert f"OpenStack-API-Version: compute {MAX_VERSION}" in debug
    assert "/identity/v3" not in debug  # no request to the (closed) OS_AUTH_URL


def test_nova_service_list(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi) -> None:
    out = nova(facade, users, "service-list", "--host", world.host)
    assert header(out) == [
        "Id",
        "Binary",
        "Host",
        "Zone",
        "Status",
        "State",
        "Updated_at",
        "Disabled Reason",
        "Forced down",
    ]
    service = get_service(custom, world)
    [row] = rows(out)
    assert row[:6] == [service["metadata"]["uid"], "nova-compute", world.host, service["spec"]["zone"], "enabled", "up"]
    assert row[8] == "False"


def test_nova_service_force_down_by_host_at_2_11(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    """novaclient 18.x's 2.11-2.52 form takes the host only; it sends binary nova-compute itself."""
    out = nova(facade, users, "service-force-down", world.host, OS_COMPUTE_API_VERSION="2.11")
    assert rows(out) == [[world.host, "nova-compute", "True"]]
    assert get_service(custom, world)["spec"]["forcedDown"] is True

    out = nova(facade, users, "service-force-down", "--unset", world.host, OS_COMPUTE_API_VERSION="2.11")
    assert rows(out) == [[world.host, "nova-compute", "False"]]
    assert get_service(custom, world)["spec"]["forcedDown"] is False


def test_nova_service_force_down_by_uuid_at_latest(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    out = nova(facade, users, "service-force-down", world.service_uuid)
    assert rows(out) == [[world.service_uuid, world.host, "nova-compute", "True"]]
    assert get_service(custom, world)["spec"]["forcedDown"] is True

    out = nova(facade, users, "service-force-down", "--unset", world.service_uuid)
    assert rows(out) == [[world.service_uuid, world.host, "nova-compute", "False"]]
    assert get_service(custom, world)["spec"]["forcedDown"] is False


def test_nova_list_fields_host_status(
    facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi
) -> None:
    out = nova(facade, users, "list", "--fields", "host_status")
    assert header(out) == ["ID", "Host Status"]
    assert [world.server_id, "UP"] in rows(out)

    nova(facade, users, "service-force-down", world.service_uuid)
    assert get_service(custom, world)["spec"]["forcedDown"] is True
    out = nova(facade, users, "list", "--fields", "host_status")
    assert [world.server_id, "DOWN"] in rows(out)


def test_nova_show(facade: RunningFacade, users: Users, world: World, custom: k8s.CustomObjectsApi) -> None:
    out = nova(facade, users, "show", world.server_id)
    fields = dict(row[:2] for row in rows(out))
    server = custom.get_namespaced_custom_object(
        "hoststate.io", "v1alpha1", users.project, "servers", world.server["metadata"]["name"]
    )
    assert fields["id"] == server["metadata"]["uid"]
    assert fields["name"] == server["spec"]["displayName"]
    assert fields["host_status"] == "UP"
    assert fields["OS-EXT-SRV-ATTR:host"] == server["spec"]["host"]
    assert fields["tenant_id"] == users.project


def test_nova_with_flags_instead_of_environment(facade: RunningFacade, users: Users, world: World) -> None:
    """The plugin's settings as options. With the admin_token plugin the shell has no
    --os-project-id or --os-auth-url option: those two can only come from the environment."""
    out = nova(
        facade,
        users,
        "--os-auth-type",
        "admin_token",
        "--os-endpoint",
        f"{facade.url}/v2.1",
        "--os-token",
        users.admin,
        "--os-compute-api-version",
        "2.11",
        "service-list",
        "--host",
        world.host,
        **{name: "" for name in ("OS_AUTH_TYPE", "OS_ENDPOINT", "OS_TOKEN")},
    )
    [row] = rows(out)
    assert row[1:3] == ["nova-compute", world.host] and row[0].isdigit()
    assert row[8] == "False"  # the 2.11 column
