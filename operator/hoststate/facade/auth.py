"""X-Auth-Token is a Kubernetes bearer token: TokenReview says who it is, SubjectAccessReview
what they may do. No user database of our own; results are cached briefly.

Roles, as Keystone would give them, each from a distinct RBAC right (docs/security.md):
- `admin` (and member, reader) when the user may list servers in every namespace AND patch
  computeservices: reading every tenant's servers is what makes Nova's admin, not managing hosts;
- `service_manager` when the user may patch computeservices: os-services accepts it, servers do not;
- `member` and `reader` of project P when the user may get servers in namespace P.
The project is the tenant id in the URL if the user may get servers there (how a token the identity
endpoint scoped to one of the user's projects comes back: its catalog's compute URL names the
project), else the ServiceAccount's namespace (Kubernetes vouches for it), else none: a URL alone
gives nothing.

Under a flood of made-up tokens: a token that cannot be a bearer token is refused without a
review; reviews are cached (known and unknown tokens apart, each a bounded LRU, so unknown ones
cannot push known ones out) and at most MAX_CONCURRENT_TOKEN_REVIEWS run at a time, so the
flood queues behind itself and leaves the API server connections to everything else.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from .. import API_GROUP
from ..kube import KubeClient
from ..ttl_cache import TTLCache
from .context import KubeIdentity, RequestContext
from .faults import HTTPUnauthorized
from .policies.base import ADMIN_ROLE, MEMBER_ROLE, READER_ROLE, SERVICE_MANAGER_ROLE
from .policy import PolicyEngine

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

# RFC 6750's b64token: what every Kubernetes bearer token is made of (JWTs, bootstrap and static
# tokens). A longer one does not fit a header aiohttp accepts anyway (8190 bytes).
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MAX_TOKEN_LENGTH = 8192
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1123 label
MAX_CONCURRENT_TOKEN_REVIEWS = 8
MAX_KNOWN_TOKENS = 10_000
MAX_REVIEWED_TOKENS = 10_000  # recent reviews, unknown tokens included (the negative cache)


def plausible_bearer_token(token: str) -> bool:
    """Whether `token` may be a bearer token at all (cheap: decides before any TokenReview)."""
    return len(token) <= MAX_TOKEN_LENGTH and BEARER_TOKEN.fullmatch(token) is not None


class Authenticator:
    def __init__(self, kube: KubeClient, policy: PolicyEngine, *, cache_ttl: float = 10.0) -> None:
        self.kube = kube
        self.policy = policy
        # Keyed by a digest: the caches must not keep bearer tokens in memory longer than needed.
        self._known: TTLCache[KubeIdentity] = TTLCache(cache_ttl, max_entries=MAX_KNOWN_TOKENS)
        self._reviews: TTLCache[KubeIdentity | None] = TTLCache(cache_ttl, max_entries=MAX_REVIEWED_TOKENS)
        self._review_slots = asyncio.Semaphore(MAX_CONCURRENT_TOKEN_REVIEWS)
        self._access: TTLCache[bool] = TTLCache(cache_ttl)

    async def authenticate(self, token: str | None) -> KubeIdentity:
        if not token or not plausible_bearer_token(token):
            raise HTTPUnauthorized()
        key = hashlib.sha256(token.encode()).digest()
        identity = self._known.peek(key)
        if identity is None:
            identity = await self._reviews.get(key, lambda: self._review(token))
            if identity is None:
                raise HTTPUnauthorized()
            self._known.put(key, identity)
        return identity

    async def _review(self, token: str) -> KubeIdentity | None:
        async with self._review_slots:
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
        """Whether RBAC lets `identity` do `verb` on `resource` in `namespace` (None: in every namespace)."""
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

    async def may_access(self, identity: KubeIdentity, project_id: str) -> bool:
        """Whether project `project_id` (a namespace) is one of the user's: they may get servers there.
        A name no namespace can have is no one's project, decided without a review."""
        if project_id == identity.service_account_namespace:
            return True
        return NAMESPACE_NAME.fullmatch(project_id) is not None and await self.may(
            identity, "get", "servers", project_id
        )

    async def projects_of(self, identity: KubeIdentity, candidates: Iterable[str]) -> list[str]:
        """Those of `candidates` (namespaces) the user may access, sorted; one review per candidate
        at most (none when the user may list servers in every namespace)."""
        names = sorted({name for name in candidates if NAMESPACE_NAME.fullmatch(name)})
        if await self.may(identity, "list", "servers"):
            return names
        allowed: list[bool] = []
        for start in range(0, len(names), MAX_CONCURRENT_TOKEN_REVIEWS):  # a few reviews at a time, as for tokens
            batch = names[start : start + MAX_CONCURRENT_TOKEN_REVIEWS]
            allowed += await asyncio.gather(*(self.may_access(identity, name) for name in batch))
        return [name for name, ok in zip(names, allowed, strict=True) if ok]

    async def project_of(self, identity: KubeIdentity, url_project_id: str | None) -> str | None:
        """The project Kubernetes vouches for: the URL's tenant id if the user may get servers
        there, else the ServiceAccount's namespace."""
        if url_project_id and await self.may_access(identity, url_project_id):
            return url_project_id
        return identity.service_account_namespace

    async def roles_in(self, identity: KubeIdentity, project_id: str | None) -> tuple[str, ...]:
        """Nova's roles of the user with `project_id` as their project (None: no project)."""
        manages_services, reads_all_servers, member = await asyncio.gather(
            self.may(identity, "patch", "computeservices"),
            self.may(identity, "list", "servers"),
            self.may(identity, "get", "servers", project_id) if project_id else _false(),
        )
        return nova_roles(manages_services=manages_services, reads_all_servers=reads_all_servers, project_member=member)

    async def context(self, token: str | None, url_project_id: str | None) -> RequestContext:
        identity = await self.authenticate(token)
        project_id = await self.project_of(identity, url_project_id)
        roles = await self.roles_in(identity, project_id)
        is_admin = self.policy.check_is_admin(identity.username, project_id, list(roles))
        return RequestContext(
            identity=identity, project_id=project_id, roles=roles, is_admin=is_admin, token=token or ""
        )


def nova_roles(*, manages_services: bool, reads_all_servers: bool, project_member: bool) -> tuple[str, ...]:
    """Nova's roles from the RBAC rights (the table in docs/security.md)."""
    admin = manages_services and reads_all_servers
    roles: list[str] = []
    if admin:
        roles.append(ADMIN_ROLE)
    if manages_services:
        roles.append(SERVICE_MANAGER_ROLE)
    if admin or project_member:
        roles += [MEMBER_ROLE, READER_ROLE]
    return tuple(roles)


async def _false() -> bool:
    return False
