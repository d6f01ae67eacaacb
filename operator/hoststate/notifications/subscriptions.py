"""A subscription as the notifier uses it: its spec with the CRD's defaults, and who it wants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..domain.hoststatus import HOST_STATUSES
from .selector import selector_matches

SubscriptionKey = tuple[str, str]  # (namespace, name)
PER_SERVER = "PerServer"
PER_HOST_TRANSITION = "PerHostTransition"


@dataclass(frozen=True)
class SubscriptionSpec:
    namespace: str
    name: str
    uid: str
    generation: int
    url: str
    selector: Mapping[str, Any] | None
    host_statuses: frozenset[str]
    secret_name: str
    secret_key: str
    max_retries: int
    timeout: float
    delivery: str = PER_SERVER
    created: str = ""  # metadata.creationTimestamp: the oldest subscriptions of a namespace are served first

    @property
    def key(self) -> SubscriptionKey:
        return self.namespace, self.name

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SubscriptionSpec:
        """Defaults as the CRD's (an object stored before a default existed may lack it)."""
        meta, spec = body["metadata"], body.get("spec") or {}
        ref = spec.get("signingKeySecretRef") or {}
        statuses = spec.get("hostStatuses")
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            url=str(spec.get("url", "")),
            selector=spec.get("serverSelector") or None,
            host_statuses=frozenset(HOST_STATUSES if statuses is None else statuses),
            secret_name=str(ref.get("name", "")),
            secret_key=str(ref.get("key", "key")),
            max_retries=max(0, min(10, int(spec.get("maxRetries", 5)))),
            timeout=float(max(1, min(30, int(spec.get("timeoutSeconds", 5))))),
            delivery=PER_HOST_TRANSITION if spec.get("delivery") == PER_HOST_TRANSITION else PER_SERVER,
            created=str(meta.get("creationTimestamp") or ""),
        )

    def wants(self, namespace: str, new_host_status: str, labels: Mapping[str, str] | None) -> bool:
        """The tenant boundary first: a subscription sees only its own namespace's Servers."""
        return (
            namespace == self.namespace
            and new_host_status in self.host_statuses
            and selector_matches(self.selector, labels)
        )
