"""Where the links in a body point (Nova's ViewBuilder._get_links and _get_href_link): built by
wsgi from the request, used by the views."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Links:
    """Where links point: the endpoint's root and the project id if the request URL had one."""

    root: str  # e.g. http://127.0.0.1:8774
    project_id: str = ""

    def _join(self, *parts: str) -> str:
        return "/".join(p for p in parts if p)

    def self_and_bookmark(self, collection: str, identifier: str) -> list[dict[str, Any]]:
        return [
            {"href": self._join(self.root, "v2.1", self.project_id, collection, identifier), "rel": "self"},
            {"href": self._join(self.root, self.project_id, collection, identifier), "rel": "bookmark"},
        ]

    def bookmark(self, collection: str, identifier: str) -> list[dict[str, Any]]:
        return [{"href": self._join(self.root, self.project_id, collection, identifier), "rel": "bookmark"}]

    def collection(self, collection: str, **query: str) -> str:
        url = self._join(self.root, "v2.1", self.project_id, collection)
        return url + ("?" + urllib.parse.urlencode(query) if query else "")  # as Nova's _get_next_link
