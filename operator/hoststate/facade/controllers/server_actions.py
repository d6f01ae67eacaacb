"""POST /servers/{id}/action (nova/api/openstack/compute/evacuate.py and wsgi's action dispatch).

Served: `evacuate`. The server's spec.host moves to the target in one merge patch made with the
caller's own token, together with the request (annotation hoststate.io/evacuation); the operator
records it in status.evacuation (accepted, then done or failed). The caller needs `patch servers`
in the server's namespace, not `servers/status`.
"""

from __future__ import annotations

import logging
import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from oslo_utils import strutils

from ...domain import evacuation as rules
from ...domain.hoststatus import COMPUTE_BINARY, DEFAULT_ZONE
from ...kube import SERVERS, ApiError, KubeClient
from ...kubetime import kube_time, utcnow
from ..api_version import APIVersion
from ..cache import ClusterState, ServiceState
from ..common import get_instance, invalid_state_message
from ..context import RequestContext
from ..faults import HTTPBadRequest, HTTPConflict, HTTPNotFound
from ..policies.evacuate import EVACUATE
from ..policy import PolicyEngine
from ..schemas import evacuate as schemas
from ..validation import validate_body
from ..wsgi import body, context, json_response, version

log = logging.getLogger(__name__)

PASSWORD_LENGTH = 12  # Nova's [DEFAULT] password_length
PASSWORD_SYMBOLS = [c for c in string.ascii_letters + string.digits if c not in "0OIl1"]


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(PASSWORD_SYMBOLS) for _ in range(length))


@dataclass(frozen=True, slots=True)
class EvacuateBody:
    """The evacuate action's fields, as the request's microversion reads them."""

    host: str | None  # None: the facade chooses
    check_host: bool  # a given host is checked as Nova's scheduler would: not when forced, nor before 2.29
    stop: bool  # from 2.95 the server is stopped on its target
    legacy: bool  # before 2.14 the answer is the admin password
    admin_pass: str | None  # the password answered before 2.14

    @classmethod
    def read(cls, evacuate: dict[str, Any], requested: APIVersion) -> EvacuateBody:
        host = evacuate.get("host")
        force: bool | None = None  # None before 2.29: a given host is not checked (as force=True)
        if requested.at_least("2.68"):
            force = False
        elif requested.at_least("2.29"):
            force = strutils.bool_from_string(evacuate.get("force", False), strict=True)
            if force is True and not host:
                raise HTTPBadRequest("Can't force to a non-provided destination")
        legacy = not requested.at_least("2.14")
        return cls(
            host=host,
            check_host=force is False,
            stop=requested.at_least("2.95"),
            legacy=legacy,
            admin_pass=_legacy_admin_pass(evacuate) if legacy else None,
        )


def _legacy_admin_pass(evacuate: dict[str, Any]) -> str | None:
    """Before 2.14: the given password, or a new one; none on shared storage (the disk is kept)."""
    on_shared_storage = strutils.bool_from_string(evacuate["onSharedStorage"])
    if "adminPass" in evacuate:
        if on_shared_storage:
            raise HTTPBadRequest("admin password can't be changed on existing disk")
        return evacuate["adminPass"]
    return None if on_shared_storage else generate_password()


class ServerActionController:
    def __init__(self, state: ClusterState, policy: PolicyEngine, kube: KubeClient) -> None:
        self.state = state
        self.policy = policy
        self.kube = kube
        self.actions = {"evacuate": self._evacuate}

    async def action(self, request: web.Request) -> web.Response:
        """Nova's wsgi action dispatch: exactly one key names the action."""
        payload = body(request)
        if not isinstance(payload, dict) or len(payload) != 1:
            raise HTTPBadRequest("Malformed request body")
        name = next(iter(payload))
        handler = self.actions.get(name)
        if handler is None:
            raise HTTPBadRequest(f"There is no such action: {name}")
        return await handler(request, payload)

    # -- evacuate ------------------------------------------------------------------------
    async def _evacuate(self, request: web.Request, payload: dict[str, Any]) -> web.Response:
        """nova.api.openstack.compute.evacuate.EvacuateController._evacuate, in Nova's order:
        the body's schema, the instance, the policy, the body's fields, the hosts, the write."""
        requested = version(request)
        validate_body(schemas.for_version(requested), payload)
        ctx = context(request)
        server_id = request.match_info["server_id"]
        server = get_instance(self.state, ctx, server_id)
        spec = server.get("spec") or {}
        self.policy.can(
            ctx, EVACUATE, target={"user_id": spec.get("userId"), "project_id": server["metadata"]["namespace"]}
        )
        evacuate = EvacuateBody.read(payload["evacuate"], requested)
        source = self._source_service(server_id, spec, evacuate.host)
        target = self._target(source, evacuate.host, check=evacuate.check_host)
        record = rules.EvacuationRecord(
            id=str(uuid.uuid4()),
            source_host=source.host,
            target_host=target,
            requested_time=kube_time(utcnow()),
            trigger=rules.TRIGGER_API,
            requested_by=ctx.user_id[:512],
            target_state="stopped" if evacuate.stop else None,
        )
        await self._move(ctx, server, record)
        log.info(
            "evacuating server %s/%s from %s to %s (%s) for %s",
            server["metadata"]["namespace"],
            server["metadata"]["name"],
            source.host,
            target,
            "given" if evacuate.host else "chosen: enabled, up, fewest servers, same zone first",
            ctx.user_id,
        )
        if evacuate.legacy:
            # CONF.api.enable_instance_password defaults to True.
            return json_response({"adminPass": evacuate.admin_pass})
        return web.Response(status=200)

    def _source_service(self, server_id: str, spec: dict[str, Any], host: str | None) -> ServiceState:
        """The nova-compute service the server is evacuated from, after Nova's checks in its order:
        the given host exists and is not the source, the server's state (check_instance_state),
        its host has a service, which is down."""
        if host is not None and self.state.service_by_host_and_binary(host, COMPUTE_BINARY) is None:
            raise HTTPNotFound(f"Compute host {host} not found.")
        source = spec.get("host") or ""
        if source == host:
            raise HTTPBadRequest("The target host can't be the same one.")
        invalid = rules.invalid_state(spec.get("vmState"), spec.get("taskState"))
        if invalid is not None:
            raise HTTPConflict(invalid_state_message("evacuate", server_id, invalid.attr, invalid.state))
        if not source:
            raise HTTPConflict(invalid_state_message("evacuate", server_id, "host", None))
        service = self.state.service_by_host_and_binary(source, COMPUTE_BINARY)
        if service is None:
            raise HTTPNotFound(f"Compute host {source} could not be found.")
        if service.up:
            raise HTTPBadRequest(f"Compute service of {source} is still in use.")
        return service

    def _target(self, source: ServiceState, host: str | None, *, check: bool) -> str:
        """The given host (checked as Nova's scheduler would unless forced), else the chosen one."""
        hosts = rules.compute_hosts(
            (
                (s.host, s.spec.get("zone", DEFAULT_ZONE), s.facts)
                for s in self.state.all_services()
                if s.binary == COMPUTE_BINARY
            ),
            self.state.servers_on_host,
        )
        if host is not None:
            if check and not any(h.host == host and h.healthy for h in hosts):
                # Nova answers 200 and the evacuation fails in the scheduler later; there is no later here.
                raise HTTPBadRequest(f"No valid host was found. Host {host} is disabled, down or forced down.")
            return host
        target = rules.choose_target(source.host, source.spec.get("zone", DEFAULT_ZONE), hosts)
        if target is None:
            raise HTTPBadRequest("No valid host was found. There are not enough hosts available.")
        return target

    async def _move(self, ctx: RequestContext, server: dict[str, Any], record: rules.EvacuationRecord) -> None:
        """One merge patch with the caller's token, conditional on the version the checks saw.

        The cache may lag the API server (the operator writes status.hostStatus at any time): on a
        409 the server is read again with the caller's token, and the patch retried on the fresh
        version if what the checks looked at (host, VM and task state, evacuation request) is
        unchanged; otherwise the 409 stands and nothing moves."""
        caller = self.kube.as_token_holder(ctx.token)
        meta = server["metadata"]
        path = SERVERS.path(meta["namespace"], meta["name"])
        current = server
        for attempt in range(MOVE_ATTEMPTS):
            try:
                patched = await caller.patch(
                    SERVERS,
                    meta["name"],
                    rules.request_patch(
                        record, current["metadata"].get("resourceVersion"), stop=record.target_state == "stopped"
                    ),
                    meta["namespace"],
                    field_manager=ctx.user_id,
                )
                break
            except ApiError as error:
                if error.status != 409 or attempt == MOVE_ATTEMPTS - 1:
                    raise
                current = await caller.request("GET", path)
                if _checked(current) != _checked(server) or current["metadata"].get("uid") != meta.get("uid"):
                    raise
        await self.state.servers.wait_for(patched)


MOVE_ATTEMPTS = 3


def _checked(server: dict[str, Any]) -> tuple[Any, ...]:
    """What the evacuation's checks depend on."""
    spec = server.get("spec") or {}
    annotations = server["metadata"].get("annotations") or {}
    return (spec.get("host"), spec.get("vmState"), spec.get("taskState"), annotations.get(rules.EVACUATION_ANNOTATION))
