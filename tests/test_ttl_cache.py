"""The single-flight TTL cache shared by the facade's reviews and the notifier's signing keys."""

from __future__ import annotations

import asyncio

import pytest

from hoststate.ttl_cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_misses_share_one_look_up_and_answers_expire() -> None:
    clock = Clock()
    cache: TTLCache[int] = TTLCache(10.0, clock=clock)
    calls: list[str] = []
    gate = asyncio.Event()

    async def look_up() -> int:
        calls.append("k")
        await gate.wait()
        return len(calls)

    waiters = [asyncio.create_task(cache.get("k", look_up)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [1] * 5
    assert calls == ["k"]
    clock.now = 9.9
    assert await cache.get("k", look_up) == 1
    clock.now = 10.0
    assert await cache.get("k", look_up) == 2


async def test_time_to_live_may_depend_on_the_answer() -> None:
    clock = Clock()
    cache: TTLCache[str] = TTLCache(lambda answer: 1.0 if answer == "missing" else 30.0, clock=clock)
    answers = iter(["missing", "found", "changed"])

    async def look_up() -> str:
        return next(answers)

    assert await cache.get("k", look_up) == "missing"
    clock.now = 1.0
    assert await cache.get("k", look_up) == "found"
    clock.now = 30.0
    assert await cache.get("k", look_up) == "found"
    cache.forget("k")
    assert await cache.get("k", look_up) == "changed"


async def test_a_failed_look_up_is_not_cached_and_a_cancelled_waiter_does_not_cancel_it() -> None:
    cache: TTLCache[int] = TTLCache(10.0)
    attempts: list[int] = []
    gate = asyncio.Event()

    async def flaky() -> int:
        attempts.append(1)
        await gate.wait()
        if len(attempts) == 1:
            raise RuntimeError("API server busy")
        return 7

    impatient = asyncio.create_task(cache.get("k", flaky))
    patient = asyncio.create_task(cache.get("k", flaky))
    await asyncio.sleep(0)
    impatient.cancel()
    gate.set()
    with pytest.raises(RuntimeError, match="busy"):
        await patient
    assert impatient.cancelled()
    assert await cache.get("k", flaky) == 7
    assert len(attempts) == 2


async def test_bounded_the_least_recently_used_answer_makes_room() -> None:
    clock = Clock()
    cache: TTLCache[str | None] = TTLCache(10.0, max_entries=2, clock=clock)
    looked_up: list[str] = []

    def look_up(key: str):
        async def answer() -> str | None:
            looked_up.append(key)
            return None if key == "unknown" else key.upper()

        return answer

    assert await cache.get("a", look_up("a")) == "A"
    assert await cache.get("unknown", look_up("unknown")) is None
    assert await cache.get("unknown", look_up("unknown")) is None  # a None answer is cached too
    assert await cache.get("a", look_up("a")) == "A"  # now more recent than "unknown"
    assert await cache.get("b", look_up("b")) == "B"  # full: "unknown" goes
    assert len(cache) == 2
    assert cache.peek("a") == "A" and cache.peek("unknown") is None
    assert looked_up == ["a", "unknown", "b"]
    cache.put("c", "C")
    assert cache.peek("b") is None and cache.peek("a") == "A"  # "b" was the least recent after the peek of "a"
    clock.now = 10.0
    assert cache.peek("a") is None and cache.peek("c") is None and len(cache) == 0
