"""What a started process holds, out of the cyclic garbage collector's sight; and, in the operator,
full collections only when no tenant is being told.

CPython 3.11's collector is not incremental: a full collection walks every object it tracks, in one
pause, each time the objects that survived the younger collections grow by a quarter. A started
operator or facade tracks its modules' objects (about 80,000) and its caches (a few objects per
Server): full collections took 50-120 ms in the operator beside a tenant with 100 hanging webhooks,
while a tenant's notification takes 20 ms, and they came every few seconds. So, once a process has
started (modules imported, caches listed), its objects are collected once and frozen (gc.freeze):
later collections walk only what came after. What is frozen and later dropped is still freed by
reference counting; only a reference cycle among frozen objects would stay (the caches hold none).

The operator goes further: its full collections (20-50 ms even so, with a hanging tenant's tasks and
queues) are not left to the allocation counts but run every FULL_COLLECTION_PERIOD, at a moment when
no host transition is being recorded or told (or once IDLE_PATIENCE has passed without one). The
young generations are collected as before.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

FULL_COLLECTION_PERIOD = 30.0  # seconds between the operator's full collections
IDLE_PATIENCE = 10.0  # seconds a full collection waits for a moment without tenants being told
_NEVER = 2**31 - 1  # young collections between two automatic full ones: none


def freeze_start_up() -> None:
    """Call once the process has started (its caches listed): collect, then freeze what survived."""
    gc.collect()
    gc.freeze()


async def collect_fully_when_idle(
    idle: Callable[[], bool], *, period: float = FULL_COLLECTION_PERIOD, patience: float = IDLE_PATIENCE
) -> None:
    """Take full collections over from the allocation counts: one every `period` seconds, when `idle()`
    (or after `patience` seconds of waiting for it). Runs until cancelled; then they are automatic again."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)
    loop = asyncio.get_running_loop()
    try:
        while True:
            await asyncio.sleep(period)
            deadline = loop.time() + patience
            while not idle() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            gc.collect()
    finally:
        gc.set_threshold(young, middle, old)
