"""The guest drivers for real: libvirt's test driver (test:///default, in this process: no daemon,
no KVM) and the exec driver's command."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import libvirt
import pytest

from hoststate.agent.config import AgentConfig
from hoststate.agent.drivers import ExecDriver, GuestCleanupError, guest_driver
from hoststate.agent.libvirt_driver import LibvirtDriver
from hoststate.domain.evacuation import EvacuatedServer
from tests.support.guests import LIBVIRT_TEST_URI, LibvirtNode

URI = LIBVIRT_TEST_URI


def evacuated(uid: str) -> EvacuatedServer:
    return EvacuatedServer("ns", "vm", uid, "dest", {"sourceHost": "back", "targetHost": "dest", "state": "done"})


@pytest.fixture
def node():
    libvirt_node = LibvirtNode(URI)

    def define(uid: str, name: str | None = None, disk: str | None = None, *, start: bool = True):
        return libvirt_node.define(uid, name or f"instance-{uid[:8]}", disk=disk, start=start)

    yield define, libvirt_node.connection
    libvirt_node.close()


def exists(connection: libvirt.virConnect, uid: str) -> bool:
    try:
        connection.lookupByUUIDString(uid)
        return True
    except libvirt.libvirtError:
        return False


async def test_libvirt_destroys_and_undefines_the_domain_of_the_servers_uuid(node) -> None:
    define, connection = node
    target, bystander = str(uuid.uuid4()), str(uuid.uuid4())
    define(target)
    define(bystander)
    driver = LibvirtDriver(URI)
    assert await driver.ensure_gone(evacuated(target)) == f"libvirt domain instance-{target[:8]} destroyed, undefined"
    assert not exists(connection, target)
    assert connection.lookupByUUIDString(bystander).isActive()
    assert await driver.ensure_gone(evacuated(target)) == f"no libvirt domain {target}"  # idempotent


async def test_libvirt_finds_a_domain_named_by_the_server_id_and_one_shut_off(node) -> None:
    define, connection = node
    uid = str(uuid.uuid4())
    define(str(uuid.uuid4()), name=uid, start=False)  # its libvirt uuid is another one
    assert await LibvirtDriver(URI).ensure_gone(evacuated(uid)) == f"libvirt domain {uid} undefined"
    with pytest.raises(libvirt.libvirtError):
        connection.lookupByName(uid)


async def test_libvirt_keeps_the_disks_unless_told(node) -> None:
    define, connection = node
    pool = connection.storagePoolLookupByName("default-pool")
    kept, removed = (
        pool.createXML(f"<volume><name>{n}-{uuid.uuid4().hex[:6]}.img</name><capacity>1</capacity></volume>", 0)
        for n in ("kept", "removed")
    )
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    define(first, disk=kept.path())
    define(second, disk=removed.path())
    await LibvirtDriver(URI).ensure_gone(evacuated(first))
    assert kept.name() in pool.listVolumes()
    path, name = removed.path(), removed.name()
    answer = await LibvirtDriver(URI, remove_storage=True).ensure_gone(evacuated(second))
    assert answer.endswith(f"deleted {path}")
    assert name not in pool.listVolumes()
    kept.delete(0)


async def test_libvirt_unreachable_is_an_error() -> None:
    with pytest.raises(GuestCleanupError, match="cannot connect to test:///nonexistent.xml"):
        await LibvirtDriver("test:///nonexistent.xml").ensure_gone(evacuated(str(uuid.uuid4())))


async def test_exec_runs_the_command_with_the_servers_id(tmp_path: Path) -> None:
    script = tmp_path / "cleanup.py"
    script.write_text(
        "import os, sys\n"
        "print(sys.argv[1], os.environ['HOSTSTATE_SERVER_NAMESPACE'], os.environ['HOSTSTATE_SERVER_NAME'],"
        " os.environ['HOSTSTATE_EVACUATION_TARGET'])\n"
        "sys.exit(int(os.environ.get('FAIL', '0')))\n"
    )
    driver = ExecDriver(f"{sys.executable} {script}")
    assert await driver.ensure_gone(evacuated("u-1")) == f"{sys.executable} succeeded: u-1 ns vm dest"
    failing = ExecDriver(f"env FAIL=3 {sys.executable} {script}")
    with pytest.raises(GuestCleanupError, match="env exited with 3: u-1 ns vm dest"):
        await failing.ensure_gone(evacuated("u-1"))


def test_the_configured_driver() -> None:
    assert guest_driver(AgentConfig()) is None
    assert isinstance(guest_driver(AgentConfig(guest_driver="exec", exec_command="true")), ExecDriver)
    libvirt_driver = guest_driver(AgentConfig(guest_driver="libvirt", libvirt_uri=URI, libvirt_remove_storage=True))
    assert isinstance(libvirt_driver, LibvirtDriver) and libvirt_driver.remove_storage
    with pytest.raises(ValueError, match="--exec-command"):
        ExecDriver("")
