"""`hoststate facade`: its options (flags with HOSTSTATE_* environment fallbacks) and the entry point."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..options import LEASE_NAMESPACE, REPORT_INTERVAL, SERVICE_DOWN_TIME, Option, add_options, option_values
from .config import FacadeConfig

OPTIONS = (
    Option("--host", "address to listen on", scope="FACADE"),
    Option("--port", "port of Nova's compute API", int, scope="FACADE"),
    Option("--policy-file", "Nova-format policy file (YAML or JSON) overriding the defaults", Path, scope="FACADE"),
    LEASE_NAMESPACE,
    SERVICE_DOWN_TIME,
    REPORT_INTERVAL,
    Option("--public-url", "root URL clients use, when behind a proxy", scope="FACADE"),
    Option("--metrics-port", "port of /metrics and /healthz (0: off)", int, scope="FACADE"),
    Option("--metrics-host", "address /metrics and /healthz listen on", scope="FACADE"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS, FacadeConfig())


def from_arguments(args: argparse.Namespace) -> FacadeConfig:
    return FacadeConfig(**option_values(args, OPTIONS))


def main(args: argparse.Namespace) -> int:
    from .app import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = from_arguments(args)
    log = logging.getLogger(__name__)
    log.info("Nova facade on %s:%d", config.host, config.port)
    if config.metrics_port:
        log.info("facade metrics on %s:%d (/metrics, /healthz)", config.metrics_host, config.metrics_port)
    return run(config)
