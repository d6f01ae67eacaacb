"""The benchmark scenarios. Each returns plain numbers; __main__ prints and saves them."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

import aiohttp

from hoststate.devcluster import free_port
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.devcluster.scraper import scrape, total
from hoststate.domain import COMPUTE_BINARY
from hoststate.kube import COMPUTE_SERVICES, LEASES, SERVERS, KubeClient
from hoststate.kubetime import parse_kube_time
from hoststate.operator.status_patches import server_status_patch
from hoststate.resources.computeservice import service_name

from .harness import ServerWatch, Stack, process_cpu_seconds, process_rss_mib, progress, summary

Keys = list[tuple[str, str]]


async def force_down_propagation(client: KubeClient, watch: ServerWatch, host: str, keys: Keys, reps: int) -> dict:
    """Merge-patch forcedDown (as kubectl does) and time the last server's DOWN, then the unset's UP."""
    name = service_name(host)
    timings: dict[str, list[float]] = {"down": [], "up": []}
    for rep in range(reps):
        for forced, target, label in ((True, "DOWN", "down"), (False, "UP", "up")):
            progress(f"force-down N={len(keys)}: {rep + 1}/{reps} {label}")
            arrived = watch.expect(keys, target)
            started = time.time()
            await client.patch(COMPUTE_SERVICES, name, {"spec": {"forcedDown": forced}})
            timings[label].append(await asyncio.wait_for(arrived, 120) - started)
    return {label: summary(values) for label, values in timings.items()}


async def patch_floor(client: KubeClient, watch: ServerWatch, keys: Keys, reps: int, concurrency: int) -> dict:
    """No operator: a bare client patches the same statuses with the same concurrency."""
    semaphore = asyncio.Semaphore(concurrency)
    timings: dict[str, list[float]] = {"down": [], "up": []}

    async def patch(key: tuple[str, str], target: str) -> None:
        async with semaphore:
            await client.patch(
                SERVERS,
                key[1],
                server_status_patch(target, 1, datetime.now(UTC)),
                namespace=key[0],
                subresource="status",
            )

    for rep in range(reps):
        for target, label in (("DOWN", "down"), ("UP", "up")):
            progress(f"floor N={len(keys)}: {rep + 1}/{reps} {label}")
            arrived = watch.expect(keys, target)
            started = time.time()
            await asyncio.gather(*(patch(key, target) for key in keys))
            timings[label].append(await asyncio.wait_for(arrived, 120) - started)
    return {label: summary(values) for label, values in timings.items()}


async def heartbeat_expiry(
    stack: Stack,
    watch: ServerWatch,
    hosts: list[str],
    keys_by_host: dict[str, Keys],
    down_time: float,
    interval: float,
    rounds: int,
) -> dict:
    """Stop the agents of `hosts`; lag from each service's deadline to its last server showing UNKNOWN."""
    lags: list[float] = []
    for round_ in range(rounds):
        agents = {host: stack.agent([host], interval) for host in hosts}
        await asyncio.gather(*(asyncio.wait_for(watch.expect(keys_by_host[h], "UP"), 120) for h in hosts))
        await asyncio.sleep(interval * 1.5)  # let every agent beat at least once more
        unknown = {host: watch.expect(keys_by_host[host], "UNKNOWN") for host in hosts}
        for agent in agents.values():
            agent.stop()
        for host in hosts:
            progress(f"heartbeat expiry: round {round_ + 1}/{rounds}, waiting for {host}")
            lease = await stack.client.get(LEASES, service_name(host), namespace=stack.lease_namespace)
            deadline = parse_kube_time(lease["spec"]["renewTime"]).timestamp() + down_time
            lags.append(await asyncio.wait_for(unknown[host], down_time + 60) - deadline)
    return {"lag": summary(lags)}


async def steady_state(pid: int, seconds: float) -> dict:
    """CPU (percent of one core) and RSS of a process over a quiet window."""
    cpu_before, started = process_cpu_seconds(pid), time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        progress(f"steady state: {elapsed:.0f}/{seconds:.0f}s")
        await asyncio.sleep(1)
    cpu = process_cpu_seconds(pid) - cpu_before
    return {"cpu_percent_of_one_core": 100 * cpu / seconds, "rss_mib": process_rss_mib(pid), "window_s": seconds}


async def operator_startup(stack: Stack, servers: int, flags: list[str]) -> dict:
    """Restart the operator; time until it has indexed every server (its /metrics says so)."""
    started = time.monotonic()
    process, port = await asyncio.to_thread(stack.operator, *flags)
    while True:
        samples = await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics")
        indexed = total(samples, "hoststate_servers")
        progress(f"operator start-up: {indexed:.0f}/{servers} servers indexed")
        if indexed >= servers:
            break
        await asyncio.sleep(0.05)
    return {"seconds_to_index": time.monotonic() - started, "servers": servers, "rss_mib": process_rss_mib(process.pid)}


# -- the Nova facade ----------------------------------------------------------------------------
NOVA_2_11 = {"X-OpenStack-Nova-API-Version": "2.11"}
NOVA_2_16 = {"X-OpenStack-Nova-API-Version": "2.16"}


async def facade_force_down(
    session: aiohttp.ClientSession,
    facade: str,
    token: str,
    watch: ServerWatch,
    host: str,
    keys: Keys,
    probe_server: str,
    tenant: str,
    reps: int,
) -> dict:
    """PUT /os-services/force-down: time to the last server's DOWN in the API server, and how soon
    after the facade's answer its own GET /servers/{id} shows the new host_status."""
    headers = {"X-Auth-Token": token, **NOVA_2_11}
    read_headers = {"X-Auth-Token": token, **NOVA_2_16}
    timings: dict[str, list[float]] = {"down": [], "up": [], "visible_down": [], "visible_up": []}
    for rep in range(reps):
        for forced, target, label in ((True, "DOWN", "down"), (False, "UP", "up")):
            progress(f"facade force-down N={len(keys)}: {rep + 1}/{reps} {label}")
            arrived = watch.expect(keys, target)
            started = time.time()
            body = {"host": host, "binary": COMPUTE_BINARY, "forced_down": forced}
            async with session.put(f"{facade}/os-services/force-down", json=body, headers=headers) as response:
                assert response.status == 200, await response.text()
            answered = time.time()
            # One GET right after the answer (it should already show the change); retried every
            # 10 ms if not, so that probing does not take CPU from the fan-out being measured.
            while True:
                async with session.get(f"{facade}/{tenant}/servers/{probe_server}", headers=read_headers) as response:
                    if (await response.json())["server"]["host_status"] == target:
                        break
                await asyncio.sleep(0.01)
            timings[f"visible_{label}"].append(time.time() - answered)
            timings[label].append(await asyncio.wait_for(arrived, 120) - started)
    return {label: summary(values) for label, values in timings.items()}


WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    number = text.rstrip("usm")
    return float(number) * WRK_UNITS[text[len(number) :]]


async def read_load(url: str, headers: dict[str, str], seconds: float, connections: int) -> dict:
    """Closed-loop load with wrk (a C load generator: the Python client would be the bottleneck)."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    process = await asyncio.create_subprocess_exec(
        *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output = (await process.communicate())[0].decode()
    if process.returncode != 0 or "Non-2xx" in output or "Requests/sec" not in output:
        raise RuntimeError(f"wrk failed on {url}:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = {f"p{q}": _seconds(value) for q, value in re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M)}
    size = re.search(r"([\d.]+[KMG]?B) read", output).group(1)
    return {"rps": rps, "latency": latency, "connections": connections, "transferred": size, "tool": "wrk"}


async def facade_ready(stack: Stack, flags: list[str]) -> tuple[object, int, int, dict]:
    """Start the facade; time until its cache has synced (/healthz answers 200)."""
    api_port, metrics_port = free_port(), free_port()
    started = time.monotonic()
    process = stack.spawn(
        "facade",
        "facade",
        "--host=127.0.0.1",
        f"--port={api_port}",
        f"--metrics-port={metrics_port}",
        f"--lease-namespace={stack.lease_namespace}",
        *flags,
    )
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{metrics_port}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    return process, api_port, metrics_port, {"seconds_to_ready": time.monotonic() - started}


# -- tenant notification ---------------------------------------------------------------------------
async def detection_to_notification(
    client: KubeClient, receiver: WebhookReceiver, host: str, server_ids: set[str], reps: int
) -> dict:
    """A fault monitor forces the host down (its detection); time until each tenant webhook call."""
    name = service_name(host)
    last: dict[str, list[float]] = {"down": [], "up": []}
    each: list[float] = []
    for rep in range(reps):
        for forced, target, label in ((True, "DOWN", "down"), (False, "UP", "up")):
            progress(f"detection to notification N={len(server_ids)}: {rep + 1}/{reps} {label}")
            started = time.time()
            await client.patch(COMPUTE_SERVICES, name, {"spec": {"forcedDown": forced}})
            arrivals = await notified(receiver, server_ids, target, started)
            last[label].append(max(arrivals.values()) - started)
            if target == "DOWN":
                each += [at - started for at in arrivals.values()]
    return {"last_server": {k: summary(v) for k, v in last.items()}, "each_server_down": summary(each)}


async def notified(
    receiver: WebhookReceiver, server_ids: set[str], new_status: str, since: float, timeout: float = 120
) -> dict[str, float]:
    """When each server's event to `new_status` arrived (the receiver stamps the arrival; polling
    only decides when we look, every 50 ms, so that it takes little CPU from the operator)."""
    deadline = time.monotonic() + timeout
    while not server_ids <= (arrivals := receiver.arrivals(new_status, since)).keys():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(server_ids - arrivals.keys())} servers not notified {new_status}")
        await asyncio.sleep(0.05)
    return {server_id: arrivals[server_id] for server_id in server_ids}
