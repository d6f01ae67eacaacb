"""Command-line options of the operator, the facade and the agent, each with an environment fallback.

One style for the three: a flag given wins, then its `HOSTSTATE_*` variable (what the manifests'
ConfigMap sets), then the command's default. The variable is named after the flag
(`--report-interval`: HOSTSTATE_REPORT_INTERVAL), with the command's scope for the options only
it has (the facade's `--port`: HOSTSTATE_FACADE_PORT). A leaf module: it imports nothing of hoststate.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    type: Callable[[str], Any] = str
    scope: str = ""  # FACADE: HOSTSTATE_FACADE_<FLAG>, for an option of one command only
    variable: str = ""  # the variable, when not named after the flag
    extra: dict[str, Any] = field(default_factory=dict)  # more add_argument keywords: choices, dest, action

    @property
    def env(self) -> str:
        if self.variable:
            return self.variable
        name = self.flag.removeprefix("--").replace("-", "_").upper()
        return "_".join(part for part in ("HOSTSTATE", self.scope, name) if part)

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments, and of the command's config dataclass."""
        return self.extra.get("dest") or self.flag.removeprefix("--").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser, default: Any = None) -> None:
        """Add the flag; its default is the variable's value when set (argparse converts a string
        default with `type`, so a bad value fails like a bad flag), else `default`."""
        raw = os.environ.get(self.env, "")
        if self.extra.get("action") == "append":  # a list, comma-separated in the variable; flags add to it
            value: Any = [item for item in raw.split(",") if item] or list(default or ())
        else:
            value = raw or default
        parser.add_argument(
            self.flag,
            type=self.type,
            default=value,
            help=f"{self.help} (env {self.env}; default %(default)s)",
            **self.extra,
        )


def add_options(parser: argparse.ArgumentParser, options: tuple[Option, ...], defaults: object) -> None:
    """Add `options`, each defaulting to the attribute of its name in `defaults` (a config dataclass)."""
    for option in options:
        option.add_to(parser, getattr(defaults, option.dest))


def option_values(args: argparse.Namespace, options: tuple[Option, ...]) -> dict[str, Any]:
    """The parsed values of `options`, by name: keyword arguments for the config dataclass."""
    return {option.dest: getattr(args, option.dest) for option in options}


# Shared by the operator, the facade and the agent: one name, one meaning, one variable.
SERVICE_DOWN_TIME = Option(
    "--service-down-time",
    "seconds without a heartbeat before a service is down (Nova's service_down_time)",
    float,
)
REPORT_INTERVAL = Option(
    "--report-interval",
    "seconds between the agents' heartbeats (Nova's report_interval; a down time <= it becomes 2.5x it, as in Nova)",
    float,
)
LEASE_NAMESPACE = Option("--lease-namespace", "namespace of the heartbeat Leases")
