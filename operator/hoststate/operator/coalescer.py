"""Runs at most one job per key at a time; asking again while it runs makes it run once more.

This is how a burst of changes to one host becomes one fan-out (plus one catch-up pass),
and how failed jobs are retried with backoff. A job refused because this replica does not lead
is dropped, not retried: the replica that leads (or this one, when it takes over) resyncs everything;
a request made while it was being refused (that resync, when this replica lost and regained the
Lease within one run) runs it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

from ..kube.leader import NotLeader

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
BACKOFF = (0.2, 0.5, 1, 2, 5, 10, 30)


class Coalescer:
    def __init__(self, on_error: Callable[[Hashable, BaseException], None] | None = None) -> None:
        self._running: dict[Hashable, asyncio.Task] = {}
        self._again: set[Hashable] = set()
        self._on_error = on_error

    def request(self, key: Hashable, job: Job) -> None:
        if key in self._running:
            self._again.add(key)
            return
        self._running[key] = asyncio.create_task(self._run(key, job), name=f"job-{key}")

    async def drain(self) -> None:
        """Until no job runs (tests wait for a burst to settle with it)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def cancel(self) -> None:
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def _run(self, key: Hashable, job: Job) -> None:
        failures = 0
        try:
            while True:
                self._again.discard(key)
                try:
                    await job()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # retried with backoff; the periodic resync is the last resort
                    if isinstance(error, NotLeader) or isinstance(error.__cause__, NotLeader):
                        if key in self._again:  # asked again while refused (a takeover's resync): run again
                            continue
                        logger.debug("%s: not the leader, dropped", key)
                        return
                    if self._on_error is not None:
                        self._on_error(key, error)
                    if failures >= len(BACKOFF):
                        logger.error("giving up on %s after %d attempts: %s", key, failures + 1, error)
                        return
                    delay = BACKOFF[failures]
                    failures += 1
                    logger.warning("%s failed (%s); retrying in %.1fs", key, error, delay)
                    await asyncio.sleep(delay)
                    continue
                if key not in self._again:
                    return
        finally:
            self._running.pop(key, None)
