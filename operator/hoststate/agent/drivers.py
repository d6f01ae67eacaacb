"""Guest drivers: how a host's agent makes sure the local guest of an evacuated server is gone.

A driver's `ensure_gone(server)` returns what it did, and raises when the guest may still exist
(the record then stays as it is and the cleanup is tried again). It is given only the servers of
the cleanup plan (domain.evacuation.cleanup_plan): it never looks for other guests.

- `libvirt` (hoststate.agent.libvirt_driver, the optional extra `hoststate[libvirt]`): destroys and
  undefines the domain whose UUID (as Nova's libvirt driver defines it) or name is the server's id.
- `exec`: runs a configured command per server, for other hypervisors.
- `none`: no cleanup; records stay as they are, and force-up through the facade stays refused.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from typing import Protocol

from ..domain.evacuation import EvacuatedServer
from .config import AgentConfig

EXEC_TIMEOUT = 120.0  # seconds a command may take for one server


class GuestDriver(Protocol):
    async def ensure_gone(self, server: EvacuatedServer) -> str: ...


class GuestCleanupError(Exception):
    """The guest may still exist."""


class ExecDriver:
    """Runs `command <server id>` (split like a shell would, no shell) with the server's facts in
    HOSTSTATE_SERVER_{ID,NAMESPACE,NAME} and HOSTSTATE_EVACUATION_TARGET; exit status 0 means the
    guest is gone (also when there was none: the command must be idempotent)."""

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the exec guest driver needs --exec-command")

    async def ensure_gone(self, server: EvacuatedServer) -> str:
        env = {
            **os.environ,
            "HOSTSTATE_SERVER_ID": server.uid,
            "HOSTSTATE_SERVER_NAMESPACE": server.namespace,
            "HOSTSTATE_SERVER_NAME": server.name,
            "HOSTSTATE_EVACUATION_TARGET": str(server.evacuation.get("targetHost", "")),
        }
        process = await asyncio.create_subprocess_exec(
            *self.argv, server.uid, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), EXEC_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise GuestCleanupError(f"{self.argv[0]} did not finish within {EXEC_TIMEOUT:g}s") from None
        text = output.decode(errors="replace").strip()[-200:]
        if process.returncode != 0:
            raise GuestCleanupError(f"{self.argv[0]} exited with {process.returncode}: {text}")
        return f"{self.argv[0]} succeeded" + (f": {text}" if text else "")


def guest_driver(config: AgentConfig) -> GuestDriver | None:
    """The configured driver; None for `none`."""
    if config.guest_driver == "libvirt":
        from .libvirt_driver import LibvirtDriver  # the optional extra, imported only when chosen

        return LibvirtDriver(config.libvirt_uri, remove_storage=config.libvirt_remove_storage)
    if config.guest_driver == "exec":
        return ExecDriver(config.exec_command)
    return None
