"""`hoststate agent`: a compute host's heartbeat, a Lease renewed every report interval.

A Lease per service instead of a status write per beat: Kubernetes moved node
heartbeats to Leases for the same reason (cheap, and no churn on the real object).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime

from ..kube import LEASES, ApiError, KubeClient
from ..resources.computeservice import service_name
from ..resources.lease import heartbeat_lease, renewal_patch
from .config import AgentConfig

logger = logging.getLogger("hoststate.agent")


async def renew(client: KubeClient, namespace: str, host: str, binary: str, duration: int) -> None:
    """Renew the service's Lease, creating it when missing."""
    now = datetime.now(UTC)
    name = service_name(host, binary)
    try:
        await client.patch(LEASES, name, renewal_patch(host, now, duration), namespace=namespace)
    except ApiError as error:
        if error.status != 404:
            raise
        await client.create(LEASES, heartbeat_lease(host, binary, now, duration), namespace=namespace)
        logger.info("created heartbeat Lease %s/%s", namespace, name)


async def heartbeat_forever(client: KubeClient, config: AgentConfig, host: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await renew(client, config.lease_namespace, host, config.binary, config.lease_duration)
        except Exception as error:  # a missed beat is logged; the next one may succeed
            logger.warning("heartbeat of %s.%s failed: %s", host, config.binary, error)
        with contextlib.suppress(TimeoutError):  # the interval passed without a stop
            await asyncio.wait_for(stop.wait(), timeout=config.report_interval)


async def run_agent(config: AgentConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with KubeClient(max_connections=min(len(config.hosts), 32)) as client:
        logger.info(
            "heartbeating %d service(s) every %gs into Leases in %s",
            len(config.hosts),
            config.report_interval,
            config.lease_namespace,
        )
        await asyncio.gather(*(heartbeat_forever(client, config, host, stop) for host in config.hosts))
