"""The `hoststate` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from .resources.lease import DEFAULT_LEASE_NAMESPACE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hoststate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("run", help="run the local stack in the foreground (what `make run` does)")
    commands.add_parser("demo", help="the fault-management flow end to end on a local control plane of its own")

    operator = commands.add_parser("operator", help="run the operator (Kopf) in the foreground")
    from .operator.config import add_arguments as add_operator_arguments

    add_operator_arguments(operator)

    agent = commands.add_parser("agent", help="heartbeat one or more compute hosts' services through Leases")
    agent.add_argument("--host", dest="hosts", action="append", required=True, help="compute host (repeatable)")
    agent.add_argument("--binary", default="nova-compute")
    agent.add_argument("--report-interval", type=float, default=10.0, help="seconds between heartbeats")
    agent.add_argument(
        "--lease-namespace", default=os.environ.get("HOSTSTATE_LEASE_NAMESPACE", DEFAULT_LEASE_NAMESPACE)
    )
    agent.add_argument("--lease-duration", type=int, default=60, help="leaseDurationSeconds written (informative)")
    facade = commands.add_parser("facade", help="serve Nova's compute API for host state (port 8774)")
    from .facade.cli import add_arguments as add_facade_arguments

    add_facade_arguments(facade)
    crds = commands.add_parser("crds", help="write the CRDs generated from the models")
    crds.add_argument("directory", nargs="?", default="deploy/crds", type=Path)

    args = parser.parse_args(argv)
    if args.command == "agent":  # the operator's logging is Kopf's
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "operator":
        from .operator.config import from_arguments
        from .operator.main import run as run_operator

        return run_operator(from_arguments(args))
    if args.command == "agent":
        from .agent import run_agent

        asyncio.run(run_agent(args.hosts, args.binary, args.lease_namespace, args.report_interval, args.lease_duration))
        return 0
    if args.command == "facade":
        from .facade.cli import main as run_facade

        return run_facade(args)
    if args.command == "demo":
        from .demo import main as demo

        return demo()
    if args.command == "run":
        from .devcluster.stack import run

        return run()
    if args.command == "crds":
        from .resources.crd import write_all

        for path in write_all(args.directory):
            print(path)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
