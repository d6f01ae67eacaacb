"""Version documents (nova/api/openstack/compute/versions.py and views/versions.py)."""

from __future__ import annotations

from typing import Any

from ..api_version import MAX_VERSION, MIN_VERSION

# Only v2.1 is listed: the legacy /v2 API is not served here.
V21 = {
    "id": "v2.1",
    "status": "CURRENT",
    "version": MAX_VERSION,
    "min_version": MIN_VERSION,
    "updated": "2013-07-23T11:33:21Z",
    "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
}
DESCRIBED_BY = {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}


def versions(base_url: str) -> dict[str, Any]:
    """GET /: every version, each with a self link only."""
    entry = {k: v for k, v in V21.items() if k != "media-types"}
    return {"versions": [{**entry, "links": [{"rel": "self", "href": f"{base_url}/v2.1/"}]}]}


def version_v21(base_url: str) -> dict[str, Any]:
    """GET /v2.1 and /v2.1/: the version document."""
    return {"version": {**V21, "links": [{"href": f"{base_url}/v2.1/", "rel": "self"}, DESCRIBED_BY]}}
