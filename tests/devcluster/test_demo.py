"""`hoststate demo` in short form: the fault-management flow, against the session's cluster
and operator (its down time is the demo's: 3 s, heartbeats every second)."""

from __future__ import annotations

import pytest

from hoststate import demo
from hoststate.devcluster import DevCluster
from tests.support.processes import DOWN_TIME, REPORT_INTERVAL


async def test_fault_to_notification_and_evacuation(
    cluster: DevCluster, operator, lease_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (DOWN_TIME, REPORT_INTERVAL) == (demo.DOWN_TIME, demo.REPORT_INTERVAL)
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    lines: list[str] = []

    figures = await demo.run(cluster.kubeconfig, cluster.admin_token, start_operator=False, say=lines.append)

    assert figures["notified"] == 3  # every server's DOWN reached the tenant, signature verified
    assert sorted(figures["evacuated"]) == ["vnf-active", "vnf-standby"]
    failing = figures["not_ha_left_on"]
    assert failing.endswith("-a") and failing not in figures["evacuated"].values()
    assert "detection to tenant notification" in lines[-2]
    returned = figures["return"]  # the host comes back: refused, cleaned up, then forced up
    assert returned["force_up_refused"][0] == 400
    assert returned["force_up_refused"][1].startswith(f"Unable to force up host {failing} as `done` evacuation")
    assert returned["completed"] == ["vnf-active", "vnf-standby"]
    assert returned["force_up_after_cleanup"] == 200
    assert lines[-1].startswith("the return: force-up refused until the host's agent completed")
    print("\n".join(lines))
