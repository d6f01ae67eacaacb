"""The `hoststate` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hoststate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("run", help="run the local stack in the foreground (what `make run` does)")
    crds = commands.add_parser("crds", help="write the CRDs generated from the models")
    crds.add_argument("directory", nargs="?", default="deploy/crds", type=Path)

    args = parser.parse_args(argv)
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
