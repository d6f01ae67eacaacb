"""The `hoststate` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .agent import config as agent_config
from .facade import cli as facade_cli
from .operator import config as operator_config

DEV_TOOLS_HINT = (
    "`hoststate {command}` is a development tool: it needs a source checkout with the devtools extra "
    "(pip install -e '.[devtools]'; `make` installs it)"
)


def run_operator(args: argparse.Namespace) -> int:
    from .operator.main import run

    return run(operator_config.from_arguments(args))


def run_agent(args: argparse.Namespace) -> int:
    from .agent import run_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_agent(agent_config.from_arguments(args)))
    return 0


def write_crds(args: argparse.Namespace) -> int:
    from .resources.crd import write_all

    for path in write_all(args.directory):
        print(path)
    return 0


def run_local_stack(args: argparse.Namespace) -> int:
    try:
        from .devcluster.stack import run
    except ModuleNotFoundError as error:  # the image has neither the dev tools nor their dependencies
        raise SystemExit(f"{DEV_TOOLS_HINT.format(command=args.command)}: {error}") from error
    return run()


def run_demo(args: argparse.Namespace) -> int:
    try:
        from .demo import main
    except ModuleNotFoundError as error:
        raise SystemExit(f"{DEV_TOOLS_HINT.format(command=args.command)}: {error}") from error
    return main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hoststate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("operator", help="run the operator (Kopf) in the foreground")
    operator_config.add_arguments(command)
    command.set_defaults(func=run_operator)

    command = commands.add_parser("agent", help="heartbeat one or more compute hosts' services through Leases")
    agent_config.add_arguments(command)
    command.set_defaults(func=run_agent)

    command = commands.add_parser("facade", help="serve Nova's compute API for host state (port 8774)")
    facade_cli.add_arguments(command)
    command.set_defaults(func=facade_cli.main)

    command = commands.add_parser("crds", help="write the CRDs generated from the models")
    command.add_argument("directory", nargs="?", default="deploy/crds", type=Path)
    command.set_defaults(func=write_crds)

    command = commands.add_parser("run", help="run the local stack in the foreground (what `make run` does)")
    command.set_defaults(func=run_local_stack)

    command = commands.add_parser("demo", help="the fault-management flow end to end on a control plane of its own")
    command.set_defaults(func=run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
