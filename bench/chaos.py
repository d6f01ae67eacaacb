"""Chaos, measured (issue 10, item 5): two operator replicas, a host of 1,000 servers, one tenant
subscribed to its DOWN and UP transitions; faults, each repeated:

- `leader_sigkill`: the host's force-down flips, and 0.25 s later the leader is SIGKILLed (the
  standby takes over);
- `apiserver_sigkill` / `etcd_sigkill`: the force-down flips, and as soon as the first server shows
  the new status (mid-fan-out) kube-apiserver (or etcd) is SIGKILLed and restarted at once with the
  same flags (etcd on the same data);
- `standby_then_leader_sigkill`: the standby and then the leader are SIGKILLed, the force-down flips
  while nothing runs, and one replica is started again.

Each figure runs from the fault (the kill; for the last, the new replica's start) to the last Server
showing the new status on a watch, which relists after any error (a restarted API server may answer
410 Gone). Then every Server is read from the API server (`left_wrong`: those not showing it), and
the tenant's webhook receiver must get each server's event to the new status (`missed_notifications`:
servers without one 60 s after convergence; ids may repeat). Baseline in the same run: the same flip
with nothing killed. After each repetition the replicas are two again, both ready, one leading.
`python -m bench.chaos [--repetitions N] [--election default|client-go]` runs it alone on a local
stack; `chaos(stack)` is the function for `make bench`, `table(results)` its lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench.harness import ServerWatch, Stack, create_servers, create_services, say, summary
from bench.notifications_delivery import subscribe, tenant, uids
from bench.takeover import Replicas
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.kube import COMPUTE_SERVICES, SERVERS
from hoststate.resources.computeservice import service_name

HOST = "chaos-1"
NAMESPACE = "bench-chaos"
SERVER_COUNT = 1000
REPETITIONS = 5
CONVERGENCE_TIMEOUT = 180.0  # seconds from a fault; a run that takes longer counts its servers as left wrong
NOTIFICATION_GRACE = 60.0  # seconds after convergence for the last webhook event
KILL_AFTER_FORCE_DOWN = 0.25
OPERATOR_FLAGS = ("--webhook-allow-cidr=127.0.0.1/32",)  # the tenant's receiver is local
# The election's durations: the operator's defaults (lease 2 s, renew deadline 1.5 s, retry 0.25 s), or
# client-go's controllers' (15 s, 10 s, 2 s), which a loaded machine's renewals do not miss.
ELECTIONS = {
    "default": (),
    "client-go": (
        "--leader-election-lease-duration=15",
        "--leader-election-renew-deadline=10",
        "--leader-election-retry-period=2",
    ),
}
SCENARIOS = ("baseline", "leader_sigkill", "apiserver_sigkill", "etcd_sigkill", "standby_then_leader_sigkill")


class Chaos:
    def __init__(
        self,
        stack: Stack,
        watch: ServerWatch,
        receiver: WebhookReceiver,
        keys: list[tuple[str, str]],
        server_ids: set[str],
        election: str,
    ) -> None:
        self.stack, self.watch, self.receiver, self.keys, self.server_ids = stack, watch, receiver, keys, server_ids
        self.replicas = Replicas(stack, (*OPERATOR_FLAGS, *ELECTIONS[election]), timeout=120)
        self.down = False

    # -- one flip of the force-down, and its outcome --------------------------------------------
    async def flip(self) -> tuple[str, asyncio.Future[float], float]:
        """Flip the host's force-down: the new status, the future of the last server showing it, when."""
        self.down = not self.down
        target = "DOWN" if self.down else "UP"
        self.receiver.clear()
        written = self.watch.expect(self.keys, target)
        flipped = time.time()
        await self.stack.client.patch(COMPUTE_SERVICES, service_name(HOST), {"spec": {"forcedDown": self.down}})
        return target, written, flipped

    async def first_shown(self, target: str) -> int:
        """Once a server shows `target` (the fan-out has begun): how many do."""
        deadline = time.monotonic() + 60
        while not (shown := self.watch.count(self.keys, target)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no server became {target}")
            await asyncio.sleep(0.005)
        return shown

    async def outcome(self, target: str, written: asyncio.Future[float], flipped: float, fault: float) -> dict:
        try:
            converged: float | None = await asyncio.wait_for(written, CONVERGENCE_TIMEOUT) - fault
        except TimeoutError:
            converged = None
        return {
            "converged_s": converged,
            "left_wrong": await self.left_wrong(target),
            "missed_notifications": await self.missed_notifications(target, flipped),
        }

    async def left_wrong(self, target: str) -> int:
        """The servers not showing `target`, read from the API server (waited for if it is away)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                listing = await self.stack.client.list(SERVERS, NAMESPACE)
                break
            except Exception:  # noqa: BLE001 - the API server is still coming back
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        shown = {item["metadata"]["name"]: (item.get("status") or {}).get("hostStatus") for item in listing["items"]}
        return sum(shown.get(name) != target for _, name in self.keys)

    async def missed_notifications(self, target: str, since: float) -> int:
        deadline = time.monotonic() + NOTIFICATION_GRACE
        while missing := self.server_ids - self.receiver.arrivals(target, since).keys():
            if time.monotonic() > deadline:
                return len(missing)
            await asyncio.sleep(0.1)
        return 0

    # -- the faults ------------------------------------------------------------------------------
    async def baseline(self) -> dict:
        await self.replicas.leader_and_standbys()
        target, written, flipped = await self.flip()
        return await self.outcome(target, written, flipped, flipped)

    async def leader_sigkill(self) -> dict:
        leader, _ = await self.replicas.leader_and_standbys()
        target, written, flipped = await self.flip()
        await asyncio.sleep(KILL_AFTER_FORCE_DOWN)
        fault = time.time()
        await self.replicas.kill(leader)
        result = await self.outcome(target, written, flipped, fault)
        await self.replicas.add()
        return result

    async def control_plane_sigkill(self, part: str) -> dict:
        await self.replicas.leader_and_standbys()
        target, written, flipped = await self.flip()
        shown = await self.first_shown(target)
        fault = time.time()
        await asyncio.to_thread(self.stack.cluster.kill, part)
        await asyncio.to_thread(self.stack.cluster.restart, part)
        restarted = time.time() - fault
        result = await self.outcome(target, written, flipped, fault)
        return {**result, "servers_shown_at_the_kill": shown, "restart_to_readyz_s": restarted}

    async def standby_then_leader_sigkill(self) -> dict:
        leader, (standby,) = await self.replicas.leader_and_standbys()
        await self.replicas.kill(standby)
        await self.replicas.kill(leader)
        target, written, flipped = await self.flip()
        fault = time.time()  # the new replica's start: nothing could converge before
        await self.replicas.add()
        result = await self.outcome(target, written, flipped, fault)
        await self.replicas.add()
        return result

    async def run(self, scenario: str) -> dict:
        if scenario in ("apiserver_sigkill", "etcd_sigkill"):
            return await self.control_plane_sigkill("kube-apiserver" if scenario == "apiserver_sigkill" else "etcd")
        return await getattr(self, scenario)()


def figures(outcomes: list[dict]) -> dict[str, Any]:
    converged = [o["converged_s"] for o in outcomes if o["converged_s"] is not None]
    result: dict[str, Any] = {
        "convergence_s": summary(converged) if converged else None,
        "not_converged": len(outcomes) - len(converged),
        "left_wrong": sum(o["left_wrong"] for o in outcomes),
        "missed_notifications": sum(o["missed_notifications"] for o in outcomes),
    }
    for extra in ("servers_shown_at_the_kill", "restart_to_readyz_s"):
        if extra in outcomes[0]:
            result[extra] = summary([o[extra] for o in outcomes])
    return result


async def chaos(stack: Stack, repetitions: int = REPETITIONS, election: str = "default") -> dict[str, Any]:
    await tenant(stack.client, stack, NAMESPACE)
    await create_services(stack.client, [HOST])
    keys = await create_servers(stack.client, NAMESPACE, HOST, SERVER_COUNT, "vm")
    server_ids = await uids(stack.client, keys)
    stack.agent([HOST], 2.0)
    watch = ServerWatch(stack.client)
    await watch.start()
    outcomes: dict[str, list[dict]] = {scenario: [] for scenario in SCENARIOS}
    with WebhookReceiver() as receiver:
        runs = Chaos(stack, watch, receiver, keys, server_ids, election)
        try:
            for _ in range(2):
                await runs.replicas.add()
            await asyncio.wait_for(watch.expect(keys, "UP"), 120)
            await subscribe(stack.client, NAMESPACE, "chaos", receiver.url, hostStatuses=["DOWN", "UP"])
            for i in range(repetitions):
                for scenario in SCENARIOS:
                    say(f"chaos: repetition {i + 1}/{repetitions}, {scenario}")
                    outcomes[scenario].append(await runs.run(scenario))
        finally:
            await watch.stop()
    return {
        "servers": SERVER_COUNT,
        "election": election,
        **{scenario: figures(outcomes[scenario]) for scenario in SCENARIOS},
        "runs": outcomes,
    }


async def main(repetitions: int = REPETITIONS, election: str = "default") -> dict[str, Any]:
    stack = await Stack.start()
    try:
        return await chaos(stack, repetitions, election)
    finally:
        await stack.stop()


def table(results: dict[str, Any]) -> list[str]:
    lines = []
    for scenario in SCENARIOS:
        item = results[scenario]
        spread = item["convergence_s"]
        timing = f"p50 {spread['p50']:.2f} s, p99 {spread['p99']:.2f} s" if spread else "never"
        lines.append(
            f"chaos, {scenario} ({results['servers']} servers, {results['election']} election): converged {timing}; "
            f"{item['not_converged']} runs not converged, {item['left_wrong']} servers left wrong, "
            f"{item['missed_notifications']} notifications missed"
        )
    return lines


def clean(results: dict[str, Any]) -> bool:
    return all(
        results[s]["not_converged"] == 0 and results[s]["left_wrong"] == 0 and results[s]["missed_notifications"] == 0
        for s in SCENARIOS
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="chaos faults and the convergence after each")
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--election", choices=sorted(ELECTIONS), default="default")
    options = parser.parse_args()
    results = asyncio.run(main(options.repetitions, options.election))
    say(json.dumps(results, indent=2))
    say("\n".join(table(results)))
    sys.exit(0 if clean(results) else 1)
