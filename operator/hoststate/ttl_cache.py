"""A single-flight TTL cache: recent answers kept for a while, one look-up per key at a time, at
most `max_entries` of them (the least recently used go first).

Used for the facade's token and access reviews and the notifier's signing-key Secrets.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Answers of `compute` by key, each kept `ttl(answer)` seconds (a number, or a function of the
    answer: failures cached shorter, for example). Concurrent misses for one key share one look-up,
    which runs in its own task: a caller that gives up does not cancel it for the others. A look-up
    that raises is not cached. Bounded: when full, the least recently used answer makes room, so a
    stream of new keys (a flood of made-up tokens) costs memory up to the bound and no more."""

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
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        hit = self._live(key)
        if hit is not None:
            return hit[1]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, compute))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(task)

    def peek(self, key: Hashable) -> V | None:
        """The live answer for `key` (now the most recently used), or None; never looks up."""
        hit = self._live(key)
        return None if hit is None else hit[1]

    def _live(self, key: Hashable) -> tuple[float, V] | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return hit

    def put(self, key: Hashable, value: V) -> None:
        self._entries[key] = (self._clock() + self._ttl(value), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    async def _load(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        value = await compute()
        self.put(key, value)
        return value

    def _done(self, key: Hashable, task: asyncio.Task[V]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody waited for is not logged as lost
