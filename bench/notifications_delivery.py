"""Tenant notifications from the decision (issue 11): a force-down (merge patch of spec.forcedDown) to
the last of 1,000 servers' events received by a webhook on 127.0.0.1, with one request per host
transition (PerHostTransition) and with one per server (PerServer); beside them, in the same run, the
last of the same servers' status writes (what the tenant waited for before). And fairness: tenant B's
force-down to its last event alone, then while tenant A holds 100 subscriptions to a webhook that
never answers (the kernel accepts its connections; nothing reads them). And heartbeat expiry on the
same path: from a Lease's deadline (renewTime + down time) to the ComputeService's UNKNOWN and to
the last of the 1,000 servers' UNKNOWN events.

`notifications_delivery` is the scenario over a running Stack; `python -m bench.notifications_delivery`
runs it alone on a local stack (`--quick` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from typing import Any

from hoststate import API_GROUP_VERSION
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.kube import COMPUTE_SERVICES, HOST_STATUS_SUBSCRIPTIONS, LEASES, SECRETS, SERVERS, ApiError, KubeClient
from hoststate.kubetime import parse_kube_time
from hoststate.resources.computeservice import service_name

from .harness import ServerWatch, Stack, create_servers, create_services, progress, say, summary
from .scenarios import notified

TENANT = "notify-tenant"
TENANT_A, TENANT_B = "notify-a", "notify-b"
KEY_SECRET = "hook-key"
DOWN_TIME, REPORT_INTERVAL = 30.0, 10.0
OPERATOR_FLAGS = [
    f"--service-down-time={DOWN_TIME:g}",
    f"--report-interval={REPORT_INTERVAL:g}",
    "--fanout-concurrency=64",
    "--resync-period=600",
    "--webhook-allow-cidr=127.0.0.1/32",
    # client-go's default durations: with the operator's (2 s lease) the one replica here lost its lease
    # again and again on this loaded 2-core machine (renewals timed out behind a 1,000-server fan-out),
    # and a replica that does not lead writes and sends nothing: measured would be the election.
    "--leader-election-lease-duration=15",
    "--leader-election-renew-deadline=10",
    "--leader-election-retry-period=2",
]


async def subscribe(client: KubeClient, namespace: str, name: str, url: str, **spec: Any) -> None:
    """A subscription, once the operator says it is Ready."""
    body = {
        "apiVersion": API_GROUP_VERSION,
        "kind": "HostStatusSubscription",
        "metadata": {"name": name},
        "spec": {"url": url, "signingKeySecretRef": {"name": KEY_SECRET}, **spec},
    }
    await client.create(HOST_STATUS_SUBSCRIPTIONS, body, namespace)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = (await client.get(HOST_STATUS_SUBSCRIPTIONS, name, namespace=namespace)).get("status") or {}
        if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"subscription {namespace}/{name} not Ready")


async def unsubscribe(client: KubeClient, namespace: str, name: str) -> None:
    try:
        await client.request("DELETE", HOST_STATUS_SUBSCRIPTIONS.path(namespace, name))
    except ApiError as error:
        if error.status != 404:
            raise


async def tenant(client: KubeClient, stack: Stack, namespace: str) -> None:
    await stack.ensure_namespace(namespace)
    await client.create(SECRETS, {"metadata": {"name": KEY_SECRET}, "stringData": {"key": "k" * 32}}, namespace)


async def uids(client: KubeClient, keys: list[tuple[str, str]]) -> set[str]:
    listing = await client.list(SERVERS, namespace=keys[0][0])
    names = {name for _, name in keys}
    return {item["metadata"]["uid"] for item in listing["items"] if item["metadata"]["name"] in names}


async def force_down_to_events(
    client: KubeClient,
    watch: ServerWatch,
    receiver: WebhookReceiver,
    host: str,
    keys: list[tuple[str, str]],
    reps: int,
    label: str,
) -> dict[str, Any]:
    """Force-down, then force-up, `reps` times: time to the last server's DOWN event at the webhook and
    to the last server's DOWN status (the watch), both from just before the PATCH."""
    server_ids = await uids(client, keys)
    events: list[float] = []
    statuses: list[float] = []
    for rep in range(reps):
        for forced, target in ((True, "DOWN"), (False, "UP")):
            progress(f"notifications {label}: {rep + 1}/{reps} {target}")
            receiver.clear()
            written = watch.expect(keys, target)
            started = time.time()
            await client.patch(COMPUTE_SERVICES, service_name(host), {"spec": {"forcedDown": forced}})
            arrivals = await notified(receiver, server_ids, target, started)
            written_at = await asyncio.wait_for(written, 120)
            if forced:
                events.append(max(arrivals.values()) - started)
                statuses.append(written_at - started)
    return {"last_event": summary(events), "last_status_write": summary(statuses), "servers": len(keys)}


async def heartbeat_expiry(
    stack: Stack, receiver: WebhookReceiver, host: str, keys: list[tuple[str, str]], rounds: int
) -> dict[str, Any]:
    """Stop the host's agent: lag from its Lease's deadline to the service's UNKNOWN (polled every 10 ms)
    and to the last server's UNKNOWN event; then start the agent again and wait for UP."""
    client = stack.client
    server_ids = await uids(client, keys)
    service_lags: list[float] = []
    event_lags: list[float] = []
    agent = stack.agent([host], REPORT_INTERVAL)
    back: float | None = None  # when the agent was started again
    for round_ in range(rounds):
        if back is not None:
            await notified(receiver, server_ids, "UP", back, timeout=120)
        await asyncio.sleep(REPORT_INTERVAL * 1.5)  # a beat or two of the running agent
        receiver.clear()
        agent.stop()
        lease = await client.get(LEASES, service_name(host), namespace=stack.lease_namespace)
        deadline = parse_kube_time(lease["spec"]["renewTime"]).timestamp() + DOWN_TIME
        events = asyncio.ensure_future(notified(receiver, server_ids, "UNKNOWN", deadline - 1, timeout=DOWN_TIME + 60))
        progress(f"heartbeat expiry {round_ + 1}/{rounds}: {deadline - time.time():.0f}s to the deadline")
        await asyncio.sleep(max(0.0, deadline - time.time() - 0.5))  # poll near the deadline only
        while True:
            status = (await client.get(COMPUTE_SERVICES, service_name(host))).get("status") or {}
            if status.get("hostStatus") == "UNKNOWN":
                service_lags.append(time.time() - deadline)
                break
            await asyncio.sleep(0.01)
        event_lags.append(max((await events).values()) - deadline)
        back = time.time()
        agent = stack.agent([host], REPORT_INTERVAL)
    await notified(receiver, server_ids, "UP", back or 0, timeout=120)
    return {"service_status_lag": summary(service_lags), "last_event_lag": summary(event_lags), "rounds": rounds}


async def notifications_delivery(
    stack: Stack, servers: int = 1000, reps: int = 20, expiry_rounds: int = 3
) -> dict[str, Any]:
    client = stack.client
    big, shared = "notify-big", "notify-shared"
    await create_services(client, [big, shared])
    stack.agent([shared], REPORT_INTERVAL)
    big_agent = stack.agent([big], REPORT_INTERVAL)
    await asyncio.to_thread(stack.operator, *OPERATOR_FLAGS)
    for namespace in (TENANT, TENANT_A, TENANT_B):
        await tenant(client, stack, namespace)
    keys = await create_servers(client, TENANT, big, servers, "n")
    keys_b = await create_servers(client, TENANT_B, shared, 10, "b")
    keys_a = await create_servers(client, TENANT_A, shared, 100, "a")
    watch = ServerWatch(client)
    await watch.start()
    for group in (keys, keys_a, keys_b):
        await asyncio.wait_for(watch.expect(group, "UP"), 600)
    results: dict[str, Any] = {"servers": servers, "reps": reps}
    try:
        with WebhookReceiver() as receiver:
            for delivery in ("PerHostTransition", "PerServer"):
                await subscribe(client, TENANT, "hook", receiver.url, delivery=delivery, hostStatuses=["DOWN", "UP"])
                results[delivery] = await force_down_to_events(client, watch, receiver, big, keys, reps, delivery)
                await unsubscribe(client, TENANT, "hook")
                say(f"notifications {delivery}: {json.dumps(results[delivery]['last_event'])}")
            await subscribe(client, TENANT, "expiry", receiver.url, delivery="PerHostTransition")
            big_agent.stop()
            results["heartbeat_expiry"] = await heartbeat_expiry(stack, receiver, big, keys, expiry_rounds)
            await unsubscribe(client, TENANT, "expiry")
            say(f"heartbeat expiry: {json.dumps(results['heartbeat_expiry'])}")
            results["fairness"] = await fairness(client, watch, receiver, shared, keys_b, reps)
    finally:
        await watch.stop()
    return results


async def fairness(
    client: KubeClient,
    watch: ServerWatch,
    receiver: WebhookReceiver,
    host: str,
    keys_b: list[tuple[str, str]],
    reps: int,
) -> dict[str, Any]:
    """Tenant B's force-down to its last event, alone and beside tenant A's 100 hanging subscriptions
    (A's 100 servers on the same host: 10,000 hanging events per transition)."""
    await subscribe(client, TENANT_B, "hook", receiver.url, hostStatuses=["DOWN", "UP"])
    alone = await force_down_to_events(client, watch, receiver, host, keys_b, reps, "tenant B alone")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    hanging = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    try:
        await asyncio.gather(
            *(subscribe(client, TENANT_A, f"hangs-{i:03d}", hanging, timeoutSeconds=30) for i in range(100))
        )
        beside = await force_down_to_events(client, watch, receiver, host, keys_b, reps, "tenant B beside A")
    finally:
        await asyncio.gather(*(unsubscribe(client, TENANT_A, f"hangs-{i:03d}") for i in range(100)))
        listener.close()
    ratio = beside["last_event"]["p99"] / alone["last_event"]["p99"]
    say(f"fairness: tenant B p99 alone {alone['last_event']['p99']:.3f}s, beside A {beside['last_event']['p99']:.3f}s")
    return {"tenant_b_alone": alone, "tenant_b_beside_a": beside, "p99_ratio": ratio, "target_ratio": 1.2}


async def main(servers: int, reps: int, expiry_rounds: int) -> dict[str, Any]:
    stack = await Stack.start()
    try:
        return await notifications_delivery(stack, servers, reps, expiry_rounds)
    finally:
        await stack.stop()


def table(results: dict[str, Any]) -> list[str]:
    lines = []
    for delivery in ("PerHostTransition", "PerServer"):
        last = results[delivery]["last_event"]
        lines.append(
            f"force-down to the last of {results['servers']} events, {delivery}: "
            f"p50 {last['p50']:.3f} s, p99 {last['p99']:.3f} s"
        )
    fair = results["fairness"]
    lines.append(
        f"fairness: tenant B's last event p99 {fair['tenant_b_alone']['last_event']['p99']:.3f} s alone, "
        f"{fair['tenant_b_beside_a']['last_event']['p99']:.3f} s beside 100 hanging webhooks "
        f"({fair['p99_ratio']:.2f}x, target {fair['target_ratio']}x)"
    )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.notifications_delivery")
    parser.add_argument("--quick", action="store_true", help="200 servers, 5 repetitions, 1 expiry")
    args = parser.parse_args()
    outcome = asyncio.run(main(200, 5, 1) if args.quick else main(1000, 20, 3))
    print(json.dumps(outcome, indent=2))
