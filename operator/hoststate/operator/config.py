"""Operator settings, from flags with environment fallbacks (HOSTSTATE_*)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from ..domain import effective_service_down_time
from ..resources.lease import DEFAULT_LEASE_NAMESPACE


def _env(name: str, default: str) -> str:
    return os.environ.get(f"HOSTSTATE_{name}", default)


@dataclass(frozen=True)
class OperatorConfig:
    service_down_time: float = 60.0
    report_interval: float = 10.0
    fanout_concurrency: int = 64
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    resync_period: float = 300.0
    lease_namespace: str = DEFAULT_LEASE_NAMESPACE
    log_format: str = "text"
    metrics_port: int = 8080
    # Automatic evacuation of HA servers (label hoststate.io/ha=true) on forced-down hosts.
    evacuation_concurrency: int = 10  # evacuations in flight at once; 0 turns automatic evacuation off
    evacuation_storm_threshold: float = 0.3  # stop when more than this share of hosts is down
    evacuation_storm_scope: str = "zone"  # the share is counted per availability zone, or over "global"
    evacuation_timeout: float = 300.0  # an evacuation not confirmed (UP on the target) by then fails

    @property
    def down_time(self) -> float:
        """The down time in force, after Nova's correction for a too-small value."""
        return effective_service_down_time(self.service_down_time, self.report_interval)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = OperatorConfig()
    parser.add_argument(
        "--service-down-time",
        type=float,
        default=float(_env("SERVICE_DOWN_TIME", str(d.service_down_time))),
        help="seconds without heartbeat before a service is down (Nova's service_down_time)",
    )
    parser.add_argument(
        "--report-interval",
        type=float,
        default=float(_env("REPORT_INTERVAL", str(d.report_interval))),
        help="the agents' heartbeat interval; a down time <= it becomes 2.5x it, as in Nova",
    )
    parser.add_argument(
        "--fanout-concurrency",
        type=int,
        default=int(_env("FANOUT_CONCURRENCY", str(d.fanout_concurrency))),
        help="status patches in flight at once",
    )
    parser.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[n for n in _env("NAMESPACES", "").split(",") if n],
        help="watch Servers only in this namespace (repeatable; default: all)",
    )
    parser.add_argument(
        "--resync-period",
        type=float,
        default=float(_env("RESYNC_PERIOD", str(d.resync_period))),
        help="seconds between level-based resyncs of everything",
    )
    parser.add_argument(
        "--lease-namespace",
        default=_env("LEASE_NAMESPACE", d.lease_namespace),
        help="namespace of the heartbeat Leases",
    )
    parser.add_argument("--log-format", choices=["text", "json"], default=_env("LOG_FORMAT", d.log_format))
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("METRICS_PORT", str(d.metrics_port))),
        help="port of /metrics and /healthz (0: off)",
    )
    parser.add_argument(
        "--evacuation-concurrency",
        type=int,
        default=int(_env("EVACUATION_CONCURRENCY", str(d.evacuation_concurrency))),
        help="automatic evacuations in flight at once (0: no automatic evacuation)",
    )
    parser.add_argument(
        "--evacuation-storm-threshold",
        type=float,
        default=float(_env("EVACUATION_STORM_THRESHOLD", str(d.evacuation_storm_threshold))),
        help="stop automatic evacuation when more than this share of nova-compute hosts is down",
    )
    parser.add_argument(
        "--evacuation-storm-scope",
        choices=["zone", "global"],
        default=_env("EVACUATION_STORM_SCOPE", d.evacuation_storm_scope),
        help="count that share per availability zone (default) or over all hosts",
    )
    parser.add_argument(
        "--evacuation-timeout",
        type=float,
        default=float(_env("EVACUATION_TIMEOUT", str(d.evacuation_timeout))),
        help="seconds before an evacuation not UP on its target is marked failed",
    )


def from_arguments(args: argparse.Namespace) -> OperatorConfig:
    if args.service_down_time <= 0 or args.report_interval <= 0 or args.fanout_concurrency < 1:
        raise SystemExit("--service-down-time, --report-interval and --fanout-concurrency must be positive")
    if args.evacuation_concurrency < 0 or not 0 <= args.evacuation_storm_threshold <= 1 or args.evacuation_timeout <= 0:
        raise SystemExit(
            "--evacuation-concurrency >= 0, --evacuation-storm-threshold in [0, 1], --evacuation-timeout > 0"
        )
    return OperatorConfig(
        service_down_time=args.service_down_time,
        report_interval=args.report_interval,
        fanout_concurrency=args.fanout_concurrency,
        namespaces=tuple(args.namespaces),
        resync_period=args.resync_period,
        lease_namespace=args.lease_namespace,
        log_format=args.log_format,
        metrics_port=args.metrics_port,
        evacuation_concurrency=args.evacuation_concurrency,
        evacuation_storm_threshold=args.evacuation_storm_threshold,
        evacuation_storm_scope=args.evacuation_storm_scope,
        evacuation_timeout=args.evacuation_timeout,
    )
