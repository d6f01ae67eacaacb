"""The operator's pure pieces: status patches, indexes, stale events, the coalescer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from hoststate.domain import HostStatus, ServiceFacts, service_view
from hoststate.kube.leader import NotLeader
from hoststate.operator.coalescer import Coalescer
from hoststate.operator.indexes import ServerIndex, ServerRecord, ServiceIndex, ServiceRecord, is_stale, slim_server
from hoststate.operator.status_patches import server_status_patch, service_status_is_current, service_status_patch
from hoststate.resources.lease import heartbeat_lease, lease_heartbeat, lease_renew_time

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=5)


def view(forced_down=False, disabled=False, up=True):
    return service_view(ServiceFacts(forced_down=forced_down, disabled=disabled, up=up))


def test_first_status_sets_every_field_and_times() -> None:
    patch = service_status_patch({}, view(), generation=1, forced_down=False, last_heartbeat=EARLIER, now=NOW)["status"]
    assert patch["state"] == "up" and patch["serviceStatus"] == "enabled" and patch["hostStatus"] == "UP"
    assert patch["stateChangedTime"] == patch["hostStatusChangedTime"] == "2026-11-24T12:00:00Z"
    assert patch["lastHeartbeatTime"] == "2026-11-24T11:55:00Z"
    assert patch["observedGeneration"] == 1
    assert "forcedDownTime" not in patch
    assert patch["conditions"][0] | {"message": ""} == {
        "type": "Up",
        "status": "True",
        "reason": "HeartbeatFresh",
        "message": "",
        "lastTransitionTime": "2026-11-24T12:00:00Z",
        "observedGeneration": 1,
    }


def test_force_down_moves_times_and_sets_forced_down_time() -> None:
    before = service_status_patch({}, view(), generation=1, forced_down=False, last_heartbeat=EARLIER, now=EARLIER)[
        "status"
    ]
    after = service_status_patch(
        before, view(forced_down=True, up=False), generation=2, forced_down=True, last_heartbeat=EARLIER, now=NOW
    )["status"]
    assert after["state"] == "down" and after["hostStatus"] == "DOWN"
    assert (
        after["stateChangedTime"] == after["hostStatusChangedTime"] == after["forcedDownTime"] == "2026-11-24T12:00:00Z"
    )
    assert (after["conditions"][0]["status"], after["conditions"][0]["reason"]) == ("False", "ForcedDown")
    assert after["conditions"][0]["lastTransitionTime"] == "2026-11-24T12:00:00Z"

    unset = service_status_patch(after, view(), generation=3, forced_down=False, last_heartbeat=NOW, now=NOW)["status"]
    assert unset["forcedDownTime"] is None  # merge patch removes it


def test_a_spec_change_without_transition_keeps_the_times() -> None:
    before = service_status_patch({}, view(), generation=1, forced_down=False, last_heartbeat=EARLIER, now=EARLIER)[
        "status"
    ]
    after = service_status_patch(before, view(), generation=2, forced_down=False, last_heartbeat=EARLIER, now=NOW)[
        "status"
    ]
    assert "stateChangedTime" not in after and "hostStatusChangedTime" not in after
    assert after["conditions"][0]["lastTransitionTime"] == "2026-11-24T11:55:00Z"
    assert after["observedGeneration"] == 2


@pytest.mark.parametrize(
    ("change", "current"),
    [
        ({}, True),
        ({"state": "down"}, False),
        ({"hostStatus": "DOWN"}, False),
        ({"serviceStatus": "disabled"}, False),
        ({"observedGeneration": 1}, False),
        ({"forcedDownTime": "2026-11-24T12:00:00Z"}, False),
    ],
)
def test_service_status_is_current(change: dict, current: bool) -> None:
    status = {"state": "up", "serviceStatus": "enabled", "hostStatus": "UP", "observedGeneration": 2, **change}
    assert service_status_is_current(status, view(), 2, forced_down=False) is current


def test_server_status_patch() -> None:
    assert server_status_patch("DOWN", 4, NOW) == {
        "status": {"hostStatus": "DOWN", "hostStatusChangedTime": "2026-11-24T12:00:00Z", "observedGeneration": 4}
    }


def service_body(name: str, host: str, binary: str = "nova-compute", rv: str = "10", **spec) -> dict:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": rv,
            "creationTimestamp": "2026-11-24T11:00:00Z",
        },
        "spec": {"host": host, "binary": binary, **spec},
    }


def test_service_index_by_host_only_for_compute() -> None:
    index = ServiceIndex()
    index.upsert(ServiceRecord.from_body(service_body("c1.nova-compute", "c1")))
    index.upsert(ServiceRecord.from_body(service_body("c1.nova-scheduler", "c1", binary="nova-scheduler")))
    assert index.compute_service("c1").name == "c1.nova-compute"
    index.remove("c1.nova-compute")
    assert index.compute_service("c1") is None
    assert "c1.nova-scheduler" in index.by_name


def test_service_without_heartbeat_counts_from_creation() -> None:
    index = ServiceIndex()
    record = ServiceRecord.from_body(service_body("c1.nova-compute", "c1"))
    index.upsert(record)
    created = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert index.last_heartbeat(record) == created
    assert index.facts(record, created + timedelta(seconds=60), 60).up
    assert not index.facts(record, created + timedelta(seconds=61), 60).up
    index.heartbeats["c1.nova-compute"] = NOW
    assert index.facts(record, NOW + timedelta(seconds=30), 60) == ServiceFacts(
        forced_down=False, disabled=False, up=True
    )


def server_body(name: str, host: str, rv: str, host_status: str | None = None) -> dict:
    body = {
        "metadata": {"namespace": "t", "name": name, "uid": name, "generation": 1, "resourceVersion": rv},
        "spec": {"host": host},
    }
    if host_status is not None:
        body["status"] = {"hostStatus": host_status}
    return body


def test_server_index_moves_and_ignores_stale_events() -> None:
    index = ServerIndex()
    index.upsert(ServerRecord.from_body(server_body("vm", "a", "10")))
    assert [r.key for r in index.on_host("a")] == [("t", "vm")]

    index.upsert(ServerRecord.from_body(server_body("vm", "b", "12", "DOWN")))
    assert index.on_host("a") == [] and index.hosts() == ["b"]

    kept = index.upsert(ServerRecord.from_body(server_body("vm", "a", "11", "UP")))  # older than what we know
    assert kept.host == "b" and kept.host_status == "DOWN"

    index.remove(("t", "vm"))
    assert index.by_key == {} and index.hosts() == []


def test_slim_server_keeps_what_the_index_reads_and_shares_repeated_strings() -> None:
    # Strings built at run time, as JSON decoding builds them: equal, but distinct objects.
    first, second = (server_body(name, "".join(["host", "-a"]), "10", "".join(["U", "P"])) for name in ("vm1", "vm2"))
    first["metadata"]["managedFields"] = [{"manager": "kubectl", "time": "2026-01-01T00:00:00Z"}]
    slim = [slim_server(body) for body in (first, second)]
    assert ServerRecord.from_body(slim[0]) == ServerRecord.from_body(first)
    assert "managedFields" not in slim[0]["metadata"]
    assert slim[0]["spec"]["host"] is slim[1]["spec"]["host"]
    assert slim[0]["status"]["hostStatus"] is slim[1]["status"]["hostStatus"]


def test_server_records_are_slotted() -> None:
    record = ServerRecord.from_body(server_body("vm", "a", "10"))
    assert not hasattr(record, "__dict__") and record.labels == {}


@pytest.mark.parametrize(
    ("incoming", "known", "stale"), [(5, 6, True), (6, 6, False), (7, 6, False), (None, 6, False), (5, None, False)]
)
def test_is_stale(incoming, known, stale) -> None:
    assert is_stale(incoming, known) is stale


def test_lease_renew_time() -> None:
    lease = heartbeat_lease("Compute_4", "nova-compute", NOW, 60)
    assert lease["metadata"]["name"] == "compute-4.nova-compute"
    assert lease["spec"]["holderIdentity"] == "Compute_4"
    assert lease_renew_time(lease) == NOW
    with pytest.raises(ValueError, match="spec.renewTime is missing"):
        lease_renew_time({"spec": {}})
    with pytest.raises(ValueError, match="is not an RFC 3339 time"):
        lease_renew_time({"spec": {"renewTime": "yesterday"}})


def test_lease_heartbeat_counts_only_for_its_host() -> None:
    lease = heartbeat_lease("Compute_4", "nova-compute", NOW, 60)
    assert lease_heartbeat(lease, "Compute_4") == NOW
    with pytest.raises(ValueError, match="holderIdentity 'Compute_4' is not the service's host 'compute-4'"):
        lease_heartbeat(lease, "compute-4")
    del lease["spec"]["holderIdentity"]  # no holder: the renewal counts
    assert lease_heartbeat(lease, "compute-4") == NOW
    with pytest.raises(ValueError, match="spec.renewTime is missing"):
        lease_heartbeat({"spec": {"holderIdentity": "h"}}, "h")


async def test_coalescer_runs_once_more_after_requests_during_a_run() -> None:
    runs: list[int] = []
    gate = asyncio.Event()

    async def job() -> None:
        runs.append(len(runs))
        await gate.wait()

    jobs = Coalescer()
    jobs.request("k", job)
    await asyncio.sleep(0)
    for _ in range(5):  # five requests while running: one more run, not five
        jobs.request("k", job)
    gate.set()
    await jobs.drain()
    assert runs == [0, 1]


async def test_coalescer_retries_failures_with_backoff(monkeypatch) -> None:
    monkeypatch.setattr("hoststate.operator.coalescer.BACKOFF", (0.001, 0.001))
    attempts: list[int] = []
    errors: list[str] = []

    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("API server busy")

    jobs = Coalescer(on_error=lambda key, error: errors.append(f"{key}: {error}"))
    jobs.request("k", flaky)
    await jobs.drain()
    assert len(attempts) == 3
    assert errors == ["k: API server busy", "k: API server busy"]


async def test_coalescer_runs_a_refused_job_again_if_asked_during_the_run() -> None:
    """The leader lost the Lease mid-fan-out and regained it, its resync asking again, before the
    refused writes returned: the fan-out runs again, it is not dropped with the refusal."""
    runs: list[int] = []
    gate = asyncio.Event()

    async def fan_out() -> None:
        runs.append(len(runs))
        await gate.wait()
        if len(runs) == 1:
            raise NotLeader("PATCH", "/servers/vm-1/status")

    jobs = Coalescer()
    jobs.request("host", fan_out)
    await asyncio.sleep(0)
    jobs.request("host", fan_out)  # the takeover's resync
    gate.set()
    await jobs.drain()
    assert runs == [0, 1]


async def test_coalescer_drops_a_refused_job() -> None:
    runs: list[int] = []

    async def refused() -> None:
        runs.append(1)
        raise NotLeader("PATCH", "/servers/vm-1/status")

    jobs = Coalescer()
    jobs.request("host", refused)
    await jobs.drain()
    assert runs == [1]


def test_host_status_value_of_no_service() -> None:
    assert HostStatus.NONE.value == ""
