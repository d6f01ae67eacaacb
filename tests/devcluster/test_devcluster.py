"""The local control plane: the auth APIs the facade needs, a clean shutdown, and a crash and restart of
either process."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from hoststate.devcluster import DevCluster
from tests.support.accounts import service_account_with_role


def test_token_request_review_and_access_review(api_client: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(api_client)
    service_account_with_role(api_client, namespace, "monitor", "servers", ["get", "list"])

    token = core.create_namespaced_service_account_token(
        "monitor", namespace, k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[]))
    ).status.token

    review = k8s.AuthenticationV1Api(api_client).create_token_review(
        k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token))
    )
    user = f"system:serviceaccount:{namespace}:monitor"
    assert review.status.authenticated is True
    assert review.status.user.username == user

    authz = k8s.AuthorizationV1Api(api_client)

    def allowed(verb: str, resource: str, ns: str | None) -> bool:
        attributes = k8s.V1ResourceAttributes(group="hoststate.io", resource=resource, verb=verb, namespace=ns)
        sar = k8s.V1SubjectAccessReview(
            spec=k8s.V1SubjectAccessReviewSpec(
                user=user, groups=review.status.user.groups, resource_attributes=attributes
            )
        )
        return authz.create_subject_access_review(sar).status.allowed

    assert allowed("get", "servers", namespace)
    assert not allowed("get", "servers", "someone-else")
    assert not allowed("patch", "computeservices", None)

    bad = k8s.AuthenticationV1Api(api_client).create_token_review(
        k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token[:-4] + "AAAA"))
    )
    assert not bad.status.authenticated


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone when /proc says so.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_launcher_leaves_nothing_behind(bin_dir: Path) -> None:
    dev = DevCluster(bin_dir=bin_dir)
    dev.start()
    pids = {name: proc.pid for name, proc in dev.processes.items()}
    workdir, data_dir = dev.workdir, dev._data_dir
    assert set(pids) == {"etcd", "kube-apiserver"}
    assert all(_alive(pid) for pid in pids.values())
    assert dev.kubeconfig.exists() and data_dir is not None and data_dir.exists()

    dev.stop()

    assert not any(_alive(pid) for pid in pids.values()), pids
    assert not workdir.exists()
    assert not data_dir.exists()


def test_killed_processes_restart_as_they_were(bin_dir: Path) -> None:
    """SIGKILL of etcd, then of kube-apiserver: each restarts on the same data, flags and port."""
    with DevCluster(bin_dir=bin_dir) as dev:
        api = k8s_config.new_client_from_config(config_file=str(dev.kubeconfig))
        core = k8s.CoreV1Api(api)
        core.create_namespaced_config_map("default", k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="kept")))
        server = dev.server
        for name in ("etcd", "kube-apiserver"):
            old_pid = dev.processes[name].pid
            dev.kill(name)
            assert not _alive(old_pid) and not dev.healthy
            dev.restart(name)
            assert dev.processes[name].pid != old_pid and dev.healthy
            assert dev.server == server
            assert core.read_namespaced_config_map("kept", "default").metadata.name == "kept"
        dev.kill("etcd")
        dev.kill("kube-apiserver")
        dev.revive()
        assert dev.healthy
        assert core.read_namespaced_config_map("kept", "default").metadata.name == "kept"
        api.close()
