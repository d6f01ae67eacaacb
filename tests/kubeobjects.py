"""Builders for the custom resources the tests create."""

from __future__ import annotations

from typing import Any

from hoststate import API_GROUP, API_VERSION

API = f"{API_GROUP}/{API_VERSION}"


def compute_service(host: str, binary: str = "nova-compute", name: str | None = None, **spec: Any) -> dict:
    name = name or f"{host.lower().replace('_', '-')}.{binary}"
    return {
        "apiVersion": API,
        "kind": "ComputeService",
        "metadata": {"name": name},
        "spec": {"host": host, "binary": binary, **spec},
    }


def server(name: str, host: str = "", **spec: Any) -> dict:
    return {
        "apiVersion": API,
        "kind": "Server",
        "metadata": {"name": name},
        "spec": {"host": host, **spec},
    }
