"""heap.py: the operator's full collections run when no tenant is being told, and only then."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

from hoststate.heap import collect_fully_when_idle


async def test_full_collections_wait_for_a_moment_without_tenants_being_told() -> None:
    full: list[float] = []
    loop = asyncio.get_running_loop()

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(loop.time())

    telling = True
    thresholds = gc.get_threshold()
    gc.callbacks.append(seen)
    task = asyncio.create_task(collect_fully_when_idle(lambda: not telling, period=0.01, patience=10))
    try:
        await asyncio.sleep(0.2)
        assert full == []  # told all along: none, and none started by allocations either
        assert gc.get_threshold()[2] > 10**9
        told_at = loop.time()
        telling = False
        while not full:
            await asyncio.sleep(0.01)
        assert full[0] >= told_at
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.callbacks.remove(seen)
    assert gc.get_threshold() == thresholds  # automatic again


async def test_a_full_collection_waits_for_idle_at_most_its_patience() -> None:
    full: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(seen)
    task = asyncio.create_task(collect_fully_when_idle(lambda: False, period=0.01, patience=0.05))
    try:
        for _ in range(100):
            if full:
                break
            await asyncio.sleep(0.02)
        assert full  # a stream of transitions does not put collections off for ever
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.callbacks.remove(seen)
