"""Informer: a list+watch cache of one resource, kept current with bookmarks and relists on 410.

Generic on purpose (the facade uses it; the operator may): it knows nothing of what it
caches. A stopped informer keeps its store and its resourceVersion; started again, it
resumes watching from there, and relists if the API server answers that the version has
expired (410 Gone: compacted, or older than the watch cache's window).
Readers use `get()`/`items()` synchronously from the event loop; `add_handler()` lets a
caller keep its own indexes in step with the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp

from .api_resources import Resource
from .client import ApiError, KubeClient

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
Transform = Callable[[dict[str, Any]], dict[str, Any]]
Handler = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None]  # (type, old, new)


def object_key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta["name"]


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
        watch_timeout: int = 300,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        # Keeps only what the reader needs (a large cache of slim objects stays small);
        # the result must keep metadata.name, namespace and resourceVersion.
        self.transform = transform
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.resource_version = ""  # where the next watch starts; empty: list first
        self.relists = 0  # lists after a 410 Gone (the first list is not counted)
        self.synced = asyncio.Event()
        self._store: dict[Key, dict[str, Any]] = {}
        self._handlers: list[Handler] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

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
    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"informer {self.resource.plural}")
        return self._task

    @property
    def running(self) -> bool:
        """Started and its loop not ended (it only ends when cancelled or broken)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """List (unless resuming), then watch from the list's version; relist on 410 Gone; back off
        on other errors."""
        delay = self.retry_delay
        need_list = not self.resource_version
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                delay = self.retry_delay  # a watch that ended normally: resume at once
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                if error.status == 410:
                    log.info("%s: resourceVersion %s expired, relisting", self.resource.plural, self.resource_version)
                    self.relists += 1
                    need_list = True
                    continue
                log.warning("%s: %s; retrying in %.0fs", self.resource.plural, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                log.warning("%s: %r; retrying in %.0fs", self.resource.plural, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)

    async def _list(self) -> None:
        params = {"labelSelector": self.label_selector} if self.label_selector else {}
        listing = await self.client.list(self.resource, self.namespace, **params)
        items = listing.get("items", [])
        if self.transform is not None:
            items = [self.transform(obj) for obj in items]
        fresh = {object_key(obj): obj for obj in items}
        old_store, self._store = self._store, fresh
        self.resource_version = listing.get("metadata", {}).get("resourceVersion", "")
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
        async for event in self.client.watch(
            self.resource,
            self.resource_version,
            self.namespace,
            timeout_seconds=self.watch_timeout,
            label_selector=self.label_selector,
        ):
            kind, obj = event["type"], event["object"]
            if self.transform is not None and kind != "BOOKMARK":
                obj = self.transform(obj)
            self.resource_version = obj.get("metadata", {}).get("resourceVersion", self.resource_version)
            if kind == "BOOKMARK":
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

    def _emit(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, old, new)
            except Exception:  # a broken index must not stop the cache
                log.exception("%s: handler failed", self.resource.plural)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
