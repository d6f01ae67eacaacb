"""Project, user and domain bodies (keystone/api/projects.py, users.py, domains.py). Every project is
a namespace and every user a Kubernetes user, all in Keystone's `default` domain; the id is the name."""

from __future__ import annotations

from typing import Any

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
DEFAULT_DOMAIN_REF = {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME}


def domain(identity_url: str) -> dict[str, Any]:
    return {
        "id": DEFAULT_DOMAIN_ID,
        "name": DEFAULT_DOMAIN_NAME,
        "description": "The default domain: every namespace's project and every Kubernetes user",
        "enabled": True,
        "tags": [],
        "options": {},
        "links": {"self": f"{identity_url}/v3/domains/{DEFAULT_DOMAIN_ID}"},
    }


def project(identity_url: str, name: str) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "domain_id": DEFAULT_DOMAIN_ID,
        "description": f"Kubernetes namespace {name}",
        "enabled": True,
        "is_domain": False,
        "parent_id": DEFAULT_DOMAIN_ID,
        "tags": [],
        "options": {},
        "links": {"self": f"{identity_url}/v3/projects/{name}"},
    }


def user(identity_url: str, name: str) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "domain_id": DEFAULT_DOMAIN_ID,
        "enabled": True,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"{identity_url}/v3/users/{name}"},
    }


def collection(key: str, items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """A list answer: the items and Keystone's links (never paged here)."""
    return {key: items, "links": {"self": url, "previous": None, "next": None}}
