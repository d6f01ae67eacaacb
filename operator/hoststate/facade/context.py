"""Who is calling: the Kubernetes identity and token (writes are made with it) and the Nova view
of it (for policy)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KubeIdentity:
    """A user as TokenReview returned it."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def service_account_namespace(self) -> str | None:
        """system:serviceaccount:<namespace>:<name> -> <namespace>."""
        parts = self.username.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            return parts[2]
        return None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """nova.context.RequestContext, as far as policy and listing need it."""

    identity: KubeIdentity
    project_id: str | None
    roles: tuple[str, ...]
    is_admin: bool
    # The caller's bearer token, for the writes made on their behalf; lives only as long as the request.
    token: str = field(default="", repr=False)

    @property
    def user_id(self) -> str:
        return self.identity.username
