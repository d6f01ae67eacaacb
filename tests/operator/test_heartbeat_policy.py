"""When the operator trusts heartbeat Leases: the admission policy and a Deny binding of it stand
(the rule as a pure function; tests/deploy/test_rbac.py checks it against the API server)."""

from __future__ import annotations

import pytest

from hoststate.operator.leases import HEARTBEAT_POLICY, heartbeat_policy_problem

POLICY = {"metadata": {"name": HEARTBEAT_POLICY}, "spec": {"failurePolicy": "Fail"}}


def binding(*actions: str, **spec: object) -> dict:
    return {"spec": {"policyName": HEARTBEAT_POLICY, "validationActions": list(actions), **spec}}


def test_the_policy_with_a_deny_binding_stands() -> None:
    assert heartbeat_policy_problem(POLICY, [binding("Warn"), binding("Deny", "Audit")]) is None


@pytest.mark.parametrize(
    ("policy", "bindings", "problem"),
    [
        (None, [binding("Deny")], "is missing"),
        ({"spec": {"failurePolicy": "Ignore"}}, [binding("Deny")], "has failurePolicy Ignore"),
        (POLICY, [], "denies"),
        (POLICY, [binding("Warn", "Audit")], "denies"),
        (POLICY, [{"spec": {"policyName": "another", "validationActions": ["Deny"]}}], "denies"),
        (POLICY, [binding("Deny", matchResources={"namespaceSelector": {"matchLabels": {"x": "y"}}})], "denies"),
    ],
    ids=["missing", "fails-open", "unbound", "warn-only", "other-policy", "narrowed"],
)
def test_leases_are_not_trusted_without_it(policy: dict | None, bindings: list[dict], problem: str) -> None:
    assert problem in (heartbeat_policy_problem(policy, bindings) or "")
