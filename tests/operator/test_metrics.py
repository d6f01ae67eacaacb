"""What Prometheus scrapes from the operator."""

from __future__ import annotations

import urllib.request

from hoststate.devcluster.processes import wait_for
from hoststate.devcluster.scraper import scrape, series
from tests.kubeobjects import compute_service, server
from tests.support.processes import Operator

G, V = "hoststate.io", "v1alpha1"


def test_metrics_follow_a_force_down(
    operator_handle: Operator, operator, agents, custom, namespace, unique_host
) -> None:
    agents(unique_host)
    custom.create_cluster_custom_object(G, V, "computeservices", compute_service(unique_host, zone="az9"))
    for i in range(3):
        custom.create_namespaced_custom_object(G, V, namespace, "servers", server(f"vm-{i}", host=unique_host))
    labels = {"binary": "nova-compute", "host": unique_host, "zone": "az9"}
    url = operator_handle.metrics_url
    wait_for(lambda: scrape(url).get(series("hoststate_service_up", **labels)) == 1.0, what="service up in metrics")

    custom.patch_cluster_custom_object(
        G, V, "computeservices", f"{unique_host}.nova-compute", {"spec": {"forcedDown": True}}
    )

    def forced_down_and_fanned_out() -> dict | None:
        samples = scrape(url)
        done = (
            samples.get(series("hoststate_service_forced_down", **labels)) == 1.0
            and samples.get(series("hoststate_service_up", **labels)) == 0.0
            and samples.get(series("hoststate_servers", host_status="DOWN"), 0) >= 3
            and samples.get("hoststate_fanout_duration_seconds_count", 0) >= 1
        )
        return samples if done else None

    samples = wait_for(forced_down_and_fanned_out, what="force-down in metrics")
    assert samples["hoststate_fanout_servers_patched_total"] >= 3
    assert samples["hoststate_status_patch_duration_seconds_count"] >= 3
    assert samples[series("hoststate_service_last_heartbeat_timestamp_seconds", **labels)] > 1.7e9

    with urllib.request.urlopen(url.replace("/metrics", "/healthz"), timeout=5) as response:
        assert response.status == 200 and response.read() == b"ok"
