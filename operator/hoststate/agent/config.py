"""Agent settings, from flags with environment fallbacks (HOSTSTATE_*)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..domain import COMPUTE_BINARY
from ..options import LEASE_NAMESPACE, REPORT_INTERVAL, Option, add_options, option_values
from ..resources.lease import DEFAULT_LEASE_NAMESPACE


@dataclass(frozen=True)
class AgentConfig:
    hosts: tuple[str, ...] = ()
    binary: str = COMPUTE_BINARY
    report_interval: float = 10.0
    lease_namespace: str = DEFAULT_LEASE_NAMESPACE
    lease_duration: int = 60  # leaseDurationSeconds written: informative, the down time decides
    guest_driver: str = "none"  # none, libvirt, exec (agent.drivers)
    libvirt_uri: str = "qemu:///system"
    libvirt_remove_storage: bool = False
    exec_command: str = ""


OPTIONS = (
    Option("--binary", "the service's binary"),
    REPORT_INTERVAL,
    LEASE_NAMESPACE,
    Option("--lease-duration", "leaseDurationSeconds written (informative)", int),
    Option(
        "--guest-driver",
        "how the guests of servers evacuated from the host are made gone when it comes back: libvirt, exec, "
        "or none (no cleanup: their records stay and force-up stays refused)",
        extra={"choices": ("none", "libvirt", "exec")},
    ),
    Option("--libvirt-uri", "libvirt connection of the libvirt guest driver"),
    Option(
        "--libvirt-remove-storage",
        "the libvirt guest driver also deletes the storage volumes of the disks (kept by default)",
        lambda value: value.lower() in ("1", "true", "yes"),
    ),
    Option("--exec-command", "the exec guest driver's command, run with the server's id as its last argument"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The hosts are what this process is, not a setting: flags only.
    parser.add_argument("--host", dest="hosts", action="append", required=True, help="compute host (repeatable)")
    add_options(parser, OPTIONS, AgentConfig())


def from_arguments(args: argparse.Namespace) -> AgentConfig:
    if args.report_interval <= 0:
        raise SystemExit("--report-interval must be positive")
    if args.guest_driver == "exec" and not args.exec_command:
        raise SystemExit("--guest-driver exec needs --exec-command")
    return AgentConfig(hosts=tuple(args.hosts), **option_values(args, OPTIONS))
