"""KubeClient: JSON over one shared aiohttp session, with Kopf's login (in-cluster or kubeconfig).

Why not the generated clients: the hot paths (status fan-out, the facade's watch cache)
need concurrency on one connection pool and no per-object model classes; raw JSON over
aiohttp is what the generated async client does underneath, without the weight.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any, TypedDict

import aiohttp
import kopf
import msgspec

from .api_resources import Resource

MERGE_PATCH = "application/merge-patch+json"
TOO_MANY_REQUESTS_RETRIES = 5
# The longest watch line (one event) read. The API server takes requests of at most 3 MiB and etcd
# values of at most 1.5 MiB, and Go's JSON writes <, > and & as 6-byte escapes: no event it sends
# comes near this. The bound only caps what a broken stream can make us buffer.
MAX_WATCH_LINE = 32 * 1024 * 1024
WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
# The annotation of the bookmark that ends a watch's initial events (sendInitialEvents): the state
# they made up is complete, as of the bookmark's resourceVersion.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class ApiError(Exception):
    """An error answer of the API server, with its Status object."""

    def __init__(self, status: int, body: Mapping[str, Any] | None, method: str, path: str) -> None:
        self.status = status
        self.body = dict(body or {})
        self.reason = self.body.get("reason", "")
        self.message = self.body.get("message", "")
        self.retry_after: float | None = None
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


class WatchStreamError(Exception):
    """The watch stream carried something that is not an event (a malformed or over-long line):
    what happened after the last good event is unknown, so the watcher must relist."""


def _decode_body(payload: bytes) -> dict[str, Any]:
    """An answer's JSON object, or its text when it is not one (a proxy's error page, a truncated body)."""
    try:
        decoded = json.loads(payload) if payload else {}
    except ValueError:
        decoded = None
    return decoded if isinstance(decoded, dict) else {"message": payload.decode(errors="replace")[:500]}


async def split_lines(chunks: AsyncIterable[bytes], max_line: int = MAX_WATCH_LINE) -> AsyncIterator[bytes]:
    """The lines of a byte stream (without their newline), however the stream is cut into chunks.

    aiohttp's own line reader refuses a line longer than its buffer (LineTooLong), and objects the
    API server accepts can be longer. Raises WatchStreamError for a line over `max_line`, and
    ClientPayloadError when the stream ends inside a line (a reset connection).
    """
    pending = bytearray()
    async for chunk in chunks:
        begin = 0
        while (end := chunk.find(b"\n", begin)) >= 0:
            if pending:
                pending += chunk[begin:end]
                line = bytes(pending)
                pending.clear()
            else:
                line = chunk[begin:end]
            if len(line) > max_line:
                raise WatchStreamError(f"a watch line of {len(line)} bytes, over the limit of {max_line}")
            yield line
            begin = end + 1
        pending += chunk[begin:]
        if len(pending) > max_line:
            raise WatchStreamError(f"a watch line of over {max_line} bytes")
    if pending.strip():
        raise aiohttp.ClientPayloadError(f"the watch stream ended inside an event ({len(pending)} bytes)")


class EventDecoder:
    """Watch lines as events, decoding only the fields of the object that its reader keeps.

    `shape` is a TypedDict (total=False) of those fields: msgspec decodes them in C and skips the rest
    of the object unread. Servers are mostly managedFields and fields the operator drops, and at
    100,000 of them json.loads was a fifth of the operator's start-up. A line whose object does not
    fit the shape (an ERROR event's Status, a field of an unexpected type) is decoded whole instead.
    """

    def __init__(self, shape: type) -> None:
        self._decoder = msgspec.json.Decoder(TypedDict(f"{shape.__name__}Event", {"type": str, "object": shape}))

    def __call__(self, line: bytes) -> Any:
        try:
            return self._decoder.decode(line)
        except msgspec.ValidationError:
            return json.loads(line)


def parse_watch_event(line: bytes, decode: Callable[[bytes], Any] = json.loads) -> dict[str, Any]:
    """One watch line as {"type", "object"} (`decode`: json.loads, or an EventDecoder); WatchStreamError
    when it is not an event."""
    try:
        event = decode(line)
    except ValueError as error:  # msgspec's DecodeError is one
        raise WatchStreamError(f"malformed watch event ({error}): {line[:100]!r}") from None
    if not (
        isinstance(event, dict) and event.get("type") in WATCH_EVENT_TYPES and isinstance(event.get("object"), dict)
    ):
        raise WatchStreamError(f"not a watch event: {line[:100]!r}")
    return event


def login() -> kopf.ConnectionInfo:
    """Credentials as Kopf finds them: the pod's service account, else the kubeconfig."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise RuntimeError("no Kubernetes credentials: not in a pod and no kubeconfig found (set KUBECONFIG)")
    return info


class KubeClient:
    """A small async Kubernetes client. Share one per process."""

    def __init__(
        self,
        info: kopf.ConnectionInfo | None = None,
        *,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        # Credentials found by login() are looked up again on a 401: projected service-account
        # tokens rotate (client-go re-reads the file the same way).
        self._relogin = info is None
        self.info = info or login()
        self._owns_session = session is None
        self._session = session
        self._max_connections = max_connections
        self._headers = {
            "Accept": "application/json",
            "User-Agent": "hoststate",
            **self.info.as_http_headers(),
        }
        self._bare_session: aiohttp.ClientSession | None = None  # no credentials of ours, for as_token_holder()

    def refresh_credentials(self) -> bool:
        """Log in again (after a 401); True when the credentials changed."""
        if not self._relogin:
            return False
        fresh = login()
        if fresh.as_http_headers() == self.info.as_http_headers():
            return False
        self.info = fresh
        self._headers.update(fresh.as_http_headers())
        return True

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ssl=self.info.as_ssl_context(), keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                base_url=self.info.server.rstrip("/") + "/",
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    def as_token_holder(self, token: str) -> KubeClient:
        """A view that authenticates as the holder of `token` and sends none of our credentials.

        Writes made for a caller need no privilege of ours (no impersonation right): the API
        server authorises the caller itself, and its audit log names them. The view's pool
        has the cluster's CA but never our client certificate, which would take precedence.
        """
        info = self.info
        if self._bare_session is None:
            bare = kopf.ConnectionInfo(
                server=info.server, ca_path=info.ca_path, ca_data=info.ca_data, insecure=info.insecure
            )
            self._bare_session = aiohttp.ClientSession(
                base_url=info.server.rstrip("/") + "/",
                connector=aiohttp.TCPConnector(limit=16, ssl=bare.as_ssl_context()),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        holder = kopf.ConnectionInfo(
            server=info.server, ca_path=info.ca_path, ca_data=info.ca_data, insecure=info.insecure, token=token
        )
        return KubeClient(holder, session=self._bare_session)

    async def close(self) -> None:
        if self._bare_session is not None:
            await self._bare_session.close()
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests ---------------------------------------------------------------
    def _request_headers(self, content_type: str | None) -> dict[str, str]:
        return {**self._headers, "Content-Type": content_type} if content_type else self._headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str | None = None,
        timeout: float | None = 30,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        if data is not None and content_type is None:
            content_type = "application/json"
        relogged = False
        for attempt in range(TOO_MANY_REQUESTS_RETRIES + 1):
            try:
                return await self._request_once(method, path, data, params, content_type, timeout)
            except ApiError as error:
                if error.status == 401 and not relogged and self.refresh_credentials():
                    relogged = True
                    continue
                # 429: API Priority and Fairness, or a watch cache still initializing.
                if error.status != 429 or attempt == TOO_MANY_REQUESTS_RETRIES:
                    raise
                await asyncio.sleep(min(error.retry_after or 0.2 * (attempt + 1), 2.0))
        raise AssertionError("unreachable")

    async def _request_once(
        self,
        method: str,
        path: str,
        data: str | None,
        params: Mapping[str, str] | None,
        content_type: str | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        async with self.session.request(
            method,
            path.lstrip("/"),
            data=data,
            params=params,
            headers=self._request_headers(content_type),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            decoded = _decode_body(await response.read())
            if response.status >= 400:
                error = ApiError(response.status, decoded, method, path)
                retry_after = response.headers.get("Retry-After", "")
                error.retry_after = float(retry_after) if retry_after.isdigit() else None
                raise error
            return decoded

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self.request("GET", resource.path(namespace, name))

    async def list(self, resource: Resource, namespace: str | None = None, **params: str) -> dict[str, Any]:
        return await self.request("GET", resource.path(namespace), params=params or None, timeout=120)

    async def create(self, resource: Resource, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return await self.request("POST", resource.path(namespace), body=body)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """`field_manager` names the writer in managedFields (default: the client's user agent);
        the API server takes at most 128 characters."""
        return await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type=content_type,
            params={"fieldManager": field_manager[:128]} if field_manager else None,
        )

    async def delete(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self.request("DELETE", resource.path(namespace, name))

    async def watch(
        self,
        resource: Resource,
        resource_version: str,
        namespace: str | None = None,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
        max_line: int = MAX_WATCH_LINE,
        send_initial_events: bool = False,
        decode: Callable[[bytes], Any] = json.loads,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) from `resource_version`, with bookmarks.

        With `send_initial_events` (a "watch list", the WatchList feature: beta and on by default
        since Kubernetes 1.32), the stream first carries every object as an ADDED event, then a
        bookmark annotated INITIAL_EVENTS_END; with `resource_version` "" that state is as current
        as a consistent list. The API server streams it from its watch cache one object a line, so
        neither side holds the whole list. A server without the feature answers 422.
        `decode` reads each line (an EventDecoder: only the fields of a shape).

        Ends when the server closes the stream; raises ApiError(410) when the version is too old
        (and ApiError for any ERROR event), WatchStreamError for a line that is not an event,
        aiohttp.ClientError when the connection fails.
        """
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if send_initial_events:
            params |= {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
        if label_selector:
            params["labelSelector"] = label_selector
        async with self.session.get(
            resource.path(namespace).lstrip("/"),
            params=params,
            headers=self._request_headers(None),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
        ) as response:
            if response.status >= 400:
                if response.status == 401:
                    self.refresh_credentials()  # the caller's retry uses the new token
                raise ApiError(response.status, _decode_body(await response.read()), "WATCH", resource.path(namespace))
            async for line in split_lines(response.content.iter_any(), max_line):
                if not line.strip():
                    continue
                event = parse_watch_event(line, decode)
                if event["type"] == "ERROR":
                    status = event["object"]
                    code = status.get("code")
                    raise ApiError(code if isinstance(code, int) else 500, status, "WATCH", resource.path(namespace))
                yield event
