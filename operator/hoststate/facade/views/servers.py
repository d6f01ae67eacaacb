"""Server bodies shaped like nova/api/openstack/compute/views/servers.py.

What the Server custom resource does not carry is shown as Nova shows it for a server
without it: no volumes, no security groups (the key is then absent, as in Nova), empty
access IPs, no config drive, description null, no tags, MANUAL disk config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...domain import HostStatus
from ...kubetime import parse_kube_time as parse_time
from ..api_version import APIVersion
from ..cache import integer_id
from ..links import Links
from .formats import isotime, nova_datetime

Obj = dict[str, Any]

# nova/api/openstack/common.py: _STATE_MAP and status_from_state.
_RESIZE = {
    "resize_prep": "RESIZE",
    "resize_migrating": "RESIZE",
    "resize_migrated": "RESIZE",
    "resize_finish": "RESIZE",
}
_REBUILD = {"rebuilding": "REBUILD", "rebuild_block_device_mapping": "REBUILD", "rebuild_spawning": "REBUILD"}
STATE_MAP: dict[str, dict[str, str]] = {
    "active": {
        "default": "ACTIVE",
        "rebooting": "REBOOT",
        "reboot_pending": "REBOOT",
        "reboot_started": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "reboot_pending_hard": "HARD_REBOOT",
        "reboot_started_hard": "HARD_REBOOT",
        "updating_password": "PASSWORD",
        "migrating": "MIGRATING",
        **_REBUILD,
        **_RESIZE,
    },
    "building": {"default": "BUILD"},
    "stopped": {"default": "SHUTOFF", **_RESIZE, **_REBUILD},
    "resized": {"default": "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {"default": "PAUSED", "migrating": "MIGRATING"},
    "suspended": {"default": "SUSPENDED"},
    "rescued": {"default": "RESCUE"},
    "error": {"default": "ERROR", **_REBUILD},
    "deleted": {"default": "DELETED"},
    "soft-delete": {"default": "SOFT_DELETED"},
    "shelved": {"default": "SHELVED"},
    "shelved_offloaded": {"default": "SHELVED_OFFLOADED"},
}
PROGRESS_STATUSES = {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}


def status_from_state(vm_state: str, task_state: str | None) -> str:
    task_map = STATE_MAP.get(vm_state, {"default": "UNKNOWN"})
    return task_map.get(task_state or "default", task_map["default"])


@dataclass(frozen=True, slots=True)
class Visibility:
    """What policy lets this caller see."""

    extended_attributes: bool  # os_compute_api:os-extended-server-attributes
    host_status: bool | None  # None: never; True: only UNKNOWN; False: any (Nova's unknown_only)


def server_id(server: Obj) -> str:
    return server["metadata"]["uid"]


def server_name(server: Obj) -> str:
    return server.get("spec", {}).get("displayName") or server["metadata"]["name"]


def created_at(server: Obj) -> datetime | None:
    return parse_time(server["metadata"].get("creationTimestamp"))


def launched_at(server: Obj) -> datetime | None:
    """Nova sets launched_at when the server first runs: none while it builds, else its creation."""
    return None if (server.get("spec") or {}).get("vmState") == "building" else created_at(server)


def last_update(server: Obj) -> datetime | None:
    """The latest write the API server recorded (managedFields), else creation."""
    times = [parse_time(entry.get("time")) for entry in server["metadata"].get("managedFields", [])]
    times = [t for t in times if t is not None]
    return max(times) if times else created_at(server)


def host_id(project_id: str, host: str) -> str:
    """nova.utils.generate_hostid: opaque per project, so tenants can't map the fleet."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def instance_name(uid: str) -> str:
    """Nova's default instance_name_template, instance-%08x of the instance's integer id."""
    return f"instance-{integer_id(uid) & 0xFFFFFFFF:08x}"


def summary(server: Obj, links: Links) -> Obj:
    """An entry of GET /servers."""
    uid = server_id(server)
    return {"id": uid, "links": links.self_and_bookmark("servers", uid), "name": server_name(server)}


def _addresses(spec: Obj) -> Obj:
    return {
        network: [
            {
                "addr": entry["addr"],
                "version": entry.get("version", 4),
                "OS-EXT-IPS:type": entry.get("type", "fixed"),
                "OS-EXT-IPS-MAC:mac_addr": entry.get("macAddr"),
            }
            for entry in entries
        ]
        for network, entries in (spec.get("addresses") or {}).items()
    }


def _flavor(spec: Obj, links: Links, version: APIVersion) -> Obj:
    flavor_id = spec.get("flavorId") or ""
    if version.at_least("2.47"):
        # The Server resource names its flavor but does not embed its sizes: they are 0 here.
        return {
            "vcpus": 0,
            "ram": 0,
            "disk": 0,
            "ephemeral": 0,
            "swap": 0,
            "original_name": flavor_id,
            "extra_specs": {},
        }
    return {"id": flavor_id, "links": links.bookmark("flavors", flavor_id)}


def _image(spec: Obj, links: Links) -> Obj | str:
    image_id = spec.get("imageId")
    if not image_id:
        return ""  # Nova: boot from volume
    return {"id": image_id, "links": links.bookmark("images", image_id)}


def detail(
    server: Obj,
    *,
    links: Links,
    version: APIVersion,
    visibility: Visibility,
    host_status: HostStatus,
    zone: str | None,
    show_server_groups: bool = False,
) -> Obj:
    """A server of GET /servers/detail and GET /servers/{id}, its keys in Nova's order."""
    spec = server.get("spec", {})
    body = _basic_attributes(server, links, version, zone)
    if visibility.extended_attributes:
        body.update(_extended_attributes(server, version))
    elif version.at_least("2.90"):
        body["OS-EXT-SRV-ATTR:hostname"] = server["metadata"]["name"]  # everyone's from 2.90
    body["key_name"] = spec.get("keyName")
    body["OS-SRV-USG:launched_at"] = nova_datetime(launched_at(server))
    body["OS-SRV-USG:terminated_at"] = None
    body["OS-EXT-STS:task_state"] = spec.get("taskState")
    body["OS-EXT-STS:vm_state"] = spec.get("vmState", "active")
    body["OS-EXT-STS:power_state"] = spec.get("powerState", 1)
    body["os-extended-volumes:volumes_attached"] = []
    if version.at_least("2.9"):
        body["locked"] = False
    if host_status_shown(version, visibility, host_status):
        body["host_status"] = str(host_status)
    body.update(_later_attributes(version, show_server_groups=show_server_groups))
    return body


def _basic_attributes(server: Obj, links: Links, version: APIVersion, zone: str | None) -> Obj:
    """What every caller sees, up to config_drive."""
    spec = server.get("spec", {})
    meta = server["metadata"]
    uid, project_id = meta["uid"], meta.get("namespace", "")
    status = status_from_state(spec.get("vmState", "active"), spec.get("taskState"))
    body: Obj = {
        "id": uid,
        "name": server_name(server),
        "status": status,
        "tenant_id": project_id,
        "user_id": spec.get("userId") or "",
        "metadata": dict(spec.get("metadata") or {}),
        "hostId": host_id(project_id, spec.get("host", "")),
        "image": _image(spec, links),
        "flavor": _flavor(spec, links, version),
        "created": isotime(created_at(server)),
        "updated": isotime(last_update(server)),
        "addresses": _addresses(spec),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links.self_and_bookmark("servers", uid),
        "OS-DCF:diskConfig": "MANUAL",
    }
    if status in PROGRESS_STATUSES:
        body["progress"] = 0
    body["OS-EXT-AZ:availability_zone"] = spec.get("availabilityZone") or zone or ""
    if version.at_least("2.96"):
        # The zone the server was pinned to when it was created, if it asked for one.
        body["pinned_availability_zone"] = spec.get("availabilityZone") or None
    body["config_drive"] = ""
    return body


def _extended_attributes(server: Obj, version: APIVersion) -> Obj:
    """OS-EXT-SRV-ATTR:*, for those the extended attributes policy lets see them."""
    meta, host = server["metadata"], server.get("spec", {}).get("host", "")
    attributes: Obj = {
        "OS-EXT-SRV-ATTR:host": host or None,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": host or None,
        "OS-EXT-SRV-ATTR:instance_name": instance_name(meta["uid"]),
    }
    if version.at_least("2.3"):
        attributes.update(
            {
                "OS-EXT-SRV-ATTR:reservation_id": f"r-{meta['uid'][:8]}",
                "OS-EXT-SRV-ATTR:launch_index": 0,
                "OS-EXT-SRV-ATTR:hostname": meta["name"],
                "OS-EXT-SRV-ATTR:kernel_id": None,
                "OS-EXT-SRV-ATTR:ramdisk_id": None,
                "OS-EXT-SRV-ATTR:root_device_name": None,
                "OS-EXT-SRV-ATTR:user_data": None,
            }
        )
    return attributes


def _later_attributes(version: APIVersion, *, show_server_groups: bool) -> Obj:
    """What later microversions added after host_status, as a server without them has it."""
    attributes: Obj = {}
    if version.at_least("2.19"):
        attributes["description"] = None
    if version.at_least("2.26"):
        attributes["tags"] = []
    if version.at_least("2.63"):
        attributes["trusted_image_certificates"] = None
    if version.at_least("2.73"):
        attributes["locked_reason"] = None
    if show_server_groups and version.at_least("2.71"):
        attributes["server_groups"] = []  # GET /servers/{id} only, not the detail list (as Nova)
    return attributes


def host_status_shown(version: APIVersion, visibility: Visibility, value: HostStatus) -> bool:
    """Nova's unknown_only: None hides the field; True shows it only when UNKNOWN; False always."""
    if not version.at_least("2.16") or visibility.host_status is None:
        return False
    return visibility.host_status is False or value == HostStatus.UNKNOWN


class RenderedServers:
    """Serialised server bodies, without host_status, per server and what they depend on.

    A body changes only with the server's resourceVersion, the microversion, the links'
    root, the caller's right to the extended attributes, the host's zone and whether it is a
    show (which has server_groups from 2.71) or a list entry; host_status is
    the part that changes with time, so it is added at read time (as Nova computes it).
    """

    def __init__(self) -> None:
        self._bodies: dict[str, tuple[tuple[Any, ...], str]] = {}

    def body(
        self, server: Obj, *, links: Links, version: APIVersion, extended: bool, zone: str | None, show: bool = False
    ) -> str:
        meta = server["metadata"]
        key = (meta.get("resourceVersion"), version, links, extended, zone, show)
        cached = self._bodies.get(meta["uid"])
        if cached is not None and cached[0] == key:
            return cached[1]
        rendered = detail(
            server,
            links=links,
            version=version,
            visibility=Visibility(extended, None),
            host_status=HostStatus.NONE,
            zone=zone,
            show_server_groups=show,
        )
        text = json.dumps(rendered)
        self._bodies[meta["uid"]] = (key, text)
        return text

    def forget(self, uid: str) -> None:
        self._bodies.pop(uid, None)


def with_host_status(body: str, version: APIVersion, visibility: Visibility, value: HostStatus) -> str:
    """A rendered body with host_status added when policy shows it."""
    if not host_status_shown(version, visibility, value):
        return body
    return f'{body[:-1]}, "host_status": {json.dumps(value.value)}}}'
