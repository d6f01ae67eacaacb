"""Links the facade writes into its bodies."""

from __future__ import annotations

import urllib.parse

from hoststate.facade.links import Links


def test_next_links_escape_their_query_as_nova_does() -> None:
    """A `+` in a time, or `&` in a name filter, must come back as the same query when followed."""
    query = {"changes-since": "2026-01-01T00:00:00+00:00", "name": "a&b=c", "limit": "2", "marker": "m"}
    href = Links("http://127.0.0.1:8774", "tenant-a").collection("servers/detail", **query)
    url = urllib.parse.urlsplit(href)
    assert url.path == "/v2.1/tenant-a/servers/detail"
    assert dict(urllib.parse.parse_qsl(url.query)) == query
