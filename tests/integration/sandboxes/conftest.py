"""Fixtures shared by the sandbox integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.sandboxes.hostile import host_secret


@pytest.fixture(scope="module")
def secret() -> Iterator[str]:
    """A host file outside every sandbox that hostile code tries to read."""
    with host_secret() as path:
        yield path
