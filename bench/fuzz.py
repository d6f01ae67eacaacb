"""Fuzzing the running facade with schemathesis from docs/openapi.yaml (issue 12: every malformed
request gets Nova's 4xx, none is slower than 1 s).

Cases are generated per operation, positive (inside the schema) and negative (outside it), each
sent with an admin's and a tenant's token; then a fixed list of hostile requests the schema
cannot express (deep nesting, empty `limit`, non-UTF-8, oversize bodies and headers...).
`run_fuzz` is the `make bench` scenario; tests/facade/test_fuzz.py runs a short, derandomized
`fuzz` in the suite.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .harness import percentile

SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
TIMEOUT = 10.0  # seconds; a request still unanswered then counts as a 5xx (the event loop was held)
SLOW = 1.0  # issue 12's bound on any answer


@dataclass
class Call:
    """One request sent and what came back."""

    label: str  # "GET /v2.1/servers/{server_id}"
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    status: int  # 599: no answer within TIMEOUT
    elapsed: float
    request_id: str = ""
    conformance: list[str] = field(default_factory=list)  # failed schema checks, not 5xx
    traceback: str = ""  # the facade's logged exception, when run in-process
    hostile: bool = False  # one of hostile_requests, not generated

    @property
    def server_error(self) -> bool:
        return self.status >= 500


class CapturedErrors(logging.Handler):
    """The facade's logged exceptions (with tracebacks), when it runs in this process."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))

    def take(self) -> str:
        text, self.texts = "\n".join(self.texts), []
        return text


def _shown_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as a report may show them: tokens masked, huge values cut."""
    shown = {}
    for name, value in headers.items():
        value = "<token>" if name.lower() in ("x-auth-token", "authorization") else str(value)
        shown[name] = value if len(value) <= 200 else f"{value[:60]}...({len(value)} chars)"
    return shown


def _shown_body(body: Any) -> Any:
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    return body if len(text) <= 300 else f"{text[:120]!r}...({len(text)} chars)"


def _send_case(case: Any, base_url: str, token: str, session: requests.Session, errors: CapturedErrors | None) -> Call:
    headers = {"X-Auth-Token": token}
    started = time.perf_counter()
    try:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=TIMEOUT)
    except requests.exceptions.Timeout:
        status, elapsed, response = 599, time.perf_counter() - started, None
    except requests.exceptions.ConnectionError:
        status, elapsed, response = 598, time.perf_counter() - started, None  # the facade dropped the connection
    except (requests.exceptions.InvalidHeader, UnicodeEncodeError, ValueError):
        return Call(case.operation.label, case.method, "", {}, None, 0, 0.0)  # refused by the client, never sent
    else:
        status, elapsed = response.status_code, time.perf_counter() - started
    sent = response.request if response is not None else None
    call = Call(
        label=case.operation.label,
        method=case.method,
        url=str(sent.url) if sent is not None else case.formatted_path,
        headers=_shown_headers(dict(sent.headers) if sent is not None else {**(case.headers or {}), **headers}),
        body=_shown_body(case.body) if case.body is not schemathesis.core.NOT_SET else None,
        status=status,
        elapsed=elapsed,
        request_id=response.headers.get("X-Compute-Request-Id", "") if response is not None else "",
    )
    if response is not None and status < 500:
        try:
            case.validate_response(response, checks=CHECKS[1:], headers=headers)
        except (Failure, FailureGroup) as failure:
            call.conformance = [line for line in str(failure).splitlines() if line.strip()][:3]
    if errors is not None:
        call.traceback = errors.take()
    return call


def generated_calls(
    base_url: str,
    tokens: dict[str, str],
    examples: int,
    *,
    seed: int | None = None,
    known_ids: dict[str, str] | None = None,
    errors: CapturedErrors | None = None,
) -> Iterator[Call]:
    """Up to `examples` cases per operation, generation mode and token (fewer when an operation has
    fewer distinct inputs). `seed` None: derandomized (the same cases every run). `known_ids`
    (path parameter -> value, e.g. a real server_id) add a pass of each GET operation with them,
    so that reads get past the look-up; writes keep generated ids (a fuzzed write must not move
    or delete real objects)."""
    schema = schemathesis.openapi.from_path(str(SPEC))
    runs: list[tuple[Any, dict[str, str]]] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        runs.append((operation, {}))
        names = {parameter.name for parameter in operation.path_parameters}
        if operation.method.upper() == "GET" and names and known_ids and names <= known_ids.keys():
            runs.append((operation, {name: known_ids[name] for name in names}))
    with requests.Session() as session:
        for operation, path_parameters in runs:
            for mode in MODES:
                for token in tokens.values():
                    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)
                    yield from _run_strategy(
                        strategy,
                        examples,
                        seed,
                        lambda case, token=token: _send_case(case, base_url, token, session, errors),
                    )


def _run_strategy(strategy: Any, examples: int, seed: int | None, send: Callable[[Any], Call]) -> list[Call]:
    """Up to `examples` cases of `strategy`, each sent; the calls that were sent."""
    calls: list[Call] = []

    @settings(
        max_examples=examples,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # every case is kept, none shrunk
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        calls.append(send(case))

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    with contextlib.suppress(Unsatisfiable):  # no case of this mode: a negative one of an operation without inputs
        run()
    return [call for call in calls if call.status]


def hostile_requests(prefix: str) -> list[dict[str, Any]]:
    """Requests issue 12 names that the schema cannot generate: `requests.request` keyword arguments."""
    deep = "[" * 10_000 + "]" * 10_000
    deep_object = '{"evacuate": ' + deep + "}"
    version = {"OpenStack-API-Version": "compute 2.53"}
    return [
        {"method": "GET", "url": f"{prefix}/servers?limit="},
        {"method": "GET", "url": f"{prefix}/servers/detail?limit="},
        {"method": "GET", "url": f"{prefix}/servers?limit=-1"},
        {"method": "GET", "url": f"{prefix}/servers?limit=99999999999999999999999999"},
        {"method": "GET", "url": f"{prefix}/servers?limit=1.5"},
        {"method": "GET", "url": f"{prefix}/servers?marker="},
        {"method": "GET", "url": f"{prefix}/servers?marker=%00"},
        {"method": "GET", "url": f"{prefix}/servers?name=%ff%fe"},
        {"method": "GET", "url": f"{prefix}/servers?name=" + "(" * 300},
        {"method": "GET", "url": f"{prefix}/servers?name=%5B"},
        {"method": "GET", "url": f"{prefix}/servers?changes-since=not-a-date"},
        {"method": "GET", "url": f"{prefix}/servers?sort_key=display_name&sort_dir=sideways"},
        {"method": "GET", "url": f"{prefix}/servers?all_tenants=%ff"},
        {"method": "GET", "url": f"{prefix}/servers/%ff%fe"},
        {"method": "GET", "url": f"{prefix}/servers/" + "a" * 5000},
        {"method": "GET", "url": f"{prefix}/os-services?host=%ff"},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": deep},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": b"\xff\xfe{}"},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": b'{"host": "\xff"}'},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": "[]"},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": "null"},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": '"text"'},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": "1e999999"},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": "NaN"},
        {"method": "PUT", "url": f"{prefix}/os-services/disable", "data": "{" * 100_000},
        {
            "method": "PUT",
            "url": f"{prefix}/os-services/disable",
            "data": json.dumps({"host": "h" * 200_000, "binary": "nova-compute"}),  # over Nova's 112 KiB
        },
        {"method": "PUT", "url": f"{prefix}/os-services/00000000-0000-0000-0000-000000000000", "data": deep},
        {
            "method": "PUT",
            "url": f"{prefix}/os-services/00000000-0000-0000-0000-000000000000",
            "data": '{"forced_down": true}',
            "headers": {**version, "Content-Type": "application/xml"},
        },
        {
            "method": "PUT",
            "url": f"{prefix}/os-services/00000000-0000-0000-0000-000000000000",
            "data": '{"forced_down": true}',
            "headers": {**version, "Content-Type": "application/json; charset=latin-1"},
        },
        {
            "method": "PUT",
            "url": f"{prefix}/os-services/00000000-0000-0000-0000-000000000000",
            "data": '{"forced_down": true}',
            "headers": {**version, "Content-Type": "multipart/form-data; boundary=x"},
        },
        {"method": "PUT", "url": f"{prefix}/os-services/00000000-0000-0000-0000-000000000000", "headers": version},
        {"method": "DELETE", "url": f"{prefix}/os-services/99999999999999999999999999999"},
        {"method": "DELETE", "url": f"{prefix}/os-services/-1"},
        {"method": "DELETE", "url": f"{prefix}/os-services/1e3"},
        {"method": "DELETE", "url": f"{prefix}/os-services/%ff", "headers": version},
        {"method": "POST", "url": f"{prefix}/servers/00000000-0000-0000-0000-000000000000/action", "data": deep},
        {
            "method": "POST",
            "url": f"{prefix}/servers/00000000-0000-0000-0000-000000000000/action",
            "data": deep_object,
        },
        {"method": "POST", "url": f"{prefix}/servers/00000000-0000-0000-0000-000000000000/action", "data": "{}"},
        {
            "method": "POST",
            "url": f"{prefix}/servers/00000000-0000-0000-0000-000000000000/action",
            "data": '{"evacuate": null}',
        },
        {"method": "GET", "url": f"{prefix}/servers", "headers": {"OpenStack-API-Version": "compute " + "9" * 5000}},
        {"method": "GET", "url": f"{prefix}/servers", "headers": {"OpenStack-API-Version": "compute 2.99999999999"}},
        {"method": "GET", "url": f"{prefix}/servers", "headers": {"X-OpenStack-Nova-API-Version": "2.\u0663".encode()}},
        {"method": "GET", "url": f"{prefix}/servers", "headers": {"X-Big": "x" * 60_000}},
        {"method": "GET", "url": f"{prefix}/servers", "headers": {f"X-Many-{i}": "x" for i in range(200)}},
        {"method": "PATCH", "url": f"{prefix}/servers"},
        {"method": "GET", "url": f"{prefix}/../../etc/passwd"},
    ]


def hostile_calls(
    base_url: str, tokens: dict[str, str], *, prefix: str = "/v2.1", errors: CapturedErrors | None = None
) -> Iterator[Call]:
    with requests.Session() as session:
        for token in tokens.values():
            for request in hostile_requests(base_url + prefix):
                headers = {"X-Auth-Token": token, **request.get("headers", {})}
                started = time.perf_counter()
                try:
                    response = session.request(
                        request["method"], request["url"], data=request.get("data"), headers=headers, timeout=TIMEOUT
                    )
                    status = response.status_code
                    request_id = response.headers.get("X-Compute-Request-Id", "")
                except requests.exceptions.Timeout:
                    status, request_id = 599, ""
                except requests.exceptions.ConnectionError:
                    status, request_id = 598, ""  # the facade dropped the connection: no answer at all
                call = Call(
                    label=f"{request['method']} {urlsplit(request['url']).path[:80]}",
                    method=request["method"],
                    url=request["url"] if len(request["url"]) <= 300 else request["url"][:120] + "...",
                    headers=_shown_headers(headers),
                    body=_shown_body(request["data"]) if request.get("data") is not None else None,
                    status=status,
                    elapsed=time.perf_counter() - started,
                    request_id=request_id,
                    hostile=True,
                )
                if errors is not None:
                    call.traceback = errors.take()
                yield call


def distinct_server_errors(calls: list[Call]) -> list[Call]:
    """One call per (operation, status, last line of the facade's traceback)."""
    seen: dict[tuple[str, int, str], Call] = {}
    for call in calls:
        if call.server_error:
            cause = call.traceback.strip().splitlines()[-1] if call.traceback.strip() else ""
            seen.setdefault((call.label, call.status, cause), call)
    return list(seen.values())


def figures(calls: list[Call]) -> dict[str, Any]:
    times = [call.elapsed for call in calls]
    return {
        "cases": len(calls),
        "server_errors": sum(call.server_error for call in calls),
        "distinct_server_errors": len(distinct_server_errors(calls)),
        "slower_than_1s": sum(t > SLOW for t in times),
        "max_s": max(times, default=0.0),
        "p99_s": percentile(times, 99) if times else 0.0,
        "p50_s": percentile(times, 50) if times else 0.0,
        "nonconforming": sum(bool(call.conformance) for call in calls),
        "statuses": dict(sorted(Counter(str(call.status) for call in calls).items())),
    }


def run_fuzz(
    facade_url: str,
    admin_token: str,
    tenant_token: str,
    cases: int = 10_000,
    *,
    known_ids: dict[str, str] | None = None,
    errors: CapturedErrors | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """At least `cases` requests against the facade at `facade_url`: rounds of generated cases
    (a new seed each round) until there are enough, then the hostile requests. Returns counts
    (cases, 5xx, slower than 1 s, max and p99 response time) and the distinct 5xx."""
    tokens = {"admin": admin_token, "tenant": tenant_token}
    schema = schemathesis.openapi.from_path(str(SPEC))
    operations = sum(1 for _ in schema.get_all_operations())
    per_run = max(1, math.ceil(cases / (operations * len(MODES) * len(tokens))))
    calls: list[Call] = list(hostile_calls(facade_url, tokens, errors=errors))
    round_seed = 0
    while len(calls) < cases:
        before = len(calls)
        calls.extend(generated_calls(facade_url, tokens, per_run, seed=round_seed, known_ids=known_ids, errors=errors))
        round_seed += 1
        if progress is not None:
            progress(len(calls))
        if len(calls) == before:
            break  # nothing left to generate
    return {
        **figures(calls),
        "server_error_samples": [
            {
                "label": c.label,
                "status": c.status,
                "url": c.url,
                "headers": c.headers,
                "body": c.body,
                "request_id": c.request_id,
                "traceback": c.traceback,
            }
            for c in distinct_server_errors(calls)
        ],
    }
