"""`python -m hoststate.facade` is `hoststate facade`."""

import argparse
import sys

from .cli import add_arguments, main

parser = argparse.ArgumentParser(prog="hoststate facade")
add_arguments(parser)
sys.exit(main(parser.parse_args()))
