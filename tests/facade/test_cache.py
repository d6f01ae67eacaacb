"""What the facade's cache keeps of a Server: everything its views read, and no more."""

from __future__ import annotations

import copy
import json

from hoststate.facade.cache import cached_server
from hoststate.facade.views import servers as views


def server(name: str) -> dict:
    # Strings built at run time, as JSON decoding builds them: equal, but distinct objects.
    return {
        "apiVersion": "hoststate.io/v1alpha1",
        "kind": "Server",
        "metadata": {
            "name": name,
            "namespace": "".join(["tenant", "-1"]),
            "uid": f"{name}-uid",
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"note": "kept"},
            "managedFields": [
                {"manager": "nova", "operation": "Update", "time": "2026-01-02T00:00:00Z", "fieldsV1": {"f:spec": {}}},
                {
                    "manager": "hoststate",
                    "operation": "Update",
                    "time": "2026-01-03T10:00:00Z",
                    "subresource": "status",
                },
                {"manager": "kubectl", "operation": "Apply", "time": "2026-01-01T05:00:00Z"},
            ],
        },
        "spec": {"host": "".join(["host", "-a"]), "displayName": name, "metadata": {"k": "v"}},
        "status": {"hostStatus": "".join(["U", "P"]), "observedGeneration": 1},
    }


def test_keeps_what_the_views_read() -> None:
    full = server("vm1")
    slim = cached_server(copy.deepcopy(full))
    assert views.last_update(slim) == views.last_update(full)
    assert views.created_at(slim) == views.created_at(full)
    assert slim["spec"] == full["spec"] and slim["status"] == full["status"]
    full_meta = {key: value for key, value in full["metadata"].items() if key != "managedFields"}
    assert {key: value for key, value in slim["metadata"].items() if key != "managedFields"} == full_meta
    assert slim["metadata"]["managedFields"] == [{"time": "2026-01-03T10:00:00Z"}]


def test_a_server_never_written_keeps_no_managed_fields() -> None:
    full = server("vm1")
    del full["metadata"]["managedFields"]
    slim = cached_server(full)
    assert "managedFields" not in slim["metadata"] and views.last_update(slim) == views.created_at(full)


def test_servers_share_their_repeated_strings() -> None:
    first, second = cached_server(server("vm1")), cached_server(server("vm2"))
    assert first["metadata"]["namespace"] is second["metadata"]["namespace"]
    assert first["spec"]["host"] is second["spec"]["host"]
    assert first["status"]["hostStatus"] is second["status"]["hostStatus"]


def test_servers_decoded_one_by_one_share_their_keys() -> None:
    """Each Server of a watch list is decoded from its own event: its keys are copies of their own."""
    first, second = (cached_server(json.loads(json.dumps(server(name)))) for name in ("vm1", "vm2"))
    for part in ("metadata", "spec", "status"):
        assert [id(key) for key in first[part]] == [id(key) for key in second[part]]
    assert [id(key) for key in first] == [id(key) for key in second]
