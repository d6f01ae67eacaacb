"""os-services (nova/api/openstack/compute/services.py): list, the legacy PUT actions
(2.1-2.52), PUT by uuid (2.53+), DELETE. Writes are made with the caller's own token."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from oslo_utils import strutils, uuidutils

from ...domain.hoststatus import COMPUTE_BINARY
from ...kube import COMPUTE_SERVICES, KubeClient
from ..cache import ClusterState, ServiceState
from ..common import force_up_refused_message, pending_evacuations_from
from ..context import RequestContext
from ..faults import HTTPBadRequest, HTTPConflict, HTTPNotFound
from ..policies import services as policies
from ..policy import PolicyEngine
from ..schemas import services as schemas
from ..validation import validate_body, validate_query
from ..views import services as views
from ..wsgi import body, context, json_response, no_content, query_lists, version

# The API services are not RPC services and never heartbeat; Nova leaves them out (bug 1543625).
API_SERVICES = ("nova-osapi_compute", "nova-metadata")


class ServiceController:
    def __init__(self, state: ClusterState, policy: PolicyEngine, kube: KubeClient) -> None:
        self.state = state
        self.policy = policy
        self.kube = kube
        self.actions = {
            "enable": self._enable,
            "disable": self._disable,
            "disable-log-reason": self._disable_log_reason,
        }

    # -- GET /os-services -------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        ctx = context(request)
        query_schema = (
            schemas.index_query_schema_v275 if version(request).at_least("2.75") else schemas.index_query_schema
        )
        validate_query(query_schema, query_lists(request))
        self.policy.can(ctx, policies.LIST, target={})
        host = request.query.getall("host", [""])[-1]
        binary = request.query.getall("binary", [""])[-1]
        services = [s for s in self.state.all_services() if s.binary not in API_SERVICES]
        if host:
            services = [s for s in services if s.host == host]
        if binary:
            services = [s for s in services if s.binary == binary]
        return json_response(views.services_list(services, version(request)))

    # -- PUT /os-services/{action}, 2.1 to 2.52 -----------------------------------------------
    async def update_legacy(self, request: web.Request) -> web.Response:
        requested = version(request)
        payload = body(request)
        validate_body(schemas.service_update_v211 if requested.at_least("2.11") else schemas.service_update, payload)
        ctx = context(request)
        self.policy.can(ctx, policies.UPDATE, target={})
        actions = dict(self.actions)
        if requested.at_least("2.11"):
            actions["force-down"] = self._forced_down
        action = actions.get(request.match_info["id"])
        if action is None:
            raise HTTPNotFound("Unknown action")
        return json_response(await action(ctx, payload))

    async def _enable(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._enable_disable(ctx, payload, "enabled", {"disabled": False, "disabledReason": None})

    async def _disable(self, ctx: RequestContext, payload: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return await self._enable_disable(ctx, payload, "disabled", {"disabled": True, "disabledReason": reason})

    async def _disable_log_reason(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        if "disabled_reason" not in payload:
            raise HTTPBadRequest("Missing disabled reason field")
        return await self._disable(ctx, payload, payload["disabled_reason"])

    async def _enable_disable(
        self, ctx: RequestContext, payload: dict[str, Any], status: str, spec: dict[str, Any]
    ) -> dict[str, Any]:
        await self._update_by_host_and_binary(ctx, payload["host"], payload["binary"], spec)
        return views.enable_disable(payload["host"], payload["binary"], status, spec["disabledReason"])

    async def _forced_down(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        if "forced_down" not in payload:
            raise HTTPBadRequest("Missing forced_down field")
        forced_down = strutils.bool_from_string(payload["forced_down"])
        await self._update_by_host_and_binary(ctx, payload["host"], payload["binary"], {"forcedDown": forced_down})
        return views.forced_down(payload["host"], payload["binary"], forced_down)

    async def _update_by_host_and_binary(
        self, ctx: RequestContext, host: str, binary: str, spec: dict[str, Any]
    ) -> None:
        _refuse_unless_compute(binary)
        service = self.state.service_by_host_and_binary(host, binary)
        if service is None:
            # Nova finds the host's cell first: a host without a compute service has no mapping.
            raise HTTPNotFound(f"Host '{host}' is not mapped to any cell")
        await self._patch(ctx, service, spec)

    # -- PUT /os-services/{uuid}, 2.53+ ----------------------------------------------------
    async def update(self, request: web.Request) -> web.Response:
        payload = body(request)
        validate_body(schemas.service_update_v2_53, payload)
        service_id = request.match_info["id"]
        service_uuid = _canonical_uuid(service_id)
        ctx = context(request)
        self.policy.can(ctx, policies.UPDATE, target={})
        service = self.state.service_by_uid(service_uuid)
        if service is None:
            raise HTTPNotFound(f"Service {service_id} could not be found.")
        _refuse_unless_compute(service.binary)
        spec: dict[str, Any] = {}
        if "status" in payload:
            if payload["status"] == "enabled":
                if payload.get("disabled_reason"):
                    raise HTTPBadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
                spec.update(disabled=False, disabledReason=None)
            else:
                spec.update(disabled=True, disabledReason=payload.get("disabled_reason"))
        if "forced_down" in payload:
            spec["forcedDown"] = strutils.bool_from_string(payload["forced_down"], strict=True)
        if not spec:
            raise HTTPBadRequest("No updates were requested. Fields 'status' or 'forced_down' should be specified.")
        updated = await self._patch(ctx, service, spec)
        return json_response({"service": views.service_detail(updated, version(request))})

    # -- DELETE /os-services/{id} -----------------------------------------------------------
    async def delete(self, request: web.Request) -> web.Response:
        ctx = context(request)
        self.policy.can(ctx, policies.DELETE, target={})
        service_id = request.match_info["id"]
        if version(request).at_least(views.UUID_FOR_ID):
            service = self.state.service_by_uid(_canonical_uuid(service_id))
        else:
            try:
                legacy_id = int(service_id)
            except ValueError:
                raise HTTPBadRequest("Invalid input received: id must be an integer") from None
            service = self.state.service_by_legacy_id(legacy_id)
        if service is None:
            raise HTTPNotFound(f"Service {service_id} not found.")
        if service.binary == COMPUTE_BINARY and self.state.servers_on_host(service.host):
            raise HTTPConflict(
                "Unable to delete compute service that is hosting instances. Migrate or delete the instances first."
            )
        await self._as_caller(ctx).delete(COMPUTE_SERVICES, service.name)
        await self.state.services.wait_for(service.obj, deleted=True)
        return no_content()

    # -- writes -----------------------------------------------------------------------------
    def _as_caller(self, ctx: RequestContext) -> KubeClient:
        """The API server authorises the caller (RBAC), and its audit log and managedFields name
        them, not the facade; the facade needs no write access nor the right to impersonate."""
        return self.kube.as_token_holder(ctx.token)

    async def _patch(self, ctx: RequestContext, service: ServiceState, spec: dict[str, Any]) -> ServiceState:
        # Nova refuses force-up while evacuations from the host are unfinished (bug 1922053).
        unsets = spec.get("forcedDown") is False and service.forced_down and service.binary == COMPUTE_BINARY
        if unsets and pending_evacuations_from(self.state, service.host):
            raise HTTPBadRequest(force_up_refused_message(service.host))
        # managedFields name the caller's user name (the default would be the client's user agent).
        patched = await self._as_caller(ctx).patch(
            COMPUTE_SERVICES, service.name, {"spec": spec}, field_manager=ctx.user_id
        )
        # Read-your-writes: the next GET through the facade sees this change.
        await self.state.services.wait_for(patched)
        return self.state.evaluate(patched)


def _canonical_uuid(value: str) -> str:
    """The uuid as metadata.uid spells it; not a uuid is a 400, as Nova's check."""
    if not uuidutils.is_uuid_like(value):
        raise HTTPBadRequest(f"Invalid uuid {value}")
    return str(uuid.UUID(value))


def _refuse_unless_compute(binary: str) -> None:
    """Only compute services are updated (Nova: the others have no host state to change)."""
    if binary != COMPUTE_BINARY:
        raise HTTPBadRequest(
            f"Updating a {binary} service is not supported. Only nova-compute services can be updated."
        )
