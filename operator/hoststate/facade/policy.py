"""The policy engine (nova/policy.py): oslo.policy enforcement of the rules in facade/policies/,
optionally overridden by a Nova-format policy file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oslo_config import cfg
from oslo_policy import policy

from .context import RequestContext
from .faults import policy_not_authorized
from .policies import list_rules

MAX_DECISIONS = 10_000  # distinct (rule, target, credentials); cleared when full


# A changed policy file applies within this many seconds (oslo.policy itself re-checks the
# file on every decision, which dominated the cost of a cached GET /servers/{id}).
POLICY_FILE_CHECK_SECONDS = 1.0


class PolicyEngine:
    def __init__(self, policy_file: Path | None = None) -> None:
        self.policy_file = policy_file
        self._decisions: dict[tuple, bool] = {}
        self._file_stamp = self._stamp()
        self._next_check = time.monotonic() + POLICY_FILE_CHECK_SECONDS
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

    def _stamp(self) -> tuple[int, int] | None:
        if self.policy_file is None:
            return None
        try:
            stat = self.policy_file.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _decide(self, key: tuple, decide: Callable[[], Any]) -> bool:
        """A decision depends only on the rule, the target and the credentials: cache it until
        the policy file changes."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + POLICY_FILE_CHECK_SECONDS
            stamp = self._stamp()
            if stamp != self._file_stamp:
                self._file_stamp = stamp
                self._decisions.clear()
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.clear()
            decision = self._decisions[key] = bool(decide())
        return decision

    def check_is_admin(self, user_id: str, project_id: str | None, roles: list[str]) -> bool:
        creds = {"user_id": user_id, "project_id": project_id, "roles": roles}
        key = ("context_is_admin", user_id, project_id, tuple(roles))
        return self._decide(key, lambda: self.enforcer.enforce("context_is_admin", {}, creds))

    def can(
        self, context: RequestContext, action: str, target: dict[str, Any] | None = None, *, fatal: bool = True
    ) -> bool:
        """Nova's context.can: the target defaults to the caller's project and user."""
        if target is None:
            target = {"project_id": context.project_id, "user_id": context.user_id}
        key = (
            action,
            tuple(sorted(target.items())),
            context.user_id,
            context.project_id,
            context.roles,
            context.is_admin,
        )
        allowed = self._decide(key, lambda: self.enforcer.authorize(action, target, self._creds(context)))
        if not allowed and fatal:
            raise policy_not_authorized(action)
        return allowed
