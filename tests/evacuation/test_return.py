"""A fenced host comes back (issue 14): its agent makes sure the guests of the servers evacuated
from it are gone before its first heartbeat, marks their records completed, and only then may the
host be forced up. Against the suite's API server, the operator, the facade, and libvirt's test
driver (test:///default: in-process, no daemon, no KVM) through the agent run in this process;
the exec driver through real agent processes, restarted midway."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import kopf
import libvirt
import pytest
from kubernetes import client as k8s

from hoststate.agent import run_agent
from hoststate.agent.config import AgentConfig
from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.resources.computeservice import service_name
from tests.evacuation.conftest import Fleet, Tokens, action
from tests.support.facade import RunningFacade, http
from tests.support.guests import LIBVIRT_TEST_URI, LibvirtNode
from tests.support.processes import LEASE_NAMESPACE, REPORT_INTERVAL

LIBVIRT_URI = LIBVIRT_TEST_URI  # one node per process, shared by every connection of it


class InProcessAgent:
    """`hoststate agent` (run_agent) on its own event loop in a thread: the libvirt test driver's
    state lives in this process, where the test defines the guests and looks at them."""

    def __init__(self, cluster: DevCluster, config: AgentConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        info = kopf.ConnectionInfo(server=cluster.server, ca_path=str(cluster.ca_file), token=cluster.admin_token)
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(run_agent(config, self.stop_event, info),), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.loop.close()


@pytest.fixture
def in_process_agents(cluster: DevCluster, lease_namespace: str):
    started: list[InProcessAgent] = []

    def start(host: str) -> InProcessAgent:
        config = AgentConfig(
            hosts=(host,),
            report_interval=REPORT_INTERVAL,
            lease_namespace=LEASE_NAMESPACE,
            guest_driver="libvirt",
            libvirt_uri=LIBVIRT_URI,
        )
        started.append(InProcessAgent(cluster, config))
        return started[-1]

    yield start
    for agent in started:
        if agent.thread.is_alive():
            agent.stop()


@pytest.fixture
def hypervisor():
    """The test driver's node; the guests this test defined are gone after it."""
    node = LibvirtNode(LIBVIRT_URI)

    def define(server: dict) -> libvirt.virDomain:
        uid, name = server["metadata"]["uid"], server["metadata"]["name"]
        return node.define(uid, f"{name}-{uid[:8]}")

    yield define, node.connection
    node.close()


def guest(connection: libvirt.virConnect, server: dict) -> libvirt.virDomain | None:
    try:
        return connection.lookupByUUIDString(server["metadata"]["uid"])
    except libvirt.libvirtError:
        return None


def renew_time(api_client: k8s.ApiClient, host: str):
    try:
        return (
            k8s.CoordinationV1Api(api_client).read_namespaced_lease(service_name(host), LEASE_NAMESPACE).spec.renew_time
        )
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise


def force_up(facade: RunningFacade, fleet: Fleet, tokens: Tokens, host: str):
    facade.sync(fleet.service(host))
    url = f"{facade.url}/v2.1/os-services/{fleet.service(host)['metadata']['uid']}"
    return http(url, "PUT", token=tokens.admin, version="2.53", body={"forced_down": False})


def evacuate(facade: RunningFacade, fleet: Fleet, tokens: Tokens, server: dict, target: str, **extra) -> None:
    answer = action(facade, server["metadata"]["uid"], {"evacuate": {"host": target, **extra}}, token=tokens.admin)
    assert answer.status == 200, answer.body


def heartbeating(fleet: Fleet, facade: RunningFacade, agents, name: str) -> str:
    host = fleet.host(name)
    facade.sync(fleet.create_service(host))
    agents(host)
    wait_for(lambda: fleet.service(host).get("status", {}).get("state") == "up", what=f"{host} up")
    return host


NOVA_REFUSAL = (
    "Unable to force up host {host} as `done` evacuation migration records remain associated with the host. "
    "Ensure the compute service has been restarted, allowing these records to move to `completed` before "
    "retrying this request."
)


def test_the_returning_host_destroys_the_evacuated_guests_then_may_be_forced_up(
    operator: HoststateProcess,
    facade: RunningFacade,
    fleet: Fleet,
    tokens: Tokens,
    agents,
    in_process_agents,
    hypervisor,
    namespace: str,
    api_client: k8s.ApiClient,
) -> None:
    define, connection = hypervisor
    source = fleet.host("src")
    facade.sync(fleet.create_service(source, forcedDown=True))
    dest = heartbeating(fleet, facade, agents, "dest")
    elsewhere = fleet.host("other")
    facade.sync(fleet.create_service(elsewhere, forcedDown=True))
    evacuated = [fleet.create_server(f"vm-{i}", source) for i in range(2)]
    stays = fleet.create_server("stays", source)  # not evacuated: its guest is never touched
    incoming = fleet.create_server("incoming", elsewhere)  # evacuated TO the returning host
    for server in [*evacuated, stays, incoming]:
        define(server)
        facade.sync(server)

    for server in evacuated:
        evacuate(facade, fleet, tokens, server, dest)
    evacuate(facade, fleet, tokens, incoming, source, force=True)  # 2.29: a forced-down target, forced
    for server in evacuated:
        fleet.wait_evacuation(server["metadata"]["name"], "done")
    facade.sync(fleet.server("vm-1"))

    # done is not enough: the source may still run them (Nova's 400, word for word).
    refused = force_up(facade, fleet, tokens, source)
    assert (refused.status, refused.body["badRequest"]["message"]) == (400, NOVA_REFUSAL.format(host=source))

    agent = in_process_agents(source)
    for server in evacuated:
        record = fleet.wait_evacuation(server["metadata"]["name"], "completed")
        assert (record["sourceHost"], record["targetHost"]) == (source, dest)
        assert record["cleanedUpTime"] and record["completedTime"]
        assert "destroyed, undefined" in record["message"]
        assert guest(connection, server) is None  # destroyed and undefined
        assert fleet.wait_event(namespace, server["metadata"]["name"], "EvacuationCompleted")
    assert guest(connection, stays).isActive()  # untouched
    assert guest(connection, incoming).isActive()  # evacuated to this host: its copy here is the server
    assert fleet.evacuation("incoming")["sourceHost"] == elsewhere
    first_beat = wait_for(lambda: renew_time(api_client, source), what="the first heartbeat, after the cleanup")

    # A restarted agent owes nothing: no record nor guest changes.
    versions = {
        s["metadata"]["name"]: fleet.server(s["metadata"]["name"])["metadata"]["resourceVersion"] for s in evacuated
    }
    agent.stop()
    in_process_agents(source)
    wait_for(lambda: renew_time(api_client, source) != first_beat, what="a heartbeat after the restart")
    assert {n: fleet.server(n)["metadata"]["resourceVersion"] for n in versions} == versions
    assert guest(connection, stays).isActive() and guest(connection, incoming).isActive()

    for server in evacuated:
        facade.sync(fleet.server(server["metadata"]["name"]))
    allowed = force_up(facade, fleet, tokens, source)
    assert allowed.status == 200, allowed.body
    assert allowed.body["service"]["forced_down"] is False


EXEC_SCRIPT = """
import os, sys, time
server = sys.argv[1]
with open(os.environ["CALLS"], "a") as calls:
    calls.write(server + "\\n")
if server == os.environ["BLOCKED_SERVER"] and os.path.exists(os.environ["BLOCK"]):
    while os.path.exists(os.environ["BLOCK"]):  # its agent is stopped meanwhile
        time.sleep(0.1)
    sys.exit(1)
print("guest", server, "gone")
"""


def test_an_agent_restarted_midway_completes_each_record_once(
    operator: HoststateProcess,
    facade: RunningFacade,
    fleet: Fleet,
    tokens: Tokens,
    agents,
    cleaning_agents,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    api_client: k8s.ApiClient,
) -> None:
    source = fleet.host("src")
    facade.sync(fleet.create_service(source, forcedDown=True))
    dest = heartbeating(fleet, facade, agents, "dest")
    first, second = (fleet.create_server(name, source) for name in ("a-first", "b-second"))
    for server in (first, second):
        facade.sync(server)
        evacuate(facade, fleet, tokens, server, dest)
        fleet.wait_evacuation(server["metadata"]["name"], "done")
    script, calls, block = tmp_path / "cleanup.py", tmp_path / "calls", tmp_path / "block"
    script.write_text(EXEC_SCRIPT)
    block.touch()
    for variable, value in ("CALLS", calls), ("BLOCK", block), ("BLOCKED_SERVER", second["metadata"]["uid"]):
        monkeypatch.setenv(variable, str(value))  # the agents' environment, their commands'

    agent = cleaning_agents(source, f"{sys.executable} {script}")
    fleet.wait_evacuation("a-first", "completed")
    wait_for(lambda: calls.exists() and len(calls.read_text().split()) == 2, what="the second cleanup started")
    agent.stop()  # midway: the second guest's command never finished
    assert fleet.evacuation("b-second")["state"] == "done"
    assert renew_time(api_client, source) is None  # no heartbeat before the cleanup is done

    block.unlink()
    cleaning_agents(source, f"{sys.executable} {script}")
    record = fleet.wait_evacuation("b-second", "completed")
    assert f"guest {second['metadata']['uid']} gone" in record["message"]
    # The first was not cleaned up again; the second twice (the command must be idempotent).
    assert calls.read_text().split() == [first["metadata"]["uid"], second["metadata"]["uid"], second["metadata"]["uid"]]
    for name in ("a-first", "b-second"):
        assert len(fleet.events(namespace, name, "EvacuationCompleted")) == 1
