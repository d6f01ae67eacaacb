"""`hoststate agent`: a compute host's heartbeat, a Lease renewed every report interval, and the
cleanup of a returning host (agent.cleanup) before its first heartbeat and after every gap.

A Lease per service instead of a status write per beat: Kubernetes moved node
heartbeats to Leases for the same reason (cheap, and no churn on the real object).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import kopf

from ..kube import LEASES, ApiError, KubeClient
from ..kubetime import utcnow
from ..resources.computeservice import service_name
from ..resources.lease import heartbeat_lease, renewal_patch
from .cleanup import clean_up
from .config import AgentConfig
from .drivers import GuestDriver, guest_driver

logger = logging.getLogger("hoststate.agent")


async def renew(client: KubeClient, namespace: str, host: str, binary: str, duration: int) -> None:
    """Renew the service's Lease, creating it when missing."""
    now = utcnow()
    name = service_name(host, binary)
    try:
        await client.patch(LEASES, name, renewal_patch(host, now, duration), namespace=namespace)
    except ApiError as error:
        if error.status != 404:
            raise
        await client.create(LEASES, heartbeat_lease(host, binary, now, duration), namespace=namespace)
        logger.info("created heartbeat Lease %s/%s", namespace, name)


# A heartbeat that resumes after this many report intervals without a renewal (failures, or the
# process suspended) may follow a fence: the host cleans up again before its next beat.
GAP_INTERVALS = 2


async def heartbeat_forever(
    client: KubeClient, config: AgentConfig, host: str, stop: asyncio.Event, driver: GuestDriver | None = None
) -> None:
    """Beat every report interval; with a driver, none before a cleanup pass left nothing owed:
    at start, and again after a gap."""
    owed = driver is not None
    last_beat: float | None = None
    while not stop.is_set():
        if driver is not None and last_beat is not None:
            owed |= time.monotonic() - last_beat > GAP_INTERVALS * config.report_interval
        if owed and driver is not None:
            try:
                owed = await clean_up(client, host, driver) > 0
            except Exception as error:  # the API server unreachable: no beat either, try again
                logger.warning("cleanup of %s failed: %s", host, error)
        if not owed:
            try:
                await renew(client, config.lease_namespace, host, config.binary, config.lease_duration)
                last_beat = time.monotonic()
            except Exception as error:  # a missed beat is logged; the next one may succeed
                logger.warning("heartbeat of %s.%s failed: %s", host, config.binary, error)
        with contextlib.suppress(TimeoutError):  # the interval passed without a stop
            await asyncio.wait_for(stop.wait(), timeout=config.report_interval)


async def run_agent(
    config: AgentConfig, stop: asyncio.Event | None = None, info: kopf.ConnectionInfo | None = None
) -> None:
    """Until SIGINT or SIGTERM (the command), or until `stop` is set (an agent run in-process,
    with the credentials `info` or else found as KubeClient finds them)."""
    driver = guest_driver(config)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with KubeClient(info, max_connections=min(len(config.hosts), 32)) as client:
        logger.info(
            "heartbeating %d service(s) every %gs into Leases in %s; guest driver %s",
            len(config.hosts),
            config.report_interval,
            config.lease_namespace,
            config.guest_driver,
        )
        await asyncio.gather(*(heartbeat_forever(client, config, host, stop, driver) for host in config.hosts))
