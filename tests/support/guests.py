"""Guests on libvirt's test driver: test:///default, one node per process, shared by every
connection of it (in this process: no daemon, no KVM). Used by the guest driver's tests and by an
agent run in this process, where the test defines the guests and looks at them."""

from __future__ import annotations

import libvirt

LIBVIRT_TEST_URI = "test:///default"


class LibvirtNode:
    """A connection to the test driver's node; the domains defined through it are gone after `close`."""

    def __init__(self, uri: str = LIBVIRT_TEST_URI) -> None:
        self.connection = libvirt.open(uri)
        self._defined: list[str] = []

    def define(self, uid: str, name: str, *, disk: str | None = None, start: bool = True) -> libvirt.virDomain:
        """A domain of libvirt uuid `uid` named `name`, with a disk at the path `disk` if given; running if `start`."""
        devices = f"<disk type='file' device='disk'><source file='{disk}'/><target dev='vda'/></disk>" if disk else ""
        domain = self.connection.defineXML(
            f"<domain type='test'><name>{name}</name><uuid>{uid}</uuid><memory>65536</memory><vcpu>1</vcpu>"
            f"<os><type>hvm</type></os><devices>{devices}</devices></domain>"
        )
        if start:
            domain.create()
        self._defined.append(uid)
        return domain

    def domain(self, uid: str) -> libvirt.virDomain | None:
        """The domain of libvirt uuid `uid`, None if there is none."""
        try:
            return self.connection.lookupByUUIDString(uid)
        except libvirt.libvirtError:
            return None

    def close(self) -> None:
        """Destroy and undefine what `define` made and is still there."""
        for uid in self._defined:
            if (domain := self.domain(uid)) is None:
                continue
            if domain.isActive():
                domain.destroy()
            domain.undefine()
        self.connection.close()
