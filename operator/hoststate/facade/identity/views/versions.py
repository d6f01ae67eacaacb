"""Keystone's version documents (keystone/api/discovery.py): v3 only."""

from __future__ import annotations

from typing import Any

V3 = {
    "id": "v3.14",
    "status": "stable",
    "updated": "2020-04-07T00:00:00Z",
    "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
}


def version_v3(identity_url: str) -> dict[str, Any]:
    return {**V3, "links": [{"rel": "self", "href": f"{identity_url}/v3/"}]}


def versions(identity_url: str) -> dict[str, Any]:
    """GET /identity: Keystone answers 300 Multiple Choices with every version."""
    return {"versions": {"values": [version_v3(identity_url)]}}
