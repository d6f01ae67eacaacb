"""A tenant's webhook receiver on 127.0.0.1, for the demo, the tests and the benchmarks.

It serves from a thread with an event loop of its own, so that synchronous tests and asyncio
callers alike can use it, and records when each request arrived and what it answered.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..notifications.cloudevents import SIGNATURE_HEADER, verify

# answer(requests received so far, this event) -> the HTTP status to answer with
Answer = Callable[[list["Received"], dict[str, Any]], int]


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and what it answered."""

    body: bytes
    headers: dict[str, str]
    answered: int
    at: float  # time.time() on arrival
    event: dict[str, Any]  # the CloudEvent, parsed once

    @property
    def data(self) -> dict[str, Any]:
        return self.event["data"]


@dataclass
class WebhookReceiver:
    """A webhook at `url`. `answer` picks each response's status (200 by default); with a signing
    `key`, a request whose signature does not verify is answered 401."""

    answer: Answer = lambda _seen, _event: 200
    key: bytes | None = None
    port: int = 0
    _requests: list[Received] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="webhook receiver")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        assert self._started.wait(10), "the webhook receiver did not start"
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        parsed = json.loads(body)
        events = parsed if isinstance(parsed, list) else [parsed]  # a batch: one Received per event
        if self.key is not None and not verify(self.key, body, request.headers.get(SIGNATURE_HEADER)):
            status = 401
        else:
            status = self.answer(self.all(), events[0])
        with self._lock:
            at = time.time()
            self._requests += [Received(body, dict(request.headers), status, at, event) for event in events]
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    # -- reading ------------------------------------------------------------------
    def clear(self) -> None:
        """Forget what arrived (a bench between repetitions: looking for arrivals scans what is held)."""
        with self._lock:
            self._requests.clear()

    def all(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        return [r for r in self.all() if 200 <= r.answered < 300]

    def for_server(self, name: str) -> list[Received]:
        return [r for r in self.delivered() if r.data["server_name"] == name]

    def statuses(self, name: str) -> list[tuple[str, str]]:
        return [(r.data["old_host_status"], r.data["new_host_status"]) for r in self.for_server(name)]

    def with_status(self, new_status: str) -> list[Received]:
        """The delivered events that moved a server to `new_status`."""
        return [r for r in self.delivered() if r.data["new_host_status"] == new_status]

    def arrivals(self, new_status: str, since: float) -> dict[str, float]:
        """server id -> when its first event to `new_status` arrived at or after `since`."""
        first: dict[str, float] = {}
        for received in self.with_status(new_status):
            if received.at >= since:
                first.setdefault(received.data["server_id"], received.at)
        return first
