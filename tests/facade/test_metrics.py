"""The facade's /metrics, /readyz and /healthz: request counts and latencies by route pattern, a
readiness check that turns 200 only once the watch cache has synced (503 before), and a liveness
check that says live meanwhile."""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hoststate import API_GROUP
from hoststate.devcluster import DevCluster, free_port
from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.facade.cli import add_arguments, from_arguments
from hoststate.facade.config import FacadeConfig
from hoststate.facade.request_metrics import METRICS
from tests.support.facade import RunningFacade, http, service_account_token

from .conftest import Users, World


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text format as {(sample name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def registry_samples(facade: RunningFacade) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return samples(generate_latest(facade.app[METRICS].registry).decode())


def count(metrics: dict, route: str, method: str, code: str) -> float:
    labels = frozenset({"route": route, "method": method, "code": code}.items())
    return metrics.get(("hoststate_facade_requests_total", labels), 0.0)


def test_requests_counted_by_route_pattern(facade: RunningFacade, users: Users, world: World) -> None:
    show = "/v2.1/{project_id}/servers/{server_id}"
    before = registry_samples(facade)
    for _ in range(2):
        assert http(f"{facade.url}/v2.1/{users.project}/servers/{world.server_id}", token=users.admin).status == 200
    assert http(f"{facade.url}/v2.1/{users.project}/servers/{world.server_id}", token=None).status == 401
    assert http(f"{facade.url}/v2.1/no/such/{world.server_id}", token=users.admin).status == 404
    assert http(f"{facade.url}/v2.1/os-services/force-down", "PUT", token=users.admin, body={}).status == 400
    after = registry_samples(facade)

    assert count(after, show, "GET", "200") - count(before, show, "GET", "200") == 2
    assert count(after, show, "GET", "401") - count(before, show, "GET", "401") == 1
    assert count(after, "unmatched", "GET", "404") - count(before, "unmatched", "GET", "404") == 1
    legacy = "/v2.1/os-services/{id}"
    assert count(after, legacy, "PUT", "400") - count(before, legacy, "PUT", "400") == 1
    histogram = ("hoststate_facade_request_duration_seconds_count", frozenset({"route": show, "method": "GET"}.items()))
    assert after[histogram] - before.get(histogram, 0.0) == 3
    # Never the raw URL: no label value carries an id or a project.
    values = {value for _, labels in after for _, value in labels}
    assert not any(world.server_id in v or users.project in v for v in values)


def test_metrics_port_flag_env_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def config(*argv: str) -> FacadeConfig:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(list(argv))
        return from_arguments(args)

    monkeypatch.delenv("HOSTSTATE_FACADE_METRICS_PORT", raising=False)
    assert config().metrics_port == 8081
    assert config("--metrics-port", "9100").metrics_port == 9100
    assert config("--metrics-port", "0").metrics_port == 0
    monkeypatch.setenv("HOSTSTATE_FACADE_METRICS_PORT", "0")
    assert config().metrics_port == 0
    assert config("--metrics-port", "9100").metrics_port == 9100


# -- the real process ---------------------------------------------------------------------
READER_ROLE = "hoststate-facade-test-cache-reader"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def answered(url: str) -> tuple[int, str] | None:
    """GET's answer once something listens on the port."""
    status, body = get(url)
    return (status, body) if status else None


def kubeconfig_for(cluster: DevCluster, token: str, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "dev",
                        "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_file)},
                    }
                ],
                "users": [{"name": "facade", "user": {"token": token}}],
                "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": "facade"}}],
                "current-context": "dev",
            }
        )
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def facade_process(
    cluster: DevCluster, api_client: k8s.ApiClient, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[HoststateProcess, int, int, str]]:
    """`hoststate facade` as a ServiceAccount that may not yet read anything; the metrics port from the env."""
    token = service_account_token(api_client, namespace, "facade")
    api_port, metrics_port = free_port(), free_port()
    monkeypatch.setenv("HOSTSTATE_FACADE_METRICS_PORT", str(metrics_port))
    process = HoststateProcess(
        ["facade", "--host=127.0.0.1", f"--port={api_port}", f"--lease-namespace={namespace}"],
        kubeconfig_for(cluster, token, tmp_path / "kubeconfig"),
        "facade",
        log=tmp_path / "facade.log",
    ).start()
    yield process, api_port, metrics_port, namespace
    process.stop()


def test_readyz_503_until_the_cache_syncs_then_200_while_healthz_says_live(
    facade_process: tuple[HoststateProcess, int, int, str], api_client: k8s.ApiClient
) -> None:
    process, api_port, metrics_port, namespace = facade_process
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    # Its ServiceAccount may not list ComputeServices yet: the cache cannot sync.
    status, body = wait_for(lambda: answered(metrics_url + "/readyz"), what="/readyz")
    assert status == 503, body
    process.wait_for_output("403")
    assert get(metrics_url + "/readyz")[0] == 503
    assert get(metrics_url + "/healthz")[0] == 200  # live: its watches keep trying (no restart for slow lists)
    assert get(metrics_url + "/metrics")[0] == 200
    assert get(f"http://127.0.0.1:{api_port}/")[0] == 0  # the API port opens only once synced

    rbac = k8s.RbacAuthorizationV1Api(api_client)
    if not rbac.list_cluster_role(field_selector=f"metadata.name={READER_ROLE}").items:
        rbac.create_cluster_role(
            k8s.V1ClusterRole(
                metadata=k8s.V1ObjectMeta(name=READER_ROLE),
                rules=[
                    k8s.V1PolicyRule(
                        api_groups=[API_GROUP], resources=["computeservices", "servers"], verbs=["list", "watch"]
                    ),
                    k8s.V1PolicyRule(api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["list", "watch"]),
                ],
            )
        )
    rbac.create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name=f"{namespace}-facade-reader"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=READER_ROLE),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="facade", namespace=namespace)],
        )
    )
    wait_for(lambda: get(metrics_url + "/readyz")[0] == 200, timeout=90, what="/readyz to turn 200")
    assert get(metrics_url + "/healthz")[0] == 200

    status, _ = wait_for(lambda: answered(f"http://127.0.0.1:{api_port}/"), what="the API port")
    assert status == 200
    status, text = get(metrics_url + "/metrics")
    assert status == 200
    metrics = samples(text)
    assert count(metrics, "/", "GET", "200") >= 1
    assert any(name == "hoststate_facade_request_duration_seconds_bucket" for name, _ in metrics)
