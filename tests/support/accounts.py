"""A ServiceAccount with a namespaced Role of its own: the identity most cluster tests start from."""

from __future__ import annotations

from kubernetes import client as k8s


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
