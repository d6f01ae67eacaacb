"""Leader takeover (issue 10, item 1): with two operator replicas, how long the fleet goes without a
writer when the leader dies (SIGKILL) or stops (SIGTERM, a rolling update).

Each repetition: the leader is stopped, the host is forced down (or back up) at once, and the figure
is the time from the signal to the first Server status the new leader writes (seen on a watch: the
first whose managedFields name it), with the last of the host's servers as well. Baseline in the same run: the same force-down with the leader
alive (the write path without a takeover). After each repetition a new replica is started and waited
for (ready: warm), so that every takeover starts from two replicas. Defaults: lease duration 2 s,
renew deadline 1.5 s, retry period 0.25 s. Targets: SIGKILL <= 3 s, SIGTERM < 1 s.
`python -m bench.takeover` runs it alone on a local stack.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

from bench.harness import ServerWatch, Stack, create_servers, create_services, say, summary
from hoststate.devcluster.processes import HoststateProcess, answers_ok, candidate_identity
from hoststate.devcluster.scraper import scrape, total
from hoststate.kube import COMPUTE_SERVICES, SERVERS
from hoststate.resources.computeservice import service_name

HOST = "takeover-1"
NAMESPACE = "bench-takeover"
SERVER_COUNT = 200
REPETITIONS = 7
TARGET_KILL_S = 3.0
TARGET_STOP_S = 1.0

Replica = tuple[HoststateProcess, int]  # the process and its metrics port


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


if __name__ == "__main__":
    results = asyncio.run(main())
    say(json.dumps(results, indent=2))
    met = (
        results["sigkill_of_the_leader"]["first_write_s"]["p99"] <= TARGET_KILL_S
        and results["sigterm_of_the_leader"]["first_write_s"]["p99"] < TARGET_STOP_S
    )
    sys.exit(0 if met else 1)
