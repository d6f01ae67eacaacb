"""A subscription's delivery state and the status patch that reports it (pure), and the
throttled writer: at once when health changes, else at most once per period."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..kubetime import kube_micro_time, kube_time, parse_kube_time_leniently
from ..resources.subscription import ACKNOWLEDGED_MAX

logger = logging.getLogger(__name__)

ERROR_MAX = 1024
EPSILON = timedelta(microseconds=1)


@dataclass
class Condition:
    status: str
    reason: str
    message: str
    since: datetime


@dataclass
class DeliveryState:
    """What status reports; the counters continue from what the status showed at start."""

    generation: int = 0
    written_generation: int | None = None  # observedGeneration as the status last showed it
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    consecutive_failures: int = 0
    last_success: datetime | None = None
    last_error_time: datetime | None = None
    last_error: str | None = None
    conditions: dict[str, Condition] = field(default_factory=dict)

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> DeliveryState:
        status = status or {}
        state = cls(
            delivered=int(status.get("delivered") or 0),
            failed=int(status.get("failed") or 0),
            dropped=int(status.get("dropped") or 0),
            consecutive_failures=int(status.get("consecutiveFailures") or 0),
            last_success=parse_kube_time_leniently(status.get("lastSuccessTime")),
            last_error_time=parse_kube_time_leniently(status.get("lastErrorTime")),
            last_error=status.get("lastError"),
            written_generation=status.get("observedGeneration"),
        )
        for c in status.get("conditions") or []:
            since = parse_kube_time_leniently(c.get("lastTransitionTime"))
            if c.get("type") and since is not None:
                state.conditions[c["type"]] = Condition(
                    c.get("status", "Unknown"), c.get("reason", ""), c.get("message", ""), since
                )
        return state

    def set_condition(self, type_: str, status: str, reason: str, message: str, now: datetime) -> bool:
        """Set a condition; True when its status or reason changed (worth an immediate write)."""
        old = self.conditions.get(type_)
        if old is not None and (old.status, old.reason) == (status, reason):
            old.message = message
            return False
        self.conditions[type_] = Condition(status, reason, message, now)
        return True

    def succeeded(self, now: datetime) -> bool:
        """An event was delivered; True when that changes the subscription's health."""
        changed = self.consecutive_failures > 0
        self.delivered += 1
        self.consecutive_failures = 0
        self.last_success = now
        changed |= self.set_condition("Delivering", "True", "Delivered", "the last event was delivered", now)
        return changed

    def attempt_failed(self, error: str, now: datetime) -> bool:
        changed = self.consecutive_failures == 0
        self.consecutive_failures += 1
        self.last_error_time = now
        self.last_error = error[:ERROR_MAX]
        changed |= self.set_condition("Delivering", "False", "DeliveryFailing", error[:ERROR_MAX], now)
        return changed

    def gave_up(self, count: int = 1) -> None:
        self.failed += count

    def dropped_events(self, count: int = 1) -> None:
        """Queue full: given up without an attempt (counted in failed too)."""
        self.dropped += count
        self.failed += count

    def patch(self) -> dict[str, Any]:
        """Merge patch of the status subresource."""
        status: dict[str, Any] = {
            "observedGeneration": self.generation,
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "consecutiveFailures": self.consecutive_failures,
            "lastSuccessTime": kube_time(self.last_success) if self.last_success else None,
            "lastErrorTime": kube_time(self.last_error_time) if self.last_error_time else None,
            "lastError": self.last_error,
            "conditions": [
                {
                    "type": type_,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastTransitionTime": kube_time(c.since),
                    "observedGeneration": self.generation,
                }
                for type_, c in sorted(self.conditions.items())
            ],
        }
        return {"status": {k: v for k, v in status.items() if v is not None}}


@dataclass
class Acknowledgements:
    """Which host transitions a subscription has had all its events delivered (or given up) for.

    Every transition decided at or before `through` is done; after it, those in `done` are. What is
    neither is redelivered from the ComputeServices' recorded transitions after a restart or by a
    new leader. `through` advances to just before the oldest transition still in flight (or not yet
    recorded anywhere); kept in status, written with the other counters (at most every period).
    """

    through: datetime
    done: dict[str, datetime] = field(default_factory=dict)
    in_flight: dict[str, list[Any]] = field(default_factory=dict)  # id -> [decided, events not finished]
    seen: datetime | None = None  # the latest transition this subscription was offered

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None, created: datetime, now: datetime) -> Acknowledgements:
        """A new subscription starts at its creation; one from a version that kept no record, at `now`."""
        status = status or {}
        through = parse_kube_time_leniently(status.get("acknowledgedThrough"))
        if through is None:
            through = created if not status.get("observedGeneration") else now
        done = {}
        for item in status.get("acknowledged") or ():
            time = parse_kube_time_leniently(item.get("time")) if isinstance(item, Mapping) else None
            if time is not None and item.get("id"):
                done[str(item["id"])] = time
        return cls(through, done)

    def wanted(self, transition_id: str, decided: datetime) -> bool:
        """Not yet done and not in flight: to be (re)delivered."""
        return decided > self.through and transition_id not in self.done and transition_id not in self.in_flight

    def offered(self, transition_id: str, decided: datetime, events: int) -> None:
        """`events` events of the transition queued (none: done at once)."""
        self.seen = max(self.seen or decided, decided)
        if events <= 0:
            self.done[transition_id] = decided
        else:
            self.in_flight[transition_id] = [decided, events]

    def finished(self, transition_id: str) -> bool:
        """One of its events delivered or given up; True when it was the last."""
        entry = self.in_flight.get(transition_id)
        if entry is None:
            return False
        entry[1] -= 1
        if entry[1] > 0:
            return False
        del self.in_flight[transition_id]
        self.done[transition_id] = entry[0]
        return True

    def compact(self, unrecorded_since: datetime | None) -> None:
        """Advance `through` as far as nothing older is in flight or still to be recorded."""
        oldest = [decided for decided, _ in self.in_flight.values()]
        if unrecorded_since is not None:
            oldest.append(unrecorded_since)
        if oldest:
            limit = min(oldest) - EPSILON
        else:
            limit = max([self.through, *self.done.values(), *([self.seen] if self.seen else [])])
        if limit > self.through:
            self.through = limit
            self.done = {i: t for i, t in self.done.items() if t > limit}
        if len(self.done) > ACKNOWLEDGED_MAX:  # the oldest are forgotten: redelivered after a restart, same ids
            self.done = dict(sorted(self.done.items(), key=lambda item: item[1])[-ACKNOWLEDGED_MAX:])

    def patch(self) -> dict[str, Any]:
        return {
            "acknowledgedThrough": kube_micro_time(self.through),
            "acknowledged": [
                {"id": i, "time": kube_micro_time(t)} for i, t in sorted(self.done.items(), key=lambda item: item[1])
            ],
        }


class StatusWriter:
    """Writes when told: urgent changes after at most `min_interval`, others after at most `period` (seconds,
    or a function giving them).

    Under load a subscription's status is written about once per period, not once per event.
    """

    def __init__(
        self,
        write: Callable[[], Awaitable[None]],
        *,
        period: float | Callable[[], float] = 5.0,
        min_interval: float = 0.5,
        name: str = "",
    ) -> None:
        self._write = write
        self.period = period
        self.min_interval = min_interval
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()
        self._last = float("-inf")
        self.writes = 0
        self._task = asyncio.create_task(self._run(), name=f"status {name}")

    def mark(self, urgent: bool = False) -> None:
        self._dirty.set()
        if urgent:
            self._urgent.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 1.0
        while True:
            await self._dirty.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    period = self.period() if callable(self.period) else self.period
                    await asyncio.wait_for(self._urgent.wait(), max(0.0, self._last + period - loop.time()))
            await asyncio.sleep(max(0.0, self._last + self.min_interval - loop.time()))
            self._dirty.clear()
            self._urgent.clear()
            try:
                await self._write()
                self.writes += 1
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the API server is away: keep the state, write later
                logger.warning("status write failed: %s; retrying in %.0fs", error, backoff)
                self._dirty.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            self._last = loop.time()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
