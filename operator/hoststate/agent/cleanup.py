"""A returning host cleans up before it runs anything (Nova's _destroy_evacuated_instances).

The agent lists the servers evacuated away from its host (a field selector on
status.evacuation.sourceHost: it never lists the fleet), asks its guest driver to make sure each
local guest is gone, and marks each record `completed` (a merge patch of servers/status,
conditional on the version listed). What to touch is decided by domain.evacuation.cleanup_plan.
Idempotent: a guest already gone is fine, a completed record is not listed for work again, a
server deleted meanwhile is skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from ..domain import evacuation as rules
from ..kube import SERVERS, ApiError, KubeClient
from ..kubetime import kube_time, utcnow
from .drivers import GuestDriver

logger = logging.getLogger("hoststate.agent")


async def evacuated_from(client: KubeClient, host: str) -> list[rules.EvacuatedServer]:
    """The servers whose latest evacuation left `host`, in every namespace."""
    answer = await client.list(SERVERS, fieldSelector=f"status.evacuation.sourceHost={host}")
    return [_evacuated(item) for item in answer.get("items", [])]


def _evacuated(body: dict[str, Any]) -> rules.EvacuatedServer:
    meta = body["metadata"]
    return rules.EvacuatedServer(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        host=(body.get("spec") or {}).get("host") or "",
        evacuation=(body.get("status") or {}).get("evacuation") or {},
        resource_version=meta.get("resourceVersion"),
    )


async def clean_up(client: KubeClient, host: str, driver: GuestDriver) -> int:
    """One pass; the number of records still owed (to try again later)."""
    owed = 0
    for cleanup in rules.cleanup_plan(host, await evacuated_from(client, host)):
        server = cleanup.server
        try:
            detail = await driver.ensure_gone(server) if cleanup.destroy_guest else None
        except Exception as error:
            logger.warning(
                "guest of server %s/%s (%s) not cleaned up: %s", server.namespace, server.name, server.uid, error
            )
            owed += 1
            continue
        message = f"{cleanup.message} ({detail})" if detail else cleanup.message
        patch = rules.completed_patch(server, kube_time(utcnow()), message)
        try:
            await client.patch(SERVERS, server.name, patch, namespace=server.namespace, subresource="status")
        except ApiError as error:
            if error.status == 404:
                logger.info("server %s/%s was deleted meanwhile", server.namespace, server.name)
                continue
            if error.status != 409:
                raise
            owed += 1  # changed since listed (the operator confirmed it meanwhile): listed again next time
            continue
        logger.info("evacuation of server %s/%s from %s completed: %s", server.namespace, server.name, host, message)
    return owed
