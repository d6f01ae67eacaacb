"""A single-flight TTL cache: recent answers kept for a while, one look-up per key at a time.

Used for the facade's token and access reviews and the notifier's signing-key Secrets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Answers of `compute` by key, each kept `ttl(answer)` seconds (a number, or a function of the
    answer: failures cached shorter, for example). Concurrent misses for one key share one look-up,
    which runs in its own task: a caller that gives up does not cancel it for the others. A look-up
    that raises is not cached."""

    def __init__(
        self,
        ttl: float | Callable[[V], float],
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl if callable(ttl) else lambda _: ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._pending: dict[Hashable, asyncio.Task[V]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, compute))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(task)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    async def _load(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        value = await compute()
        now = self._clock()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: entry for k, entry in self._entries.items() if entry[0] > now}
        self._entries[key] = (now + self._ttl(value), value)
        return value

    def _done(self, key: Hashable, task: asyncio.Task[V]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody waited for is not logged as lost
