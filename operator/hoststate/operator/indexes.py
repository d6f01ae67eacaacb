"""In-memory indexes: ComputeServices by name and by host, Servers by key and by host.

Fed by watch events. Records keep what the cluster last showed us, so the reconciler
writes only where the observed value differs from the desired one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..domain import ServiceFacts, service_is_up
from ..domain.hoststatus import COMPUTE_BINARY, DEFAULT_ZONE
from ..kube.informer import interned
from ..kubetime import parse_kube_time

ServerKey = tuple[str, str]  # (namespace, name)


def resource_version(body: dict[str, Any]) -> int | None:
    """etcd's revision as an int, to tell a stale watch event from a newer write.

    Kubernetes calls resourceVersion opaque; every API server backed by etcd uses the
    revision. Anything else falls back to 'always newer'.
    """
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def is_stale(incoming: int | None, known: int | None) -> bool:
    return incoming is not None and known is not None and incoming < known


@dataclass(slots=True)
class ServiceRecord:
    name: str
    uid: str
    host: str
    binary: str
    zone: str
    forced_down: bool
    disabled: bool
    disabled_reason: str | None
    created: datetime
    generation: int
    status: dict[str, Any]
    resource_version: int | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ServiceRecord:
        meta, spec = body["metadata"], body.get("spec", {})
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            host=spec.get("host", ""),
            binary=spec.get("binary", COMPUTE_BINARY),
            zone=spec.get("zone", DEFAULT_ZONE),
            forced_down=bool(spec.get("forcedDown", False)),
            disabled=bool(spec.get("disabled", False)),
            disabled_reason=spec.get("disabledReason"),
            created=parse_kube_time(meta.get("creationTimestamp")) or datetime.min,
            generation=int(meta.get("generation", 0)),
            status=dict(body.get("status") or {}),
            resource_version=resource_version(body),
        )

    @property
    def is_compute(self) -> bool:
        return self.binary == COMPUTE_BINARY


@dataclass
class ServiceIndex:
    by_name: dict[str, ServiceRecord] = field(default_factory=dict)
    compute_by_host: dict[str, str] = field(default_factory=dict)
    # Heartbeats come from Leases named like the service; kept apart so that a Lease seen
    # before its service (an agent started first) is not lost.
    heartbeats: dict[str, datetime] = field(default_factory=dict)

    def upsert(self, record: ServiceRecord) -> ServiceRecord | None:
        """Store the record; return the previous one."""
        previous = self.by_name.get(record.name)
        if previous is not None and previous.is_compute and self.compute_by_host.get(previous.host) == previous.name:
            del self.compute_by_host[previous.host]
        self.by_name[record.name] = record
        if record.is_compute:
            self.compute_by_host[record.host] = record.name
        return previous

    def remove(self, name: str) -> ServiceRecord | None:
        record = self.by_name.pop(name, None)
        if record is not None and self.compute_by_host.get(record.host) == name:
            del self.compute_by_host[record.host]
        return record

    def compute_service(self, host: str) -> ServiceRecord | None:
        name = self.compute_by_host.get(host)
        return self.by_name.get(name) if name else None

    def last_heartbeat(self, record: ServiceRecord) -> datetime:
        # Nova falls back to created_at for a service that never reported.
        return self.heartbeats.get(record.name) or record.created

    def facts(self, record: ServiceRecord, now: datetime, down_time: float) -> ServiceFacts:
        up = service_is_up(
            forced_down=record.forced_down, last_heartbeat=self.last_heartbeat(record), now=now, down_time=down_time
        )
        return ServiceFacts(forced_down=record.forced_down, disabled=record.disabled, up=up)


def slim_server(obj: dict[str, Any]) -> dict[str, Any]:
    """What the operator keeps of a Server (its watch cache holds 100,000s of them).

    The strings many servers share (namespace, host, hostStatus) are interned: one copy each,
    where JSON decoding makes one per server.
    """
    meta = obj["metadata"]
    return {
        # labels: for the notifications' server selectors.
        "metadata": {
            "name": meta.get("name"),
            "namespace": interned(meta.get("namespace")),
            "uid": meta.get("uid"),
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": meta.get("labels"),
        },
        "spec": {"host": interned((obj.get("spec") or {}).get("host", ""))},
        "status": {"hostStatus": interned((obj.get("status") or {}).get("hostStatus"))},
    }


# One shared empty mapping for the many servers without labels (it is never written to).
NO_LABELS: dict[str, str] = {}


@dataclass(slots=True)
class ServerRecord:
    key: ServerKey
    uid: str
    host: str
    generation: int
    host_status: str | None  # as last observed (watch event or our own patch's answer)
    resource_version: int | None
    labels: dict[str, str] = field(default_factory=dict)  # for the notifications' server selectors

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ServerRecord:
        meta = body["metadata"]
        return cls(
            key=(interned(meta["namespace"]), meta["name"]),
            uid=meta.get("uid", ""),
            host=interned((body.get("spec") or {}).get("host", "") or ""),
            generation=int(meta.get("generation") or 0),
            host_status=interned((body.get("status") or {}).get("hostStatus")),
            resource_version=resource_version(body),
            labels=meta.get("labels") or NO_LABELS,
        )


@dataclass
class ServerIndex:
    by_key: dict[ServerKey, ServerRecord] = field(default_factory=dict)
    by_host: dict[str, set[ServerKey]] = field(default_factory=lambda: defaultdict(set))

    def upsert(self, record: ServerRecord) -> ServerRecord | None:
        """Store the record unless it is older than what we know; return the one in force."""
        previous = self.by_key.get(record.key)
        if previous is not None:
            if is_stale(record.resource_version, previous.resource_version):
                return previous
            if previous.host != record.host:
                self._unlink(previous)
        self.by_key[record.key] = record
        self.by_host[record.host].add(record.key)
        return record

    def remove(self, key: ServerKey) -> ServerRecord | None:
        record = self.by_key.pop(key, None)
        if record is not None:
            self._unlink(record)
        return record

    def labels_of(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Server's labels (None: not known), for the notifications' server selectors."""
        record = self.by_key.get((namespace, name))
        return record.labels if record is not None else None

    def on_host(self, host: str) -> list[ServerRecord]:
        return [self.by_key[key] for key in self.by_host.get(host, ())]

    def hosts(self) -> list[str]:
        return [host for host, keys in self.by_host.items() if keys]

    def _unlink(self, record: ServerRecord) -> None:
        keys = self.by_host.get(record.host)
        if keys is not None:
            keys.discard(record.key)
            if not keys:
                del self.by_host[record.host]
