"""Automatic evacuation of HA servers by the operator, its concurrency cap and storm guard, and the
force-up guard (facade 400, kubectl-side Warning Event)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.devcluster.scraper import scrape, series
from hoststate.domain.evacuation import EVACUATION_ANNOTATION
from tests.evacuation.conftest import Fleet, G, Tokens, V, action
from tests.support.facade import RunningFacade, http
from tests.support.processes import Operator


def start_hosts(fleet: Fleet, agents, *names: str, **spec) -> list[str]:
    hosts = [fleet.host(n) for n in names]
    for host in hosts:
        fleet.create_service(host, **spec)
    agents(*hosts)
    return hosts


def gauge(url: str, name: str, zone: str) -> float | None:
    return scrape(url).get(series(name, zone=zone))


def test_ha_servers_only_are_evacuated_spread_over_healthy_hosts(
    operator: HoststateProcess, fleet: Fleet, agents, namespace: str
) -> None:
    source, *targets = start_hosts(fleet, agents, "src", "t1", "t2", "t3")
    start_hosts(fleet, agents, "off", disabled=True)  # not a target; up, so the zone is 1/5 down
    ha = [f"ha-{i}" for i in range(4)]
    for name in ha:
        fleet.create_server(name, source, ha=True)
    fleet.create_server("plain", source)
    fleet.create_server("paused", source, ha=True, vmState="paused")
    for name in [*ha, "plain", "paused"]:
        fleet.wait_host_status(name, "UP")

    fleet.patch_service(source, forcedDown=True)

    records = {name: fleet.wait_evacuation(name, "done") for name in ha}
    placed = Counter(record["targetHost"] for record in records.values())
    assert set(placed) <= set(targets) and sorted(placed.values()) == [1, 1, 2]
    for name, record in records.items():
        assert (record["sourceHost"], record["trigger"], record["requestedBy"]) == (
            source,
            "automatic",
            "hoststate-operator",
        )
        assert fleet.server(name)["spec"]["host"] == record["targetHost"]
        fleet.wait_host_status(name, "UP")
    # Not opted in, or not evacuable (Nova evacuates active, stopped and error servers only): they stay.
    fleet.wait_event(namespace, "paused", "EvacuationSkipped")
    for name in ("plain", "paused"):
        server = fleet.server(name)
        assert server["spec"]["host"] == source and EVACUATION_ANNOTATION not in (
            server["metadata"].get("annotations") or {}
        )
        assert server["status"]["hostStatus"] == "DOWN"


@pytest.fixture
def capped_operator(operator_handle: Operator) -> Iterator[HoststateProcess]:
    process = operator_handle.start("--evacuation-concurrency=1")
    yield process
    operator_handle.start()  # back to the defaults for the other tests


def test_concurrency_cap(capped_operator: HoststateProcess, fleet: Fleet, agents, custom, namespace: str) -> None:
    source, *_ = start_hosts(fleet, agents, "src", "t1", "t2", "t3", "t4")
    names = [f"ha-{i}" for i in range(3)]
    for name in names:
        fleet.create_server(name, source, ha=True)
    for name in names:
        fleet.wait_host_status(name, "UP")

    # Every write to these servers, in order: how many evacuations were in flight at once.
    seen: list[dict] = []
    start = custom.list_namespaced_custom_object(G, V, namespace, "servers")["metadata"]["resourceVersion"]
    stop = threading.Event()

    def collect() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object, G, V, namespace, "servers", resource_version=start, timeout_seconds=60
        ):
            seen.append(event["object"])
            if stop.is_set():
                stream.stop()

    watcher = threading.Thread(target=collect, daemon=True)
    watcher.start()
    fleet.patch_service(source, forcedDown=True)
    for name in names:
        fleet.wait_evacuation(name, "done")
    fleet.create_server("marker", "")  # one more event so the watcher returns
    stop.set()
    watcher.join(60)

    latest: dict[str, dict] = {}
    most = 0
    for obj in seen:
        latest[obj["metadata"]["name"]] = obj
        in_flight = 0
        for server in latest.values():
            request = (server["metadata"].get("annotations") or {}).get(EVACUATION_ANNOTATION)
            record = (server.get("status") or {}).get("evacuation") or {}
            if request and (record.get("state") != "done" or record.get("id") not in request):
                in_flight += 1
        most = max(most, in_flight)
    assert most == 1
    assert all((latest[n]["status"].get("evacuation") or {}).get("state") == "done" for n in names)


def test_storm_guard(
    operator_handle: Operator,
    operator: HoststateProcess,
    fleet: Fleet,
    agents,
    api_client: k8s.ApiClient,
    namespace: str,
) -> None:
    source, *_ = start_hosts(fleet, agents, "src", "t1", "t2")
    fleet.create_server("ha", source, ha=True)
    fleet.wait_host_status("ha", "UP")

    fleet.patch_service(source, forcedDown=True)  # 1 of 3 hosts down: more than 0.3

    event = fleet.wait_event("default", fleet.service_name(source), "EvacuationStormGuard")[0]
    assert event.type == "Warning" and "33%" in event.message and fleet.zone in event.message
    assert fleet.request("ha") is None and fleet.server("ha")["spec"]["host"] == source  # decided: not evacuated
    wait_for(
        lambda: gauge(operator_handle.metrics_url, "hoststate_evacuation_storm_guard_active", fleet.zone) == 1.0,
        what="storm gauge 1",
    )

    start_hosts(fleet, agents, "t3", "t4")  # 1 of 5: 0.2, the guard lifts
    assert fleet.wait_evacuation("ha", "done")["sourceHost"] == source
    wait_for(
        lambda: gauge(operator_handle.metrics_url, "hoststate_evacuation_storm_guard_active", fleet.zone) == 0.0,
        what="storm gauge 0",
    )


def test_force_up_guard(
    operator: HoststateProcess,
    facade: RunningFacade,
    fleet: Fleet,
    tokens: Tokens,
    agents,
    cleaning_agents,
    namespace: str,
) -> None:
    source = fleet.host("src")
    facade.sync(fleet.create_service(source, forcedDown=True))
    (dest,) = start_hosts(fleet, agents, "dest", disabled=True)  # MAINTENANCE: never confirmed while disabled
    server = fleet.create_server("vm", source)
    facade.sync(server)
    facade.sync(fleet.service(dest))
    moved = action(facade, server["metadata"]["uid"], {"evacuate": {"host": dest, "force": True}}, token=tokens.admin)
    assert moved.status == 200, moved.body
    fleet.wait_evacuation("vm", "accepted")
    facade.sync(fleet.server("vm"))

    # The facade refuses, as Nova does (400) ...
    url = f"{facade.url}/v2.1/os-services/{fleet.service(source)['metadata']['uid']}"
    refused = http(url, "PUT", token=tokens.admin, version="2.53", body={"forced_down": False})
    assert refused.status == 400
    message = refused.body["badRequest"]["message"]
    assert message.startswith(f"Unable to force up host {source} as `done` evacuation migration records remain")
    legacy = http(
        f"{facade.url}/v2.1/os-services/force-down",
        "PUT",
        token=tokens.admin,
        version="2.11",
        body={"host": source, "binary": "nova-compute", "forced_down": False},
    )
    assert legacy.status == 400 and legacy.body["badRequest"]["message"] == message
    assert fleet.service(source)["spec"]["forcedDown"] is True

    # ... kubectl cannot be refused (no CEL rule sees other objects): a Warning Event says it.
    fleet.patch_service(source, forcedDown=False)
    event = fleet.wait_event("default", fleet.service_name(source), "ForceUpWithPendingEvacuations")[0]
    assert event.type == "Warning" and f"{namespace}/vm" in event.message

    # Confirmed once the server is UP on its target, and still refused: the source may run it.
    fleet.patch_service(source, forcedDown=True)
    fleet.patch_service(dest, disabled=False)
    fleet.wait_evacuation("vm", "done")
    facade.sync(fleet.server("vm"))
    facade.sync(fleet.service(source))
    assert http(url, "PUT", token=tokens.admin, version="2.53", body={"forced_down": False}).status == 400

    # Completed once the source's agent has cleaned up (here a guest driver with nothing to do):
    # force-up is allowed again.
    cleaning_agents(source, "true")
    fleet.wait_evacuation("vm", "completed")
    facade.sync(fleet.server("vm"))
    allowed = http(url, "PUT", token=tokens.admin, version="2.53", body={"forced_down": False})
    assert allowed.status == 200, allowed.body
    assert allowed.body["service"]["forced_down"] is False
