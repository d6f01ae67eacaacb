"""/v3/auth/tokens (keystone/api/auth.py): issue (POST, the `token` method) and validate (GET, HEAD).

Stateless: the credential is a Kubernetes bearer token, TokenReview authenticates it, and the token
issued (X-Subject-Token) is that same bearer token; its project scope is in the catalog's compute URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from ....kubetime import utcnow
from ...auth import Authenticator
from ...context import KubeIdentity
from ...faults import HTTPBadRequest, HTTPNotFound, HTTPUnauthorized
from ...validation import validate_body
from ...wsgi import AUTHENTICATOR, body, json_response
from ..schemas import tokens as schemas
from ..views import tokens as views
from ..views.resources import DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME
from ..wsgi import identity_url, root

# Keystone's [token] expiration default, for bearer tokens that do not say when they expire (static
# tokens); clients authenticate again after it, with the same bearer token.
DEFAULT_LIFETIME = timedelta(hours=1)


def bearer_token_expiry(token: str) -> datetime | None:
    """A JWT's `exp` claim (ServiceAccount tokens are JWTs); None for tokens that are not JWTs.
    Read, not verified: TokenReview has already accepted the token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (binascii.Error, ValueError, TypeError, KeyError, OverflowError, OSError):
        return None


def audit_id(token: str) -> str:
    """The same id for every token issued from one bearer token (Keystone's audit chain), not the token."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()[:16]).decode().rstrip("=")


def default_domain(ref: dict[str, Any]) -> bool:
    return ref.get("id", DEFAULT_DOMAIN_ID) == DEFAULT_DOMAIN_ID and ref.get("name", DEFAULT_DOMAIN_NAME) in (
        DEFAULT_DOMAIN_NAME,
        DEFAULT_DOMAIN_ID,
    )


async def scoped_project(authenticator: Authenticator, who: KubeIdentity, scope: Any) -> str | None:
    """The project a token request is scoped to: the one named if the user may access it, else
    Keystone's 401. No scope: the user's default project (their ServiceAccount's namespace), else
    an unscoped token; "unscoped": an unscoped token. Domain and system scopes are not served."""
    if scope is None:
        return who.service_account_namespace
    if scope == "unscoped":
        return None
    if not isinstance(scope, dict) or "project" not in scope:
        kind = next(iter(scope), "scope") if isinstance(scope, dict) else "scope"
        raise HTTPUnauthorized(f"User {who.username} has no access to {kind}: only project scopes are served")
    project = scope["project"]
    if "domain" in project and not default_domain(project["domain"]):
        raise HTTPUnauthorized(f"Could not find domain: {project['domain'].get('id', project['domain'].get('name'))}.")
    project_id = project.get("id", project.get("name"))
    if not await authenticator.may_access(who, project_id):
        raise HTTPUnauthorized(f"User {who.username} has no access to project {project_id}")
    return project_id


class TokenController:
    async def issue(self, request: web.Request) -> web.Response:
        payload = body(request)
        if payload is None:
            raise HTTPBadRequest("Expecting to find auth in request body.")
        validate_body(schemas.issue, payload)
        auth = payload["auth"]
        methods = auth["identity"]["methods"]
        if "token" not in methods or "token" not in auth["identity"]:
            # No passwords or application credentials: Kubernetes holds no secret that could check them.
            raise HTTPUnauthorized("Attempted to authenticate with an unsupported method.")
        token = auth["identity"]["token"]["id"]
        authenticator = request.app[AUTHENTICATOR]
        who = await authenticator.authenticate(token)
        project_id = await scoped_project(authenticator, who, auth.get("scope"))
        response = json_response(await self._token(request, authenticator, who, token, project_id), status=201)
        response.headers["X-Subject-Token"] = token
        return response

    async def validate(self, request: web.Request) -> web.Response:
        """GET and HEAD with X-Subject-Token: the token as issued with the user's default scope (the
        scope asked for at issue is not kept anywhere)."""
        subject = request.headers.get("X-Subject-Token")
        if not subject:
            raise HTTPBadRequest("Expecting to find X-Subject-Token in request headers.")
        authenticator = request.app[AUTHENTICATOR]
        try:
            who = await authenticator.authenticate(subject)
        except HTTPUnauthorized:
            raise HTTPNotFound("Could not find token.") from None
        with_catalog = "nocatalog" not in request.query
        payload = await self._token(
            request, authenticator, who, subject, who.service_account_namespace, with_catalog=with_catalog
        )
        response = json_response(payload)
        response.headers["X-Subject-Token"] = subject
        return response

    async def _token(
        self,
        request: web.Request,
        authenticator: Authenticator,
        who: KubeIdentity,
        token: str,
        project_id: str | None,
        *,
        with_catalog: bool = True,
    ) -> dict[str, Any]:
        now = utcnow()
        roles = await authenticator.roles_in(who, project_id) if project_id else ()
        catalog = views.catalog(root(request), identity_url(request), project_id) if project_id else None
        return views.token(
            user_id=who.username,
            project_id=project_id,
            roles=roles,
            issued_at=now,
            expires_at=bearer_token_expiry(token) or now + DEFAULT_LIFETIME,
            audit_id=audit_id(token),
            catalog=catalog if with_catalog else None,
        )
