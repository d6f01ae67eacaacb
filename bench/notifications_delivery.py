"""Tenant notifications from the decision (issue 11): a force-down (merge patch of spec.forcedDown) to
the last of 1,000 servers' events received by a webhook on 127.0.0.1, with one request per host
transition (PerHostTransition) and with one per server (PerServer); beside them, in the same run, the
last of the same servers' status writes (what the tenant waited for before). A zone failure: 10 hosts
of 100 servers each (one tenant) forced down at once, the same two figures. Fairness: tenant B's
force-down to its last event alone, then while tenant A holds 100 subscriptions to a webhook that
never answers (the kernel accepts its connections; nothing reads them). And heartbeat expiry on the
same path, with 1,000 services heartbeating every 10 s: from a Lease's deadline (renewTime + down
time) to the ComputeService's UNKNOWN, to the last of the 1,000 servers' UNKNOWN events and to the
last of their status writes.

`notifications_delivery` is the scenario over a running Stack; `python -m bench.notifications_delivery`
runs it alone on a local stack (`--quick` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from hoststate import API_GROUP_VERSION
from hoststate.devcluster.processes import HoststateProcess
from hoststate.devcluster.receiver import WebhookReceiver
from hoststate.kube import COMPUTE_SERVICES, HOST_STATUS_SUBSCRIPTIONS, LEASES, SECRETS, SERVERS, ApiError, KubeClient
from hoststate.kubetime import parse_kube_time
from hoststate.resources.computeservice import service_name

from .harness import (
    CLIENT_GO_ELECTION,
    ServerWatch,
    Stack,
    create_servers,
    create_services,
    host_status_seen,
    progress,
    say,
    summary,
)
from .scenarios import Keys, notified

TENANT = "notify-tenant"
ZONE_TENANT = "notify-zone"  # one tenant owns all the zone's servers: the same 1,000 events as one host
TENANT_A, TENANT_B = "notify-a", "notify-b"
KEY_SECRET = "hook-key"
DELIVERIES = ("PerHostTransition", "PerServer")
DOWN_TIME, REPORT_INTERVAL = 30.0, 10.0
# The election's durations: client-go's, because with the operator's defaults (2 s lease) the one replica
# here lost its lease again and again on this loaded 2-core machine (renewals timed out behind a
# 1,000-server fan-out), and a replica that does not lead writes and sends nothing: measured would be the
# election. () gives the operator's defaults.
ELECTION = CLIENT_GO_ELECTION
OPERATOR_FLAGS = [
    f"--service-down-time={DOWN_TIME:g}",
    f"--report-interval={REPORT_INTERVAL:g}",
    "--fanout-concurrency=64",
    "--resync-period=600",
    "--webhook-allow-cidr=127.0.0.1/32",
    *ELECTION,
]


@dataclass(frozen=True)
class Scale:
    servers: int  # on the one host, one tenant
    reps: int  # force-downs per figure
    zone_hosts: int
    zone_servers_per_host: int
    zone_reps: int
    zone_reps_per_server: int  # fewer: per-server delivery of a zone takes the longest
    fleet: int  # services heartbeating during the expiry rounds, the expiring host's included
    expiry_rounds: int
    # More: the target compares two p99s, and the p99 of 20 is their maximum (one repetition decides).
    fairness_reps: int


FULL = Scale(
    servers=1000,
    reps=20,
    zone_hosts=10,
    zone_servers_per_host=100,
    zone_reps=20,
    zone_reps_per_server=10,
    fleet=1000,
    expiry_rounds=5,
    fairness_reps=100,
)
QUICK = Scale(
    servers=200,
    reps=5,
    zone_hosts=10,
    zone_servers_per_host=20,
    zone_reps=5,
    zone_reps_per_server=3,
    fleet=100,
    expiry_rounds=1,
    fairness_reps=5,
)


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
    hosts: list[str],
    keys: Keys,
    reps: int,
    label: str,
) -> dict[str, Any]:
    """Force `hosts` down (one PATCH each, all issued at once), then up, `reps` times: time to the last
    server's DOWN event at the webhook (and to the first: how much of it is the wait for the first) and to
    the last server's DOWN status (the watch), all from just before the first PATCH."""
    server_ids = await uids(client, keys)
    events: list[float] = []
    first_events: list[float] = []
    statuses: list[float] = []
    for rep in range(reps):
        for forced, target in ((True, "DOWN"), (False, "UP")):
            progress(f"notifications {label}: {rep + 1}/{reps} {target}")
            receiver.clear()
            written = watch.expect(keys, target)
            patch = {"spec": {"forcedDown": forced}}
            started = time.time()
            await asyncio.gather(*(client.patch(COMPUTE_SERVICES, service_name(host), patch) for host in hosts))
            arrivals = await notified(receiver, server_ids, target, started)
            written_at = await asyncio.wait_for(written, 120)
            if forced:
                events.append(max(arrivals.values()) - started)
                first_events.append(min(arrivals.values()) - started)
                statuses.append(written_at - started)
    return {
        "last_event": summary(events),
        "first_event": summary(first_events),
        "last_status_write": summary(statuses),
        "servers": len(keys),
    }


async def by_delivery(
    client: KubeClient,
    watch: ServerWatch,
    receiver: WebhookReceiver,
    namespace: str,
    hosts: list[str],
    keys: Keys,
    reps: dict[str, int],
    label: str,
) -> dict[str, Any]:
    """force_down_to_events with the tenant subscribed per host transition, then per server (`reps` of each)."""
    results = {}
    for delivery in DELIVERIES:
        await subscribe(client, namespace, "hook", receiver.url, delivery=delivery, hostStatuses=["DOWN", "UP"])
        results[delivery] = await force_down_to_events(
            client, watch, receiver, hosts, keys, reps[delivery], f"{label}, {delivery}"
        )
        await unsubscribe(client, namespace, "hook")
        say(f"notifications {label}, {delivery}: {json.dumps(results[delivery]['last_event'])}")
    return results


async def heartbeat_expiry(
    stack: Stack,
    watch: ServerWatch,
    receiver: WebhookReceiver,
    host: str,
    keys: Keys,
    agent: HoststateProcess,
    rounds: int,
) -> dict[str, Any]:
    """Stop the host's agent (`agent`, running, the host UP): lags from its Lease's deadline to the
    service's UNKNOWN (a watch), to the last server's UNKNOWN event and to the last server's UNKNOWN
    status (the watch); then start the agent again, and stop it as soon as its first renewal has
    brought every server back UP (the deadline follows that renewal by the down time)."""
    client = stack.client
    server_ids = await uids(client, keys)
    name = service_name(host)
    service_lags: list[float] = []
    event_lags: list[float] = []
    write_lags: list[float] = []
    for round_ in range(rounds):
        receiver.clear()
        agent.stop()
        lease = await client.get(LEASES, name, namespace=stack.lease_namespace)
        deadline = parse_kube_time(lease["spec"]["renewTime"]).timestamp() + DOWN_TIME
        timeout = DOWN_TIME + 60
        service = asyncio.ensure_future(host_status_seen(client, name, "UNKNOWN", timeout))
        events = asyncio.ensure_future(notified(receiver, server_ids, "UNKNOWN", deadline - 1, timeout=timeout))
        written = watch.expect(keys, "UNKNOWN")
        progress(f"heartbeat expiry {round_ + 1}/{rounds}: {deadline - time.time():.0f}s to the deadline")
        service_lags.append(await service - deadline)
        event_lags.append(max((await events).values()) - deadline)
        write_lags.append(await asyncio.wait_for(written, timeout) - deadline)
        back = time.time()
        agent = stack.agent([host], REPORT_INTERVAL)
        await notified(receiver, server_ids, "UP", back)
        await asyncio.wait_for(watch.expect(keys, "UP"), 120)
    return {
        "service_status_lag": summary(service_lags),
        "last_event_lag": summary(event_lags),
        "last_status_write_lag": summary(write_lags),
        "rounds": rounds,
        "servers": len(keys),
        "down_time_s": DOWN_TIME,
        "report_interval_s": REPORT_INTERVAL,
    }


async def all_up(client: KubeClient, timeout: float = 300) -> None:
    """Until every ComputeService shows UP (a heartbeat fleet's first renewals seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        try:
            items = (await client.list(COMPUTE_SERVICES))["items"]
        except ApiError as error:  # 504: the API server still busy with the fleet's first renewals
            if error.status < 500:
                raise
            continue
        up = sum((item.get("status") or {}).get("hostStatus") == "UP" for item in items)
        progress(f"heartbeat fleet: {up}/{len(items)} services UP")
        if up == len(items):
            return
    raise TimeoutError("the heartbeat fleet's services not all UP")


async def notifications_delivery(stack: Stack, scale: Scale) -> dict[str, Any]:
    client = stack.client
    big, shared = "notify-big", "notify-shared"
    zone = [f"notify-zone-{i:02d}" for i in range(scale.zone_hosts)]
    await create_services(client, [big, shared, *zone])
    stack.agent([shared, *zone], REPORT_INTERVAL)
    big_agent = stack.agent([big], REPORT_INTERVAL)
    await asyncio.to_thread(stack.operator, *OPERATOR_FLAGS)
    for namespace in (TENANT, ZONE_TENANT, TENANT_A, TENANT_B):
        await tenant(client, stack, namespace)
    keys = await create_servers(client, TENANT, big, scale.servers, "n")
    zone_keys = [
        key
        for i, host in enumerate(zone)
        for key in await create_servers(client, ZONE_TENANT, host, scale.zone_servers_per_host, f"z{i:02d}")
    ]
    keys_b = await create_servers(client, TENANT_B, shared, 10, "b")
    keys_a = await create_servers(client, TENANT_A, shared, 100, "a")
    watch = ServerWatch(client)
    await watch.start()
    for group in (keys, zone_keys, keys_a, keys_b):
        await asyncio.wait_for(watch.expect(group, "UP"), 600)
    results: dict[str, Any] = {"servers": scale.servers, "reps": scale.reps, "scale": asdict(scale)}
    try:
        with WebhookReceiver() as receiver:
            one_host_reps = dict.fromkeys(DELIVERIES, scale.reps)
            results.update(await by_delivery(client, watch, receiver, TENANT, [big], keys, one_host_reps, "one host"))
            zone_reps = {"PerHostTransition": scale.zone_reps, "PerServer": scale.zone_reps_per_server}
            results["zone_failure"] = {
                "hosts": scale.zone_hosts,
                "servers_per_host": scale.zone_servers_per_host,
                "tenants": 1,
                **await by_delivery(client, watch, receiver, ZONE_TENANT, zone, zone_keys, zone_reps, "zone"),
            }
            results["fairness"] = await fairness(client, watch, receiver, shared, keys_b, scale.fairness_reps)
            # The rest of the fleet heartbeats from here on: every service but `big` renews every interval.
            fleet = [f"notify-fleet-{i:04d}" for i in range(scale.fleet - len(zone) - 2)]
            await create_services(client, fleet)
            await stack.heartbeat_fleet(fleet, REPORT_INTERVAL)
            await all_up(client)
            await subscribe(client, TENANT, "expiry", receiver.url, delivery="PerHostTransition")
            expiry = await heartbeat_expiry(stack, watch, receiver, big, keys, big_agent, scale.expiry_rounds)
            results["heartbeat_expiry"] = {**expiry, "services_heartbeating": scale.fleet}
            await unsubscribe(client, TENANT, "expiry")
            say(f"heartbeat expiry: {json.dumps(results['heartbeat_expiry'])}")
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
    alone = await force_down_to_events(client, watch, receiver, [host], keys_b, reps, "tenant B alone")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    hanging = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    try:
        await asyncio.gather(
            *(subscribe(client, TENANT_A, f"hangs-{i:03d}", hanging, timeoutSeconds=30) for i in range(100))
        )
        beside = await force_down_to_events(client, watch, receiver, [host], keys_b, reps, "tenant B beside A")
    finally:
        await asyncio.gather(*(unsubscribe(client, TENANT_A, f"hangs-{i:03d}") for i in range(100)))
        listener.close()
    ratio = beside["last_event"]["p99"] / alone["last_event"]["p99"]
    say(f"fairness: tenant B p99 alone {alone['last_event']['p99']:.3f}s, beside A {beside['last_event']['p99']:.3f}s")
    return {"tenant_b_alone": alone, "tenant_b_beside_a": beside, "p99_ratio": ratio, "target_ratio": 1.2}


async def main(scale: Scale) -> dict[str, Any]:
    stack = await Stack.start()
    try:
        return await notifications_delivery(stack, scale)
    finally:
        await stack.stop()


def table(results: dict[str, Any]) -> list[str]:
    lines = []
    for delivery in DELIVERIES:
        last = results[delivery]["last_event"]
        lines.append(
            f"force-down to the last of {results['servers']} events, {delivery}: "
            f"p50 {last['p50']:.3f} s, p99 {last['p99']:.3f} s"
        )
    written = results[DELIVERIES[0]]["last_status_write"]
    lines.append(f"  the same servers' last status write: p50 {written['p50']:.3f} s, p99 {written['p99']:.3f} s")
    zone = results["zone_failure"]
    for delivery in DELIVERIES:
        figures = zone[delivery]
        last, first, written = figures["last_event"], figures["first_event"], figures["last_status_write"]
        lines.append(
            f"zone failure ({zone['hosts']} hosts x {zone['servers_per_host']} servers, at once) to the last "
            f"event, {delivery}: p50 {last['p50']:.3f} s, p99 {last['p99']:.3f} s ({last['n']} reps; first event "
            f"p50 {first['p50']:.3f} s; last status write p50 {written['p50']:.3f} s, p99 {written['p99']:.3f} s)"
        )
    fair = results["fairness"]
    lines.append(
        f"fairness: tenant B's last event p99 {fair['tenant_b_alone']['last_event']['p99']:.3f} s alone, "
        f"{fair['tenant_b_beside_a']['last_event']['p99']:.3f} s beside 100 hanging webhooks "
        f"({fair['p99_ratio']:.2f}x, target {fair['target_ratio']}x)"
    )
    expiry = results["heartbeat_expiry"]
    for key, what in (
        ("service_status_lag", "the ComputeService's UNKNOWN"),
        ("last_event_lag", f"the last of {expiry['servers']} events"),
        ("last_status_write_lag", "the last status write"),
    ):
        lag = expiry[key]
        lines.append(
            f"heartbeat deadline to {what} ({expiry['services_heartbeating']} services heartbeating, "
            f"{expiry['rounds']} rounds): p50 {lag['p50']:.3f} s, p99 {lag['p99']:.3f} s"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.notifications_delivery")
    parser.add_argument("--quick", action="store_true", help=f"a short run: {QUICK}")
    args = parser.parse_args()
    outcome = asyncio.run(main(QUICK if args.quick else FULL))
    print(json.dumps(outcome, indent=2))
