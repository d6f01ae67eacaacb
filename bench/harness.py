"""What every scenario needs: the local stack, bulk setup, a watch-based observer, stats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from hoststate import API_GROUP_VERSION
from hoststate.devcluster import DevCluster, control_plane_bin_dir, free_port
from hoststate.devcluster.processes import HoststateProcess
from hoststate.devcluster.stack import Kubectl, install_crds
from hoststate.kube import COMPUTE_SERVICES, SERVERS, ApiError, KubeClient
from hoststate.resources.computeservice import service_name
from hoststate.resources.lease import DEFAULT_LEASE_NAMESPACE

RESULTS = Path(__file__).resolve().parent / "results"

# client-go's controllers' leader-election durations (lease 15 s, renew deadline 10 s, retry 2 s), which a
# loaded machine's renewals do not miss; the operator's own defaults are 2 s / 1.5 s / 0.25 s.
CLIENT_GO_ELECTION = (
    "--leader-election-lease-duration=15",
    "--leader-election-renew-deadline=10",
    "--leader-election-retry-period=2",
)


# -- output -----------------------------------------------------------------------------
INTERACTIVE = sys.stderr.isatty()


def progress(message: str) -> None:
    """A progress line, rewritten in place on a terminal (silent in logs)."""
    if INTERACTIVE:
        sys.stderr.write(f"\r\033[K{message}")
        sys.stderr.flush()


def say(message: str) -> None:
    sys.stderr.write(f"\r\033[K{message}\n" if INTERACTIVE else f"{message}\n")
    sys.stderr.flush()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): the ceil(q% of n)-th smallest; with fewer than 100
    samples p99 is the maximum, honestly."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(int(memory) / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# -- processes --------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Stack:
    """The local control plane, the hoststate processes, and an admin client."""

    cluster: DevCluster
    client: KubeClient
    kubectl: Kubectl
    processes: list[HoststateProcess] = field(default_factory=list)
    lease_namespace: str = DEFAULT_LEASE_NAMESPACE

    @classmethod
    async def start(cls) -> Stack:
        bin_dir = await asyncio.to_thread(control_plane_bin_dir)
        cluster = DevCluster(bin_dir=bin_dir)
        await asyncio.to_thread(cluster.start)
        kubectl = Kubectl(bin_dir / "kubectl", cluster.kubeconfig)
        await asyncio.to_thread(install_crds, kubectl)
        info = kopf.ConnectionInfo(server=cluster.server, ca_path=str(cluster.ca_file), token=cluster.admin_token)
        stack = cls(cluster=cluster, client=KubeClient(info, max_connections=128), kubectl=kubectl)
        await stack.ensure_namespace(stack.lease_namespace)
        return stack

    async def stop(self) -> None:
        for process in self.processes:
            process.stop()
        await self.client.close()
        await asyncio.to_thread(self.cluster.stop)

    async def ensure_namespace(self, name: str) -> None:
        try:
            await self.client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
        except ApiError as error:
            if error.status != 409:
                raise

    def spawn(self, name: str, *args: str) -> HoststateProcess:
        process = HoststateProcess(list(args), self.cluster.kubeconfig, name).start()
        self.processes.append(process)
        return process

    def operator(self, *flags: str) -> tuple[HoststateProcess, int]:
        port = free_port()
        process = self.spawn("operator", "operator", f"--metrics-port={port}", *flags)
        process.wait_for_output("hoststate operator started", timeout=120)
        return process, port

    def agent(self, hosts: Iterable[str], interval: float) -> HoststateProcess:
        args = ["agent", f"--report-interval={interval}", f"--lease-namespace={self.lease_namespace}"]
        return self.spawn("agent", *args, *(f"--host={host}" for host in hosts))

    async def heartbeat_fleet(self, hosts: list[str], interval: float, per_agent: int = 100) -> list[HoststateProcess]:
        """Agents for `hosts`, `per_agent` hosts each, started evenly over one interval: an agent renews
        all its Leases at once, so one agent for a whole fleet would renew in bursts, where real hosts
        renew at a steady rate (1,000 every 10 s: 100 a second)."""
        groups = [hosts[i : i + per_agent] for i in range(0, len(hosts), per_agent)]
        agents = []
        for group in groups:
            agents.append(self.agent(group, interval))
            await asyncio.sleep(interval / len(groups))
        return agents


# -- bulk setup -------------------------------------------------------------------------------
async def bounded(jobs: Iterable[Any], limit: int, label: str) -> None:
    """Await coroutines with at most `limit` in flight, showing progress."""
    semaphore = asyncio.Semaphore(limit)
    items = list(jobs)
    done = 0

    async def one(job: Any) -> None:
        nonlocal done
        async with semaphore:
            await job
        done += 1
        if done % 200 == 0 or done == len(items):
            progress(f"{label}: {done}/{len(items)}")

    await asyncio.gather(*(one(job) for job in items))


async def create_services(client: KubeClient, hosts: list[str]) -> None:
    async def create(host: str) -> None:
        body = {
            "apiVersion": API_GROUP_VERSION,
            "kind": "ComputeService",
            "metadata": {"name": service_name(host)},
            "spec": {"host": host},
        }
        await client.create(COMPUTE_SERVICES, body)

    await bounded((create(h) for h in hosts), 32, "creating services")


async def create_servers(
    client: KubeClient, namespace: str, host: str, count: int, prefix: str
) -> list[tuple[str, str]]:
    names = [f"{prefix}-{i:05d}" for i in range(count)]

    async def create(name: str) -> None:
        body = {"apiVersion": API_GROUP_VERSION, "kind": "Server", "metadata": {"name": name}, "spec": {"host": host}}
        await client.create(SERVERS, body, namespace=namespace)

    await bounded((create(n) for n in names), 32, f"creating {count} servers on {host}")
    return [(namespace, name) for name in names]


# -- observation ------------------------------------------------------------------------------
class ServerWatch:
    """Every Server's hostStatus as a watch delivers it, and when each change arrived."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.status: dict[tuple[str, str], str | None] = {}
        self.host: dict[tuple[str, str], str] = {}
        self._waiters: list[tuple[set[tuple[str, str]], str, asyncio.Future[float]]] = []
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        listing = await self.client.list(SERVERS)
        for item in listing["items"]:
            self._update(item)
        self._task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self, version: str) -> None:
        while True:
            try:
                async for event in self.client.watch(SERVERS, version, timeout_seconds=3600):
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._update(event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep observing: list again (a restarted API server may answer 410)
                say(f"server watch restarted: {error}")
                version = await self._relist(version)

    async def _relist(self, version: str) -> str:
        """The statuses as a list shows them, and the version to watch from; `version` while the API
        server is away. A status learned from a list counts from when the list answered (never earlier)."""
        await asyncio.sleep(0.2)
        try:
            listing = await self.client.list(SERVERS)
        except Exception:  # noqa: BLE001 - retried by the next watch attempt
            return version
        for item in listing["items"]:
            self._update(item)
        return listing["metadata"]["resourceVersion"]

    def _update(self, item: dict[str, Any]) -> None:
        key = (item["metadata"]["namespace"], item["metadata"]["name"])
        value = (item.get("status") or {}).get("hostStatus")
        self.host[key] = item["spec"].get("host", "")
        self.status[key] = value
        now = time.time()
        for remaining, target, future in self._waiters:
            if value == target:
                remaining.discard(key)
                if not remaining and not future.done():
                    future.set_result(now)

    def expect(self, keys: Iterable[tuple[str, str]], target: str) -> asyncio.Future[float]:
        """A future resolved with the wall time (time.time()) the last of `keys` shows `target`.

        Wall time because heartbeat deadlines are wall times (Lease renewTime)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        remaining = {key for key in keys if self.status.get(key) != target}
        if not remaining:
            future.set_result(time.time())
        else:
            self._waiters.append((remaining, target, future))
        return future

    def count(self, keys: Iterable[tuple[str, str]], target: str) -> int:
        return sum(self.status.get(key) == target for key in keys)


async def host_status_seen(client: KubeClient, name: str, target: str, timeout: float) -> float:
    """The wall time a watch shows the ComputeService `name` with hostStatus `target` (at once if it
    already does): a watch, not polling, so that looking adds no load at the moment measured."""
    # A list's version, not the object's: an object unchanged for long has a version compacted away (410).
    listing = await client.list(COMPUTE_SERVICES, fieldSelector=f"metadata.name={name}")
    if any((item.get("status") or {}).get("hostStatus") == target for item in listing["items"]):
        return time.time()
    version = listing["metadata"]["resourceVersion"]
    async with contextlib.aclosing(client.watch(COMPUTE_SERVICES, version, timeout_seconds=round(timeout))) as events:
        async for event in events:
            item = event["object"]
            if item["metadata"].get("name") == name and (item.get("status") or {}).get("hostStatus") == target:
                return time.time()
    raise TimeoutError(f"ComputeService {name} not {target} within {timeout:g} s")


def save(results: dict[str, Any], name: str = "latest.json") -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return path


async def closed_loop_gets(
    url: str,
    headers: dict[str, str],
    connections: int,
    *,
    count: int | None = None,
    until: asyncio.Future | None = None,
) -> list[float]:
    """GETs of `url` back to back on `connections` connections, `count` of them or until `until` is
    done; their latencies (s). Anything but a 200 stops the measurement: it would flatter it."""
    latencies: list[float] = []

    def more() -> bool:
        return len(latencies) < count if count is not None else not until.done()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker() -> None:
            while more():
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies


def milliseconds(figures: dict[str, float]) -> dict[str, float]:
    """A summary() of seconds in milliseconds (the count stays a count)."""
    return {key: value if key == "n" else round(value * 1000, 2) for key, value in figures.items()}
