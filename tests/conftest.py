"""The suite's fixtures come from the plugins in tests/support/.

Tests that need the API server carry the `cluster` marker (declared in pyproject.toml; pytest
runs with --strict-markers). It is added here to every test that uses the `cluster` fixture,
directly or through another fixture, so `make unit` (-m "not cluster") runs the rest without it.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.cluster", "tests.support.processes", "tests.support.facade"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
