"""The paging and changes-since helpers the servers and os-migrations controllers share (facade.common)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hoststate.facade.common import MAX_LIMIT, changed_within, changes_window, limited, next_page_query
from hoststate.facade.faults import HTTPBadRequest

ITEMS = [f"id{i}" for i in range(5)]


def same(item: str) -> str:
    return item


@pytest.mark.parametrize(
    ("marker", "limit", "page", "applied"),
    [
        (None, None, ITEMS, None),
        (None, 2, ITEMS[:2], 2),
        ("id1", None, ITEMS[2:], None),
        ("id1", 2, ITEMS[2:4], 2),
        ("id4", 3, [], 3),
        (None, 0, [], 0),
        ("", 9, ITEMS, 9),  # an empty marker is none
    ],
)
def test_limited(marker: str | None, limit: int | None, page: list[str], applied: int | None) -> None:
    assert limited(ITEMS, same, marker, limit) == (page, applied)


def test_limited_never_answers_more_than_max_limit() -> None:
    many = [str(i) for i in range(MAX_LIMIT + 5)]
    assert limited(many, same, None, None) == (many[:MAX_LIMIT], MAX_LIMIT)
    assert limited(many, same, None, MAX_LIMIT + 3) == (many[:MAX_LIMIT], MAX_LIMIT)
    assert limited(many[:MAX_LIMIT], same, None, None) == (many[:MAX_LIMIT], None)


def test_an_unknown_marker_is_novas_400() -> None:
    with pytest.raises(HTTPBadRequest, match="^Marker gone could not be found.$"):
        limited(ITEMS, same, "gone", None)


def test_next_page_only_after_a_full_page() -> None:
    query = {"limit": "2", "marker": "id0", "status": "ACTIVE"}
    assert next_page_query(query, ["id1", "id2"], 2, same) == {"status": "ACTIVE", "limit": "2", "marker": "id2"}
    assert next_page_query(query, ["id1"], 2, same) is None
    assert next_page_query(query, [], 0, same) is None
    assert next_page_query({}, ITEMS, None, same) is None


def test_changes_window_as_nova_reads_it() -> None:
    assert changes_window({}) == (None, None)
    since, before = changes_window({"changes-since": "2026-11-24T12:00:00", "changes-before": "2026-11-24T13:00:00Z"})
    assert since == datetime(2026, 11, 24, 12, tzinfo=UTC)  # no zone: UTC
    assert before == datetime(2026, 11, 24, 13, tzinfo=UTC)
    with pytest.raises(HTTPBadRequest, match="changes-since must be less than or equal to changes-before"):
        changes_window({"changes-since": "2026-11-24T13:00:00Z", "changes-before": "2026-11-24T12:00:00Z"})
    with pytest.raises(HTTPBadRequest, match="^Invalid filter field: changes-before.$"):
        changes_window({"changes-before": "soon"})


@pytest.mark.parametrize(
    ("hour", "since", "before", "inside"),
    [
        (12, 12, None, True),  # bounds are inclusive
        (11, 12, None, False),
        (12, None, 12, True),
        (13, None, 12, False),
        (12, 11, 13, True),
        (None, 11, None, False),  # no time: outside any window
    ],
)
def test_changed_within(hour: int | None, since: int | None, before: int | None, inside: bool) -> None:
    def at(h: int | None) -> datetime | None:
        return None if h is None else datetime(2026, 11, 24, h, tzinfo=UTC)

    assert changed_within(at(hour), at(since), at(before)) is inside
