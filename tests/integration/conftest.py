"""Fixtures shared by integration tests that drive crew children directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interface.crew_runtime.runtime import CrewRuntime


@pytest.fixture(scope="module")
def runtime() -> Iterator[CrewRuntime]:
    """A warm forkserver runtime (CrewAI imported once per test module)."""
    crew_runtime = CrewRuntime()
    assert crew_runtime.warm(), "forkserver preload of interface.crew_runtime.child failed"
    yield crew_runtime
    crew_runtime.close()
