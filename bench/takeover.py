"""Leader takeover (issue 10, item 1): with two operator replicas, how long the fleet goes without a
writer when the leader dies (SIGKILL) or stops (SIGTERM, a rolling update).

Each repetition: the leader is stopped, the host is forced down (or back up) at once, and the figure
is the time from the signal to the first Server status the new leader writes (seen on a watch: the
first whose managedFields name it), with the last of the host's servers as well. Baseline in the same run: the same force-down with the leader
alive (the write path without a takeover). After each repetition a new replica is started and waited
for (ready: warm), so that every takeover starts from two replicas. Defaults: lease duration 2 s,
renew deadline 1.5 s, retry period 0.25 s. Targets: SIGKILL <= 3 s, SIGTERM < 1 s.
`python -m bench.takeover` runs it alone on a local stack.

`flapping` (`python -m bench.takeover --flapping`): does one replica with the default 2 s lease keep
it under load? It runs as the manifests' ServiceAccount (the admin token is exempt from API Priority
and Fairness), with a tenant subscribed per server, and forces a host of 1,000 servers down and up
again and again (each cycle waits for every status and every event) while `--burn` processes spin
on the CPU; leadership losses and regains are counted without the manifests' FlowSchemas (the
election in the `workload-low` level with the fan-out, as any ServiceAccount's requests) and then
with them, in the same run. Beside them, from the API server's metrics over each case: the requests
that waited in APF's queues (by FlowSchema) and how long the Lease requests took there, over 0.1 s
and over 1 s, which tells the API server's share of a renewal's time from the operator's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.harness import ServerWatch, Stack, create_servers, create_services, say, summary
from bench.notifications_delivery import subscribe, tenant, uids
from bench.scenarios import notified
from hoststate.devcluster import free_port
from hoststate.devcluster.processes import HoststateProcess, answers_ok, candidate_identity
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.devcluster.scraper import scrape, total
from hoststate.devcluster.stack import MANIFESTS_DIR, operator_kubeconfig
from hoststate.kube import COMPUTE_SERVICES, SERVERS
from hoststate.resources.computeservice import service_name

HOST = "takeover-1"
NAMESPACE = "bench-takeover"
SERVER_COUNT = 200
REPETITIONS = 7
TARGET_KILL_S = 3.0
TARGET_STOP_S = 1.0

Replica = tuple[HoststateProcess, int]  # the process and its metrics port

FLAP_HOST = "flap-1"
FLAP_NAMESPACE = "bench-flap"
FLAP_SERVERS = 1000
FLAP_CYCLES = 10  # force-down and force-up: 20 fan-outs of FLAP_SERVERS
FLAP_BURNERS = 2  # processes spinning on the CPU meanwhile (this machine has 2 cores)
FLAP_FLAGS = (
    "--service-down-time=30",
    "--report-interval=10",
    "--fanout-concurrency=64",
    "--resync-period=600",
    "--webhook-allow-cidr=127.0.0.1/32",
)  # the election's durations are the defaults: lease 2 s, renew deadline 1.5 s, retry 0.25 s


def identity(process: HoststateProcess) -> str:
    """The replica's candidate identity: the fieldManager of its writes."""
    return candidate_identity(process.output())


def leading(replica: Replica) -> bool:
    try:
        return total(scrape(f"http://127.0.0.1:{replica[1]}/metrics"), "hoststate_leader") == 1
    except OSError:
        return False


def ready(replica: Replica) -> bool:
    return answers_ok(f"http://127.0.0.1:{replica[1]}/readyz")


async def wait_until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


class Replicas:
    """A run's operator replicas (also bench.chaos's): each started and waited for until ready, the one
    leader found, one signalled and reaped."""

    def __init__(self, stack: Stack, flags: tuple[str, ...] = (), timeout: float = 60) -> None:
        self.stack, self.flags, self.timeout = stack, flags, timeout
        self.running: list[Replica] = []

    async def add(self) -> None:
        replica = await asyncio.to_thread(self.stack.operator, *self.flags)
        self.running.append(replica)
        await wait_until(lambda: ready(replica), "a replica to be ready", self.timeout)

    async def leader_and_standbys(self) -> tuple[Replica, list[Replica]]:
        """Once exactly one replica leads: it, and the others."""
        leaders: list[Replica] = []

        def found() -> bool:
            leaders[:] = [r for r in self.running if leading(r)]
            return len(leaders) == 1

        await wait_until(found, "one leader", self.timeout)
        return leaders[0], [r for r in self.running if r is not leaders[0]]

    def send_signal(self, replica: Replica, sig: signal.Signals) -> None:
        """Sends `sig` at once (faults are timed from it); the replica is no longer one of the run's."""
        replica[0].proc.send_signal(sig)  # type: ignore[union-attr]
        self.running.remove(replica)

    async def reap(self, replica: Replica) -> None:
        await asyncio.to_thread(replica[0].stop)

    async def kill(self, replica: Replica) -> None:
        self.send_signal(replica, signal.SIGKILL)
        await self.reap(replica)


class Takeovers:
    def __init__(self, stack: Stack, watch: ServerWatch, keys: list[tuple[str, str]]) -> None:
        self.stack, self.watch, self.keys = stack, watch, keys
        self.replicas = Replicas(stack)
        self.down = False

    async def flip(self, stop: Any | None = None, new_leader: str = "") -> tuple[float, float]:
        """Stop the leader with `stop` (None: leave it), flip the host's force-down at once; seconds
        from then to the first server status written by `new_leader` (any first one without), and
        to the last server showing the new status."""
        target = "UP" if self.down else "DOWN"
        if new_leader:
            listing = await self.stack.client.list(SERVERS, NAMESPACE)
            firsts = [asyncio.ensure_future(self.first_write_by(new_leader, listing["metadata"]["resourceVersion"]))]
        else:
            firsts = [self.watch.expect([key], target) for key in self.keys]
        last = self.watch.expect(self.keys, target)
        started = time.time()
        if stop is not None:
            stop()
        self.down = not self.down
        await self.stack.client.patch(COMPUTE_SERVICES, service_name(HOST), {"spec": {"forcedDown": self.down}})
        done, _ = await asyncio.wait(firsts, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        first = next(iter(done)).result()
        finished = await asyncio.wait_for(last, 60)
        for future in firsts:
            future.cancel()
        return first - started, finished - started

    async def first_write_by(self, identity: str, resource_version: str) -> float:
        """When a Server status write by `identity` (its fieldManager) is first seen on a watch."""
        async for event in self.stack.client.watch(SERVERS, resource_version, NAMESPACE, timeout_seconds=120):
            entries = event["object"].get("metadata", {}).get("managedFields", [])
            if any(e.get("manager") == identity and e.get("subresource") == "status" for e in entries):
                return time.time()
        raise TimeoutError(f"no write by {identity}")

    async def takeover(self, sig: signal.Signals) -> tuple[float, float]:
        leader, (standby,) = await self.replicas.leader_and_standbys()
        # The standby takes over: it has never led, so any write of its is new.
        figures = await self.flip(lambda: self.replicas.send_signal(leader, sig), identity(standby[0]))
        await self.replicas.reap(leader)
        await self.replicas.add()
        return figures


async def takeover(stack: Stack, repetitions: int = REPETITIONS) -> dict[str, Any]:
    await stack.ensure_namespace(NAMESPACE)
    await create_services(stack.client, [HOST])
    keys = await create_servers(stack.client, NAMESPACE, HOST, SERVER_COUNT, "vm")
    stack.agent([HOST], 2.0)
    watch = ServerWatch(stack.client)
    await watch.start()
    runs = Takeovers(stack, watch, keys)
    try:
        for _ in range(2):
            await runs.replicas.add()
        await asyncio.wait_for(watch.expect(keys, "UP"), 60)
        baseline, killed, stopped = [], [], []
        for i in range(repetitions):
            say(f"takeover: repetition {i + 1}/{repetitions}")
            await runs.replicas.leader_and_standbys()
            baseline.append(await runs.flip())
            killed.append(await runs.takeover(signal.SIGKILL))
            stopped.append(await runs.takeover(signal.SIGTERM))
    finally:
        await watch.stop()

    def figures(pairs: list[tuple[float, float]]) -> dict[str, dict[str, float]]:
        return {"first_write_s": summary([p[0] for p in pairs]), "last_server_s": summary([p[1] for p in pairs])}

    return {
        "servers": SERVER_COUNT,
        "leader_alive_baseline": figures(baseline),
        "sigkill_of_the_leader": figures(killed),
        "sigterm_of_the_leader": figures(stopped),
        "target_sigkill_first_write_s": TARGET_KILL_S,
        "target_sigterm_first_write_s": TARGET_STOP_S,
    }


def start_operator(stack: Stack, kubeconfig: Path, *flags: str) -> Replica:
    """An operator replica with the identity of `kubeconfig`."""
    port = free_port()
    process = HoststateProcess(["operator", f"--metrics-port={port}", *flags], kubeconfig, "operator").start()
    stack.processes.append(process)
    process.wait_for_output("hoststate operator started", timeout=120)
    return process, port


def load_average() -> float:
    return os.getloadavg()[0]


# Histograms of the API server: what waited in API Priority and Fairness's queues (by FlowSchema),
# and how long Lease requests took from their arrival to their answer (the election's, and an agent's
# heartbeat every 2 s).
APF_WAIT = "apiserver_flowcontrol_request_wait_duration_seconds_bucket"
APF_FLOW_SCHEMAS = ("service-accounts", "hoststate-operator-leader-election", "hoststate-operator-status-fan-out")
REQUEST_DURATION = "apiserver_request_duration_seconds_bucket"
LEASE_VERBS = ("GET", "PATCH")


def api_server_waits(stack: Stack) -> dict[str, dict[str, float]]:
    """Requests, and those over 0.1 s and over 1 s (cumulative, from the API server's /metrics):
    waiting in APF's queues by FlowSchema, and answering the Lease requests by verb."""
    cluster = stack.cluster
    request = urllib.request.Request(
        f"{cluster.server}/metrics", headers={"Authorization": f"Bearer {cluster.admin_token}"}
    )
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        text = response.read().decode()
    # Samples with their labels, not the scraper's series keys: these sums match a subset of the labels.
    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def counted(histogram: str, labels: dict[str, str], le: str) -> float:
        wanted = {**labels, "le": le}
        return sum(
            s.value
            for s in samples
            if s.name == histogram and all(s.labels.get(key) == value for key, value in wanted.items())
        )

    def spread(histogram: str, **labels: str) -> dict[str, float]:
        every = counted(histogram, labels, "+Inf")
        return {
            "requests": every,
            "over_0.1_s": every - counted(histogram, labels, "0.1"),
            "over_1_s": every - counted(histogram, labels, "1"),
        }

    waits = {f"apf_queue:{s}": spread(APF_WAIT, flow_schema=s) for s in APF_FLOW_SCHEMAS}
    for verb in LEASE_VERBS:
        waits[f"lease_{verb}"] = spread(REQUEST_DURATION, resource="leases", scope="resource", verb=verb)
    return waits


def waits_since(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {schema: {k: after[schema][k] - before[schema][k] for k in after[schema]} for schema in after}


async def flap_cycles(
    replica: Replica,
    watch: ServerWatch,
    receiver: WebhookReceiver,
    cycles: int,
    stack: Stack,
    keys: list[tuple[str, str]],
    server_ids: set[str],
) -> dict[str, Any]:
    """Force the host down and up `cycles` times, each to the last status and the last event; the
    leadership losses and regains of `replica` meanwhile, and the load average."""
    await wait_until(lambda: leading(replica), "the replica to lead", timeout=120)
    queued = await asyncio.to_thread(api_server_waits, stack)
    regained = total(scrape(f"http://127.0.0.1:{replica[1]}/metrics"), "hoststate_leader_transitions_total")
    lost = replica[0].output().count("no longer leads")
    loads, seconds = [], []
    for cycle in range(cycles):
        for forced, target in ((True, "DOWN"), (False, "UP")):
            receiver.clear()
            written = watch.expect(keys, target)
            started = time.time()
            await stack.client.patch(COMPUTE_SERVICES, service_name(FLAP_HOST), {"spec": {"forcedDown": forced}})
            await asyncio.wait_for(written, 180)
            await notified(receiver, server_ids, target, started, timeout=180)
            seconds.append(time.time() - started)
            loads.append(load_average())
        say(f"flapping: cycle {cycle + 1}/{cycles}, load average {loads[-1]:.1f}")
    await wait_until(lambda: leading(replica), "the replica to lead again", timeout=120)
    return {
        "cycles": cycles,
        "leadership_lost": replica[0].output().count("no longer leads") - lost,
        "leadership_regained": total(
            scrape(f"http://127.0.0.1:{replica[1]}/metrics"), "hoststate_leader_transitions_total"
        )
        - regained,
        "fan_out_to_last_event_s": summary(seconds),
        "load_average_1m": summary(loads),
        "api_server_waits": waits_since(queued, await asyncio.to_thread(api_server_waits, stack)),
    }


async def flapping(stack: Stack, cycles: int = FLAP_CYCLES, burners: int = FLAP_BURNERS) -> dict[str, Any]:
    """One replica with the default election under load, without and then with the FlowSchemas."""
    await tenant(stack.client, stack, FLAP_NAMESPACE)
    await create_services(stack.client, [FLAP_HOST])
    keys = await create_servers(stack.client, FLAP_NAMESPACE, FLAP_HOST, FLAP_SERVERS, "vm")
    server_ids = await uids(stack.client, keys)
    stack.agent([FLAP_HOST], 2.0)
    directory = Path(tempfile.mkdtemp(prefix="hoststate-flapping-"))
    kubeconfig = await asyncio.to_thread(operator_kubeconfig, stack.kubectl, directory, [FLAP_NAMESPACE])
    flow_schemas = str(MANIFESTS_DIR / "flowschemas.yaml")
    watch = ServerWatch(stack.client)
    await watch.start()
    results: dict[str, Any] = {"servers": FLAP_SERVERS, "burners": burners}
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(burners)]
    try:
        with WebhookReceiver() as receiver:
            for case, command in (("without_flow_schemas", "delete"), ("with_flow_schemas", "apply")):
                await asyncio.to_thread(stack.kubectl, command, "-f", flow_schemas)
                replica = await asyncio.to_thread(start_operator, stack, kubeconfig, *FLAP_FLAGS)
                if case == "without_flow_schemas":  # Ready once an operator runs
                    await subscribe(stack.client, FLAP_NAMESPACE, "flap", receiver.url)
                results[case] = await flap_cycles(replica, watch, receiver, cycles, stack, keys, server_ids)
                say(f"flapping, {case}: {results[case]['leadership_lost']} losses")
                await asyncio.to_thread(replica[0].stop)
    finally:
        for process in spinning:
            process.kill()
            process.wait()
        await watch.stop()
    return results


async def main(repetitions: int = REPETITIONS) -> dict[str, Any]:
    stack = await Stack.start()
    try:
        return await takeover(stack, repetitions)
    finally:
        await stack.stop()


def table(results: dict[str, Any]) -> list[str]:
    lines = []
    for case, label in (
        ("leader_alive_baseline", "leader alive (baseline)"),
        ("sigkill_of_the_leader", "SIGKILL of the leader"),
        ("sigterm_of_the_leader", "SIGTERM of the leader"),
    ):
        first, last = results[case]["first_write_s"], results[case]["last_server_s"]
        lines.append(
            f"takeover, {label}: first write p50 {first['p50']:.2f} s, p99 {first['p99']:.2f} s; "
            f"last of {results['servers']} servers p99 {last['p99']:.2f} s"
        )
    return lines


async def main_flapping(cycles: int, burners: int) -> dict[str, Any]:
    stack = await Stack.start()
    try:
        return await flapping(stack, cycles, burners)
    finally:
        await stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="leader takeover, or leadership flapping under load")
    parser.add_argument("--flapping", action="store_true", help="count one replica's leadership losses under load")
    parser.add_argument("--cycles", type=int, default=FLAP_CYCLES)
    parser.add_argument("--burn", type=int, default=FLAP_BURNERS, help="processes spinning on the CPU meanwhile")
    options = parser.parse_args()
    if options.flapping:
        say(json.dumps(asyncio.run(main_flapping(options.cycles, options.burn)), indent=2))
        sys.exit(0)
    results = asyncio.run(main())
    say(json.dumps(results, indent=2))
    met = (
        results["sigkill_of_the_leader"]["first_write_s"]["p99"] <= TARGET_KILL_S
        and results["sigterm_of_the_leader"]["first_write_s"]["p99"] < TARGET_STOP_S
    )
    sys.exit(0 if met else 1)
