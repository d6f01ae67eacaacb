"""X-Auth-Token is a Kubernetes bearer token: TokenReview says who it is, SubjectAccessReview
what they may do. No user database of our own; results are cached briefly.

Roles, as Keystone would give them:
- `admin` (and member, reader) when the user may patch computeservices;
- `member` and `reader` of project P when the user may get servers in namespace P.
The project is the ServiceAccount's namespace, else the tenant id in the URL, else none.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from .. import API_GROUP
from ..kube import KubeClient
from ..ttl_cache import TTLCache
from .context import KubeIdentity, RequestContext
from .faults import HTTPUnauthorized
from .policy import PolicyEngine

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class Authenticator:
    def __init__(self, kube: KubeClient, policy: PolicyEngine, *, cache_ttl: float = 10.0) -> None:
        self.kube = kube
        self.policy = policy
        self._tokens = TTLCache(cache_ttl)
        self._access = TTLCache(cache_ttl)

    async def authenticate(self, token: str | None) -> KubeIdentity:
        if not token:
            raise HTTPUnauthorized()
        # Key by a digest: the cache must not keep bearer tokens in memory longer than needed.
        identity = await self._tokens.get(hashlib.sha256(token.encode()).digest(), lambda: self._review(token))
        if identity is None:
            raise HTTPUnauthorized()
        return identity

    async def _review(self, token: str) -> KubeIdentity | None:
        review = await self.kube.request(
            "POST",
            TOKEN_REVIEWS,
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status = review.get("status", {})
        if not status.get("authenticated"):
            return None
        user = status.get("user", {})
        return KubeIdentity(
            username=user.get("username", ""),
            uid=user.get("uid", ""),
            groups=tuple(user.get("groups", [])),
            extra={k: list(v) for k, v in (user.get("extra") or {}).items()},
        )

    async def may(self, identity: KubeIdentity, verb: str, resource: str, namespace: str | None = None) -> bool:
        key = (identity.username, identity.uid, identity.groups, verb, resource, namespace)
        return await self._access.get(key, lambda: self._access_review(identity, verb, resource, namespace))

    async def _access_review(self, identity: KubeIdentity, verb: str, resource: str, namespace: str | None) -> bool:
        attributes: dict[str, Any] = {"group": API_GROUP, "resource": resource, "verb": verb}
        if namespace:
            attributes["namespace"] = namespace
        spec: dict[str, Any] = {
            "user": identity.username,
            "groups": list(identity.groups),
            "extra": identity.extra,
            "resourceAttributes": attributes,
        }
        if identity.uid:
            spec["uid"] = identity.uid
        review = await self.kube.request(
            "POST",
            SUBJECT_ACCESS_REVIEWS,
            body={"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        return bool(review.get("status", {}).get("allowed"))

    async def context(self, token: str | None, url_project_id: str | None) -> RequestContext:
        identity = await self.authenticate(token)
        project_id = identity.service_account_namespace or url_project_id
        admin, member = await asyncio.gather(
            self.may(identity, "patch", "computeservices"),
            self.may(identity, "get", "servers", project_id) if project_id else _false(),
        )
        roles: list[str] = []
        if admin:
            roles.append("admin")
        if admin or member:
            roles += ["member", "reader"]
        is_admin = self.policy.check_is_admin(identity.username, project_id, roles)
        return RequestContext(
            identity=identity, project_id=project_id, roles=tuple(roles), is_admin=is_admin, token=token or ""
        )


async def _false() -> bool:
    return False
