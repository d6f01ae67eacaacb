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


async def heartbeat_forever(
    client: KubeClient, namespace: str, host: str, binary: str, interval: float, duration: int, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await renew(client, namespace, host, binary, duration)
        except Exception as error:  # a missed beat is logged; the next one may succeed
            logger.warning("heartbeat of %s.%s failed: %s", host, binary, error)
        with contextlib.suppress(TimeoutError):  # the interval passed without a stop
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_agent(hosts: list[str], binary: str, namespace: str, interval: float, duration: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with KubeClient(max_connections=min(len(hosts), 32)) as client:
        logger.info("heartbeating %d service(s) every %gs into Leases in %s", len(hosts), interval, namespace)
        await asyncio.gather(
            *(heartbeat_forever(client, namespace, host, binary, interval, duration, stop) for host in hosts)
        )
