"""The returning host's cleanup in-process: the agent's loop (cleanup before the first heartbeat,
again after a gap, no heartbeat while a cleanup is owed) and one pass (which guests, which patches,
deleted and changed servers), with a fake API and a recording driver."""

from __future__ import annotations

import asyncio
from typing import Any

from hoststate.agent import heartbeat_forever
from hoststate.agent.cleanup import clean_up
from hoststate.agent.config import AgentConfig
from hoststate.agent.drivers import GuestCleanupError
from hoststate.domain.evacuation import EvacuatedServer
from hoststate.kube import LEASES, SERVERS, ApiError

HOST = "back"


def server(name: str, host: str, state: str = "done", source: str = HOST) -> dict[str, Any]:
    record = {"id": f"e-{name}", "sourceHost": source, "targetHost": "dest", "state": state}
    return {
        "metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "resourceVersion": "5"},
        "spec": {"host": host},
        "status": {"evacuation": record},
    }


class FakeApi:
    """Lists by the agent's field selector, records patches; fails what a test asks."""

    def __init__(self, *servers: dict[str, Any]) -> None:
        self.servers = list(servers)
        self.lists: list[dict[str, str]] = []
        self.patches: list[tuple[str, dict]] = []
        self.beats = 0
        self.beat_failures = 0  # the next heartbeats that fail
        self.patch_status: dict[str, int] = {}  # server name -> the error its status patch gets

    async def list(self, resource, namespace=None, **params: str) -> dict[str, Any]:
        assert resource is SERVERS and namespace is None  # every namespace, never the fleet:
        self.lists.append(params)
        source = params["fieldSelector"].removeprefix("status.evacuation.sourceHost=")
        return {"items": [s for s in self.servers if s["status"]["evacuation"]["sourceHost"] == source]}

    async def patch(self, resource, name: str, patch: Any, namespace=None, *, subresource=None, **_: Any) -> dict:
        if resource is LEASES:
            if self.beat_failures:
                self.beat_failures -= 1
                raise ApiError(503, {}, "PATCH", name)
            self.beats += 1
            return {}
        assert resource is SERVERS and subresource == "status"
        if name in self.patch_status:
            raise ApiError(self.patch_status[name], {}, "PATCH", name)
        self.patches.append((name, patch))
        for s in self.servers:
            if s["metadata"]["name"] == name:
                s["status"]["evacuation"].update(patch["status"]["evacuation"])
        return {}


class RecordingDriver:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or set()

    async def ensure_gone(self, server: EvacuatedServer) -> str:
        self.calls.append(server.name)
        if server.name in self.fail:
            raise GuestCleanupError("libvirt is down")
        return "destroyed"


async def test_one_pass_destroys_only_the_guests_of_servers_that_left() -> None:
    api = FakeApi(
        server("left", "dest"),
        server("back-again", HOST),  # moved back: its guest is the server
        server("done-before", "dest", "completed"),
        server("theirs", "dest", source="other"),
    )
    driver = RecordingDriver()
    assert await clean_up(api, HOST, driver) == 0
    assert api.lists == [{"fieldSelector": f"status.evacuation.sourceHost={HOST}"}]
    assert driver.calls == ["left"]
    patched = {name: patch for name, patch in api.patches}
    assert sorted(patched) == ["back-again", "left"]
    assert patched["left"]["metadata"] == {"resourceVersion": "5"}
    assert (
        patched["left"]["status"]["evacuation"]["message"]
        == f"{HOST} made sure its copy of the guest is gone (destroyed)"
    )
    assert patched["back-again"]["status"]["evacuation"]["state"] == "completed"

    assert await clean_up(api, HOST, driver) == 0  # idempotent: nothing owed any more
    assert driver.calls == ["left"] and len(api.patches) == 2


async def test_a_guest_not_gone_stays_owed_and_the_others_complete() -> None:
    api = FakeApi(server("a", "dest"), server("b", "dest"))
    assert await clean_up(api, HOST, RecordingDriver(fail={"a"})) == 1
    assert [name for name, _ in api.patches] == ["b"]


async def test_a_deleted_server_is_skipped_and_a_changed_one_is_owed() -> None:
    api = FakeApi(server("deleted", "dest"), server("changed", "dest"), server("fine", "dest"))
    api.patch_status = {"deleted": 404, "changed": 409}
    driver = RecordingDriver()
    assert await clean_up(api, HOST, driver) == 1  # the 409: listed again next time
    assert driver.calls == ["changed", "deleted", "fine"]  # the guests are made gone all the same
    assert [name for name, _ in api.patches] == ["fine"]


def config(**kwargs: Any) -> AgentConfig:
    return AgentConfig(hosts=(HOST,), report_interval=0.02, **kwargs)


async def run_for(seconds: float, api: FakeApi, driver: RecordingDriver | None) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(heartbeat_forever(api, config(), HOST, stop, driver))
    await asyncio.sleep(seconds)
    stop.set()
    await task


async def test_no_heartbeat_before_the_cleanup_is_done() -> None:
    api = FakeApi(server("a", "dest"))
    driver = RecordingDriver(fail={"a"})
    await run_for(0.2, api, driver)
    assert api.beats == 0 and len(driver.calls) > 1  # tried again every interval, never beat

    driver.fail.clear()
    await run_for(0.2, api, driver)
    assert api.beats > 1 and len(api.lists) == len(driver.calls)  # one more list and cleanup, then beats


async def test_a_heartbeat_resuming_after_a_gap_cleans_up_again() -> None:
    """After a gap, every beat is preceded by a cleanup until one gets through: a host whose
    heartbeats fail may be fenced and its servers evacuated meanwhile."""
    api = FakeApi()
    stop = asyncio.Event()
    task = asyncio.create_task(heartbeat_forever(api, config(), HOST, stop, RecordingDriver()))
    await asyncio.sleep(0.1)
    assert len(api.lists) == 1 and api.beats >= 1  # at start only
    api.beat_failures = 5  # 5 intervals without a beat
    await asyncio.sleep(0.3)
    after_gap = len(api.lists)
    assert after_gap > 1 and api.beat_failures == 0
    await asyncio.sleep(0.1)  # beating again: no more cleanups
    stop.set()
    await task
    assert len(api.lists) == after_gap


async def test_without_a_driver_nothing_is_listed() -> None:
    api = FakeApi(server("a", "dest"))
    await run_for(0.1, api, None)
    assert api.lists == [] and api.beats >= 1
