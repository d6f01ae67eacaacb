"""The libvirt guest driver (libvirt-python, the API Nova's libvirt driver uses; `hoststate[libvirt]`).

A server's guest is the domain whose UUID is the server's id (Nova defines its domains with the
instance's uuid), or else the domain named by it. Ensuring it is gone: destroy it when running,
then undefine it (with its managed save image, snapshot and checkpoint metadata, NVRAM). Its
disks are kept (they may be on shared storage, where the server now runs from them) unless
`remove_storage`, which deletes the storage volumes behind its disks as well.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ElementTree

import libvirt

from ..domain.evacuation import EvacuatedServer
from .drivers import GuestCleanupError

# Undefine with the managed save image, snapshot and checkpoint metadata and NVRAM; a driver that
# refuses some of these flags (the test driver takes the first two) is asked with fewer.
UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM,
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
    0,
)
UNSUPPORTED = (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT)


class LibvirtDriver:
    def __init__(self, uri: str, *, remove_storage: bool = False) -> None:
        self.uri = uri
        self.remove_storage = remove_storage

    async def ensure_gone(self, server: EvacuatedServer) -> str:
        # libvirt-python blocks: one thread per call keeps the event loop (and the heartbeat) free.
        return await asyncio.to_thread(self._ensure_gone, server.uid)

    def _ensure_gone(self, server_id: str) -> str:
        try:
            connection = libvirt.open(self.uri)
        except libvirt.libvirtError as error:
            raise GuestCleanupError(f"cannot connect to {self.uri}: {error}") from error
        try:
            domain = _lookup(connection, server_id)
            if domain is None:
                return f"no libvirt domain {server_id}"
            done = []
            disks = _disk_paths(domain) if self.remove_storage else []
            if domain.isActive():
                domain.destroy()
                done.append("destroyed")
            _undefine(domain)
            done.append("undefined")
            for path in disks:
                connection.storageVolLookupByPath(path).delete(0)
                done.append(f"deleted {path}")
            return f"libvirt domain {domain.name()} {', '.join(done)}"
        except libvirt.libvirtError as error:
            raise GuestCleanupError(f"libvirt domain {server_id}: {error}") from error
        finally:
            connection.close()


def _undefine(domain: libvirt.virDomain) -> None:
    for flags in UNDEFINE_FLAGS:
        try:
            domain.undefineFlags(flags)
            return
        except libvirt.libvirtError as error:
            if flags == 0 or error.get_error_code() not in UNSUPPORTED:
                raise


def _lookup(connection: libvirt.virConnect, server_id: str) -> libvirt.virDomain | None:
    for lookup in (connection.lookupByUUIDString, connection.lookupByName):
        try:
            return lookup(server_id)
        except libvirt.libvirtError as error:
            if error.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                raise
    return None


def _disk_paths(domain: libvirt.virDomain) -> list[str]:
    """The file and block sources of the domain's disks (not CD-ROMs)."""
    devices = ElementTree.fromstring(domain.XMLDesc(0)).find("devices")
    paths = []
    for disk in devices.findall("disk") if devices is not None else []:
        source = disk.find("source")
        if disk.get("device", "disk") == "disk" and source is not None:
            path = source.get("file") or source.get("dev")
            if path:
                paths.append(path)
    return paths
