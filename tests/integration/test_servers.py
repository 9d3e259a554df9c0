"""The harness starts real engines: each test proves the server is real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dprims import testing


@pytest.mark.redis
def test_redis_server_is_real(redis_client: Any, prefix: str) -> None:
    """A real redis-server answers INFO with its version and stores data."""
    info = redis_client.info("server")
    redis_client.set(f"{prefix}:k", "v", px=10_000)

    assert "redis_version" in info
    assert b"v" == redis_client.get(f"{prefix}:k")
    assert Path(f"/proc/{info['process_id']}").exists()


@pytest.mark.redis_cluster
def test_redis_cluster_is_real(
    redis_cluster_proc: testing.RedisClusterHandle,
    redis_cluster_client: Any,
    prefix: str,
) -> None:
    """CLUSTER INFO reports ok with three masters covering all slots."""
    info = redis_cluster_proc.info()
    keys = [f"{prefix}:{i}" for i in range(50)]
    for key in keys:
        redis_cluster_client.set(key, key, px=10_000)
    owners = {redis_cluster_client.get_node_from_key(k).port for k in keys}

    assert "ok" == info["cluster_state"]
    assert "16384" == info["cluster_slots_assigned"]
    assert "3" == info["cluster_size"]
    assert 3 == len(owners)
    assert [k.encode() for k in keys] == [
        redis_cluster_client.get(k) for k in keys
    ]


@pytest.mark.zookeeper
def test_zookeeper_server_is_real(
    zookeeper_proc: testing.ZooKeeperServer, prefix: str
) -> None:
    """A standalone ZooKeeper stores and returns a znode."""
    client = zookeeper_proc.client()
    try:
        client.create(f"/{prefix}", b"hello", makepath=True)
        data, stat = client.get(f"/{prefix}")
    finally:
        client.stop()
        client.close()

    assert "standalone" == zookeeper_proc.mode()
    assert b"hello" == data
    assert 0 == stat.version


@pytest.mark.zookeeper_ensemble
def test_zookeeper_ensemble_replicates(
    zookeeper_ensemble_proc: testing.ZooKeeperEnsemble, prefix: str
) -> None:
    """A znode written through one member is read through another."""
    first, _, last = zookeeper_ensemble_proc.members
    writer = first.client()
    reader = last.client()
    try:
        writer.create(f"/{prefix}", b"replicated", makepath=True)
        reader.sync(f"/{prefix}")
        data, _ = reader.get(f"/{prefix}")
    finally:
        for client in (writer, reader):
            client.stop()
            client.close()

    modes = sorted(m.mode() or "" for m in zookeeper_ensemble_proc.members)
    assert b"replicated" == data
    assert ["follower", "follower", "leader"] == modes


@pytest.mark.zookeeper_ensemble
@pytest.mark.slow
def test_ensemble_survives_losing_its_leader(prefix: str) -> None:
    """Killing the leader of a private ensemble elects a new one."""
    with testing.zookeeper_ensemble(3) as ensemble:
        old = ensemble.leader()
        old.kill()
        ensemble.wait_for_quorum(timeout=30.0)
        new = ensemble.leader()
        client = ensemble.client()
        try:
            client.create(f"/{prefix}", b"after failover")
            data, _ = client.get(f"/{prefix}")
        finally:
            client.stop()
            client.close()
        old.start()
        ensemble.wait_for_quorum(timeout=30.0)

    assert new is not old
    assert b"after failover" == data
    assert not any(m.running for m in ensemble.members)


@pytest.mark.redis_cluster
def test_cluster_handle_helpers(
    redis_cluster_proc: testing.RedisClusterHandle,
) -> None:
    """The cluster handle lists its nodes and gives asyncio clients too."""

    async def ping() -> bool:
        client = redis_cluster_proc.async_client()
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    assert 3 == len(redis_cluster_proc.startup_nodes)
    assert redis_cluster_proc.host == "127.0.0.1"
    assert str(redis_cluster_proc.port) in repr(redis_cluster_proc)
    assert asyncio.run(ping())


@pytest.mark.zookeeper_ensemble
def test_ensemble_helpers(
    zookeeper_ensemble_proc: testing.ZooKeeperEnsemble,
) -> None:
    """The ensemble names its leader, followers and connection string."""
    leader = zookeeper_ensemble_proc.leader()
    followers = zookeeper_ensemble_proc.followers()

    assert 2 == len(followers)
    assert leader not in followers
    assert 3 == len(zookeeper_ensemble_proc.hosts.split(","))
    assert zookeeper_ensemble_proc.hosts in repr(zookeeper_ensemble_proc)


@pytest.mark.zookeeper
def test_zookeeper_member_restart_keeps_data(prefix: str) -> None:
    """A standalone server killed and started again keeps its znodes."""
    with testing.zookeeper_server() as server:
        client = server.client()
        try:
            client.create(f"/{prefix}", b"durable")
        finally:
            client.stop()
            client.close()
        server.kill()
        assert server.mode() is None
        server.start()
        client = server.client()
        try:
            data, _ = client.get(f"/{prefix}")
        finally:
            client.stop()
            client.close()

    assert b"durable" == data
    assert not server.running
