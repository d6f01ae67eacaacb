"""`make bench` (python -m bench): the scenarios of docs/benchmarks.md, printed and saved as JSON."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from . import scenarios
from .harness import RESULTS, ServerWatch, Stack, create_servers, create_services, machine, save, say
from .profile import Profiler

NAMESPACE = "bench"


def table(results: dict) -> str:
    lines = [f"{'scenario':44} {'p50':>9} {'p99':>9} {'floor p50':>10} {'ratio p50':>9} {'ratio p99':>9}"]
    for n, item in results["force_down"].items():
        for direction in ("down", "up"):
            ours, floor = item["operator"][direction], item["floor"][direction]
            lines.append(
                f"{f'force-down N={n} ({direction}), merge patch':44} {ours['p50']:>8.3f}s {ours['p99']:>8.3f}s "
                f"{floor['p50']:>9.3f}s {ours['p50'] / floor['p50']:>8.2f}x {ours['p99'] / floor['p99']:>8.2f}x"
            )
    lag = results["heartbeat_expiry"]["lag"]
    lines.append(f"{'heartbeat expiry lag after the deadline':44} {lag['p50']:>8.3f}s {lag['p99']:>8.3f}s")
    steady = results["steady_state"]["operator"]
    lines.append(f"operator steady state: {steady['cpu_percent_of_one_core']:.1f}% of a core, {steady['rss_mib']:.0f} MiB RSS")
    startup = results["startup"]["operator"]
    lines.append(f"operator start-up: {startup['seconds_to_index']:.2f}s to index {startup['servers']} servers")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    stack = await Stack.start()
    results: dict = {"machine": machine(), "started": datetime.now(UTC).isoformat(), "config": vars(args)}
    try:
        await stack.ensure_namespace(NAMESPACE)
        hosts = [f"h{i:04d}" for i in range(args.services)]
        big, small, expiring = hosts[0], hosts[1], hosts[2 : 2 + args.expiring]
        others = hosts[2 : args.hosts_with_servers]
        operator_flags = [
            f"--service-down-time={args.down_time}", f"--report-interval={args.report_interval}",
            f"--fanout-concurrency={args.concurrency}", "--resync-period=600",
        ]  # fmt: skip
        say(f"stack up; {len(hosts)} services, {args.servers} servers")

        stack.agent([h for h in hosts if h not in expiring], args.report_interval)
        await create_services(stack.client, hosts)
        operator, _ = await asyncio.to_thread(stack.operator, *operator_flags)

        keys_by_host = {big: await create_servers(stack.client, NAMESPACE, big, args.big, "big")}
        keys_by_host[small] = await create_servers(stack.client, NAMESPACE, small, args.small, "small")
        per_host = (args.servers - args.big - args.small) // len(others)
        for host in others:
            keys_by_host[host] = await create_servers(stack.client, NAMESPACE, host, per_host, host)
        total = sum(len(keys) for keys in keys_by_host.values())
        watch = ServerWatch(stack.client)
        await watch.start()
        say(f"created {total} servers; waiting for the operator to set them")
        expiring_up = [asyncio.wait_for(watch.expect(keys_by_host[h], "UNKNOWN"), 600) for h in expiring]
        await asyncio.gather(*(asyncio.wait_for(watch.expect(keys_by_host[h], "UP"), 600)
                               for h in keys_by_host if h not in expiring), *expiring_up)  # fmt: skip

        results["force_down"] = {}
        for host, reps in ((small, args.reps_small), (big, args.reps_big)):
            keys = keys_by_host[host]
            profiler = Profiler(operator.pid, RESULTS / "profile-fanout.txt") if args.profile and host == big else None
            results["force_down"][len(keys)] = {
                "operator": await scenarios.force_down_propagation(stack.client, watch, host, keys, reps)
            }
            if profiler is not None:
                results["profile_fanout"] = profiler.stop()
            say(f"force-down N={len(keys)}: done")

        results["heartbeat_expiry"] = await scenarios.heartbeat_expiry(
            stack, watch, expiring, keys_by_host, args.down_time, args.report_interval, args.expiry_rounds
        )
        say("heartbeat expiry: done")

        results["steady_state"] = {"operator": await scenarios.steady_state(operator.pid, args.steady_seconds)}
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
        say("start-up: done")
        results["duration_s"] = time.monotonic() - started
        await watch.stop()
    finally:
        await stack.stop()
    return results


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a small run, to check the harness")
    parser.add_argument("--output", default="latest.json")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during the big fan-out")
    args = parser.parse_args()
    scale = dict(services=1000, servers=10_000, hosts_with_servers=100, big=1000, small=100, reps_big=10,
                 reps_small=20, expiring=10, expiry_rounds=2, steady_seconds=60.0)  # fmt: skip
    if args.quick:
        scale = dict(services=50, servers=600, hosts_with_servers=20, big=300, small=50, reps_big=3,
                     reps_small=3, expiring=3, expiry_rounds=1, steady_seconds=5.0)  # fmt: skip
    for key, value in scale.items():
        setattr(args, key, value)
    args.down_time, args.report_interval, args.concurrency = 30.0, 10.0, 64
    return args


if __name__ == "__main__":
    arguments = parse()
    outcome = asyncio.run(main(arguments))
    path = save(outcome, arguments.output)
    print(table(outcome))
    print(f"saved {path}")
