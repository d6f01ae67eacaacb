"""Identities for the cluster tests: a ServiceAccount with a namespaced Role of its own (the identity
most cluster tests start from), ClusterRoles to bind users to, and the API server's refusals."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client as k8s

from hoststate import API_GROUP


def service_account_with_role(
    api_client: k8s.ApiClient, namespace: str, account: str, resource: str, verbs: list[str]
) -> None:
    """Create `account` in `namespace`, allowed `verbs` on hoststate.io `resource` there and nothing else."""
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=account)))
    rbac = k8s.RbacAuthorizationV1Api(api_client)
    role = f"{account}-{resource}"
    rbac.create_namespaced_role(
        namespace,
        k8s.V1Role(
            metadata=k8s.V1ObjectMeta(name=role),
            rules=[k8s.V1PolicyRule(api_groups=["hoststate.io"], resources=[resource], verbs=verbs)],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name=role),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=role),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
        ),
    )


def cluster_role(api_client: k8s.ApiClient, name: str, verbs: Mapping[str, list[str]]) -> str:
    """Create the ClusterRole `name`, allowed `verbs[resource]` on each hoststate.io resource: its name."""
    k8s.RbacAuthorizationV1Api(api_client).create_cluster_role(
        k8s.V1ClusterRole(
            metadata=k8s.V1ObjectMeta(name=name),
            rules=[
                k8s.V1PolicyRule(api_groups=[API_GROUP], resources=[resource], verbs=list(allowed))
                for resource, allowed in verbs.items()
            ],
        )
    )
    return name


def refused_with(call: Callable[[], Any]) -> str:
    """The API server's message when it refuses `call` (403); fails if it is allowed."""
    try:
        call()
    except k8s.ApiException as error:
        assert error.status == 403, error.body
        return json.loads(error.body)["message"]
    raise AssertionError("allowed")
