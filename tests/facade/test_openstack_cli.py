"""The everyday commands of unmodified OpenStack clients, as their users have them: a clouds.yaml
(`--os-cloud NAME`, auth type v3token, written by make run's own generator) whose token the facade's
identity API exchanges for one with a catalog. For an admin and for tenants, each command's printed
values are checked, and each change also through the Kubernetes API.

One set of objects for the module (CLI start-up costs about a second per call): a project with an
admin, a member and three servers, another project with a member and a server, three hosts whose
heartbeats each test renews.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from hoststate import API_GROUP, API_VERSION
from hoststate.devcluster.stack import clouds_config, openrc, sample_tenants, write_clouds
from hoststate.facade.api_version import MAX_VERSION
from hoststate.kube import LEASES
from hoststate.kubetime import kube_micro_time
from hoststate.resources.lease import DEFAULT_LEASE_NAMESPACE
from tests.support.accounts import cluster_role
from tests.support.facade import RunningFacade, make_admin, make_tenant

from .conftest import create_server, create_service
from .test_novaclient import header, rows

BIN = Path(sys.executable).parent
ADMIN, MEMBER, OTHER = "cli-admin", "cli-member", "cli-other"
CLUSTER_ROLE = "hoststate-cli-test-admin"
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"


@dataclass
class Setup:
    project: str
    other_project: str
    hosts: list[str]  # [servers' host, evacuated from, evacuated to]
    ids: dict[str, str]  # server name -> id
    services: dict[str, str]  # host -> ComputeService uuid
    env: dict[str, str]  # the clients' environment: OS_CLIENT_CONFIG_FILE only
    clouds: dict[str, Any]
    renew: Any  # renews the hosts' heartbeats


def admin_role(api_client: k8s.ApiClient) -> str:
    """An admin who may also evacuate (patch servers)."""
    verbs = ["get", "list", "watch", "patch"]
    return cluster_role(api_client, CLUSTER_ROLE, {"computeservices": verbs, "servers": verbs})


@pytest.fixture(scope="module")
def objects(
    api_client: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    facade: RunningFacade,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Setup]:
    core = k8s.CoreV1Api(api_client)
    project, other_project = (f"t-{uuid.uuid4().hex[:10]}" for _ in range(2))
    for name in (project, other_project, DEFAULT_LEASE_NAMESPACE):
        try:
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        except k8s.ApiException as error:
            assert error.status == 409
    tokens = {
        ADMIN: (make_admin(api_client, project, ADMIN, admin_role(api_client)), project),
        MEMBER: (make_tenant(api_client, project, MEMBER), project),
        OTHER: (make_tenant(api_client, other_project, OTHER), other_project),
    }
    hosts = [f"cli-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    services = {host: create_service(custom, host) for host in hosts}
    for service in services.values():
        facade.sync(service)

    def lease(host: str) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": f"{host}.nova-compute"},
            "spec": {"holderIdentity": host, "renewTime": kube_micro_time(datetime.now(UTC))},
        }

    for host in hosts:
        facade.call(facade.kube.create(LEASES, lease(host), DEFAULT_LEASE_NAMESPACE))

    def renew() -> None:
        """Each host's Lease renewed now: up for the next minute (the service down time)."""
        for host in hosts:
            renewed = facade.kube.patch(LEASES, f"{host}.nova-compute", lease(host), DEFAULT_LEASE_NAMESPACE)
            facade.sync(facade.call(renewed))

    servers = [
        create_server(custom, project, "web-1", hosts[0], userId="alice", flavorId="1", imageId=IMAGE),
        create_server(custom, project, "db-1", hosts[0], userId="alice", flavorId="2", vmState="stopped"),
        create_server(custom, project, "evac-1", hosts[1], userId="alice", flavorId="1"),
        create_server(custom, other_project, "vnf-1", hosts[0], userId="bob", flavorId="2"),
    ]
    for server in servers:
        facade.sync(server)
    config = clouds_config(f"{facade.url}/identity/v3", tokens)
    path = tmp_path_factory.mktemp("clouds") / "clouds.yaml"
    write_clouds(path, config)
    yield Setup(
        project=project,
        other_project=other_project,
        hosts=hosts,
        ids={s["metadata"]["name"]: s["metadata"]["uid"] for s in servers},
        services={host: s["metadata"]["uid"] for host, s in services.items()},
        env={k: v for k, v in os.environ.items() if not k.startswith(("OS_", "NOVACLIENT_"))}
        | {"OS_CLIENT_CONFIG_FILE": str(path)},
        clouds=config["clouds"],
        renew=renew,
    )
    for host in hosts:
        custom.delete_cluster_custom_object(API_GROUP, API_VERSION, "computeservices", f"{host}.nova-compute")


@pytest.fixture
def setup(objects: Setup) -> Setup:
    """The module's objects, their hosts' heartbeats renewed."""
    objects.renew()
    return objects


def run(setup: Setup, argv: list[str], *, env: dict[str, str] | None = None, ok: bool = True) -> str:
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env=env or setup.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert (result.returncode == 0) is ok, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout if ok else result.stderr


def openstack(setup: Setup, cloud: str, *argv: str, ok: bool = True) -> str:
    return run(setup, ["openstack", "--os-cloud", cloud, *argv], ok=ok)


def as_json(setup: Setup, cloud: str, *argv: str) -> Any:
    return json.loads(openstack(setup, cloud, *argv, "-f", "json"))


def by_name(listed: list[dict[str, Any]], *columns: str) -> dict[str, tuple[Any, ...]]:
    return {row["Name"]: tuple(row[c] for c in columns) for row in listed}


def get_server(custom: k8s.CustomObjectsApi, setup: Setup, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(API_GROUP, API_VERSION, setup.project, "servers", name)


def get_service(custom: k8s.CustomObjectsApi, host: str) -> dict[str, Any]:
    return custom.get_cluster_custom_object(API_GROUP, API_VERSION, "computeservices", f"{host}.nova-compute")


# -- openstack server list / show -------------------------------------------------------------
def test_admin_server_list_long_all_projects(setup: Setup) -> None:
    """The seed's table: every project's servers on the host, with Host Status (2.16+, admin)."""
    table = openstack(setup, ADMIN, "server", "list", "--long", "--all-projects", "--host", setup.hosts[0])
    columns = header(table)
    assert {"Name", "Status", "Host", "Project ID", "Host Status", "Image Name", "Flavor"} <= set(columns)
    shown = {row[columns.index("Name")]: dict(zip(columns, row, strict=True)) for row in rows(table)}
    assert set(shown) == {"web-1", "db-1", "vnf-1"}
    assert shown["web-1"]["Project ID"] == setup.project and shown["vnf-1"]["Project ID"] == setup.other_project
    assert {row["Host Status"] for row in shown.values()} == {"UP"}
    assert shown["db-1"]["Status"] == "SHUTOFF" and shown["web-1"]["Status"] == "ACTIVE"
    # No image service in the catalog: openstackclient shows the image's id, and no name; the
    # flavor is the name the server has (2.47+); a server without image is "booted from volume".
    assert shown["web-1"]["Image ID"] == IMAGE and shown["web-1"]["Image Name"] == ""
    assert shown["web-1"]["Flavor"] == "1" and shown["db-1"]["Image Name"] == "N/A (booted from volume)"


def test_admin_server_list_own_project_and_filters(setup: Setup) -> None:
    own = as_json(setup, ADMIN, "server", "list", "--long")
    assert by_name(own, "Host", "Host Status") == {
        "web-1": (setup.hosts[0], "UP"),
        "db-1": (setup.hosts[0], "UP"),
        "evac-1": (setup.hosts[1], "UP"),
    }
    assert by_name(as_json(setup, ADMIN, "server", "list", "--project", setup.other_project), "Project ID") == {
        "vnf-1": (setup.other_project,)
    }
    host = ("--all-projects", "--host", setup.hosts[0])
    assert set(by_name(as_json(setup, ADMIN, "server", "list", *host, "--status", "SHUTOFF"))) == {"db-1"}
    assert set(by_name(as_json(setup, ADMIN, "server", "list", *host, "--name", "^(web|vnf)-"))) == {"web-1", "vnf-1"}
    assert set(by_name(as_json(setup, ADMIN, "server", "list", *host, "--user", "bob"))) == {"vnf-1"}


def test_tenant_server_list_sees_its_project_without_host_status(setup: Setup) -> None:
    listed = as_json(setup, MEMBER, "server", "list", "--long")
    assert by_name(listed, "Status", "Host") == {
        "web-1": ("ACTIVE", None),  # the host is an extended attribute, the admin's
        "db-1": ("SHUTOFF", None),
        "evac-1": ("ACTIVE", None),
    }
    assert "Host Status" not in listed[0]  # Nova's default policy shows it to admins only
    assert set(by_name(as_json(setup, OTHER, "server", "list"))) == {"vnf-1"}
    refused = openstack(setup, MEMBER, "server", "list", "--all-projects", ok=False)
    assert "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed." in refused


def test_server_show_by_name_and_id(setup: Setup) -> None:
    """openstackclient 10.5's `server show` has no --all-projects: an admin shows another project's
    server by its id (a name is looked up in the token's project)."""
    web = as_json(setup, ADMIN, "server", "show", "web-1")
    assert (web["id"], web["host_status"], web["project_id"]) == (setup.ids["web-1"], "UP", setup.project)
    assert web["OS-EXT-SRV-ATTR:host"] == setup.hosts[0]
    vnf = as_json(setup, ADMIN, "server", "show", setup.ids["vnf-1"])
    assert (vnf["name"], vnf["host_status"], vnf["project_id"]) == ("vnf-1", "UP", setup.other_project)
    mine = as_json(setup, MEMBER, "server", "show", "web-1")
    assert (mine["id"], mine["host_status"], mine["OS-EXT-SRV-ATTR:host"]) == (setup.ids["web-1"], None, None)
    assert as_json(setup, MEMBER, "server", "show", setup.ids["db-1"])["status"] == "SHUTOFF"
    assert "No Server found for vnf-1" in openstack(setup, MEMBER, "server", "show", "vnf-1", ok=False)


# -- openstack compute service, server evacuate ------------------------------------------------
def test_compute_service_set(setup: Setup, custom: k8s.CustomObjectsApi) -> None:
    host = setup.hosts[0]

    def state() -> tuple[tuple[Any, ...], str]:
        (service,) = as_json(setup, ADMIN, "compute", "service", "list", "--long", "--host", host)
        server = as_json(setup, ADMIN, "server", "show", "web-1", "-c", "host_status")["host_status"]
        return (service["Status"], service["State"], service["Forced Down"], service["Disabled Reason"]), server

    assert state() == (("enabled", "up", False, None), "UP")
    openstack(setup, ADMIN, "compute", "service", "set", "--down", host, "nova-compute")
    assert get_service(custom, host)["spec"]["forcedDown"] is True
    assert state() == (("enabled", "down", True, None), "DOWN")
    openstack(setup, ADMIN, "compute", "service", "set", "--disable", "--disable-reason", "maint", host, "nova-compute")
    assert state() == (("disabled", "down", True, "maint"), "DOWN")  # DOWN wins over MAINTENANCE
    openstack(setup, ADMIN, "compute", "service", "set", "--up", host, "nova-compute")
    assert state() == (("disabled", "up", False, "maint"), "MAINTENANCE")
    openstack(setup, ADMIN, "compute", "service", "set", "--enable", host, "nova-compute")
    assert state() == (("enabled", "up", False, None), "UP")
    spec = get_service(custom, host)["spec"]
    assert (spec["forcedDown"], spec["disabled"]) == (False, False)
    refused = openstack(setup, MEMBER, "compute", "service", "list", ok=False)
    assert "Policy doesn't allow os_compute_api:os-services:list to be performed." in refused


def test_server_evacuate(setup: Setup, custom: k8s.CustomObjectsApi) -> None:
    source, target = setup.hosts[1], setup.hosts[2]
    openstack(setup, ADMIN, "compute", "service", "set", "--down", source, "nova-compute")
    shown = as_json(setup, ADMIN, "server", "evacuate", "--host", target, "evac-1")
    assert shown["id"] == setup.ids["evac-1"]
    assert get_server(custom, setup, "evac-1")["spec"]["host"] == target
    moved = as_json(setup, ADMIN, "server", "show", "evac-1")
    # From 2.95 (the cloud's 2.96) an evacuated server is stopped on its target.
    assert (moved["OS-EXT-SRV-ATTR:host"], moved["host_status"], moved["status"]) == (target, "UP", "SHUTOFF")


# -- nova, openstacksdk -----------------------------------------------------------------------
def nova_env(setup: Setup, cloud: str, **extra: str) -> dict[str, str]:
    """novaclient's shell reads no clouds.yaml: the same cloud as make run's openrc has it."""
    return setup.env | openrc(setup.clouds[cloud]) | extra


def test_nova(setup: Setup, custom: k8s.CustomObjectsApi) -> None:
    host, uuid_ = setup.hosts[0], setup.services[setup.hosts[0]]
    table = run(setup, ["nova", "list", "--fields", "name,status,host_status"], env=nova_env(setup, ADMIN))
    assert header(table) == ["ID", "Name", "Status", "Host Status"]
    shown = {row[1]: (row[2], row[3]) for row in rows(table)}
    assert set(shown) == {"web-1", "db-1", "evac-1"}  # evac-1 may have been evacuated already
    assert (shown["web-1"], shown["db-1"]) == (("ACTIVE", "UP"), ("SHUTOFF", "UP"))
    refused = run(setup, ["nova", "list", "--fields", "name,host_status"], env=nova_env(setup, MEMBER), ok=False)
    assert "Non-existent fields are specified: ['host_status']" in refused  # a tenant is not shown host_status
    at_211 = nova_env(setup, ADMIN, OS_COMPUTE_API_VERSION="2.11")
    out = run(setup, ["nova", "service-force-down", host], env=at_211)  # 2.11-2.52: the host; binary nova-compute
    assert rows(out) == [[host, "nova-compute", "True"]]
    assert get_service(custom, host)["spec"]["forcedDown"] is True
    out = run(setup, ["nova", "service-force-down", "--unset", uuid_], env=nova_env(setup, ADMIN))
    assert rows(out) == [[uuid_, host, "nova-compute", "False"]]
    assert get_service(custom, host)["spec"]["forcedDown"] is False


SDK_SCRIPT = """
import sys
import openstack
cloud, host, uuid = sys.argv[1:4]
conn = openstack.connect(cloud=cloud)
def table():
    return sorted((s.name, s.project_id, s.host_status) for s in conn.compute.servers(details=True, all_projects=True)
                  if s.compute_host == host)
print(table())
conn.compute.update_service_forced_down(None, host=host, binary="nova-compute", forced=True)
print(table())
service = next(s for s in conn.compute.services() if s.id == uuid)
conn.compute.update_service_forced_down(service, forced=False)
print(table())
"""


def test_openstacksdk(setup: Setup, custom: k8s.CustomObjectsApi) -> None:
    host = setup.hosts[0]
    out = run(setup, [sys.executable, "-c", SDK_SCRIPT, ADMIN, host, setup.services[host]])
    tables = [eval(line) for line in out.splitlines()]  # noqa: S307 - the lists the script printed

    def expected(status: str) -> list[tuple[str, str, str]]:
        return sorted(
            [("web-1", setup.project, status), ("db-1", setup.project, status), ("vnf-1", setup.other_project, status)]
        )

    assert tables == [expected("UP"), expected("DOWN"), expected("UP")]
    assert get_service(custom, host)["spec"]["forcedDown"] is False


def test_make_run_writes_a_cloud_per_sample_tenant(tmp_path: Path) -> None:
    """make run's clouds: the admin and each sample tenant, v3token at the facade's identity API."""
    assert sample_tenants() == ["tenant-a", "tenant-b"]
    config = clouds_config("http://127.0.0.1:8774/identity/v3", {"tenant-a": ("t0k", "tenant-a")})
    write_clouds(tmp_path / "clouds.yaml", config)
    assert (tmp_path / "clouds.yaml").stat().st_mode & 0o777 == 0o600  # it holds tokens
    cloud = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]["tenant-a"]
    assert cloud["auth_type"] == "v3token" and cloud["compute_api_version"] == MAX_VERSION
    assert openrc(cloud) == {
        "OS_AUTH_TYPE": "v3token",
        "OS_AUTH_URL": "http://127.0.0.1:8774/identity/v3",
        "OS_TOKEN": "t0k",
        "OS_PROJECT_NAME": "tenant-a",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }
