"""The facade's cache of the cluster: informers on ComputeServices, Servers and heartbeat
Leases, and the indexes Nova's queries need. Reads never go to the API server; liveness and
host_status are computed at read time with the domain rules, as Nova computes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from sys import intern  # keys: always strings
from typing import Any

from ..domain import HostStatus, ServiceFacts, effective_service_down_time, host_status, service_is_up
from ..domain.hoststatus import COMPUTE_BINARY
from ..kube import COMPUTE_SERVICES, LEASES, SERVERS, KubeClient
from ..kube.informer import Informer, interned
from ..kubetime import parse_kube_time as parse_time
from ..kubetime import utcnow
from ..resources.lease import DEFAULT_LEASE_NAMESPACE, lease_heartbeat

Obj = dict[str, Any]


def integer_id(uid: str) -> int:
    """The integer id Nova's database would give the object (a service's id below 2.53, the number
    in a server's instance name): the first 52 bits of its metadata.uid.

    Stable for the object's life, JSON-safe, and collisions are negligible at fleet sizes.
    """
    return int(uid.replace("-", "")[:13], 16)


def cached_server(obj: Obj) -> Obj:
    """A Server as the facade keeps it (its cache holds 100,000s): the object without what no view
    reads, and the strings many servers share interned, the keys too (JSON decoding makes one copy
    per server: each is decoded from its own watch event).

    managedFields, most of a Server's bytes, shrink to the latest write's time, which is all the
    views read of them (the server's updated_at).
    """
    meta, spec, status = obj["metadata"], obj.get("spec"), obj.get("status")
    slim_meta = {intern(key): value for key, value in meta.items() if key != "managedFields"}
    slim_meta["namespace"] = interned(meta.get("namespace"))
    if times := [entry["time"] for entry in meta.get("managedFields") or () if entry.get("time")]:
        slim_meta["managedFields"] = [{"time": max(times, key=parse_time)}]
    slim = {intern(key): interned(value) for key, value in obj.items()}  # apiVersion and kind: the same in all
    slim["metadata"] = slim_meta
    if isinstance(spec, dict):
        slim["spec"] = _with_shared_strings(spec, SHARED_SPEC_FIELDS)
    if isinstance(status, dict):
        slim["status"] = _with_shared_strings(status, SHARED_STATUS_FIELDS)
    return slim


# Fields whose values many servers share (a host's, a tenant's, a flavor's): interned. Unique values
# (names, addresses) are not: interning them would only add an entry to the interpreter's table.
SHARED_SPEC_FIELDS = frozenset(
    {"host", "userId", "vmState", "taskState", "availabilityZone", "flavorId", "imageId", "keyName"}
)
SHARED_STATUS_FIELDS = frozenset({"hostStatus", "hostStatusChangedTime"})


def _with_shared_strings(fields: Obj, shared: frozenset[str]) -> Obj:
    return {intern(key): interned(value) if key in shared else value for key, value in fields.items()}


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One ComputeService as Nova's service record, evaluated now."""

    obj: Obj
    last_heartbeat: datetime | None
    up: bool

    @property
    def spec(self) -> Obj:
        return self.obj.get("spec", {})

    @property
    def uid(self) -> str:
        return self.obj["metadata"]["uid"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def host(self) -> str:
        return self.spec.get("host", "")

    @property
    def binary(self) -> str:
        return self.spec.get("binary", COMPUTE_BINARY)

    @property
    def disabled(self) -> bool:
        return bool(self.spec.get("disabled", False))

    @property
    def forced_down(self) -> bool:
        return bool(self.spec.get("forcedDown", False))

    @property
    def facts(self) -> ServiceFacts:
        return ServiceFacts(forced_down=self.forced_down, disabled=self.disabled, up=self.up)


class ClusterState:
    """What the facade knows of the cluster, kept current by watches: ComputeServices, Servers and
    Leases as the informers hold them, indexed for Nova's look-ups (by host and binary, uid, integer
    id, project), with generation counters the response caches key on. A service's liveness and a
    server's host_status are computed at read time (`evaluate`, `host_status_of_host`), never stored.
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        lease_namespace: str = DEFAULT_LEASE_NAMESPACE,
        service_down_time: float = 60.0,
        report_interval: float = 10.0,
    ) -> None:
        self.kube = kube
        self.down_time = effective_service_down_time(service_down_time, report_interval)
        self.services = Informer(kube, COMPUTE_SERVICES)
        self.servers = Informer(kube, SERVERS, transform=cached_server)
        self.leases = Informer(kube, LEASES, lease_namespace)
        self.lease_namespace = lease_namespace
        self._service_by_host_binary: dict[tuple[str, str], Obj] = {}
        self._service_by_uid: dict[str, Obj] = {}
        self._service_by_legacy_id: dict[int, Obj] = {}
        self._server_by_uid: dict[str, Obj] = {}
        self._servers_by_project: dict[str, dict[str, Obj]] = {}
        # Bumped on every change of a project's servers (and "" for any), and of any service:
        # response caches key on them.
        self.server_generations: Counter[str] = Counter()
        self.service_generation = 0
        self._servers_per_host: Counter[str] = Counter()
        self.services.add_handler(self._index_service)
        self.servers.add_handler(self._index_server)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        for informer in self.informers:
            informer.start()
        await asyncio.gather(*(informer.synced.wait() for informer in self.informers))

    async def stop(self) -> None:
        await asyncio.gather(*(informer.stop() for informer in self.informers))

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.services, self.servers, self.leases)

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers)

    @property
    def healthy(self) -> bool:
        """Every cache has synced and no watch loop has died (they retry forever unless broken)."""
        return self.synced and all(informer.running for informer in self.informers)

    # -- indexes -------------------------------------------------------------------
    def _index_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self.service_generation += 1
        if old is not None:
            spec, uid = old.get("spec", {}), old["metadata"]["uid"]
            self._service_by_host_binary.pop((spec.get("host", ""), spec.get("binary", COMPUTE_BINARY)), None)
            self._service_by_uid.pop(uid, None)
            self._service_by_legacy_id.pop(integer_id(uid), None)
        if new is not None:
            spec, uid = new.get("spec", {}), new["metadata"]["uid"]
            self._service_by_host_binary[(spec.get("host", ""), spec.get("binary", COMPUTE_BINARY))] = new
            self._service_by_uid[uid] = new
            self._service_by_legacy_id[integer_id(uid)] = new

    def _index_server(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self.server_generations[""] += 1
        for obj in (old, new):
            if obj is not None:
                self.server_generations[obj["metadata"]["namespace"]] += 1
        if old is not None:
            uid = old["metadata"]["uid"]
            self._server_by_uid.pop(uid, None)
            self._servers_by_project.get(old["metadata"]["namespace"], {}).pop(uid, None)
            if host := old.get("spec", {}).get("host"):
                self._servers_per_host[host] -= 1
        if new is not None:
            uid = new["metadata"]["uid"]
            self._server_by_uid[uid] = new
            self._servers_by_project.setdefault(new["metadata"]["namespace"], {})[uid] = new
            if host := new.get("spec", {}).get("host"):
                self._servers_per_host[host] += 1

    # -- services --------------------------------------------------------------------
    def evaluate(self, obj: Obj, now: datetime | None = None) -> ServiceState:
        now = now or utcnow()
        lease = self.leases.get(obj["metadata"]["name"], self.lease_namespace)
        renewed = None
        if lease is not None:
            # A Lease that may not count (held by another host) is ignored, as the operator does.
            with contextlib.suppress(ValueError):
                renewed = lease_heartbeat(lease, obj.get("spec", {}).get("host", ""))
        # No Lease yet: Nova falls back to the record's created_at the same way.
        last = renewed or parse_time(obj["metadata"].get("creationTimestamp"))
        forced = bool(obj.get("spec", {}).get("forcedDown", False))
        up = service_is_up(forced_down=forced, last_heartbeat=last, now=now, down_time=self.down_time)
        return ServiceState(obj=obj, last_heartbeat=last, up=up)

    def all_services(self) -> Iterator[ServiceState]:
        now = utcnow()
        for obj in sorted(self.services.items(), key=lambda o: o["metadata"].get("creationTimestamp", "")):
            yield self.evaluate(obj, now)

    def service_by_host_and_binary(self, host: str, binary: str) -> ServiceState | None:
        obj = self._service_by_host_binary.get((host, binary))
        return self.evaluate(obj) if obj else None

    def service_by_uid(self, uid: str) -> ServiceState | None:
        obj = self._service_by_uid.get(uid)
        return self.evaluate(obj) if obj else None

    def service_by_legacy_id(self, legacy_id: int) -> ServiceState | None:
        obj = self._service_by_legacy_id.get(legacy_id)
        return self.evaluate(obj) if obj else None

    def servers_on_host(self, host: str) -> int:
        return self._servers_per_host.get(host, 0)

    # -- servers ---------------------------------------------------------------------
    def all_servers(self) -> Iterator[Obj]:
        return self.servers.items()

    def servers_of_project(self, project_id: str) -> list[Obj]:
        return list(self._servers_by_project.get(project_id, {}).values())

    def server_by_uid(self, uid: str) -> Obj | None:
        return self._server_by_uid.get(uid)

    def host_status(self, server: Obj) -> HostStatus:
        """Nova's get_instance_host_status, at read time."""
        return self.host_status_of_host(server.get("spec", {}).get("host", ""))

    def host_status_of_host(self, host: str, now: datetime | None = None) -> HostStatus:
        if not host:
            return host_status(None)
        obj = self._service_by_host_binary.get((host, COMPUTE_BINARY))
        return host_status(self.evaluate(obj, now).facts if obj else None)

    def zone_of_host(self, host: str) -> str | None:
        service = self._service_by_host_binary.get((host, COMPUTE_BINARY))
        return service.get("spec", {}).get("zone") if service else None
