"""`hoststate facade`: flags (each with an environment default) and the entry point."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from .app import FacadeConfig, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--host", default=env("HOSTSTATE_FACADE_HOST", "0.0.0.0"), help="address to listen on")
    parser.add_argument("--port", type=int, default=int(env("HOSTSTATE_FACADE_PORT", "8774")), help="default 8774")
    parser.add_argument(
        "--policy-file", type=Path, default=None, help="Nova-format policy file (YAML or JSON) overriding the defaults"
    )
    parser.add_argument("--lease-namespace", default=None, help="namespace of heartbeat Leases (hoststate-system)")
    parser.add_argument("--service-down-time", type=float, default=None, help="seconds (60, as Nova)")
    parser.add_argument("--report-interval", type=float, default=None, help="seconds (10, as Nova)")
    parser.add_argument("--public-url", default=None, help="root URL clients use, when behind a proxy")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="/metrics and /healthz on 0.0.0.0 (8081, env HOSTSTATE_FACADE_METRICS_PORT; 0 = off)",
    )


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = FacadeConfig.from_env(
        host=args.host,
        port=args.port,
        policy_file=args.policy_file,
        lease_namespace=args.lease_namespace,
        service_down_time=args.service_down_time,
        report_interval=args.report_interval,
        public_url=args.public_url,
        metrics_port=args.metrics_port,
    )
    log = logging.getLogger(__name__)
    log.info("Nova facade on %s:%d", config.host, config.port)
    if config.metrics_port:
        log.info("facade metrics on 0.0.0.0:%d (/metrics, /healthz)", config.metrics_port)
    return run(config)
