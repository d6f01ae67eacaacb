"""A short schemathesis run against the running facade (issue 12: every malformed request gets
Nova's 4xx, answers conform to docs/openapi.yaml, none takes over 1 s). The long run is
`make bench` (bench/fuzz.py); both generate from docs/openapi.yaml and add the hostile requests
the schema cannot express. Derandomized: the same cases every run.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from bench.fuzz import SLOW, SPEC, Call, CapturedErrors, distinct_server_errors, generated_calls, hostile_calls
from kubernetes import client as k8s

from tests.facade.conftest import SERVER_SPEC, create_server, create_service
from tests.support.facade import RunningFacade, make_admin, make_tenant

# Per operation of docs/openapi.yaml, generation mode (2), token (2) and id pass: about 15 cases each.
EXAMPLES = 3


def describe(call: Call) -> str:
    shown = {
        "status": call.status,
        "url": call.url,
        "headers": call.headers,
        "body": call.body,
        "elapsed_s": round(call.elapsed, 3),
    }
    return f"{call.label}: {json.dumps(shown, default=str)}\n{call.traceback}".rstrip()


@pytest.fixture(scope="module")
def fuzzed(
    api_client: k8s.ApiClient, custom: k8s.CustomObjectsApi, admin_cluster_role: str, facade: RunningFacade
) -> Iterator[list[Call]]:
    """Every call of the run, with the facade's logged exceptions; an admin and a project member
    in a fresh project that has a service and a server, whose ids the GET operations also get."""
    project = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=project)))
    tokens = {
        "admin": make_admin(api_client, project, "fuzz-admin", admin_cluster_role),
        "tenant": make_tenant(api_client, project, "fuzz-tenant"),
    }
    host = f"host-{uuid.uuid4().hex[:8]}"
    service = create_service(custom, host)
    server = create_server(custom, project, "fuzz-1", host, **SERVER_SPEC)
    facade.sync(service)
    facade.sync(server)
    known_ids = {
        "project_id": project,
        "server_id": server["metadata"]["uid"],
        "service_id": service["metadata"]["uid"],
    }

    errors = CapturedErrors()
    errors.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("hoststate")
    logger.addHandler(errors)
    try:
        calls = list(generated_calls(facade.url, tokens, EXAMPLES, known_ids=known_ids, errors=errors))
        calls += hostile_calls(facade.url, tokens, errors=errors)
    finally:
        logger.removeHandler(errors)
    yield calls
    custom.delete_namespaced_custom_object("hoststate.io", "v1alpha1", project, "servers", "fuzz-1")
    custom.delete_cluster_custom_object("hoststate.io", "v1alpha1", "computeservices", service["metadata"]["name"])


def test_the_run_reaches_every_route(fuzzed: list[Call]) -> None:
    labels = {call.label for call in fuzzed if not call.hostile}
    operations = {operation.ok().label for operation in schemathesis.openapi.from_path(str(SPEC)).get_all_operations()}
    assert labels == operations and len(labels) >= 37, sorted(operations - labels)
    assert len(fuzzed) >= 300
    assert any(call.status == 200 for call in fuzzed if call.label == "GET /v2.1/servers/{server_id}")


def test_no_request_gets_a_server_error(fuzzed: list[Call]) -> None:
    errors = distinct_server_errors(fuzzed)
    assert not errors, f"{len(errors)} distinct 5xx:\n\n" + "\n\n".join(describe(call) for call in errors)


def test_no_request_is_slower_than_a_second(fuzzed: list[Call]) -> None:
    slow = [call for call in fuzzed if call.elapsed > SLOW]
    assert not slow, "\n".join(describe(call) for call in slow[:10])


def test_answers_conform_to_the_openapi_description(fuzzed: list[Call]) -> None:
    """Status codes, content types, headers and bodies as docs/openapi.yaml says (5xx aside)."""
    failures = [call for call in fuzzed if call.conformance]
    assert not failures, "\n".join(f"{describe(call)}\n  {call.conformance}" for call in failures[:10])
