"""Operator settings, from flags with environment fallbacks (HOSTSTATE_*)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..domain import COMPUTE_BINARY, effective_service_down_time
from ..kube.leader import ElectionTiming
from ..notifications.egress import Network, parse_cidrs
from ..options import LEASE_NAMESPACE, REPORT_INTERVAL, SERVICE_DOWN_TIME, Option, add_options, option_values
from ..resources.lease import DEFAULT_LEASE_NAMESPACE


@dataclass(frozen=True)
class OperatorConfig:
    service_down_time: float = 60.0
    report_interval: float = 10.0
    fanout_concurrency: int = 64
    # A host's status writes wait this long at most, from its transition's record, for its tenants' first
    # delivery attempts (reconciler.py): the tenants' requests do not compete with the fan-out's.
    notify_first: float = 1.0
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    resync_period: float = 300.0
    lease_namespace: str = DEFAULT_LEASE_NAMESPACE
    log_format: str = "text"
    metrics_port: int = 8080
    metrics_host: str = "0.0.0.0"  # the pod's address, for its probes and Prometheus
    # Automatic evacuation of HA servers (label hoststate.io/ha=true) on forced-down hosts.
    evacuation_concurrency: int = 10  # evacuations in flight at once; 0 turns automatic evacuation off
    evacuation_storm_threshold: float = 0.3  # stop when more than this share of hosts is down
    evacuation_storm_scope: str = "zone"  # the share is counted per availability zone, or over "global"
    evacuation_timeout: float = 300.0  # an evacuation not confirmed (UP on the target) by then fails
    # Webhooks reach public addresses only, and these (notifications/egress.py); the cluster's own ranges never.
    webhook_allow_cidrs: tuple[Network, ...] = ()
    cluster_cidrs: tuple[Network, ...] = ()
    # Leader election among replicas (kube/leader.py): one Lease, client-go's three durations.
    leader_election_lease: str = "hoststate-operator"
    leader_election_namespace: str = ""  # empty: the heartbeat Leases' namespace (the operator's own)
    leader_election_lease_duration: float = ElectionTiming.lease_duration
    leader_election_renew_deadline: float = ElectionTiming.renew_deadline
    leader_election_retry_period: float = ElectionTiming.retry_period

    @property
    def down_time(self) -> float:
        """The down time in force, after Nova's correction for a too-small value."""
        return effective_service_down_time(self.service_down_time, self.report_interval)

    @property
    def election_timing(self) -> ElectionTiming:
        return ElectionTiming(
            self.leader_election_lease_duration, self.leader_election_renew_deadline, self.leader_election_retry_period
        )

    @property
    def election_namespace(self) -> str:
        return self.leader_election_namespace or self.lease_namespace


OPTIONS = (
    SERVICE_DOWN_TIME,
    REPORT_INTERVAL,
    Option("--fanout-concurrency", "status patches in flight at once", int),
    Option(
        "--notify-first",
        "seconds a host's Server status writes wait at most for its tenants' first delivery attempts (0: none)",
        float,
    ),
    Option(
        "--namespace",
        "watch Servers only in this namespace (repeatable; none: every namespace)",
        variable="HOSTSTATE_NAMESPACES",
        extra={"dest": "namespaces", "action": "append"},
    ),
    Option("--resync-period", "seconds between level-based resyncs of everything", float),
    LEASE_NAMESPACE,
    Option("--log-format", "text or json", extra={"choices": ["text", "json"]}),
    Option("--metrics-port", "port of /metrics and /healthz (0: off)", int),
    Option("--metrics-host", "address /metrics and /healthz listen on"),
    Option(
        "--evacuation-concurrency",
        "automatic evacuations in flight at once (0: no automatic evacuation)",
        int,
    ),
    Option(
        "--evacuation-storm-threshold",
        f"stop automatic evacuation when more than this share of {COMPUTE_BINARY} hosts is down",
        float,
    ),
    Option(
        "--evacuation-storm-scope",
        "count that share per availability zone or over all hosts (global)",
        extra={"choices": ["zone", "global"]},
    ),
    Option(
        "--evacuation-timeout",
        "seconds before an evacuation not UP on its target is marked failed",
        float,
    ),
    Option(
        "--webhook-allow-cidr",
        "let webhooks reach this CIDR although it is loopback, private, link-local or a cluster range (repeatable)",
        variable="HOSTSTATE_WEBHOOK_ALLOW_CIDRS",
        extra={"dest": "webhook_allow_cidrs", "action": "append"},
    ),
    Option(
        "--cluster-cidr",
        "a Service or Pod CIDR of the cluster: webhooks never reach it unless allowed (repeatable)",
        variable="HOSTSTATE_CLUSTER_CIDRS",
        extra={"dest": "cluster_cidrs", "action": "append"},
    ),
    Option("--leader-election-lease", "name of the Lease the replicas elect their leader with"),
    Option("--leader-election-namespace", "namespace of that Lease (empty: --lease-namespace)"),
    Option(
        "--leader-election-lease-duration",
        "seconds a standby waits, from the leader's last renewal it saw, before taking the Lease",
        float,
    ),
    Option(
        "--leader-election-renew-deadline",
        "seconds the leader keeps writing after its last successful renewal began (< lease duration)",
        float,
    ),
    Option("--leader-election-retry-period", "seconds between renewals, and between a standby's attempts", float),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS, OperatorConfig())


def from_arguments(args: argparse.Namespace) -> OperatorConfig:
    if args.service_down_time <= 0 or args.report_interval <= 0 or args.fanout_concurrency < 1:
        raise SystemExit("--service-down-time, --report-interval and --fanout-concurrency must be positive")
    if args.notify_first < 0:
        raise SystemExit("--notify-first must be 0 or more")
    if args.evacuation_concurrency < 0 or not 0 <= args.evacuation_storm_threshold <= 1 or args.evacuation_timeout <= 0:
        raise SystemExit(
            "--evacuation-concurrency >= 0, --evacuation-storm-threshold in [0, 1], --evacuation-timeout > 0"
        )
    timing = ElectionTiming(
        args.leader_election_lease_duration, args.leader_election_renew_deadline, args.leader_election_retry_period
    )
    if problem := timing.problem():
        raise SystemExit(f"--leader-election-*: {problem}")
    try:
        cidrs = {
            "webhook_allow_cidrs": parse_cidrs(args.webhook_allow_cidrs),
            "cluster_cidrs": parse_cidrs(args.cluster_cidrs),
        }
    except ValueError as error:
        raise SystemExit(f"--webhook-allow-cidr and --cluster-cidr take CIDRs: {error}") from None
    return OperatorConfig(**option_values(args, OPTIONS) | {"namespaces": tuple(args.namespaces)} | cidrs)
