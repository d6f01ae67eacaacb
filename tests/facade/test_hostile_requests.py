"""Malformed and hostile requests get Nova's 4xx over HTTP, in Nova's JSON shape (issue 12, items 1 and 3)."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse

from hoststate.facade.wsgi import AIOHTTP_MAX_FIELD_SIZE, MAX_HEADER_LINE, MAX_REQUEST_BODY_SIZE
from tests.support.facade import Response, RunningFacade, http

from .conftest import Users, World


def force_down(facade: RunningFacade, users: Users, raw: bytes, content_type: str = "application/json") -> Response:
    return http(
        f"{facade.url}/v2.1/os-services/force-down",
        "PUT",
        token=users.admin,
        version="2.11",
        raw=raw,
        headers={"Content-Type": content_type},
    )


def bad_request(response: Response) -> str:
    assert response.status == 400, response
    assert response.headers["X-Compute-Request-Id"].startswith("req-")
    return response.body["badRequest"]["message"]


def test_bodies_over_112_kib_are_413(facade: RunningFacade, users: Users, world: World) -> None:
    padding = {"host": world.host, "binary": "nova-compute", "forced_down": True, "x": ""}
    under = json.dumps(padding | {"x": "a" * (MAX_REQUEST_BODY_SIZE - 200)}).encode()
    assert "Additional properties are not allowed" in bad_request(force_down(facade, users, under))  # read, validated
    over = json.dumps(padding | {"x": "a" * MAX_REQUEST_BODY_SIZE}).encode()
    response = force_down(facade, users, over)
    assert response.status == 413
    assert response.body == {"overLimit": {"code": 413, "message": "Request is too large."}}


def test_bodies_that_are_not_utf8_json_or_nest_too_deep_are_400(facade: RunningFacade, users: Users) -> None:
    for raw in (
        '{"host": "h\u00e9", "binary": "nova-compute", "forced_down": true}'.encode("latin-1"),
        '{"host": "h", "binary": "nova-compute", "forced_down": true}'.encode("utf-16"),
        b"[" * 10_000 + b"]" * 10_000,
        b'{"host": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
    ):
        assert bad_request(force_down(facade, users, raw)) == "Malformed request body"


def test_unknown_content_types_are_415(facade: RunningFacade, users: Users) -> None:
    for content_type in ("application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"):
        response = force_down(facade, users, b"host=h", content_type)
        assert response.status == 415
        assert response.body == {"badMediaType": {"code": 415, "message": "Unsupported Content-Type"}}


def test_query_strings_that_are_not_utf8_are_400(facade: RunningFacade, users: Users, world: World) -> None:
    for query in ("name=%ff%fe", "host=%ff", "%c3=x", "name=%ed%a0%80"):  # the last: an encoded surrogate
        message = bad_request(http(f"{facade.url}/v2.1/servers?{query}", token=users.owner))
        assert message == "Query string is not UTF-8 encoded"
    utf8 = http(f"{facade.url}/v2.1/servers?name=%C3%A9", token=users.owner)  # é: fine
    assert utf8.status == 200 and utf8.body["servers"] == []


def test_limit_and_marker(facade: RunningFacade, users: Users, world: World) -> None:
    huge = http(f"{facade.url}/v2.1/servers?limit={10**30}", token=users.owner)
    assert huge.status == 200 and [s["id"] for s in huge.body["servers"]] == [world.server_id]  # clamped to 1000
    for limit in ("", "-1", "1.5", "1e3", "%00"):
        assert bad_request(http(f"{facade.url}/v2.1/servers?limit={limit}", token=users.owner)).startswith(
            "Invalid input for query parameters limit."
        )
    for marker in ("nope", "%00", "a" * 4000):
        message = bad_request(http(f"{facade.url}/v2.1/servers?marker={marker}", token=users.owner))
        assert message == f"Marker {urllib.parse.unquote(marker)} could not be found."


def raw_request(facade: RunningFacade, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request written on a socket as given (urllib refuses some of these), and the answer."""
    with socket.create_connection(("127.0.0.1", facade.port), timeout=30) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    header_block, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def test_header_lines_over_nova_s_limit_are_a_json_400_that_echoes_nothing(
    facade: RunningFacade, users: Users, world: World
) -> None:
    # Longer than aiohttp's default (8190) but within Nova's max_header_line: served.
    padded = http(f"{facade.url}/v2.1/servers", token=users.owner, headers={"X-Padding": "p" * 12_000})
    assert padded.status == 200 and padded.body["servers"][0]["id"] == world.server_id
    # A token too long: Nova's 400 (before authentication), none of it echoed.
    for size in (MAX_HEADER_LINE, AIOHTTP_MAX_FIELD_SIZE - 100):
        token = "SECRET" + "t" * size
        head = f"GET /v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
        status, headers, body = raw_request(facade, head.encode())
        assert status == 400 and headers["content-type"].startswith("application/json")
        assert json.loads(body) == {
            "badRequest": {"code": 400, "message": f"Request header line too long (over {MAX_HEADER_LINE} bytes)"}
        }
        assert b"SECRET" not in body and headers["x-compute-request-id"].startswith("req-")


def test_hostile_patterns_are_answered_at_once_or_refused(facade: RunningFacade, users: Users, world: World) -> None:
    """The pattern that held the event loop for 10 s (issue 12), and what RE2 cannot run."""
    started = time.monotonic()
    slow_in_python = urllib.parse.quote("(.*)" * 63 + "\x00")
    for key in ("name", "ip", "ip6"):
        response = http(f"{facade.url}/v2.1/servers?{key}={slow_in_python}", token=users.owner, version="2.5")
        assert response.status == 200 and response.body["servers"] == []
    assert time.monotonic() - started < 5  # Python's re: minutes
    too_long = bad_request(http(f"{facade.url}/v2.1/servers?name={'x' * 256}", token=users.owner))
    assert too_long.endswith("is not a 'regex': longer than 255 characters")
    backreference = bad_request(http(f"{facade.url}/v2.1/servers?name=(web)%5C1", token=users.owner))
    assert backreference == (
        "Invalid input for query parameters name. Value: (web)\\1. '(web)\\\\1' is not a 'regex': "
        "invalid escape sequence: \\1"
    )
    found = http(f"{facade.url}/v2.1/servers?name=%5Ew.b-%5Cd%24", token=users.owner)  # ^w.b-\d$
    assert [s["id"] for s in found.body["servers"]] == [world.server_id]
