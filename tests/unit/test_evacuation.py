"""Evacuation rules (hoststate.domain.evacuation) and the facade's evacuate schemas, every case."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hoststate.domain import evacuation as rules
from hoststate.domain.evacuation import ComputeHost
from hoststate.facade.api_version import APIVersion
from hoststate.facade.common import force_up_refused_message, invalid_state_message
from hoststate.facade.faults import HTTPBadRequest
from hoststate.facade.schemas import evacuate as schemas
from hoststate.facade.validation import validate_body

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
VM_STATES = [
    "active",
    "building",
    "paused",
    "suspended",
    "stopped",
    "rescued",
    "resized",
    "soft-delete",
    "deleted",
    "error",
    "shelved",
    "shelved_offloaded",
]


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
        ({"id": "e1", "state": "done"}, False),
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


def test_force_up_message() -> None:
    message = force_up_refused_message("h1", [f"ns/s{i}" for i in range(7)])
    assert message.startswith("Unable to force up host h1 as evacuations from the host are not yet confirmed (ns/s0,")
    assert "and 2 more" in message


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
