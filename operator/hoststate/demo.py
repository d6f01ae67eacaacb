"""`hoststate demo` (`make demo`): the fault-management flow end to end, with a timeline.

A compute host fails (its heartbeat agent is killed); a small fault monitor, talking only to
the Nova facade as an external monitor would, sees the service down and forces the host down
(it is the fencing authority); every tenant server on the host shows DOWN, the tenant's webhook
receives signed CloudEvents, and the servers labelled for HA are evacuated to healthy hosts.
Then the host comes back: forcing it up is refused while its evacuations are `done`; its agent
(exec guest driver) makes sure the evacuated guests are gone before its first heartbeat, the
records turn `completed`, and force-up succeeds.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import kopf

from . import API_GROUP_VERSION
from .devcluster import DevCluster, control_plane_bin_dir, free_port
from .devcluster.processes import HoststateProcess
from .devcluster.receiver import WebhookReceiver
from .devcluster.stack import Kubectl, install_crds
from .domain import COMPUTE_BINARY
from .domain.evacuation import HA_LABEL
from .kube import COMPUTE_SERVICES, SERVERS, ApiError, KubeClient
from .kube.api_resources import HOST_STATUS_SUBSCRIPTIONS, SECRETS
from .resources.computeservice import service_name
from .resources.lease import DEFAULT_LEASE_NAMESPACE

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


async def until(probe: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while not (result := await probe() if asyncio.iscoroutinefunction(probe) else probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        await asyncio.sleep(interval)
    return result


async def fault_monitor(facade: str, token: str, host: str, timeline: Timeline) -> None:
    """An external fault monitor: polls Nova's service list; when the host's compute service is
    down, it (having fenced the host) forces it down, as OPNFV Doctor's monitor does."""
    headers = {"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.11"}
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{facade}/os-services?host={host}&binary={COMPUTE_BINARY}", headers=headers) as r:
                service = (await r.json())["services"][0]
            if service["state"] == "down":
                timeline.mark(f"monitor: {host} is down in Nova's service list (detection); forcing it down")
                body = {"host": host, "binary": COMPUTE_BINARY, "forced_down": True}
                async with session.put(f"{facade}/os-services/force-down", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                timeline.mark("monitor: force-down answered by the facade")
                return
            await asyncio.sleep(0.1)


async def force_up(facade: str, token: str, host: str) -> tuple[int, str]:
    """The monitor's force-up, as Nova's legacy action; (status, Nova's message when refused)."""
    headers = {"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.11"}
    body = {"host": host, "binary": COMPUTE_BINARY, "forced_down": False}
    url = f"{facade}/os-services/force-down"
    async with aiohttp.ClientSession() as session, session.put(url, json=body, headers=headers) as r:
        answer = await r.json()
        return r.status, (answer.get("badRequest") or {}).get("message", "")


# The returning host's guest driver: a command run per evacuated server (its id appended).
GUEST_CLEANUP = shlex.join([sys.executable, "-c", "import sys; print('guest', sys.argv[1], 'destroyed')"])

SERVERS_ON_FAILING_HOST = {"vnf-active": True, "vnf-standby": True, "batch-job": False}  # name: labelled HA


@dataclass
class Demo:
    """The demo's world: five hosts in a zone of their own (one failing is 20 %, under the storm
    guard's default share), a tenant with a webhook subscription, three servers on the failing host."""

    kubeconfig: Path
    client: KubeClient
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # the tenant's signing key
    processes: list[HoststateProcess] = field(default_factory=list)
    agents: dict[str, HoststateProcess] = field(default_factory=dict)
    facade: str = ""  # the facade's URL, once started

    def __post_init__(self) -> None:
        self.failing = f"demo-{self.suffix}-a"
        self.healthy = [f"demo-{self.suffix}-{letter}" for letter in "bcde"]
        self.tenant = f"demo-tenant-{self.suffix}"
        self.receiver = WebhookReceiver(key=self.key)

    def spawn(self, name: str, *args: str) -> HoststateProcess:
        process = HoststateProcess(list(args), self.kubeconfig, name).start()
        self.processes.append(process)
        return process

    async def start(self, start_operator: bool) -> None:
        """The namespaces, the operator (unless one runs), the facade, and an agent per host."""
        for namespace in (self.tenant, DEFAULT_LEASE_NAMESPACE):
            try:
                await self.client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
            except ApiError as error:
                if error.status != 409:
                    raise
        timings = (f"--service-down-time={DOWN_TIME}", f"--report-interval={REPORT_INTERVAL}")
        if start_operator:
            operator = self.spawn(
                "operator", "operator", *timings, "--metrics-port=0", "--webhook-allow-cidr=127.0.0.1/32"
            )
            operator.wait_for_output("hoststate operator started", timeout=120)
        port = free_port()
        self.spawn("facade", "facade", "--host=127.0.0.1", f"--port={port}", "--metrics-port=0", *timings)
        self.facade = f"http://127.0.0.1:{port}/v2.1"
        await until(self.facade_serving, 60, "the facade (it opens its port once its cache is synced)")
        for host in [self.failing, *self.healthy]:
            self.agents[host] = self.spawn(f"agent-{host}", "agent", f"--host={host}", timings[1])

    async def facade_serving(self) -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(self.facade) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def create_world(self) -> None:
        """The hosts' services, the tenant's subscription and servers; returns once the servers are UP."""
        for host in [self.failing, *self.healthy]:
            # A zone of their own: evacuation targets and the storm guard's share are per zone.
            spec = {"host": host, "zone": f"demo-{self.suffix}"}
            await self.client.create(COMPUTE_SERVICES, resource("ComputeService", service_name(host), spec))
        self.receiver.start()
        secret = {"metadata": {"name": "hook-key"}, "data": {"key": base64.b64encode(self.key).decode()}}
        await self.client.create(SECRETS, secret, self.tenant)
        subscription = resource(
            "HostStatusSubscription",
            "ops",
            {
                "url": self.receiver.url,
                "signingKeySecretRef": {"name": "hook-key"},
                "hostStatuses": ["DOWN", "UNKNOWN"],
            },
        )
        await self.client.create(HOST_STATUS_SUBSCRIPTIONS, subscription, self.tenant)
        for name, ha in SERVERS_ON_FAILING_HOST.items():
            server = resource("Server", name, {"host": self.failing, "displayName": name})
            server["metadata"]["labels"] = {HA_LABEL: "true"} if ha else {}
            await self.client.create(SERVERS, server, self.tenant)
        await until(self.servers_up, 60, "the servers to be UP")

    async def servers_up(self) -> bool:
        items = (await self.client.list(SERVERS, self.tenant))["items"]
        up = all((item.get("status") or {}).get("hostStatus") == "UP" for item in items)
        return len(items) == len(SERVERS_ON_FAILING_HOST) and up

    async def evacuated(self) -> list[dict] | None:
        """The HA servers, once the evacuation of every one is done."""
        items = {i["metadata"]["name"]: i for i in (await self.client.list(SERVERS, self.tenant))["items"]}
        moved = [items[name] for name, ha in SERVERS_ON_FAILING_HOST.items() if ha]
        done = all((i.get("status") or {}).get("evacuation", {}).get("state") == "done" for i in moved)
        return moved if done else None

    async def fail_host(self, admin_token: str, timeline: Timeline) -> dict:
        """Kill the failing host's agent; mark the detection, the tenant's notifications and the
        evacuation on `timeline`; return the figures."""
        self.agents[self.failing].kill()
        timeline.mark(f"fault: {self.failing} dies (its heartbeat agent is killed)")
        await fault_monitor(self.facade, admin_token, self.failing, timeline)
        detected = max(t for t, what in timeline.marks if "(detection)" in what)

        servers = len(SERVERS_ON_FAILING_HOST)
        await until(lambda: len(self.receiver.with_status("DOWN")) >= servers, 60, "the tenant's DOWN notifications")
        down = self.receiver.with_status("DOWN")
        timeline.mark(f"tenant webhook: first DOWN event ({down[0].data['server_name']})", down[0].at)
        timeline.mark(f"tenant webhook: DOWN events for all {servers} servers, signatures verified", down[-1].at)

        moved = await until(self.evacuated, 60, "the HA servers to be evacuated")
        timeline.mark(
            "operator: HA servers evacuated and UP on "
            + ", ".join(f"{m['metadata']['name']} -> {m['spec']['host']}" for m in moved)
        )
        return {
            "detection_to_first_notification_s": down[0].at - detected,
            "detection_to_last_notification_s": down[-1].at - detected,
            "fault_to_detection_s": detected - timeline.started,
            "notified": len(down),
            "evacuated": {m["metadata"]["name"]: m["spec"]["host"] for m in moved},
            "not_ha_left_on": (await self.client.get(SERVERS, "batch-job", self.tenant))["spec"]["host"],
        }

    async def completed(self) -> list[dict] | None:
        """The HA servers, once the returning host completed the evacuation of every one."""
        items = {i["metadata"]["name"]: i for i in (await self.client.list(SERVERS, self.tenant))["items"]}
        moved = [items[name] for name, ha in SERVERS_ON_FAILING_HOST.items() if ha]
        done = all((i.get("status") or {}).get("evacuation", {}).get("state") == "completed" for i in moved)
        return moved if done else None

    async def return_host(self, admin_token: str, timeline: Timeline) -> dict:
        """The failed host comes back: force-up refused, its agent cleans up, force-up succeeds."""
        status, refusal = await force_up(self.facade, admin_token, self.failing)
        timeline.mark(f"monitor: force-up of {self.failing} refused ({status}): `done` evacuations remain")
        self.agents[self.failing] = self.spawn(
            f"agent-{self.failing}-back",
            "agent",
            f"--host={self.failing}",
            f"--report-interval={REPORT_INTERVAL:g}",
            "--guest-driver=exec",
            f"--exec-command={GUEST_CLEANUP}",
        )
        timeline.mark(f"host: {self.failing} is back; its agent starts and cleans up before its first heartbeat")
        moved = await until(self.completed, 60, "the evacuations to be completed by the returning host")
        timeline.mark(
            f"agent of {self.failing}: evacuated guests gone, records completed ("
            + ", ".join(m["metadata"]["name"] for m in moved)
            + ")"
        )

        # The facade's cache may lag the records by a moment: the monitor retries, as Nova's message says.
        async def forced_up() -> int | None:
            status, _ = await force_up(self.facade, admin_token, self.failing)
            return status if status == 200 else None

        status_after = await until(forced_up, 10, "force-up to be accepted once the records are completed")
        timeline.mark(f"monitor: force-up of {self.failing} answered {status_after}")
        return {
            "force_up_refused": (status, refusal),
            "completed": sorted(m["metadata"]["name"] for m in moved),
            "force_up_after_cleanup": status_after,
        }

    async def stop(self) -> None:
        self.receiver.stop()
        for process in self.processes:
            process.stop()
        await self.client.close()


def resource(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": API_GROUP_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


async def run(
    kubeconfig: Path, admin_token: str, *, start_operator: bool = True, say: Callable[[str], None] = print
) -> dict:
    """The demo against the cluster of `kubeconfig`; returns its figures."""
    demo = Demo(kubeconfig, KubeClient(kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())))
    try:
        await demo.start(start_operator)
        await demo.create_world()
        say(
            f"{len(SERVERS_ON_FAILING_HOST)} servers of tenant {demo.tenant} run on {demo.failing} "
            f"(2 labelled {HA_LABEL}=true); webhook subscribed; heartbeats every {REPORT_INTERVAL:g}s, "
            f"service down time {DOWN_TIME:g}s"
        )
        timeline = Timeline()
        figures = await demo.fail_host(admin_token, timeline)
        figures["return"] = await demo.return_host(admin_token, timeline)
        say("\nTimeline:\n" + timeline.render())
        say(
            f"\ndetection to tenant notification: {figures['detection_to_last_notification_s'] * 1000:.0f} ms "
            f"(first event {figures['detection_to_first_notification_s'] * 1000:.0f} ms); "
            f"the non-HA server stays on {figures['not_ha_left_on']}, DOWN"
        )
        say(
            f"the return: force-up refused until the host's agent completed {', '.join(figures['return']['completed'])}"
            f' ("{figures["return"]["force_up_refused"][1][:60]}..."), then {figures["return"]["force_up_after_cleanup"]}'
        )
        return figures
    finally:
        await demo.stop()


def main() -> int:
    """A local control plane of its own, the demo, then everything stopped."""
    bin_dir = control_plane_bin_dir()
    with DevCluster(bin_dir=bin_dir) as cluster:
        install_crds(Kubectl(bin_dir / "kubectl", cluster.kubeconfig))
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        asyncio.run(run(cluster.kubeconfig, cluster.admin_token))
    return 0
