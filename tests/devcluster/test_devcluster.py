"""The local control plane: the auth APIs the facade needs, and a clean shutdown."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client as k8s

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
