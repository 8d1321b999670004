"""Skip the multi-host tests, with the reason, where namespaces cannot be built."""

from __future__ import annotations

import pytest
from _netns import unavailable_reason

_REASON = unavailable_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _REASON is None:
        return
    skip = pytest.mark.skip(reason=f"multi-host tests need network namespaces: {_REASON}")
    for item in items:
        if "tests/multihost/" in str(item.fspath):
            item.add_marker(skip)
