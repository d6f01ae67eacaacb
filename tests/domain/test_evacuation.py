"""Evacuation rules (hoststate.domain.evacuation) and the facade's evacuate schemas, every case."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from hoststate.domain import evacuation as rules
from hoststate.domain.evacuation import ComputeHost, EvacuationPlan, ServerFacts
from hoststate.domain.hoststatus import ServiceFacts
from hoststate.facade.api_version import APIVersion
from hoststate.facade.common import force_up_refused_message, invalid_state_message
from hoststate.facade.controllers.server_actions import EvacuateBody
from hoststate.facade.faults import HTTPBadRequest
from hoststate.facade.schemas import evacuate as schemas
from hoststate.facade.validation import validate_body
from hoststate.resources.server import VmState

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
VM_STATES = list(get_args(VmState))  # every state of nova/compute/vm_states.py


def host(name: str, zone: str = "nova", *, disabled=False, forced_down=False, up=True, servers=0) -> ComputeHost:
    return ComputeHost(host=name, zone=zone, disabled=disabled, forced_down=forced_down, up=up, servers=servers)


# -- which servers ------------------------------------------------------------------------
@pytest.mark.parametrize("vm_state", VM_STATES)
@pytest.mark.parametrize("task_state", [None, "rebuilding", "migrating"])
def test_invalid_state_is_novas_check_instance_state(vm_state: str, task_state: str | None) -> None:
    result = rules.invalid_state(vm_state, task_state)
    if vm_state not in ("active", "stopped", "error"):
        assert result == rules.InvalidState("vm_state", vm_state)  # vm_state is checked first
    elif task_state is not None:
        assert result == rules.InvalidState("task_state", task_state)
    else:
        assert result is None


def test_missing_vm_state_is_active() -> None:
    assert rules.invalid_state(None, None) is None


def test_conflict_messages_are_novas() -> None:
    assert invalid_state_message("evacuate", "abc", "vm_state", "paused") == (
        "Cannot 'evacuate' instance abc while it is in vm_state paused"
    )
    assert (
        invalid_state_message("evacuate", "abc", "host", None) == "Instance abc is in an invalid state for 'evacuate'"
    )


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (None, False),
        ({}, False),
        ({"hoststate.io/ha": "true"}, True),
        ({"hoststate.io/ha": "True"}, True),
        ({"hoststate.io/ha": "false"}, False),
        ({"hoststate.io/ha": ""}, False),
        ({"ha": "true"}, False),
    ],
)
def test_ha_label(labels, expected) -> None:
    assert rules.is_ha(labels) is expected


# -- which host -------------------------------------------------------------------------------
@pytest.mark.parametrize(("disabled", "forced_down", "up"), list(itertools.product([False, True], repeat=3)))
def test_only_enabled_up_not_forced_down_hosts_are_targets(disabled: bool, forced_down: bool, up: bool) -> None:
    candidate = host("b", disabled=disabled, forced_down=forced_down, up=up)
    expected = "b" if (not disabled and not forced_down and up) else None
    assert rules.choose_target("a", "nova", [host("a", forced_down=True, up=False), candidate]) == expected


def test_never_the_source() -> None:
    assert rules.choose_target("a", "nova", [host("a")]) is None


def test_fewest_servers() -> None:
    assert rules.choose_target("a", "nova", [host("b", servers=3), host("c", servers=1), host("d", servers=2)]) == "c"


def test_ties_go_to_the_lowest_host_name() -> None:
    assert rules.choose_target("a", "nova", [host("d", servers=1), host("b", servers=1), host("c", servers=1)]) == "b"


def test_same_zone_first_even_if_fuller() -> None:
    candidates = [host("b", "z2", servers=0), host("c", "z1", servers=9)]
    assert rules.choose_target("a", "z1", candidates) == "c"


def test_other_zones_when_the_zone_has_no_healthy_host() -> None:
    candidates = [host("b", "z1", disabled=True), host("c", "z2", servers=5), host("d", "z3", servers=2)]
    assert rules.choose_target("a", "z1", candidates) == "d"


def test_no_zone_means_any_zone() -> None:
    assert rules.choose_target("a", None, [host("b", "z2", servers=1), host("c", "z3")]) == "c"


def test_no_candidates() -> None:
    assert rules.choose_target("a", "nova", []) is None
    assert rules.plan_targets(3, "a", "nova", []) == []


def test_plan_spreads_counting_earlier_placements() -> None:
    candidates = [host("b", servers=2), host("c", servers=0), host("d", servers=1)]
    # loads b2 c0 d1: c (c1, ties d1: the lower name) c (c2) d (all at 2) b, then c ties d -> c
    assert rules.plan_targets(5, "a", "nova", candidates) == ["c", "c", "d", "b", "c"]


def test_plan_even_spread_over_empty_hosts() -> None:
    targets = rules.plan_targets(6, "a", "nova", [host("b"), host("c"), host("d")])
    assert sorted(targets) == ["b", "b", "c", "c", "d", "d"]


def test_plan_keeps_to_the_zone() -> None:
    targets = rules.plan_targets(3, "a", "z1", [host("b", "z1", servers=10), host("c", "z2")])
    assert targets == ["b", "b", "b"]


def test_plan_zero() -> None:
    assert rules.plan_targets(0, "a", "nova", [host("b")]) == []


def scanned_target(source_host: str, source_zone: str | None, candidates: list[ComputeHost]) -> str | None:
    """The rule by a scan of every candidate (what TargetLoads' heaps must agree with)."""
    healthy = [c for c in candidates if c.healthy and c.host != source_host]
    eligible = [c for c in healthy if c.zone == source_zone] or healthy
    return min(eligible, key=lambda c: (c.servers, c.host)).host if eligible else None


@pytest.mark.parametrize("seed", range(40))
def test_target_loads_agree_with_a_scan_of_every_host(seed: int) -> None:
    """Placements for several sources in turn (healthy ones too, zones with and without a target) on
    one TargetLoads are the scan's, host by host, counting the earlier ones."""
    rng = random.Random(seed)
    zones = ["z1", "z2", "z3"]
    candidates = [
        host(
            f"h{i}",
            rng.choice(zones),
            disabled=rng.random() < 0.2,
            forced_down=rng.random() < 0.2,
            up=rng.random() < 0.8,
            servers=rng.randrange(5),
        )
        for i in range(rng.randrange(1, 25))
    ]
    loads = rules.TargetLoads(candidates)
    for _ in range(10):
        source = rng.choice(candidates)
        zone = rng.choice([source.zone, None, "elsewhere"])
        placed = loads.place(rng.randrange(6), source.host, zone)
        for target in placed:
            assert target == scanned_target(source.host, zone, candidates)
            candidates = [replace(c, servers=c.servers + 1) if c.host == target else c for c in candidates]
        assert loads.has_target(source.host, zone) is (scanned_target(source.host, zone, candidates) is not None)


# -- storms ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("up", "threshold", "expected"),
    [
        ([], 0.3, False),
        ([True, True, True], 0.3, False),
        ([False, True, True, True], 0.3, False),  # 0.25
        ([False, True, True], 0.3, True),  # 0.33
        ([False, False, True, True, True, True, True, True, True, True], 0.2, False),  # exactly 0.2: not more
        ([False, False, False, True, True, True, True, True, True, True], 0.2, True),
        ([False], 1.0, False),  # 1.0 never stops
        ([True], 0.0, False),
        ([False, True], 0.0, True),
    ],
)
def test_storm(up: list[bool], threshold: float, expected: bool) -> None:
    assert rules.storm(up, threshold) is expected


def test_down_share() -> None:
    assert rules.down_share([]) == 0.0
    assert rules.down_share([False, True, True, True]) == 0.25


# -- the request and the record ----------------------------------------------------------------
RECORD = rules.EvacuationRecord(
    id="e1", source_host="a", target_host="b", requested_time="2026-11-24T12:00:00Z", requested_by="ops"
)


def test_request_round_trip_and_patch() -> None:
    patch = rules.request_patch(RECORD, "42")
    assert patch["metadata"]["resourceVersion"] == "42"
    assert patch["spec"] == {"host": "b"}
    parsed = rules.parse_request(patch["metadata"]["annotations"])
    assert parsed == RECORD
    stopped = rules.request_patch(replace_state(RECORD, target_state="stopped"), None, stop=True)
    assert "resourceVersion" not in stopped["metadata"]
    assert stopped["spec"] == {"host": "b", "vmState": "stopped", "powerState": 4}
    assert json.loads(stopped["metadata"]["annotations"][rules.EVACUATION_ANNOTATION])["targetState"] == "stopped"


def replace_state(record: rules.EvacuationRecord, **changes) -> rules.EvacuationRecord:
    return replace(record, **changes)


@pytest.mark.parametrize("raw", ["", "{", "[]", '{"id": "x"}', "null", '{"id": 1, "sourceHost": "a"}'])
def test_malformed_requests_are_ignored(raw: str) -> None:
    assert rules.parse_request({rules.EVACUATION_ANNOTATION: raw}) is None


@pytest.mark.parametrize("changes", [{"trigger": "someone"}, {"id": "x" * 65}])
def test_requests_the_status_could_not_hold_are_ignored(changes: dict) -> None:
    """Anyone who may annotate a Server could write them; recording one would be refused for ever."""
    patch = rules.request_patch(replace_state(RECORD, **changes), None)
    assert rules.parse_request(patch["metadata"]["annotations"]) is None


def test_status_record() -> None:
    status = replace_state(RECORD, state=rules.DONE, completed_time="t", message="m").status()
    assert status == {
        "id": "e1",
        "sourceHost": "a",
        "targetHost": "b",
        "requestedTime": "2026-11-24T12:00:00Z",
        "trigger": "api",
        "requestedBy": "ops",
        "state": "done",
        "completedTime": "t",
        "message": "m",
    }


@pytest.mark.parametrize(
    ("status", "pending"),
    [
        (None, True),  # not yet recorded
        ({"id": "other", "state": "done"}, True),  # an older evacuation's record
        ({"id": "e1", "state": "accepted"}, True),
        ({"id": "e1", "state": "failed"}, True),
        ({"id": "e1", "state": "done"}, True),  # the source's copy may remain until its agent cleans up
        ({"id": "e1", "state": "completed"}, False),
    ],
)
def test_pending(status, pending: bool) -> None:
    assert rules.is_pending(RECORD, status) is pending
    assert rules.is_pending(None, status) is False


@pytest.mark.parametrize(
    ("server_host", "server_status", "target_status", "age", "expected"),
    [
        ("b", "UP", "UP", 0, rules.DONE),
        ("b", "DOWN", "UP", 0, rules.ACCEPTED),  # the operator has not yet written the new host status
        ("b", "UNKNOWN", "UNKNOWN", 0, rules.ACCEPTED),
        ("b", "MAINTENANCE", "MAINTENANCE", 0, rules.ACCEPTED),
        ("b", "DOWN", "DOWN", 0, rules.FAILED),
        ("b", "", "", 0, rules.FAILED),
        ("c", "UP", "UP", 0, rules.FAILED),  # moved elsewhere meanwhile
        ("b", "UNKNOWN", "UNKNOWN", 301, rules.FAILED),
        ("b", "UP", "UP", 301, rules.DONE),
    ],
)
def test_progress(server_host, server_status, target_status, age, expected) -> None:
    state, message = rules.progress(
        RECORD,
        server_host=server_host,
        server_host_status=server_status,
        target_host_status=target_status,
        requested=NOW,
        now=NOW + timedelta(seconds=age),
        timeout=300,
    )
    assert state == expected
    assert (message is None) == (state == rules.ACCEPTED)


def test_force_up_message_is_novas() -> None:
    assert force_up_refused_message("h1") == (
        "Unable to force up host h1 as `done` evacuation migration records remain associated with the host. "
        "Ensure the compute service has been restarted, allowing these records to move to `completed` before "
        "retrying this request."
    )


# -- target candidates and the force-up guard ---------------------------------------------------
def test_compute_hosts_from_services_and_server_counts() -> None:
    facts = ServiceFacts(forced_down=True, disabled=False, up=False)
    healthy = ServiceFacts(forced_down=False, disabled=False, up=True)
    counts = {"a": 3}
    hosts = rules.compute_hosts([("a", "z1", facts), ("b", "z2", healthy)], lambda h: counts.get(h, 0))
    assert hosts == [
        host("a", "z1", forced_down=True, up=False, servers=3),
        host("b", "z2", servers=0),
    ]
    assert [h.healthy for h in hosts] == [False, True]


@pytest.mark.parametrize(
    ("status", "in_flight"),
    [
        (None, True),  # not yet recorded
        ({"id": "other", "state": "done"}, True),  # an older evacuation's record
        ({"id": "e1", "state": "accepted"}, True),
        ({"id": "e1", "state": "failed"}, False),
        ({"id": "e1", "state": "done"}, False),
    ],
)
def test_in_flight(status, in_flight: bool) -> None:
    assert rules.is_in_flight(RECORD, status) is in_flight
    assert rules.is_in_flight(None, status) is False


def test_pending_evacuations_from_a_host() -> None:
    other_source = replace(RECORD, source_host="x")
    servers = [
        ("ns/z-accepted", RECORD, {"id": "e1", "state": "accepted"}),
        ("ns/a-unrecorded", RECORD, None),
        ("ns/failed", RECORD, {"id": "e1", "state": "failed"}),
        ("ns/done", RECORD, {"id": "e1", "state": "done"}),
        ("ns/completed", RECORD, {"id": "e1", "state": "completed"}),
        ("ns/no-request", None, None),
        ("ns/from-x", other_source, None),
    ]
    assert rules.pending_evacuations_from("a", servers) == ["ns/a-unrecorded", "ns/done", "ns/failed", "ns/z-accepted"]
    assert rules.pending_evacuations_from("b", servers) == []


# -- the source host's cleanup -------------------------------------------------------------------
def evacuated(name: str, host: str, state: str = "done", *, source: str = "a", target: str = "b", ns: str = "ns"):
    record = {"id": f"e-{name}", "sourceHost": source, "targetHost": target, "state": state}
    return rules.EvacuatedServer(ns, name, f"uid-{name}", host, record, resource_version="7")


def test_cleanup_plan_destroys_the_guests_of_servers_that_left() -> None:
    servers = [
        evacuated("z-done", "b"),
        evacuated("accepted", "b", "accepted"),
        evacuated("failed", "b", "failed"),  # moved too: the copy here is as stale
        evacuated("completed", "b", "completed"),  # cleaned up before: nothing again
        evacuated("back", "a"),  # moved back to this host: its only copy is here
        evacuated("to-here", "a", source="b", target="a"),  # evacuated TO this host
        evacuated("other", "c", source="b", target="c"),  # another host's evacuation
        evacuated("odd", "a", source="a", target="a"),
    ]
    plan = rules.cleanup_plan("a", servers)
    assert [(c.server.name, c.destroy_guest) for c in plan] == [
        ("accepted", True),
        ("back", False),
        ("failed", True),
        ("z-done", True),
    ]
    assert plan[1].message == "the server is on a again: its guest there is kept"
    assert rules.cleanup_plan("c", servers) == []  # only evacuated TO c
    assert [(c.server.name, c.destroy_guest) for c in rules.cleanup_plan("b", servers)] == [
        ("other", True),
        ("to-here", True),
    ]


def test_cleanup_plan_is_in_namespace_then_name_order() -> None:
    plan = rules.cleanup_plan("a", [evacuated("a", "b", ns="ns2"), evacuated("b", "b", ns="ns1")])
    assert [(c.server.namespace, c.server.name) for c in plan] == [("ns1", "b"), ("ns2", "a")]


def test_completed_patch_is_conditional_and_touches_only_the_state() -> None:
    server = evacuated("vm", "b")
    assert rules.completed_patch(server, "2026-11-24T12:00:00Z", "gone") == {
        "metadata": {"resourceVersion": "7"},
        "status": {"evacuation": {"state": "completed", "cleanedUpTime": "2026-11-24T12:00:00Z", "message": "gone"}},
    }
    assert rules.completed_patch(replace(server, resource_version=None), "t", "x" * 2000)["metadata"] == {}
    assert len(rules.completed_patch(server, "t", "x" * 2000)["status"]["evacuation"]["message"]) == 1024


# -- automatic evacuation: the plan of one pass -------------------------------------------------
def ha(name: str, on: str = "src", *, in_flight=False, ha=True, vm_state=None, task_state=None) -> ServerFacts:
    return ServerFacts(("ns", name), on, ha, in_flight, vm_state, task_state)


def plan(servers, hosts, *, concurrency=10, threshold=0.5, scope="zone", warned=frozenset()) -> EvacuationPlan:
    return rules.plan_evacuations(
        servers, hosts, concurrency=concurrency, storm_threshold=threshold, storm_scope=scope, warned=warned
    )


SOURCE = host("src", forced_down=True, up=False)
TARGETS = [host("t1"), host("t2"), host("t3")]


def moved(result: EvacuationPlan) -> dict[str, str]:
    return {move.server[1]: move.target_host for move in result.moves}


def test_plan_moves_ha_servers_of_forced_down_hosts_only() -> None:
    up_source = host("up-src")
    result = plan(
        [
            ha("a"),
            ha("plain", ha=False),
            ha("on-up-host", "up-src"),
            ha("busy", in_flight=True),
            ha("no-host", ""),
            ha("unknown-host", "gone"),
        ],
        [SOURCE, up_source, *TARGETS],
    )
    assert result.moves == [rules.Move(("ns", "a"), "src", "t1")]
    assert result.warnings == [] and result.situations == frozenset()


def test_plan_spreads_over_targets_in_server_order() -> None:
    result = plan([ha(f"s{i}") for i in (3, 1, 0, 2)], [SOURCE, host("t1", servers=1), host("t2"), host("t3")])
    assert moved(result) == {"s0": "t2", "s1": "t3", "s2": "t1", "s3": "t2"}
    assert [m.server[1] for m in result.moves] == ["s0", "s1", "s2", "s3"]
    assert {m.source_host for m in result.moves} == {"src"}


def test_plan_counts_placements_of_earlier_sources() -> None:
    other_source = host("src2", forced_down=True, up=False)
    hosts = [SOURCE, other_source, host("t1"), host("t2"), host("t3"), host("t4", servers=5)]
    result = plan([ha("a", "src"), ha("b", "src"), ha("c", "src2"), ha("d", "src2")], hosts, threshold=0.5)
    assert moved(result) == {"a": "t1", "b": "t2", "c": "t3", "d": "t1"}


@pytest.mark.parametrize("vm_state", [s for s in VM_STATES if s not in rules.EVACUABLE_VM_STATES])
def test_plan_skips_and_warns_about_servers_nova_would_not_evacuate(vm_state: str) -> None:
    result = plan([ha("vm", vm_state=vm_state), ha("ok")], [SOURCE, *TARGETS])
    assert moved(result) == {"ok": "t1"}
    (warning,) = result.warnings
    assert (warning.reason, warning.server, warning.host) == ("EvacuationSkipped", ("ns", "vm"), "src")
    assert warning.message == f"not evacuated from forced-down host src: vm_state is {vm_state}"


def test_plan_skips_servers_with_a_task() -> None:
    result = plan([ha("vm", task_state="rebuilding")], [SOURCE, *TARGETS])
    assert result.moves == [] and result.warnings[0].message.endswith("task_state is rebuilding")


@pytest.mark.parametrize(
    ("concurrency", "in_flight", "expected"),
    [(10, 0, 5), (3, 0, 3), (3, 1, 2), (3, 3, 0), (3, 4, 0), (1, 0, 1)],
)
def test_plan_stays_under_the_concurrency_cap(concurrency: int, in_flight: int, expected: int) -> None:
    servers = [ha(f"w{i}") for i in range(5)] + [ha(f"f{i}", in_flight=True) for i in range(in_flight)]
    result = plan(servers, [SOURCE, *TARGETS], concurrency=concurrency)
    assert [m.server[1] for m in result.moves] == [f"w{i}" for i in range(expected)]
    assert result.warnings == []  # waiting for the cap is not a warning


def test_plan_budget_goes_to_hosts_by_name() -> None:
    hosts = [host("b-src", forced_down=True, up=False), host("a-src", forced_down=True, up=False), *TARGETS]
    hosts += [host(f"x{i}") for i in range(5)]  # 2 of 10 down: under the threshold
    result = plan([ha("b1", "b-src"), ha("a1", "a-src"), ha("a2", "a-src")], hosts, concurrency=2, threshold=0.3)
    assert [m.source_host for m in result.moves] == ["a-src", "a-src"]


def test_storm_guard_stops_the_zone_and_warns_once() -> None:
    hosts = [SOURCE, host("t1"), host("t2"), host("o1", "other"), host("o2", "other")]  # z nova: 1 of 3 down
    first = plan([ha("a"), ha("b")], hosts, threshold=0.3)
    assert first.moves == []
    assert first.storming == {"nova"} and first.guarded_scopes == {"nova"}
    (warning,) = first.warnings
    assert (warning.reason, warning.host, warning.server, warning.situation) == (
        "EvacuationStormGuard",
        "src",
        None,
        ("storm", "nova"),
    )
    assert warning.message == (
        "automatic evacuation stopped: 33% of the nova-compute hosts in zone nova are down (threshold 30%); "
        "2 HA servers on src wait. A partition is likelier than that many host failures: check, then evacuate by hand."
    )
    again = plan([ha("a"), ha("b")], hosts, threshold=0.3, warned=first.situations)
    assert again.warnings == [] and again.situations == first.situations and again.resumed == frozenset()

    calm = plan([ha("a"), ha("b")], [*hosts, host("t3"), host("t4")], threshold=0.3, warned=again.situations)
    assert calm.resumed == {"nova"} and calm.storming == frozenset() and calm.guarded_scopes == {"nova"}
    assert len(calm.moves) == 2 and calm.warnings == [] and calm.situations == frozenset()


def test_storm_guard_tells_a_scope_once_per_pass_from_its_first_host() -> None:
    hosts = [host("a-src", forced_down=True, up=False), host("b-src", forced_down=True, up=False), host("t1")]
    result = plan([ha("a", "a-src"), ha("b", "b-src")], hosts, threshold=0.3)
    assert [(w.reason, w.host) for w in result.warnings] == [("EvacuationStormGuard", "a-src")]


def test_storm_guard_per_zone_lets_other_zones_evacuate() -> None:
    storming = [host("z1-src", "z1", forced_down=True, up=False), host("z1-t", "z1")]
    calm = [host("z2-src", "z2", forced_down=True, up=False), *(host(f"z2-t{i}", "z2") for i in range(4))]
    result = plan([ha("a", "z1-src"), ha("b", "z2-src")], storming + calm, threshold=0.3)
    assert moved(result) == {"b": "z2-t0"}
    assert result.storming == {"z1"} and result.guarded_scopes == {"z1", "z2"}


def test_storm_guard_global_counts_every_zone_as_one() -> None:
    hosts = [host("z1-src", "z1", forced_down=True, up=False), host("z1-t", "z1")]
    hosts += [host(f"z2-t{i}", "z2") for i in range(4)]  # 1 of 6 down over all zones
    result = plan([ha("a", "z1-src")], hosts, threshold=0.3, scope="global")
    assert moved(result) == {"a": "z1-t"} and result.storming == frozenset() and result.guarded_scopes == {"all"}
    stormy = plan([ha("a", "z1-src")], hosts[:3], threshold=0.3, scope="global")
    assert stormy.storming == {"all"} and stormy.moves == []
    assert "of the nova-compute hosts are down (threshold 30%)" in stormy.warnings[0].message


def test_no_gauge_scopes_without_forced_down_hosts() -> None:
    assert plan([ha("a", "t1")], TARGETS).guarded_scopes == frozenset()


def test_no_target_warns_once_while_it_lasts() -> None:
    servers = [ha("a"), ha("b"), ha("c")]
    no_target = [SOURCE, host("t1", disabled=True), host("t2", forced_down=True)]
    first = plan(servers, no_target, threshold=1.0)
    assert first.moves == []
    (warning,) = first.warnings
    assert (warning.reason, warning.host, warning.server) == ("EvacuationNoTarget", "src", None)
    assert warning.message == "3 HA servers on forced-down host src wait: no enabled, up host to evacuate them to"
    assert plan(servers, no_target, threshold=1.0, warned=first.situations).warnings == []
    # Another zone's hosts are targets when the source's zone has none.
    other_zone = [*no_target, *(host(f"x{i}", "other") for i in range(3))]
    later = plan(servers, other_zone, threshold=1.0, warned=first.situations)
    assert moved(later) == {"a": "x0", "b": "x1", "c": "x2"} and later.situations == frozenset()


def test_no_target_is_told_even_at_the_cap() -> None:
    result = plan([ha("a"), ha("b", in_flight=True)], [SOURCE, host("t1", up=False)], concurrency=1, threshold=1.0)
    assert [w.reason for w in result.warnings] == ["EvacuationNoTarget"]


def test_a_situation_that_ends_and_comes_back_is_told_again() -> None:
    skipped = plan([ha("vm", vm_state="paused")], [SOURCE, *TARGETS])
    fixed = plan([ha("vm")], [SOURCE, *TARGETS], warned=skipped.situations)
    assert fixed.warnings == [] and fixed.situations == frozenset()
    again = plan([ha("vm", vm_state="paused")], [SOURCE, *TARGETS], warned=fixed.situations)
    assert [w.reason for w in again.warnings] == ["EvacuationSkipped"]


def test_plan_at_scale_spreads_as_the_rule_says() -> None:
    """2,000 targets in 4 zones (every 10th disabled), each zone with 25 forced-down sources of 40 HA
    servers, and a zone of such sources only: each zone's 1,000 servers go round its 450 healthy targets
    by name, then the last zone's 1,000 (no target in it) to the least loaded targets of all zones by
    name: those given 2, not 3. The storm guard counts all zones (125 of 2,125 hosts down)."""
    zones = [f"z{k}" for k in range(4)]
    targets = {z: [host(f"{z}-t{i:04d}", z, disabled=i % 10 == 9) for i in range(500)] for z in zones}
    sources = {z: [host(f"{z}-src{j:02d}", z, forced_down=True, up=False) for j in range(25)] for z in [*zones, "zx"]}
    servers = [ha(f"{s.host}-vm{n:02d}", s.host) for z in sources for s in sources[z] for n in range(40)]
    hosts = [h for z in zones for h in targets[z]] + [h for z in sources for h in sources[z]]
    random.Random(1).shuffle(hosts)
    random.Random(2).shuffle(servers)

    result = plan(servers, hosts, concurrency=len(servers), threshold=0.5, scope="global")

    expected: dict[str, str] = {}
    for z in zones:
        healthy = [t.host for t in targets[z] if t.healthy]
        names = [f"{s.host}-vm{n:02d}" for s in sources[z] for n in range(40)]
        expected.update({name: healthy[i % len(healthy)] for i, name in enumerate(names)})
    given_two = sorted(t for t, count in Counter(expected.values()).items() if count == 2)
    names = [f"{s.host}-vm{n:02d}" for s in sources["zx"] for n in range(40)]
    assert len(given_two) >= len(names)
    expected.update(zip(names, given_two, strict=False))
    assert moved(result) == expected
    assert [m.server[1] for m in result.moves] == sorted(expected)  # source by source, server by server
    assert result.warnings == [] and result.storming == frozenset()


# -- request schemas per microversion -----------------------------------------------------------
def ok(version: str, body: dict) -> bool:
    try:
        validate_body(schemas.for_version(APIVersion.parse(version)), body)
    except HTTPBadRequest:
        return False
    return True


@pytest.mark.parametrize(
    ("version", "body", "valid"),
    [
        ("2.1", {"evacuate": {"host": "h", "onSharedStorage": "False", "adminPass": "x"}}, True),
        ("2.1", {"evacuate": {"host": "h"}}, False),  # onSharedStorage required
        ("2.13", {"evacuate": {"onSharedStorage": True}}, True),
        ("2.14", {"evacuate": {"onSharedStorage": True}}, False),  # gone
        ("2.14", {"evacuate": {}}, True),
        ("2.28", {"evacuate": {"host": "h", "force": True}}, False),
        ("2.29", {"evacuate": {"host": "testHost", "adminPass": "MySecretPass", "force": False}}, True),  # sample
        ("2.29", {"evacuate": {"adminPass": "MySecretPass"}}, True),  # sample
        ("2.29", {"evacuate": {"force": "maybe"}}, False),
        ("2.67", {"evacuate": {"host": "h", "force": "true"}}, True),
        ("2.68", {"evacuate": {"host": "testHost", "adminPass": "MySecretPass"}}, True),  # sample
        ("2.68", {"evacuate": {"host": "h", "force": False}}, False),  # force gone
        ("2.95", {"evacuate": {"host": "testHost"}}, True),  # sample
        ("2.95", {"evacuate": {}}, True),  # sample
        ("2.95", {"evacuate": {"force": True}}, False),
        ("2.95", {"evacuate": {"host": "bad host"}}, False),  # Nova's hostname pattern
        ("2.95", {"evacuate": {"host": ""}}, False),
        ("2.95", {"evacuate": {"targetState": "stopped"}}, False),  # not a request field
        ("2.95", {"evacuate": {}, "other": 1}, False),
        ("2.95", {}, False),
    ],
)
def test_schemas(version: str, body: dict, valid: bool) -> None:
    assert ok(version, body) is valid


# -- the body's fields per microversion ---------------------------------------------------------
def read(version: str, evacuate: dict) -> EvacuateBody:
    return EvacuateBody.read(evacuate, APIVersion.parse(version))


def test_before_214_the_admin_password_is_answered() -> None:
    given = read("2.1", {"host": "h", "onSharedStorage": "False", "adminPass": "x"})
    assert (given.legacy, given.admin_pass, given.check_host, given.stop) == (True, "x", False, False)
    generated = read("2.13", {"onSharedStorage": "false"}).admin_pass
    assert generated is not None and len(generated) == 12
    assert read("2.13", {"onSharedStorage": "true"}).admin_pass is None  # the disk is kept
    with pytest.raises(HTTPBadRequest, match="admin password can't be changed on existing disk"):
        read("2.1", {"onSharedStorage": "True", "adminPass": "x"})


def test_from_214_no_password_is_answered() -> None:
    assert read("2.14", {"adminPass": "x"}) == EvacuateBody(
        host=None, check_host=False, stop=False, legacy=False, admin_pass=None
    )


@pytest.mark.parametrize(
    ("version", "evacuate", "check_host"),
    [
        ("2.28", {"host": "h"}, False),  # before force: a given host is not checked
        ("2.29", {"host": "h"}, True),
        ("2.29", {"host": "h", "force": "false"}, True),
        ("2.29", {"host": "h", "force": True}, False),
        ("2.67", {"host": "h", "force": "yes"}, False),
        ("2.68", {"host": "h"}, True),  # force is gone: always checked
    ],
)
def test_a_given_host_is_checked_unless_forced(version: str, evacuate: dict, check_host: bool) -> None:
    assert read(version, evacuate).check_host is check_host


def test_force_needs_a_host() -> None:
    with pytest.raises(HTTPBadRequest, match="Can't force to a non-provided destination"):
        read("2.29", {"force": True})


def test_from_295_the_server_is_stopped() -> None:
    assert read("2.94", {}).stop is False
    assert read("2.95", {}).stop is True
