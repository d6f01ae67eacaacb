"""The informer survives every error of a watch stream (issue 10): a malformed line, a line longer
than any buffer, a connection reset inside an event, an ERROR event with 410 Gone, an error answer
that is not JSON, a handler or transform that raises. Each is followed by a rewatch or a relist and
the events after it are delivered.

The streams come from an in-process HTTP server that plays scripted lists and watches (the bytes
on the wire, cut where the test says); the behaviour against the real API server is in
test_informer.py and test_large_objects.py. Most informers here list in pages, as when the API
server refuses watch lists; the last tests are of watch lists (a list streamed as a watch's
initial events) that break, or are refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hoststate.kube import SERVERS, KubeClient
from hoststate.kube.client import INITIAL_EVENTS_END, EventDecoder, WatchStreamError, parse_watch_event, split_lines
from hoststate.kube.informer import Informer
from hoststate.operator.evacuation import ServerFields, slim_server_with_evacuation

NAMESPACE = "tenant"
RESET = object()  # in a watch script: drop the connection here


def obj(name: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(version)}, **extra}


def line(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": body}).encode() + b"\n"


GONE = line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"})


@dataclass
class ScriptedApiServer:
    """Lists answer with the next of `lists` (the last one repeats); watches play the next of
    `watches` (a watch beyond the script stays open and silent), watch lists (sendInitialEvents) too."""

    lists: list[tuple[int, list[dict[str, Any]]]]  # (resourceVersion, items)
    watches: list[list[Any]]  # bytes to send, RESET, or an int: answer with that HTTP status and a text page
    requests: list[tuple[str, str]] = field(default_factory=list)  # ("list" | "watch", resourceVersion)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        version = request.query.get("resourceVersion", "")
        if request.query.get("watch") != "1":
            self.requests.append(("list", version))
            revision, items = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
            return web.json_response({"metadata": {"resourceVersion": str(revision)}, "items": items})
        self.requests.append(("watch list" if request.query.get("sendInitialEvents") == "true" else "watch", version))
        script = self.watches.pop(0) if self.watches else []
        if script and isinstance(script[0], int):
            return web.Response(status=script[0], text="<html>upstream trouble</html>", content_type="text/html")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for step in script:
            if step is RESET:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(step)
        if not script:
            await asyncio.sleep(3600)  # an idle watch, until the test ends
        return response

    def count(self, what: str) -> int:
        return sum(1 for kind, _ in self.requests if kind == what)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[TestServer, KubeClient]] = []

    async def start(api: ScriptedApiServer) -> KubeClient:
        app = web.Application()
        app.router.add_get("/{path:.*}", api.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        client = KubeClient(kopf.ConnectionInfo(server=str(server.make_url(""))))
        started.append((server, client))
        return client

    yield start
    for server, client in started:
        await client.close()
        await server.close()


@pytest.fixture
async def cleanup(serve: Callable[..., Any]) -> AsyncIterator[list[Informer]]:
    informers: list[Informer] = []
    yield informers
    for informer in informers:
        await informer.stop()


async def run_informer(serve: Callable[..., Any], api: ScriptedApiServer, informers: list[Informer], **kwargs: Any):
    kwargs.setdefault("stream_lists", False)
    informer = Informer(await serve(api), SERVERS, NAMESPACE, retry_delay=0.01, max_retry_delay=0.05, **kwargs)
    informers.append(informer)
    informer.start()
    return informer


async def delivered(informer: Informer, *objects: dict[str, Any]) -> None:
    for wanted in objects:
        assert await informer.wait_for(wanted, timeout=10), f"{wanted['metadata']['name']} never arrived"
    assert informer.running


async def test_a_malformed_line_is_followed_by_a_relist(serve, cleanup) -> None:
    a, b, missed, c = obj("a", 1), obj("b", 2), obj("missed", 3), obj("c", 4)
    api = ScriptedApiServer(
        lists=[(1, [a]), (3, [a, b, missed])],
        watches=[[line("ADDED", b), b'{"type": "ADDED", "object": {"metadata": \n'], [line("ADDED", c)]],
    )
    informer = await run_informer(serve, api, cleanup)
    await delivered(informer, a, b, missed, c)
    assert (informer.relists, informer.watch_errors) == (1, 1)
    assert api.requests[-1] == ("watch", "3")  # from the relist's version


@pytest.mark.parametrize("garbage", [b"[1, 2]\n", b'{"type": "SHOUTED", "object": {}}\n', b'{"type": "ADDED"}\n'])
async def test_a_line_that_is_no_event_is_followed_by_a_relist(serve, cleanup, garbage: bytes) -> None:
    a, c = obj("a", 1), obj("c", 3)
    api = ScriptedApiServer(lists=[(1, [a]), (2, [a])], watches=[[garbage], [line("ADDED", c)]])
    informer = await run_informer(serve, api, cleanup)
    await delivered(informer, a, c)
    assert informer.relists == 1


async def test_a_line_over_the_limit_is_followed_by_a_relist_that_reads_the_object_whole(serve, cleanup) -> None:
    a, big, c = obj("a", 1), obj("big", 2, data="x" * 10_000), obj("c", 3)
    api = ScriptedApiServer(lists=[(1, [a]), (2, [a, big])], watches=[[line("ADDED", big)], [line("ADDED", c)]])
    informer = await run_informer(serve, api, cleanup, max_event_bytes=4096)
    await delivered(informer, a, big, c)
    assert informer.get("big", NAMESPACE)["data"] == big["data"]
    assert (informer.relists, informer.watch_errors) == (1, 1)


async def test_an_event_longer_than_aiohttps_buffers_is_delivered_by_the_watch(serve, cleanup) -> None:
    """aiohttp's line reader raised LineTooLong well below 1 MiB; the watch reads chunks instead."""
    a, big, c = obj("a", 1), obj("big", 2, data="x" * (3 * 1024 * 1024)), obj("c", 3)
    api = ScriptedApiServer(lists=[(1, [a])], watches=[[line("ADDED", big), line("ADDED", c)]])
    informer = await run_informer(serve, api, cleanup)
    await delivered(informer, a, big, c)
    assert (informer.relists, informer.watch_errors) == (0, 0)
    assert len(informer.get("big", NAMESPACE)["data"]) == 3 * 1024 * 1024


async def test_a_reset_inside_an_event_is_followed_by_a_rewatch_from_the_last_version(serve, cleanup) -> None:
    a, b, c = obj("a", 1), obj("b", 2), obj("c", 3)
    half = line("ADDED", c)[:20]
    api = ScriptedApiServer(lists=[(1, [a])], watches=[[line("ADDED", b), half, RESET], [line("ADDED", c)]])
    informer = await run_informer(serve, api, cleanup)
    await delivered(informer, a, b, c)
    assert (informer.relists, informer.watch_errors) == (0, 1)
    assert api.requests[:3] == [("list", ""), ("watch", "1"), ("watch", "2")]


async def test_an_error_event_410_is_followed_by_a_relist(serve, cleanup) -> None:
    a, b, missed, c = obj("a", 1), obj("b", 2), obj("missed", 5), obj("c", 6)
    api = ScriptedApiServer(
        lists=[(1, [a]), (5, [a, b, missed])], watches=[[line("ADDED", b), GONE], [line("ADDED", c)]]
    )
    informer = await run_informer(serve, api, cleanup)
    await delivered(informer, a, b, missed, c)
    assert informer.relists == 1
    assert api.requests[-1] == ("watch", "5")


async def test_an_error_answer_that_is_not_json_is_followed_by_a_rewatch(serve, cleanup) -> None:
    a, c = obj("a", 1), obj("c", 2)
    api = ScriptedApiServer(lists=[(1, [a])], watches=[[503], [line("ADDED", c)]])
    informer = await run_informer(serve, api, cleanup)
    await delivered(informer, a, c)
    assert (informer.relists, informer.watch_errors) == (0, 1)


async def test_a_handler_or_transform_that_raises_is_counted_and_the_rest_goes_on(serve, cleanup) -> None:
    a, b, odd, c = obj("a", 1), obj("b", 2), obj("odd", 3), obj("c", 4)
    api = ScriptedApiServer(lists=[(1, [a])], watches=[[line("ADDED", b), line("ADDED", odd), line("ADDED", c)]])

    def transform(body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"]["name"] == "odd":
            raise KeyError("spec")
        return body

    def broken_index(kind: str, old: Any, new: Any) -> None:
        if new["metadata"]["name"] == "b":
            raise RuntimeError("index bug")

    seen: list[str] = []
    informer = Informer(await serve(api), SERVERS, NAMESPACE, transform=transform, retry_delay=0.01, stream_lists=False)
    cleanup.append(informer)
    informer.add_handler(broken_index)
    informer.add_handler(lambda kind, old, new: seen.append(new["metadata"]["name"]))
    informer.start()
    await delivered(informer, a, b, c)
    assert seen == ["a", "b", "c"]  # the second handler still ran for b
    assert informer.get("odd", NAMESPACE) is None
    assert (informer.handler_errors, informer.watch_errors, informer.relists) == (2, 0, 0)


async def test_progress_and_listing_are_exposed_for_health_checks(serve, cleanup) -> None:
    a = obj("a", 1)
    api = ScriptedApiServer(lists=[(1, [a])], watches=[[line("BOOKMARK", {"metadata": {"resourceVersion": "2"}})]])
    informer = Informer(await serve(api), SERVERS, NAMESPACE, retry_delay=0.01, stream_lists=False)
    cleanup.append(informer)
    assert not informer.has_listed
    informer.start()
    started = informer.last_progress
    await delivered(informer, a)
    assert informer.has_listed
    for _ in range(100):
        if informer.resource_version == "2":
            break
        await asyncio.sleep(0.05)
    assert informer.resource_version == "2" and informer.last_progress > started


# -- watch lists ----------------------------------------------------------------------------------
def initial_events_end(version: int) -> bytes:
    return line(
        "BOOKMARK", {"metadata": {"resourceVersion": str(version), "annotations": {INITIAL_EVENTS_END: "true"}}}
    )


async def test_a_watch_list_fills_the_store_at_its_closing_bookmark_and_goes_on_watching(serve, cleanup) -> None:
    a, b, c = obj("a", 1), obj("b", 2), obj("c", 4)
    api = ScriptedApiServer(
        lists=[], watches=[[line("ADDED", a), line("ADDED", b), initial_events_end(3), line("ADDED", c)]]
    )
    informer = await run_informer(serve, api, cleanup, stream_lists=True)
    await delivered(informer, a, b, c)
    assert api.requests[:2] == [("watch list", ""), ("watch", "4")]  # the script ended: watched from its last
    assert (informer.relists, informer.watch_errors) == (0, 0)


async def test_a_watch_list_that_breaks_before_its_end_is_listed_again_and_nothing_half_listed_is_kept(
    serve, cleanup
) -> None:
    a, b, c, gone = obj("a", 1), obj("b", 2), obj("c", 3), obj("gone", 1)
    seen: list[str] = []
    api = ScriptedApiServer(
        lists=[],
        watches=[
            [line("ADDED", gone), RESET],  # the connection drops inside the initial events
            [line("ADDED", gone), b'{"type": "ADDED", "object": \n'],  # a malformed line inside them
            [line("ADDED", a), line("ADDED", b), initial_events_end(2), line("ADDED", c)],
        ],
    )
    informer = Informer(await serve(api), SERVERS, NAMESPACE, retry_delay=0.01, max_retry_delay=0.05)
    cleanup.append(informer)
    informer.add_handler(lambda kind, old, new: seen.append(f"{kind} {new['metadata']['name']}"))
    informer.start()
    await delivered(informer, a, b, c)
    assert api.requests[:4] == [("watch list", ""), ("watch list", ""), ("watch list", ""), ("watch", "3")]
    assert seen == ["ADDED a", "ADDED b", "ADDED c"]  # nothing was handed over before a list was whole
    assert (informer.relists, informer.watch_errors) == (0, 2)


async def test_a_watch_list_refused_by_the_api_server_is_followed_by_a_list_in_pages(serve, cleanup) -> None:
    a, c = obj("a", 1), obj("c", 2)
    api = ScriptedApiServer(lists=[(1, [a])], watches=[[422], [line("ADDED", c)]])
    informer = await run_informer(serve, api, cleanup, stream_lists=True)
    await delivered(informer, a, c)
    assert api.requests[:3] == [("watch list", ""), ("list", ""), ("watch", "1")]
    assert not informer.stream_lists


async def test_the_first_list_is_read_at_once_but_delivered_after_its_event(serve, cleanup) -> None:
    a = obj("a", 1)
    api = ScriptedApiServer(lists=[], watches=[[line("ADDED", a), initial_events_end(1)]])
    informer = Informer(await serve(api), SERVERS, NAMESPACE)
    cleanup.append(informer)
    seen: list[str] = []
    informer.add_handler(lambda kind, old, new: seen.append(new["metadata"]["name"]))
    deliver = asyncio.Event()
    informer.start(deliver_after=deliver)
    started = informer.last_progress
    for _ in range(500):  # until the stream has been read
        if informer.last_progress > started:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert informer.last_progress > started
    assert (seen, informer.has_listed, len(informer)) == ([], False, 0)
    deliver.set()
    await delivered(informer, a)
    assert seen == ["a"] and informer.has_listed


# -- the line splitter and the event parser -------------------------------------------------------
async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def lines_of(*parts: bytes, max_line: int = 100) -> list[bytes]:
    return [item async for item in split_lines(chunks(*parts), max_line)]


async def test_lines_are_whole_however_the_stream_is_cut() -> None:
    stream = b'{"a": 1}\n{"b": 2}\n\n{"c": 3}\n'
    expected = [b'{"a": 1}', b'{"b": 2}', b"", b'{"c": 3}']
    for size in (1, 2, 3, 7, len(stream)):
        parts = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert await lines_of(*parts) == expected


async def test_a_line_over_the_limit_raises_whether_or_not_it_ends() -> None:
    with pytest.raises(WatchStreamError, match="over the limit"):
        await lines_of(b"x" * 101 + b"\n")
    with pytest.raises(WatchStreamError):
        await lines_of(*[b"x" * 30] * 4)  # no newline yet: the buffer alone is over the limit
    assert await lines_of(b"x" * 100 + b"\n") == [b"x" * 100]


async def test_a_stream_that_ends_inside_a_line_raises_a_payload_error() -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await lines_of(b'{"a": 1}\n{"b"')
    assert await lines_of(b'{"a": 1}\n', b"\r") == [b'{"a": 1}']


def test_parse_watch_event_refuses_what_is_not_an_event() -> None:
    assert parse_watch_event(b'{"type": "ADDED", "object": {}}') == {"type": "ADDED", "object": {}}
    for bad in (b"{", b"null", b'"ADDED"', b'{"type": "ADDED", "object": []}', b'{"object": {}}'):
        with pytest.raises(WatchStreamError):
            parse_watch_event(bad)


# A Server as the API server sends it: most of it is what the operator drops.
FULL_SERVER = {
    "apiVersion": "hoststate.io/v1alpha1",
    "kind": "Server",
    "metadata": {
        "name": "vm-1",
        "namespace": NAMESPACE,
        "uid": "6f1c0d3e-0000-4000-8000-000000000001",
        "generation": 3,
        "resourceVersion": "1234",
        "creationTimestamp": "2026-12-01T00:00:00Z",
        "labels": {"hoststate.io/ha": "true", "app": "db"},
        "annotations": {"hoststate.io/evacuation": '{"id": "e1"}', "other": "x" * 100},
        "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:host": {}}}}],
    },
    "spec": {"host": "h1", "vmState": "active", "taskState": None, "flavor": {"vcpus": 2}, "metadata": {"k": "v"}},
    "status": {"hostStatus": "UP", "evacuation": {"id": "e1", "state": "accepted"}, "observedGeneration": 3},
}


@pytest.mark.parametrize(
    "body",
    [
        FULL_SERVER,
        {"metadata": {"name": "bare", "namespace": NAMESPACE, "resourceVersion": "1"}},
        {**FULL_SERVER, "spec": None, "status": None},
        {**FULL_SERVER, "spec": {"host": 7}},  # a type the CRD refuses: decoded whole, the transform sees it
    ],
)
def test_a_shaped_decoder_gives_the_transform_what_a_whole_decode_gives(body: dict[str, Any]) -> None:
    raw = line("MODIFIED", body)
    shaped = parse_watch_event(raw.strip(), EventDecoder(ServerFields))
    whole = parse_watch_event(raw.strip())
    assert shaped["type"] == "MODIFIED"
    assert slim_server_with_evacuation(shaped["object"]) == slim_server_with_evacuation(whole["object"])


def test_a_shaped_decoder_skips_the_rest_and_reads_errors_and_bookmarks() -> None:
    decode = EventDecoder(ServerFields)
    assert parse_watch_event(line("ADDED", FULL_SERVER).strip(), decode)["object"]["metadata"].keys() == {
        "name",
        "namespace",
        "uid",
        "generation",
        "resourceVersion",
        "labels",
        "annotations",
    }
    gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410}
    assert parse_watch_event(line("ERROR", gone).strip(), decode)["object"]["code"] == 410
    bookmark = {"metadata": {"resourceVersion": "99", "annotations": {INITIAL_EVENTS_END: "true"}}}
    assert parse_watch_event(line("BOOKMARK", bookmark).strip(), decode)["object"] == bookmark
    for bad in (b"{", b"null", b'{"type": "ADDED", "object": []}', b'{"type": "ADDED", "object": {"metadata": '):
        with pytest.raises(WatchStreamError):
            parse_watch_event(bad, decode)
