"""`make bench` (python -m bench): the scenarios of docs/benchmarks.md, printed and saved as JSON."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

import aiohttp

from hoststate.kube import SERVERS
from hoststate.kube.api_resources import HOST_STATUS_SUBSCRIPTIONS, SECRETS

from . import scenarios
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

NAMESPACE = "bench"
TENANT = "bench-tenant"  # the big host's servers: one tenant with 1,000 servers


def table(results: dict) -> str:
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
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    stack = await Stack.start()
    results: dict = {"machine": machine(), "started": datetime.now(UTC).isoformat(), "config": vars(args)}
    try:
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
        total = sum(len(keys) for keys in keys_by_host.values())
        watch = ServerWatch(stack.client)
        await watch.start()
        say(f"created {total} servers; waiting for the operator to set them")
        expiring_up = [asyncio.wait_for(watch.expect(keys_by_host[h], "UNKNOWN"), 600) for h in expiring]
        await asyncio.gather(
            *(asyncio.wait_for(watch.expect(keys_by_host[h], "UP"), 600) for h in keys_by_host if h not in expiring),
            *expiring_up,
        )

        facade_flags = [f"--service-down-time={args.down_time}", f"--report-interval={args.report_interval}"]
        facade, facade_port, _, _ = await scenarios.facade_ready(stack, facade_flags)
        facade_url = f"http://127.0.0.1:{facade_port}/v2.1"
        session = aiohttp.ClientSession()
        token = stack.cluster.admin_token

        results["force_down"] = {}
        for host, reps in ((small, args.reps_small), (big, args.reps_big)):
            keys = keys_by_host[host]
            profiler = Profiler(operator.pid, RESULTS / "profile-fanout.txt") if args.profile and host == big else None
            results["force_down"][len(keys)] = {
                "operator": await scenarios.force_down_propagation(stack.client, watch, host, keys, reps)
            }
            if profiler is not None:
                results["profile_fanout"] = profiler.stop()
            probe = await stack.client.get(SERVERS, keys[0][1], namespace=keys[0][0])
            results["force_down"][len(keys)]["facade"] = await scenarios.facade_force_down(
                session, facade_url, token, watch, host, keys, probe["metadata"]["uid"], keys[0][0], reps
            )
            say(f"force-down N={len(keys)}: done")

        read_headers = {"X-Auth-Token": token, **scenarios.NOVA_2_16}
        latest_headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.96"}
        one = await stack.client.get(SERVERS, keys_by_host[big][0][1], namespace=TENANT)
        detail_url = f"{facade_url}/{TENANT}/servers/detail"
        show_url = f"{facade_url}/{TENANT}/servers/{one['metadata']['uid']}"
        list_url = f"{stack.cluster.server}{SERVERS.path(TENANT)}"
        results["facade_reads"] = {
            "servers_detail_1000": await scenarios.read_load(
                detail_url, read_headers, args.read_seconds, args.read_clients
            ),
            "server_show": await scenarios.read_load(show_url, read_headers, args.read_seconds, args.read_clients),
            # The facade's maximum microversion, and a Nova search (filter, sort) over the same servers.
            "servers_detail_1000_2_96": await scenarios.read_load(
                detail_url, latest_headers, args.read_seconds, args.read_clients
            ),
            "servers_detail_search_2_96": await scenarios.read_load(
                f"{detail_url}?status=ACTIVE&name=%5Ebig-00%5B0-4%5D&sort_key=display_name&sort_dir=asc",
                latest_headers,
                args.read_seconds,
                args.read_clients,
            ),
            "floor_list": await scenarios.read_load(
                list_url, {"Authorization": f"Bearer {token}"}, args.read_seconds, args.read_clients
            ),
        }
        say("facade reads: done")

        # Tell the tenant: a webhook subscription for the 1,000 servers of the big host.
        receiver = scenarios.WebhookReceiver()
        await receiver.start()
        await stack.client.create(SECRETS, {"metadata": {"name": "hook-key"}, "stringData": {"key": "k" * 32}}, TENANT)
        subscription = {
            "apiVersion": "hoststate.io/v1alpha1",
            "kind": "HostStatusSubscription",
            "metadata": {"name": "hook"},
            "spec": {"url": receiver.url, "signingKeySecretRef": {"name": "hook-key"}, "hostStatuses": ["DOWN", "UP"]},
        }
        await stack.client.create(HOST_STATUS_SUBSCRIPTIONS, subscription, TENANT)
        await asyncio.sleep(2)  # the operator lists the subscription and reads its key
        big_ids = {(await stack.client.get(SERVERS, n, namespace=ns))["metadata"]["uid"] for ns, n in keys_by_host[big]}
        results["notification"] = await scenarios.detection_to_notification(
            stack.client, receiver, big, big_ids, args.reps_big
        )
        await receiver.stop()
        say("detection to notification: done")

        results["heartbeat_expiry"] = await scenarios.heartbeat_expiry(
            stack, watch, expiring, keys_by_host, args.down_time, args.report_interval, args.expiry_rounds
        )
        say("heartbeat expiry: done")

        results["steady_state"] = {"operator": await scenarios.steady_state(operator.pid, args.steady_seconds)}
        results["steady_state"]["facade"] = {"rss_mib": process_rss_mib(facade.pid)}
        say("steady state: done")

        # The floor: no operator, a bare client patches the same statuses.
        operator.stop()
        for host, reps in ((small, args.reps_small), (big, args.reps_big)):
            keys = keys_by_host[host]
            results["force_down"][len(keys)]["floor"] = await scenarios.patch_floor(
                stack.client, watch, keys, reps, args.concurrency
            )
            say(f"floor N={len(keys)}: done")

        results["startup"] = {"operator": await scenarios.operator_startup(stack, total, operator_flags)}
        facade.stop()
        *_, results["startup"]["facade"] = await scenarios.facade_ready(stack, facade_flags)
        say("start-up: done")
        results["duration_s"] = time.monotonic() - started
        await watch.stop()
        await session.close()
    finally:
        await stack.stop()
    return results


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a small run, to check the harness")
    parser.add_argument("--output", default="latest.json")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during the big fan-out")
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


if __name__ == "__main__":
    arguments = parse()
    outcome = asyncio.run(main(arguments))
    path = save(outcome, arguments.output)
    print(table(outcome))
    print(f"saved {path}")
