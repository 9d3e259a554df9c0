"""Fixtures for the rate-limit tests: one factory per store kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from dprims.ratelimit import MemoryStore


if TYPE_CHECKING:
    from collections.abc import Callable

    from dprims.testing import FakeClock

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param(
        "redis_cluster", marks=pytest.mark.redis_cluster, id="redis_cluster"
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the store kind under test."""
    return str(request.param)


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, prefix: str) -> Any:
    """A store of the kind under test (on a unique prefix for Redis)."""
    if backend == "memory":
        return MemoryStore()
    from dprims.ratelimit import RedisStore

    client = request.getfixturevalue(
        "redis_client" if backend == "redis" else "redis_cluster_client"
    )
    return RedisStore(client, prefix=prefix)


@pytest.fixture
def make(store: Any, clock: FakeClock, backend: str) -> Callable[..., Any]:
    """Build a limiter on the store under test (FakeClock in memory)."""

    def factory(cls: type, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("store", store)
        if backend == "memory":
            kwargs.setdefault("clock", clock)
        return cls(*args, **kwargs)

    return factory
