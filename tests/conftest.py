"""Shared fixtures: real servers (session-scoped), clients, unique prefixes.

Servers come from `dprims.testing`. Outside CI a missing server binary skips
the tests that need it, with the reason; with ``CI=true`` it fails them, so
CI can never go green without really talking to Redis and ZooKeeper.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from dprims import testing
from dprims.errors import ServerNotFoundError


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _start(
    factory: Callable[[], AbstractContextManager[Any]],
) -> Iterator[Any]:
    try:
        manager = factory()
        handle = manager.__enter__()
    except ServerNotFoundError as exc:
        if IN_CI:
            pytest.fail(f"CI=true and a server is missing: {exc}")
        pytest.skip(f"server not installed: {exc}")
    try:
        yield handle
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_proc() -> Iterator[testing.RedisServer]:
    """A real redis-server shared by the session; do not stop it."""
    yield from _start(testing.redis_server)


@pytest.fixture(scope="session")
def redis_cluster_proc() -> Iterator[testing.RedisClusterHandle]:
    """A real 3-master Redis Cluster shared by the session."""
    yield from _start(lambda: testing.redis_cluster(3))


@pytest.fixture(scope="session")
def zookeeper_proc() -> Iterator[testing.ZooKeeperServer]:
    """A real standalone ZooKeeper shared by the session."""
    yield from _start(testing.zookeeper_server)


@pytest.fixture(scope="session")
def zookeeper_ensemble_proc() -> Iterator[testing.ZooKeeperEnsemble]:
    """A real 3-node ZooKeeper ensemble shared by the session."""
    yield from _start(lambda: testing.zookeeper_ensemble(3))


@pytest.fixture
def redis_client(redis_proc: testing.RedisServer) -> Iterator[Any]:
    """A blocking redis-py client on the shared server."""
    client = redis_proc.client()
    yield client
    client.close()


@pytest.fixture
def redis_cluster_client(
    redis_cluster_proc: testing.RedisClusterHandle,
) -> Iterator[Any]:
    """A blocking redis-py RedisCluster client on the shared cluster."""
    client = redis_cluster_proc.client()
    yield client
    client.close()


@pytest.fixture
def own_redis() -> Iterator[testing.RedisServer]:
    """A private redis-server for tests that stop, kill or pause it."""
    yield from _start(testing.redis_server)


@pytest.fixture
def prefix() -> str:
    """A unique key prefix so tests sharing a server never collide."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clock() -> testing.FakeClock:
    """A manual clock starting at 1000.0 seconds."""
    return testing.FakeClock(1000.0)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any server outlived its fixture."""
    leaked = testing.running_servers()
    if leaked:
        for server in leaked:
            server.kill()
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"ERROR: servers left running after the tests: {leaked}",
                red=True,
            )
