"""Memory per server and time to ready after a restart, for the operator and the facade.

The fleet grows in steps (10k, 30k, 100k servers by default; 100 per host, spread over 10 tenant
namespaces) on one local control plane. At each step both processes are restarted (`--restarts`
times, 3 by default), and for each: the seconds from its start to /readyz answering 200 (every
informer has listed; p50 and the slowest), the CPU seconds it used until then (what load on the
machine changes least), its RSS then, and its RSS a few seconds later (once the start-up's garbage
has settled), with the load average at each restart. Every host is forced down,
so every server's hostStatus is DOWN and stays so without agents: the processes restart into a
converged fleet, as after a rolling update. The creation time of each step counts until the
operator has set every new server's hostStatus.

Run: `python -m bench.memory [--sizes 10000 30000 100000] [--restarts 3]` (figures in
bench/results/memory.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

import aiohttp

from hoststate import API_GROUP_VERSION
from hoststate.devcluster import free_port
from hoststate.devcluster.processes import HoststateProcess
from hoststate.kube import COMPUTE_SERVICES
from hoststate.resources.computeservice import service_name

from .harness import (
    CLIENT_GO_ELECTION,
    ServerWatch,
    Stack,
    create_servers,
    process_cpu_seconds,
    process_rss_mib,
    progress,
    save,
    say,
)

SIZES = (10_000, 30_000, 100_000)
RESTARTS = 3
SERVERS_PER_HOST = 100
TENANTS = 10
SETTLE_SECONDS = 5.0
# Hosts whose servers are created at once (create_servers keeps 32 requests in flight for each).
HOSTS_IN_PARALLEL = 4


async def grow(stack: Stack, watch: ServerWatch, hosts: int, have: int) -> float:
    """Add forced-down hosts `have`..`hosts`-1 with their servers; seconds until all of them show DOWN."""
    started = time.monotonic()

    async def create_host(index: int, host: str) -> list[tuple[str, str]]:
        body = {
            "apiVersion": API_GROUP_VERSION,
            "kind": "ComputeService",
            "metadata": {"name": service_name(host)},
            "spec": {"host": host, "forcedDown": True},
        }
        await stack.client.create(COMPUTE_SERVICES, body)
        return await create_servers(stack.client, f"tenant-{index % TENANTS}", host, SERVERS_PER_HOST, host)

    keys: list[tuple[str, str]] = []
    for first in range(have, hosts, HOSTS_IN_PARALLEL):
        chunk = range(first, min(first + HOSTS_IN_PARALLEL, hosts))
        for created in await asyncio.gather(*(create_host(i, f"m{i:05d}") for i in chunk)):
            keys += created
        progress(f"memory: {chunk.stop * SERVERS_PER_HOST} servers created")
    await asyncio.wait_for(watch.expect(keys, "DOWN"), 3600)
    return time.monotonic() - started


async def ready(process: HoststateProcess, port: int, started: float, timeout: float = 600) -> float:
    """Seconds from `started` to the process's /readyz answering 200."""
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < timeout:
            if not process.running:
                raise RuntimeError(f"{process.name} exited:\n{process.output()[-3000:]}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{process.name} not ready after {timeout}s")


async def restarted(stack: Stack, name: str, args: list[str], port: int) -> tuple[HoststateProcess, dict]:
    load = os.getloadavg()[0]
    started = time.monotonic()
    process = stack.spawn(name, *args)
    seconds = await ready(process, port, started)
    cpu, rss_ready = process_cpu_seconds(process.pid), process_rss_mib(process.pid)
    await asyncio.sleep(SETTLE_SECONDS)
    figures = {
        "seconds_to_ready": round(seconds, 2),
        "cpu_seconds_to_ready": round(cpu, 2),
        "rss_mib_at_ready": round(rss_ready, 1),
        "rss_mib_settled": round(process_rss_mib(process.pid), 1),
        "load_average": round(load, 1),
    }
    return process, figures


def restarts_summary(runs: list[dict]) -> dict:
    """The restarts of one process at one size: p50 and slowest time to ready, the largest RSS."""
    seconds = [run["seconds_to_ready"] for run in runs]
    return {
        "seconds_to_ready": round(statistics.median(seconds), 2),
        "seconds_to_ready_max": max(seconds),
        "cpu_seconds_to_ready": round(statistics.median(run["cpu_seconds_to_ready"] for run in runs), 2),
        "rss_mib_settled": max(run["rss_mib_settled"] for run in runs),
        "runs": runs,
    }


def operator_args(port: int) -> list[str]:
    # client-go's election durations: with the default 2 s lease, the operator creating 100k servers
    # on a loaded machine lost its Lease 228 times, each loss a resync, and creation dragged.
    return ["operator", f"--metrics-port={port}", "--resync-period=600", *CLIENT_GO_ELECTION]


def facade_args(port: int) -> list[str]:
    return ["facade", "--host=127.0.0.1", f"--port={free_port()}", f"--metrics-port={port}"]


async def run(sizes: tuple[int, ...] = SIZES, restarts: int = RESTARTS) -> dict:
    """Figures per fleet size: creation time, and each process's time to ready and RSS after restarts."""
    stack = await Stack.start()
    results: dict = {"servers_per_host": SERVERS_PER_HOST, "tenants": TENANTS, "sizes": {}}
    try:
        for index in range(TENANTS):
            await stack.ensure_namespace(f"tenant-{index}")
        watch = ServerWatch(stack.client)
        await watch.start()
        operator_port = free_port()
        operator = stack.spawn("operator", *operator_args(operator_port))  # sets the statuses while they are created
        await ready(operator, operator_port, time.monotonic())
        hosts = 0
        for size in sorted(sizes):
            wanted = size // SERVERS_PER_HOST
            creation = await grow(stack, watch, wanted, hosts)
            say(f"memory: {size} servers created and DOWN in {creation:.0f}s")
            figures: dict = {
                "creation_seconds": round(creation, 1),
                "created_servers": (wanted - hosts) * SERVERS_PER_HOST,
            }
            hosts = wanted
            runs: dict[str, list[dict]] = {"operator": [], "facade": []}
            for _ in range(restarts):
                operator.stop()
                operator, figures_once = await restarted(stack, "operator", operator_args(operator_port), operator_port)
                runs["operator"].append(figures_once)
                facade_port = free_port()
                facade, figures_once = await restarted(stack, "facade", facade_args(facade_port), facade_port)
                facade.stop()
                runs["facade"].append(figures_once)
                say(f"memory: {size} servers: {json.dumps({name: done[-1] for name, done in runs.items()})}")
            figures |= {name: restarts_summary(done) for name, done in runs.items()}
            results["sizes"][size] = figures
        operator.stop()
        await watch.stop()
    finally:
        await stack.stop()
    return results


def table(results: dict) -> list[str]:
    lines = []
    for size, figures in results["sizes"].items():
        op, fa = figures["operator"], figures["facade"]
        lines.append(
            f"{int(size):,} servers (created in {figures['creation_seconds']:.0f} s): "
            f"operator ready {op['seconds_to_ready']:.1f} s (slowest {op['seconds_to_ready_max']:.1f} s), "
            f"{op['rss_mib_settled']:.0f} MiB; "
            f"facade ready {fa['seconds_to_ready']:.1f} s (slowest {fa['seconds_to_ready_max']:.1f} s), "
            f"{fa['rss_mib_settled']:.0f} MiB"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--restarts", type=int, default=RESTARTS, help="restarts of each process at each size")
    args = parser.parse_args()
    say(f"saved to {save(asyncio.run(run(tuple(args.sizes), args.restarts)), 'memory.json')}")


if __name__ == "__main__":
    main()
