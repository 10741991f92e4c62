"""Markers by folder: tests/unit need no servers, tests/e2e run against the real stack.

`pytest -m unit` (or `pytest tests/unit`) runs in seconds on a machine with no
MariaDB or Redis; the e2e fixtures start them only when a test asks.
"""
import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test unit or e2e by the folder it lives in."""
    for item in items:
        path = str(item.path)
        kind = "unit" if "/tests/unit/" in path else "cluster" if "/tests/cluster/" in path else "e2e"
        item.add_marker(getattr(pytest.mark, kind))
