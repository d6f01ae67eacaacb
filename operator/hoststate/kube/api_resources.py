"""The API resources hoststate reads and writes, and their URL paths."""

from __future__ import annotations

from dataclasses import dataclass

from .. import API_GROUP, API_VERSION


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


COMPUTE_SERVICES = Resource(API_GROUP, API_VERSION, "computeservices", namespaced=False)
SERVERS = Resource(API_GROUP, API_VERSION, "servers", namespaced=True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", namespaced=True)
EVENTS = Resource("", "v1", "events", namespaced=True)
SECRETS = Resource("", "v1", "secrets", namespaced=True)
HOST_STATUS_SUBSCRIPTIONS = Resource(API_GROUP, API_VERSION, "hoststatussubscriptions", namespaced=True)
