"""`make bench` (python -m bench): the scenarios of docs/benchmarks.md, printed and saved as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from hoststate import API_GROUP_VERSION
from hoststate.devcluster.processes import HoststateProcess
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.kube import SERVERS
from hoststate.kube.api_resources import HOST_STATUS_SUBSCRIPTIONS, SECRETS

from . import chaos, hostile, memory, notifications_delivery, scenarios, takeover
from .harness import (
    RESULTS,
    ServerWatch,
    Stack,
    create_servers,
    create_services,
    machine,
    process_rss_mib,
    save,
    say,
)
from .profile import Profiler
from .scenarios import Keys

GROUPS = ("core", "hostile", "ha", "chaos", "notifications", "memory")
NAMESPACE = "bench"
TENANT = "bench-tenant"  # the big host's servers: one tenant with 1,000 servers


def table(results: dict) -> str:
    lines = core_table(results) if "force_down" in results else []
    if "hostile" in results:
        lines += hostile.table(results["hostile"])
    if "ha" in results:
        lines += takeover.table(results["ha"]["takeover"])
    if "chaos" in results:
        lines += chaos.table(results["chaos"])
    if "notifications" in results:
        lines += notifications_delivery.table(results["notifications"])
    if "memory" in results:
        lines += memory.table(results["memory"])
    return "\n".join(lines)


def core_table(results: dict) -> list[str]:
    lines = [f"{'scenario':46} {'p50':>9} {'p99':>9} {'floor p50':>10} {'ratio p50':>9} {'ratio p99':>9}"]
    for n, item in results["force_down"].items():
        for how, key in (("merge patch", "operator"), ("facade PUT", "facade")):
            for direction in ("down", "up"):
                ours, floor = item[key][direction], item["floor"][direction]
                lines.append(
                    f"{f'force-down N={n} ({direction}), {how}':46} {ours['p50']:>8.3f}s {ours['p99']:>8.3f}s "
                    f"{floor['p50']:>9.3f}s {ours['p50'] / floor['p50']:>8.2f}x {ours['p99'] / floor['p99']:>8.2f}x"
                )
        seen = item["facade"]["visible_down"]
        lines.append(f"{f'facade shows DOWN after its answer, N={n}':46} {seen['p50']:>8.4f}s {seen['p99']:>8.4f}s")
    note, big = results["notification"], results["config"]["big"]
    lines.append(
        f"{f'detection to tenant webhook, last of N={big}':46} "
        f"{note['last_server']['down']['p50']:>8.3f}s {note['last_server']['down']['p99']:>8.3f}s"
    )
    lines.append(
        f"{'detection to tenant webhook, each server':46} "
        f"{note['each_server_down']['p50']:>8.3f}s {note['each_server_down']['p99']:>8.3f}s"
    )
    lag = results["heartbeat_expiry"]["lag"]
    lines.append(f"{'heartbeat expiry lag after the deadline':44} {lag['p50']:>8.3f}s {lag['p99']:>8.3f}s")
    steady = results["steady_state"]["operator"]
    lines.append(
        f"operator steady state: {steady['cpu_percent_of_one_core']:.1f}% of a core, {steady['rss_mib']:.0f} MiB RSS"
    )
    lines.append(f"facade steady state: {results['steady_state']['facade']['rss_mib']:.0f} MiB RSS")
    for name, read in results["facade_reads"].items():
        if name == "floor_list":
            continue
        floor = results["facade_reads"]["floor_list"]
        lines.append(
            f"facade {name}: {read['rps']:.0f} req/s, p99 {read['latency']['p99'] * 1000:.1f} ms "
            f"({read['rps'] / floor['rps']:.1f}x the API server's LIST of the same servers: {floor['rps']:.1f} req/s)"
        )
    startup = results["startup"]["operator"]
    lines.append(f"operator start-up: {startup['seconds_to_index']:.2f}s to index {startup['servers']} servers")
    lines.append(f"facade start-up: {results['startup']['facade']['seconds_to_ready']:.2f}s to a synced cache")
    return lines


@dataclass
class Run:
    """What the scenarios share: the stack, its processes, the servers by host, and an observer."""

    args: argparse.Namespace
    stack: Stack
    keys_by_host: dict[str, Keys]
    big: str  # the host whose servers are the tenant's 1,000
    small: str
    expiring: list[str]  # hosts whose agents the heartbeat-expiry scenario stops
    watch: ServerWatch
    operator: HoststateProcess
    operator_flags: list[str]
    facade: HoststateProcess
    facade_flags: list[str]
    facade_url: str
    session: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)

    @property
    def token(self) -> str:
        return self.stack.cluster.admin_token

    @property
    def servers(self) -> int:
        return sum(len(keys) for keys in self.keys_by_host.values())

    @property
    def measured_hosts(self) -> tuple[tuple[str, int], ...]:
        """The force-down hosts (the small, then the big one) with their repetitions."""
        return (self.small, self.args.reps_small), (self.big, self.args.reps_big)

    async def close(self) -> None:
        await self.watch.stop()
        await self.session.close()


async def set_up(stack: Stack, args: argparse.Namespace) -> Run:
    """Services with agents, the operator, the servers (all UP, or UNKNOWN on the expiring hosts), the facade."""
    await stack.ensure_namespace(NAMESPACE)
    await stack.ensure_namespace(TENANT)
    hosts = [f"h{i:04d}" for i in range(args.services)]
    big, small, expiring = hosts[0], hosts[1], hosts[2 : 2 + args.expiring]
    others = hosts[2 : args.hosts_with_servers]
    operator_flags = [
        f"--service-down-time={args.down_time}",
        f"--report-interval={args.report_interval}",
        f"--fanout-concurrency={args.concurrency}",
        "--resync-period=600",
        "--webhook-allow-cidr=127.0.0.1/32",  # the tenant webhook receiver is local
    ]
    say(f"stack up; {len(hosts)} services, {args.servers} servers")

    stack.agent([h for h in hosts if h not in expiring], args.report_interval)
    await create_services(stack.client, hosts)
    operator, _ = await asyncio.to_thread(stack.operator, *operator_flags)

    keys_by_host = {big: await create_servers(stack.client, TENANT, big, args.big, "big")}
    keys_by_host[small] = await create_servers(stack.client, NAMESPACE, small, args.small, "small")
    per_host = (args.servers - args.big - args.small) // len(others)
    for host in others:
        keys_by_host[host] = await create_servers(stack.client, NAMESPACE, host, per_host, host)
    watch = ServerWatch(stack.client)
    await watch.start()
    say(f"created {sum(len(keys) for keys in keys_by_host.values())} servers; waiting for the operator to set them")
    await asyncio.gather(
        *(
            asyncio.wait_for(watch.expect(keys, "UNKNOWN" if host in expiring else "UP"), 600)
            for host, keys in keys_by_host.items()
        )
    )

    facade_flags = [f"--service-down-time={args.down_time}", f"--report-interval={args.report_interval}"]
    facade, facade_port, _, _ = await scenarios.facade_ready(stack, facade_flags)
    return Run(
        args=args,
        stack=stack,
        keys_by_host=keys_by_host,
        big=big,
        small=small,
        expiring=expiring,
        watch=watch,
        operator=operator,
        operator_flags=operator_flags,
        facade=facade,
        facade_flags=facade_flags,
        facade_url=f"http://127.0.0.1:{facade_port}/v2.1",
    )


async def force_down(run: Run) -> tuple[dict, dict | None]:
    """Force-down propagation by merge patch and through the facade, for the small and the big host;
    with --profile, the operator's profile during the big fan-out too."""
    results: dict = {}
    profile = None
    for host, reps in run.measured_hosts:
        keys = run.keys_by_host[host]
        profiler = (
            Profiler(run.operator.pid, RESULTS / "profile-fanout.txt") if run.args.profile and host == run.big else None
        )
        results[len(keys)] = {
            "operator": await scenarios.force_down_propagation(run.stack.client, run.watch, host, keys, reps)
        }
        if profiler is not None:
            profile = profiler.stop()
        probe = await run.stack.client.get(SERVERS, keys[0][1], namespace=keys[0][0])
        results[len(keys)]["facade"] = await scenarios.facade_force_down(
            run.session, run.facade_url, run.token, run.watch, host, keys, probe["metadata"]["uid"], keys[0][0], reps
        )
        say(f"force-down N={len(keys)}: done")
    return results, profile


async def facade_reads(run: Run) -> dict:
    """The facade's reads under load (wrk), beside the API server's LIST of the same servers."""
    seconds, clients = run.args.read_seconds, run.args.read_clients
    read_headers = {"X-Auth-Token": run.token, **scenarios.NOVA_2_16}
    latest_headers = {"X-Auth-Token": run.token, "OpenStack-API-Version": "compute 2.96"}
    one = await run.stack.client.get(SERVERS, run.keys_by_host[run.big][0][1], namespace=TENANT)
    detail_url = f"{run.facade_url}/{TENANT}/servers/detail"
    search = "status=ACTIVE&name=%5Ebig-00%5B0-4%5D&sort_key=display_name&sort_dir=asc"
    results = {
        "servers_detail_1000": await scenarios.read_load(detail_url, read_headers, seconds, clients),
        "server_show": await scenarios.read_load(
            f"{run.facade_url}/{TENANT}/servers/{one['metadata']['uid']}", read_headers, seconds, clients
        ),
        # The facade's maximum microversion, and a Nova search (filter, sort) over the same servers.
        "servers_detail_1000_2_96": await scenarios.read_load(detail_url, latest_headers, seconds, clients),
        "servers_detail_search_2_96": await scenarios.read_load(
            f"{detail_url}?{search}", latest_headers, seconds, clients
        ),
        "floor_list": await scenarios.read_load(
            f"{run.stack.cluster.server}{SERVERS.path(TENANT)}",
            {"Authorization": f"Bearer {run.token}"},
            seconds,
            clients,
        ),
    }
    say("facade reads: done")
    return results


async def notification(run: Run) -> dict:
    """Detection to tenant notification: a webhook subscription for the 1,000 servers of the big host."""
    client = run.stack.client
    with WebhookReceiver() as receiver:
        await client.create(SECRETS, {"metadata": {"name": "hook-key"}, "stringData": {"key": "k" * 32}}, TENANT)
        subscription = {
            "apiVersion": API_GROUP_VERSION,
            "kind": "HostStatusSubscription",
            "metadata": {"name": "hook"},
            "spec": {"url": receiver.url, "signingKeySecretRef": {"name": "hook-key"}, "hostStatuses": ["DOWN", "UP"]},
        }
        await client.create(HOST_STATUS_SUBSCRIPTIONS, subscription, TENANT)
        await asyncio.sleep(2)  # the operator lists the subscription and reads its key
        big_ids = {
            (await client.get(SERVERS, n, namespace=ns))["metadata"]["uid"] for ns, n in run.keys_by_host[run.big]
        }
        results = await scenarios.detection_to_notification(client, receiver, run.big, big_ids, run.args.reps_big)
    say("detection to notification: done")
    return results


async def heartbeat_expiry(run: Run) -> dict:
    args = run.args
    results = await scenarios.heartbeat_expiry(
        run.stack, run.watch, run.expiring, run.keys_by_host, args.down_time, args.report_interval, args.expiry_rounds
    )
    say("heartbeat expiry: done")
    return results


async def steady_state(run: Run) -> dict:
    results = {
        "operator": await scenarios.steady_state(run.operator.pid, run.args.steady_seconds),
        "facade": {"rss_mib": process_rss_mib(run.facade.pid)},
    }
    say("steady state: done")
    return results


async def floors(run: Run, force_down_results: dict) -> None:
    """The floor of each force-down: no operator, a bare client patches the same statuses."""
    run.operator.stop()
    for host, reps in run.measured_hosts:
        keys = run.keys_by_host[host]
        force_down_results[len(keys)]["floor"] = await scenarios.patch_floor(
            run.stack.client, run.watch, keys, reps, run.args.concurrency
        )
        say(f"floor N={len(keys)}: done")


async def startup(run: Run) -> dict:
    """The operator's and the facade's start-up, over all the servers (the operator is stopped by now)."""
    results = {"operator": await scenarios.operator_startup(run.stack, run.servers, run.operator_flags)}
    run.facade.stop()
    *_, results["facade"] = await scenarios.facade_ready(run.stack, run.facade_flags)
    say("start-up: done")
    return results


async def main(args: argparse.Namespace) -> dict:
    results: dict = {"machine": machine(), "started": datetime.now(UTC).isoformat(), "config": vars(args)}
    if "core" in args.only:
        results.update(await core(args))
    if "hostile" in args.only:
        results["hostile"] = await hostile.run(fuzz_cases=1000 if args.quick else hostile.FUZZ_CASES)
    if "ha" in args.only:
        results["ha"] = {"takeover": await takeover.main(repetitions=2 if args.quick else takeover.REPETITIONS)}
    if "chaos" in args.only:
        results["chaos"] = await chaos.main(repetitions=2 if args.quick else chaos.REPETITIONS)
    if "notifications" in args.only:
        scale = notifications_delivery.QUICK if args.quick else notifications_delivery.FULL
        results["notifications"] = await notifications_delivery.main(scale)
    if "memory" in args.only:
        results["memory"] = await memory.run((2000, 5000) if args.quick else memory.SIZES)
    return results


async def core(args: argparse.Namespace) -> dict:
    """The fleet scenarios on one stack: force-down, reads, notification, expiry, steady state, start-up."""
    started = time.monotonic()
    stack = await Stack.start()
    results: dict = {}
    try:
        run = await set_up(stack, args)
        results["force_down"], profile = await force_down(run)
        if profile is not None:
            results["profile_fanout"] = profile
        results["facade_reads"] = await facade_reads(run)
        results["notification"] = await notification(run)
        results["heartbeat_expiry"] = await heartbeat_expiry(run)
        results["steady_state"] = await steady_state(run)
        await floors(run, results["force_down"])
        results["startup"] = await startup(run)
        results["duration_s"] = time.monotonic() - started
        await run.close()
    finally:
        await stack.stop()
    return results


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a small run, to check the harness")
    parser.add_argument("--output", default="latest.json")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during the big fan-out")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=GROUPS,
        default=list(GROUPS),
        help="scenario groups to run; the others keep their figures from the saved file",
    )
    args = parser.parse_args()
    scale = dict(
        services=1000,
        servers=10_000,
        hosts_with_servers=100,
        big=1000,
        small=100,
        reps_big=10,
        reps_small=20,
        expiring=10,
        expiry_rounds=2,
        steady_seconds=60.0,
    )
    if args.quick:
        scale = dict(
            services=50,
            servers=600,
            hosts_with_servers=20,
            big=300,
            small=50,
            reps_big=3,
            reps_small=3,
            expiring=3,
            expiry_rounds=1,
            steady_seconds=5.0,
        )
    for key, value in scale.items():
        setattr(args, key, value)
    args.down_time, args.report_interval, args.concurrency = 30.0, 10.0, 64
    args.read_seconds, args.read_clients = (10.0, 8) if not args.quick else (3.0, 4)
    return args


def merged_with_saved(outcome: dict, name: str) -> dict:
    """A partial run (--only) replaces its groups' figures in the saved file and keeps the others."""
    path = RESULTS / name
    saved = json.loads(path.read_text()) if path.exists() else {}
    return {**saved, **outcome}


if __name__ == "__main__":
    arguments = parse()
    outcome = merged_with_saved(asyncio.run(main(arguments)), arguments.output)
    path = save(outcome, arguments.output)
    print(table(outcome))
    print(f"saved {path}")
