"""deploy/manifests renders with kustomize, every object passes a server-side dry run against
the real API server, and the workloads are hardened and wired together consistently."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from hoststate.devcluster.stack import Kubectl

from .conftest import HERE, INSTALL_NAMESPACE, find

MONITORING_CRDS = HERE / "crds"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="session")
def monitoring_crds(kubectl: Kubectl) -> None:
    """Test-only stand-ins of the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs."""
    kubectl("apply", "--server-side", "-f", str(MONITORING_CRDS), capture=True)
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted(MONITORING_CRDS.glob("*.yaml"))]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names), capture=True)
    # Established comes a moment before the REST mapping is served to clients.
    deadline = time.monotonic() + 60
    while kubectl("get", "servicemonitors,prometheusrules", "-A", check=False, capture=True).returncode != 0:
        assert time.monotonic() < deadline, "monitoring.coreos.com resources never served"
        time.sleep(0.1)


def test_base_renders_every_part(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted({o["kind"] for o in rendered})
    assert kinds == sorted(
        [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "Secret",
            "ConfigMap",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "ServiceMonitor",
            "PrometheusRule",
            "DaemonSet",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "NetworkPolicy",
            "Lease",
            "PodDisruptionBudget",
            "FlowSchema",
        ]
    )
    assert {o["metadata"]["name"] for o in rendered if o["kind"] == "ServiceAccount"} == {
        "hoststate-operator",
        "hoststate-facade",
        "hoststate-agent",
    }
    for obj in rendered:
        if obj["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == INSTALL_NAMESPACE, obj["metadata"]["name"]


def test_every_object_passes_a_server_side_dry_run(
    kubectl: Kubectl, rendered_text: str, monitoring_crds: None, install_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered_text)
    result = kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "-f", str(path), check=False, capture=True
    )
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len([doc for doc in yaml.safe_load_all(rendered_text) if doc]), result.stdout


def pod_templates(rendered: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(o["kind"], o["spec"]["template"]) for o in rendered if o["kind"] in ("Deployment", "DaemonSet")]


def test_pods_meet_the_restricted_pod_security_standard(
    rendered: list[dict[str, Any]], api_client: k8s.ApiClient, namespace: str
) -> None:
    """The API server's PodSecurity admission judges each pod template (dry run) in an enforcing namespace."""
    core = k8s.CoreV1Api(api_client)
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    ns = find(rendered, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for kind, template in pod_templates(rendered):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "psa-"},
            "spec": copy.deepcopy(template["spec"]),
        }
        try:
            core.create_namespaced_pod(namespace, pod, dry_run="All")
        except k8s.ApiException as error:
            pytest.fail(f"the {kind}'s pod is refused: {error.body}")


def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in template["spec"]["containers"]}


def test_operator_deployment(rendered: list[dict[str, Any]]) -> None:
    deployment = find(rendered, "Deployment", "hoststate")
    spec = deployment["spec"]
    # Two replicas, one leader (the election Lease): a rollout starts the new pod before stopping an old one.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert find(rendered, "Lease", "hoststate-operator")
    budget = find(rendered, "PodDisruptionBudget", "hoststate")["spec"]
    assert budget["minAvailable"] == 1 and budget["selector"] == spec["selector"]
    (spread,) = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spread["podAffinityTerm"]["labelSelector"] == spec["selector"]
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "hoststate-operator" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    by_name = containers(spec["template"])
    assert set(by_name) == {"operator", "facade"}
    assert by_name["operator"]["args"][0] == "operator" and by_name["facade"]["args"][0] == "facade"
    assert "--port=8774" in by_name["facade"]["args"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    tokens = {}
    for name, container in by_name.items():
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == SA_TOKEN_PATH)
        tokens[name] = volumes[mount["name"]]
    assert tokens["operator"]["projected"]["sources"][0]["serviceAccountToken"]["path"] == "token"
    secret = find(rendered, "Secret", tokens["facade"]["secret"]["secretName"])
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "hoststate-facade"


@pytest.mark.parametrize("workload", ["Deployment", "DaemonSet"])
def test_containers_are_hardened(rendered: list[dict[str, Any]], workload: str) -> None:
    template = find(rendered, workload)["spec"]["template"]
    assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in template["spec"]["containers"]:
        name = container["name"]
        assert container["image"] == "hoststate:dev"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, f"{name}: resources.{kind}"
        if workload == "Deployment":
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["readinessProbe"]["httpGet"]["path"] in ("/readyz", "/"), name


def test_agent_daemonset_heartbeats_its_node(rendered: list[dict[str, Any]]) -> None:
    daemonset = find(rendered, "DaemonSet", "hoststate-agent")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "hoststate-agent"
    (agent,) = pod["containers"]
    assert agent["args"][0] == "agent" and "--host=$(NODE_NAME)" in agent["args"]
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_service_and_servicemonitor_reach_the_containers(rendered: list[dict[str, Any]]) -> None:
    deployment = find(rendered, "Deployment", "hoststate")
    template = deployment["spec"]["template"]
    container_ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
    service = find(rendered, "Service", "hoststate")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports["nova-api"]["port"] == 8774
    for port in service_ports.values():
        assert port["targetPort"] in container_ports, f"Service port {port['name']} targets no container port"
    monitor = find(rendered, "ServiceMonitor", "hoststate")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    jobs = set()
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert endpoint["path"] == "/metrics"
        jobs |= {r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"}
    assert jobs == {"hoststate-operator", "hoststate-facade"}  # what the alerts select on


def test_the_operator_pod_reaches_dns_the_api_server_and_public_webhooks_only(rendered: list[dict[str, Any]]) -> None:
    policy = find(rendered, "NetworkPolicy", "hoststate-operator-egress")["spec"]
    template = find(rendered, "Deployment", "hoststate")["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Egress"]  # ingress (the Nova API, /metrics) is not restricted here
    dns, api_server, webhooks = policy["egress"]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert {p["port"] for p in api_server["ports"]} == {443, 6443}
    assert "ports" not in webhooks  # any port, of public addresses only:
    blocks = {block["ipBlock"]["cidr"]: set(block["ipBlock"]["except"]) for block in webhooks["to"]}
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16"} <= (
        blocks["0.0.0.0/0"]
    )
    assert {"::1/128", "fc00::/7", "fe80::/10"} <= blocks["::/0"]


def test_workloads_reference_objects_of_the_base(rendered: list[dict[str, Any]]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for kind, template in pod_templates(rendered):
        assert ("ServiceAccount", template["spec"]["serviceAccountName"]) in names, kind
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names, f"{kind}: {source}"
    for binding in (o for o in rendered if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in names, binding["metadata"]["name"]
        for subject in binding["subjects"]:
            assert ("ServiceAccount", subject["name"]) in names and subject["namespace"] == INSTALL_NAMESPACE
