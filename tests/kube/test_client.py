"""The client layer against the real API server: a rotated token is picked up after a 401; a patch
names its field manager."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import wait_for
from hoststate.kube import SERVERS, ApiError, KubeClient
from tests.kubeobjects import server
from tests.support.accounts import service_account_with_role


def bound_token(core: k8s.CoreV1Api, namespace: str, secret: str) -> str:
    """A token of ServiceAccount `reader` that dies with the Secret it is bound to."""
    core.create_namespaced_secret(namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=secret)))
    uid = core.read_namespaced_secret(secret, namespace).metadata.uid
    spec = k8s.V1TokenRequestSpec(
        audiences=[], bound_object_ref=k8s.V1BoundObjectReference(kind="Secret", api_version="v1", name=secret, uid=uid)
    )
    return core.create_namespaced_service_account_token(
        "reader", namespace, k8s.AuthenticationV1TokenRequest(spec=spec)
    ).status.token


def wait_until_rejected(api_client: k8s.ApiClient, token: str) -> None:
    """The API server notices a bound object's deletion through its caches: wait for it."""
    reviews = k8s.AuthenticationV1Api(api_client)
    wait_for(
        lambda: (
            not reviews.create_token_review(
                k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token))
            ).status.authenticated
        ),
        what="the token to be rejected",
    )


def write_kubeconfig(path: Path, cluster: DevCluster, token: str) -> None:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))


async def test_token_rotation_is_picked_up_after_a_401(
    cluster: DevCluster, api_client: k8s.ApiClient, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = k8s.CoreV1Api(api_client)
    service_account_with_role(api_client, namespace, "reader", "servers", ["list"])
    kubeconfig = tmp_path / "kubeconfig"
    first = bound_token(core, namespace, "first")
    write_kubeconfig(kubeconfig, cluster, first)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))

    async with KubeClient() as client:
        assert (await client.list(SERVERS, namespace))["items"] == []

        core.delete_namespaced_secret("first", namespace)  # the token dies with it
        wait_until_rejected(api_client, first)
        second = bound_token(core, namespace, "second")
        write_kubeconfig(kubeconfig, cluster, second)

        assert (await client.list(SERVERS, namespace))["items"] == []

        # Credentials given explicitly are not replaced behind the caller's back.
        core.delete_namespaced_secret("second", namespace)
        wait_until_rejected(api_client, second)
        fixed = KubeClient(client.info)
        with pytest.raises(ApiError) as refused:
            await fixed.list(SERVERS, namespace)
        assert refused.value.status == 401
        await fixed.close()


async def test_a_patch_names_its_field_manager_in_managed_fields(
    cluster: DevCluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    user = "system:serviceaccount:tenant:" + "x" * 200  # longer than the API server takes: cut to 128
    async with KubeClient() as client:
        await client.create(SERVERS, server("s1", "h1"), namespace)
        patched = await client.patch(SERVERS, "s1", {"spec": {"host": "h2"}}, namespace, field_manager=user)
    managers = {entry["manager"]: entry for entry in patched["metadata"]["managedFields"]}
    assert patched["spec"]["host"] == "h2"
    assert managers[user[:128]]["operation"] == "Update"
