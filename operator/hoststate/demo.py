"""`hoststate demo` (`make demo`): the fault-management flow end to end, with a timeline.

A compute host fails (its heartbeat agent is killed); a small fault monitor, talking only to
the Nova facade as an external monitor would, sees the service down and forces the host down
(it is the fencing authority); every tenant server on the host shows DOWN, the tenant's webhook
receives signed CloudEvents, and the servers labelled for HA are evacuated to healthy hosts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import kopf
from aiohttp import web

from .devcluster import DevCluster, control_plane_bin_dir, free_port
from .devcluster.processes import HoststateProcess
from .devcluster.stack import Kubectl, install_crds
from .domain.evacuation import HA_LABEL
from .kube import COMPUTE_SERVICES, SERVERS, ApiError, KubeClient
from .kube.api_resources import HOST_STATUS_SUBSCRIPTIONS, SECRETS
from .notifications.cloudevents import verify
from .resources.computeservice import service_name
from .resources.lease import DEFAULT_LEASE_NAMESPACE

API = "hoststate.io/v1alpha1"
DOWN_TIME, REPORT_INTERVAL = 3.0, 1.0  # seconds: short, so that the demo takes seconds


@dataclass
class Timeline:
    started: float = field(default_factory=time.time)
    marks: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str, at: float | None = None) -> float:
        moment = at or time.time()
        self.marks.append((moment, what))
        return moment

    def render(self) -> str:
        return "\n".join(f"  +{t - self.started:7.3f}s  {what}" for t, what in sorted(self.marks))


class Webhook:
    """The tenant's receiver: verifies each event's signature, records when it arrived."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.events: list[tuple[float, dict]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            if not verify(self.key, body, request.headers.get("X-Hoststate-Signature")):
                return web.Response(status=401)
            self.events.append((time.time(), json.loads(body)))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def received(self, new_status: str) -> list[tuple[float, dict]]:
        return [(t, e) for t, e in self.events if e["data"]["new_host_status"] == new_status]


async def until(probe: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while not (result := await probe() if asyncio.iscoroutinefunction(probe) else probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        await asyncio.sleep(interval)
    return result


async def fault_monitor(facade: str, token: str, host: str, timeline: Timeline) -> None:
    """An external fault monitor: polls Nova's service list; when the host's nova-compute service is
    down, it (having fenced the host) forces it down, as OPNFV Doctor's monitor does."""
    headers = {"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.11"}
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{facade}/os-services?host={host}&binary=nova-compute", headers=headers) as r:
                service = (await r.json())["services"][0]
            if service["state"] == "down":
                timeline.mark(f"monitor: {host} is down in Nova's service list (detection); forcing it down")
                body = {"host": host, "binary": "nova-compute", "forced_down": True}
                async with session.put(f"{facade}/os-services/force-down", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                timeline.mark("monitor: force-down answered by the facade")
                return
            await asyncio.sleep(0.1)


async def run(
    kubeconfig: Path, admin_token: str, *, start_operator: bool = True, say: Callable[[str], None] = print
) -> dict:
    """The demo against the cluster of `kubeconfig`; returns its figures."""
    suffix = uuid.uuid4().hex[:6]
    # Five hosts: one failing is 20 %, under the storm guard's default share (30 %).
    failing, healthy = f"demo-{suffix}-a", [f"demo-{suffix}-{letter}" for letter in "bcde"]
    tenant = f"demo-tenant-{suffix}"
    timeline = Timeline()
    processes: list[HoststateProcess] = []

    def spawn(name: str, *args: str) -> HoststateProcess:
        process = HoststateProcess(list(args), kubeconfig, name).start()
        processes.append(process)
        return process

    client = KubeClient(kopf.login_with_kubeconfig(settings=kopf.OperatorSettings()))
    key = secrets.token_bytes(32)
    webhook = Webhook(key)
    try:
        for namespace in (tenant, DEFAULT_LEASE_NAMESPACE):
            try:
                await client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
            except ApiError as error:
                if error.status != 409:
                    raise
        if start_operator:
            spawn(
                "operator",
                "operator",
                f"--service-down-time={DOWN_TIME}",
                f"--report-interval={REPORT_INTERVAL}",
                "--metrics-port=0",
            ).wait_for_output("hoststate operator started", timeout=120)
        facade_port = free_port()
        spawn(
            "facade",
            "facade",
            "--host=127.0.0.1",
            f"--port={facade_port}",
            "--metrics-port=0",
            f"--service-down-time={DOWN_TIME}",
            f"--report-interval={REPORT_INTERVAL}",
        )
        facade = f"http://127.0.0.1:{facade_port}/v2.1"

        async def facade_serving() -> bool:
            try:
                async with aiohttp.ClientSession() as session, session.get(facade) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await until(facade_serving, 60, "the facade (it opens its port once its cache is synced)")
        agents = {
            host: spawn(f"agent-{host}", "agent", f"--host={host}", f"--report-interval={REPORT_INTERVAL}")
            for host in [failing, *healthy]
        }
        for host in [failing, *healthy]:
            # A zone of their own: evacuation targets and the storm guard's share are per zone.
            await client.create(
                COMPUTE_SERVICES,
                {
                    "apiVersion": API,
                    "kind": "ComputeService",
                    "metadata": {"name": service_name(host)},
                    "spec": {"host": host, "zone": f"demo-{suffix}"},
                },
            )

        await webhook.start()
        await client.create(SECRETS, {"metadata": {"name": "hook-key"}, "data": {"key": _b64(key)}}, tenant)
        await client.create(
            HOST_STATUS_SUBSCRIPTIONS,
            {
                "apiVersion": API,
                "kind": "HostStatusSubscription",
                "metadata": {"name": "ops"},
                "spec": {
                    "url": webhook.url,
                    "signingKeySecretRef": {"name": "hook-key"},
                    "hostStatuses": ["DOWN", "UNKNOWN"],
                },
            },
            tenant,
        )
        servers = {"vnf-active": True, "vnf-standby": True, "batch-job": False}
        for name, ha in servers.items():
            labels = {HA_LABEL: "true"} if ha else {}
            await client.create(
                SERVERS,
                {
                    "apiVersion": API,
                    "kind": "Server",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"host": failing, "displayName": name},
                },
                tenant,
            )

        async def all_up() -> bool:
            items = (await client.list(SERVERS, tenant))["items"]
            return len(items) == len(servers) and all((i.get("status") or {}).get("hostStatus") == "UP" for i in items)

        await until(all_up, 60, "the servers to be UP")
        say(
            f"{len(servers)} servers of tenant {tenant} run on {failing} (2 labelled {HA_LABEL}=true); "
            f"webhook subscribed; heartbeats every {REPORT_INTERVAL:g}s, service down time {DOWN_TIME:g}s"
        )

        timeline = Timeline()
        agents[failing].kill()
        timeline.mark(f"fault: {failing} dies (its heartbeat agent is killed)")
        await fault_monitor(facade, admin_token, failing, timeline)
        detected = max(t for t, what in timeline.marks if "(detection)" in what)

        await until(lambda: len(webhook.received("DOWN")) >= len(servers), 60, "the tenant's DOWN notifications")
        down = webhook.received("DOWN")
        timeline.mark(f"tenant webhook: first DOWN event ({down[0][1]['data']['server_name']})", down[0][0])
        timeline.mark(f"tenant webhook: DOWN events for all {len(servers)} servers, signatures verified", down[-1][0])

        async def evacuated() -> list[dict] | None:
            items = {i["metadata"]["name"]: i for i in (await client.list(SERVERS, tenant))["items"]}
            moved = [items[n] for n, ha in servers.items() if ha]
            done = all((i.get("status") or {}).get("evacuation", {}).get("state") == "done" for i in moved)
            return moved if done else None

        moved = await until(evacuated, 60, "the HA servers to be evacuated")
        timeline.mark(
            "operator: HA servers evacuated and UP on "
            + ", ".join(f"{m['metadata']['name']} -> {m['spec']['host']}" for m in moved)
        )
        left = (await client.get(SERVERS, "batch-job", tenant))["spec"]["host"]
        say("\nTimeline:\n" + timeline.render())
        figures = {
            "detection_to_first_notification_s": down[0][0] - detected,
            "detection_to_last_notification_s": down[-1][0] - detected,
            "fault_to_detection_s": detected - timeline.started,
            "notified": len(down),
            "evacuated": {m["metadata"]["name"]: m["spec"]["host"] for m in moved},
            "not_ha_left_on": left,
        }
        say(
            f"\ndetection to tenant notification: {figures['detection_to_last_notification_s'] * 1000:.0f} ms "
            f"(first event {figures['detection_to_first_notification_s'] * 1000:.0f} ms); "
            f"the non-HA server stays on {left}, DOWN"
        )
        return figures
    finally:
        await webhook.stop()
        for process in processes:
            process.stop()
        await client.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main() -> int:
    """A local control plane of its own, the demo, then everything stopped."""
    bin_dir = control_plane_bin_dir()
    with DevCluster(bin_dir=bin_dir) as cluster:
        install_crds(Kubectl(bin_dir / "kubectl", cluster.kubeconfig))
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        asyncio.run(run(cluster.kubeconfig, cluster.admin_token))
    return 0
