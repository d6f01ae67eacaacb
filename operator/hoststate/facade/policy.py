"""oslo.policy enforcement of Nova's rules, optionally overridden by a Nova-format policy file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oslo_config import cfg
from oslo_policy import policy

from .context import RequestContext
from .faults import policy_not_authorized
from .policies import list_rules


class PolicyEngine:
    def __init__(self, policy_file: Path | None = None) -> None:
        conf = cfg.ConfigOpts()
        conf([], project="hoststate-facade", default_config_files=[], default_config_dirs=[])
        self.enforcer = policy.Enforcer(
            conf, policy_file=str(policy_file.resolve()) if policy_file else None, use_conf=True
        )
        self.enforcer.register_defaults(list_rules())
        self.enforcer.load_rules()

    @staticmethod
    def _creds(context: RequestContext) -> dict[str, Any]:
        return {
            "user_id": context.user_id,
            "project_id": context.project_id,
            "roles": list(context.roles),
            "is_admin": context.is_admin,
        }

    def check_is_admin(self, user_id: str, project_id: str | None, roles: list[str]) -> bool:
        creds = {"user_id": user_id, "project_id": project_id, "roles": roles}
        return bool(self.enforcer.enforce("context_is_admin", {}, creds))

    def can(self, context: RequestContext, action: str, target: dict[str, Any] | None = None, *, fatal: bool = True) -> bool:
        """Nova's context.can: the target defaults to the caller's project and user."""
        if target is None:
            target = {"project_id": context.project_id, "user_id": context.user_id}
        allowed = bool(self.enforcer.authorize(action, target, self._creds(context)))
        if not allowed and fatal:
            raise policy_not_authorized(action)
        return allowed
