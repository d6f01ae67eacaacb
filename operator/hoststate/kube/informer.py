"""Informer: a list+watch cache of one resource, kept current with bookmarks and relists on 410.

It lists with a watch list: one watch that first streams every object (sendInitialEvents), served
from the API server's watch cache and decoded one object at a time, then goes on as the watch.
An API server that refuses watch lists (the WatchList feature off) is listed in pages instead.

Generic on purpose (the facade and the operator use it): it knows nothing of what it
caches. A stopped informer keeps its store and its resourceVersion; started again, it
resumes watching from there, and relists if the API server answers that the version has
expired (410 Gone: compacted, or older than the watch cache's window).
Readers use `get()`/`items()` synchronously from the event loop; `add_handler()` lets a
caller keep its own indexes in step with the store.

Its loop never ends but by cancellation: every error ends in a rewatch (from the last version
seen) or a relist, after a backoff. A connection that fails, resets or times out, an API server
that restarts or answers an error: rewatch. A line that is no event (malformed, over-long) or an
unexpected exception: relist, since events may have been lost. 410 Gone: relist at once. A
handler or transform that raises is logged and counted, and the others still run.
`has_listed` and `last_progress` tell a health check whether it is ready and still moving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp

from .api_resources import Resource
from .client import INITIAL_EVENTS_END, MAX_WATCH_LINE, ApiError, EventDecoder, KubeClient, WatchStreamError

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
# Objects per list request, when lists are not streamed. A list is read in pages (one consistent
# snapshot, continued by token) so that only one page is ever held whole and untransformed: listing
# 100,000 objects at once would hold them all decoded in full, and the process keeps that peak as
# its size.
LIST_PAGE_SIZE = 500
Transform = Callable[[dict[str, Any]], dict[str, Any]]
Handler = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None]  # (type, old, new)


def object_key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta["name"]


def interned(value: Any) -> Any:
    """A string as the interpreter's one shared copy, for a transform to apply to the values many
    cached objects share (a host, a namespace, a status): JSON decoding makes one copy per object."""
    return sys.intern(value) if isinstance(value, str) else value


def _newer_or_equal(stored: str, wanted: str) -> bool:
    """resourceVersions are opaque; the API server's are etcd revisions, so compare as integers when they are."""
    if stored == wanted:
        return True
    try:
        return int(stored) >= int(wanted)
    except ValueError:
        return False


class Informer:
    """The objects of `resource` (in `namespace`, or all), as of the latest event seen."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        transform: Transform | None = None,
        shape: type | None = None,
        watch_timeout: int = 300,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        max_event_bytes: int = MAX_WATCH_LINE,
        list_page_size: int = LIST_PAGE_SIZE,
        stream_lists: bool = True,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        # Keeps only what the reader needs (a large cache of slim objects stays small);
        # the result must keep metadata.name, namespace and resourceVersion.
        self.transform = transform
        # The fields the transform reads (a TypedDict), when it reads few: watch events are decoded
        # to those only (EventDecoder). Paged lists, the fallback, are decoded whole.
        self._decode = EventDecoder(shape) if shape is not None else json.loads
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.max_event_bytes = max_event_bytes
        self.list_page_size = list_page_size
        self.stream_lists = stream_lists  # list with a watch list; False once the API server refused one
        self.resource_version = ""  # where the next watch starts; empty: list first
        self.relists = 0  # lists after the first (after a 410 Gone or a broken stream)
        self.watch_errors = 0  # lists and watches that ended in an error (410 Gone included)
        self.handler_errors = 0  # handlers and transforms that raised
        self.synced = asyncio.Event()
        # time.monotonic() of the last list, event, bookmark or normal end of a watch (or of start()).
        self.last_progress = time.monotonic()
        self._store: dict[Key, dict[str, Any]] = {}
        self._handlers: list[Handler] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._deliver_after: asyncio.Event | None = None

    # -- reading ------------------------------------------------------------------
    def get(self, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self._store.get((namespace, name))

    def items(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._store.values()))

    def __len__(self) -> int:
        return len(self._store)

    def add_handler(self, handler: Handler) -> None:
        """Called for every change of the store, after it is applied: ("ADDED"|"MODIFIED"|"DELETED", old, new)."""
        self._handlers.append(handler)

    async def wait_for(self, obj: dict[str, Any], *, deleted: bool = False, timeout: float = 5.0) -> bool:
        """Wait until the store holds `obj`'s version (or a later one), or no longer holds it when `deleted`.

        Lets a writer read its own write from the cache. False when the timeout passed first.
        """
        key = object_key(obj)
        wanted = obj.get("metadata", {}).get("resourceVersion", "")

        def arrived() -> bool:
            stored = self._store.get(key)
            if deleted:
                return stored is None
            return stored is not None and _newer_or_equal(stored["metadata"].get("resourceVersion", ""), wanted)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(arrived), timeout)
            except TimeoutError:
                return False
        return True

    # -- running ------------------------------------------------------------------
    @property
    def has_listed(self) -> bool:
        """The store has been filled by a list at least once (readiness)."""
        return self.synced.is_set()

    def start(self, deliver_after: asyncio.Event | None = None) -> asyncio.Task[None]:
        """Run the loop. With `deliver_after`, the first list is read at once but neither stored nor
        handed to the handlers before that event is set: for handlers that need another cache first."""
        self._deliver_after = deliver_after
        if self._task is None:
            self.last_progress = time.monotonic()
            self._task = asyncio.create_task(self.run(), name=f"informer {self.resource.plural}")
        return self._task

    @property
    def running(self) -> bool:
        """Started and not stopped (its loop ends only when cancelled)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """List (unless resuming), then watch from the list's version, forever (see the module's doc).
        An empty resource_version means a list is needed."""
        delay = self.retry_delay
        while True:
            attempt_started = time.monotonic()
            try:
                if not self.resource_version and not self.stream_lists:
                    await self._list()
                await self._watch()
                self._progressed()
                delay = self.retry_delay  # a watch that ended normally: resume at once
                continue
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                if error.status == 410:
                    self.watch_errors += 1
                    log.info("%s: resourceVersion %s expired, relisting", self.resource.plural, self.resource_version)
                    self.resource_version = ""
                    continue
                if error.status == 422 and self.stream_lists and not self.resource_version:
                    log.info(
                        "%s: the API server refused a watch list (%s); listing in pages", self.resource.plural, error
                    )
                    self.stream_lists = False
                    continue
                problem = str(error)
            except WatchStreamError as error:
                problem, self.resource_version = f"{error}; relisting", ""
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                problem = repr(error)
            except Exception as error:  # a bug here must not end the watch: start again from a list
                log.exception("%s: unexpected error", self.resource.plural)
                problem, self.resource_version = f"{error!r}; relisting", ""
            self.watch_errors += 1
            if self.last_progress > attempt_started:
                delay = self.retry_delay  # it made progress before failing: not a failure in a row
            log.warning("%s: %s; retrying in %.1fs", self.resource.plural, problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_delay)

    async def _list(self) -> None:
        """List in pages (when lists are not streamed)."""
        params = {"labelSelector": self.label_selector} if self.label_selector else {}
        params["limit"] = str(self.list_page_size)
        fresh: dict[Key, dict[str, Any]] = {}
        while True:
            page = await self.client.list(self.resource, self.namespace, **params)
            for raw in page.pop("items", None) or []:
                if (obj := self._shaped(raw)) is not None:
                    fresh[object_key(obj)] = obj
            page_meta = page.get("metadata", {})
            if not (token := page_meta.get("continue")):
                break
            params["continue"] = token  # an expired token answers 410 Gone: relisted from the start
            self._progressed()
        await self._replace_store(fresh, page_meta.get("resourceVersion", ""))

    async def _replace_store(self, fresh: dict[Key, dict[str, Any]], resource_version: str) -> None:
        """Make a list's objects the store, and tell the handlers what changed."""
        if self._deliver_after is not None:
            await self._deliver_after.wait()
        old_store, self._store = self._store, fresh
        self.resource_version = resource_version
        if self.synced.is_set():
            self.relists += 1
        self._progressed()
        # Tell the handlers what the relist changed, as if the events had been seen.
        for key, obj in fresh.items():
            before = old_store.get(key)
            if before is None:
                self._emit("ADDED", None, obj)
            elif before["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._emit("MODIFIED", before, obj)
        for key, obj in old_store.items():
            if key not in fresh:
                self._emit("DELETED", obj, None)
        self.synced.set()
        await self._notify()

    async def _watch(self) -> None:
        """Watch from resource_version; from none, a watch list: its initial events make a fresh
        store, complete at their closing bookmark. Until then the version stays empty, so that a
        stream that breaks before it is listed again."""
        listing = not self.resource_version
        fresh: dict[Key, dict[str, Any]] = {}
        async for event in self.client.watch(
            self.resource,
            self.resource_version,
            self.namespace,
            timeout_seconds=self.watch_timeout,
            label_selector=self.label_selector,
            max_line=self.max_event_bytes,
            send_initial_events=listing,
            decode=self._decode,
        ):
            kind, raw = event["type"], event["object"]
            self._progressed()
            if listing:
                if kind != "BOOKMARK":
                    if (obj := self._shaped(raw)) is not None:
                        fresh[object_key(obj)] = obj
                elif raw["metadata"].get("annotations", {}).get(INITIAL_EVENTS_END) == "true":
                    listing = False
                    await self._replace_store(fresh, raw["metadata"]["resourceVersion"])
                    fresh = {}
                continue
            self.resource_version = raw.get("metadata", {}).get("resourceVersion", self.resource_version)
            if kind == "BOOKMARK":
                continue
            obj = self._shaped(raw)
            if obj is None:
                continue
            key = object_key(obj)
            before = self._store.get(key)
            if kind == "DELETED":
                self._store.pop(key, None)
                self._emit("DELETED", before, None)
            else:
                self._store[key] = obj
                self._emit("ADDED" if before is None else "MODIFIED", before, obj)
            await self._notify()
            # A turn of the loop per event: a burst read in one chunk (a hundred status writes' echoes
            # after a pause) does not hold everything else for its whole length (76 ms, measured).
            await asyncio.sleep(0)

    def _progressed(self) -> None:
        self.last_progress = time.monotonic()

    def _shaped(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The object as transformed, or None when the transform raised (logged and counted: one
        odd object must not stop the cache)."""
        if self.transform is None:
            return obj
        try:
            return self.transform(obj)
        except Exception:
            self.handler_errors += 1
            log.exception("%s: transform failed on %s", self.resource.plural, obj.get("metadata", {}).get("name"))
            return None

    def _emit(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, old, new)
            except Exception:  # a broken index must not stop the cache
                self.handler_errors += 1
                log.exception("%s: handler failed", self.resource.plural)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
