from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dprims import testing
from dprims._redis import (
    LuaScript,
    check_prefix,
    decode,
    escape_key_part,
    is_async_client,
    is_cluster_client,
    redis_errors,
    tagged_key,
)
from dprims.errors import BackendError, BackendTimeout, ConfigurationError


ECHO_TIME = LuaScript(
    "-- KEYS[1]: a key to touch\n"
    "-- ARGV[1]: a value to store\n"
    "-- Returns: {value, server seconds}\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)\n"
    "return {redis.call('GET', KEYS[1]), redis.call('TIME')[1]}\n",
    name="echo_time",
)


class TestKeys:
    def test_tags_on_the_user_key(self) -> None:
        """Keys carry the user key as a hash tag, after the prefix."""
        assert "rl:{user:42}:tokens" == tagged_key("rl", "user:42", "tokens")
        assert "rl:{k}" == tagged_key("rl", "k")

    def test_escapes_braces_and_percent(self) -> None:
        """Braces cannot end the hash tag early; escaping is injective."""
        assert "a%7Bb%7Dc%25" == escape_key_part("a{b}c%")
        assert tagged_key("p", "x}:y") != tagged_key("p", "x%7D:y")
        assert tagged_key("p", "x%7D:y") == "p:{x%257D:y}"

    def test_rejects_non_string_keys(self) -> None:
        """A key that is not a str is a TypeError naming the argument."""
        with pytest.raises(TypeError, match="key must be a str"):
            tagged_key("p", b"k")  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", ["", "a{b", "a}b"])
    def test_prefix_must_not_contain_braces(self, bad: str) -> None:
        """Empty prefixes and prefixes with braces are refused."""
        with pytest.raises(ConfigurationError, match="prefix"):
            check_prefix(bad)

    def test_prefix_type_is_checked(self) -> None:
        """A non-str prefix is a TypeError naming the argument."""
        with pytest.raises(TypeError, match="namespace"):
            check_prefix(3, argument="namespace")
        assert "ok" == check_prefix("ok")

    def test_decode_handles_nested_bytes(self) -> None:
        """Replies decode the same with or without decode_responses."""
        assert ["a", 1, ["b"]] == decode([b"a", 1, [b"b"]])


@pytest.mark.redis
class TestLuaScriptOnRedis:
    def test_runs_and_survives_script_flush(
        self, redis_client: Any, prefix: str
    ) -> None:
        """EVALSHA works, and after SCRIPT FLUSH the script is re-sent."""
        key = tagged_key(prefix, "k")

        first = decode(ECHO_TIME(redis_client, [key], ["v1"]))
        redis_client.script_flush()
        second = decode(ECHO_TIME(redis_client, [key], ["v2"]))

        assert "v1" == first[0]  # type: ignore[index]
        assert "v2" == second[0]  # type: ignore[index]
        assert [True] == redis_client.script_exists(ECHO_TIME.sha)
        assert 0 < redis_client.pttl(key) <= 60000

    def test_async_client(self, redis_proc: testing.RedisServer) -> None:
        """The asyncio client runs the script too, NOSCRIPT included."""

        async def main() -> list[object]:
            client = redis_proc.async_client(decode_responses=True)
            try:
                await client.script_flush()
                return [
                    await ECHO_TIME.run_async(client, ["{a}x"], ["one"]),
                    await ECHO_TIME.run_async(client, ["{a}x"], ["two"]),
                ]
            finally:
                await client.aclose()

        replies = asyncio.run(main())

        assert ["one", "two"] == [r[0] for r in replies]  # type: ignore[index]

    def test_client_kinds(self, redis_proc: testing.RedisServer) -> None:
        """Blocking and asyncio clients are told apart."""
        client = redis_proc.client()
        async_client = redis_proc.async_client()
        try:
            assert not is_async_client(client)
            assert is_async_client(async_client)
            assert not is_cluster_client(client)
        finally:
            client.close()
            asyncio.run(async_client.aclose())

    def test_outage_becomes_backend_error(self) -> None:
        """A stopped server gives BackendError, not a redis-py exception."""
        with testing.redis_server() as server:
            client = server.client()
            server.stop()
            with pytest.raises(BackendError) as info:
                ECHO_TIME(client, ["k"], ["v"])
            client.close()

        assert "redis" == info.value.backend
        assert info.value.__cause__ is not None

    def test_paused_server_times_out(self) -> None:
        """A frozen server gives BackendTimeout within the socket timeout."""
        with testing.redis_server() as server:
            client = server.client(socket_timeout=0.3)
            client.ping()
            server.pause()
            try:
                with pytest.raises(BackendTimeout):
                    ECHO_TIME(client, ["k"], ["v"])
            finally:
                server.resume()
                client.close()

    def test_redis_errors_maps_server_errors(
        self, redis_client: Any, prefix: str
    ) -> None:
        """A server-side error reply becomes BackendError."""
        redis_client.set(f"{prefix}:s", "text")

        with pytest.raises(BackendError), redis_errors("INCR"):
            redis_client.incr(f"{prefix}:s")


@pytest.mark.redis_cluster
class TestLuaScriptOnCluster:
    def test_runs_on_every_slot_owner(
        self, redis_cluster_client: Any, prefix: str
    ) -> None:
        """The script runs on whichever node owns the tagged key."""
        keys = [tagged_key(prefix, f"user{i}") for i in range(30)]
        slots = {redis_cluster_client.keyslot(k) for k in keys}
        owners = {redis_cluster_client.get_node_from_key(k).name for k in keys}

        redis_cluster_client.script_flush()
        replies = [
            decode(ECHO_TIME(redis_cluster_client, [k], [k])) for k in keys
        ]

        assert keys == [r[0] for r in replies]  # type: ignore[index]
        assert len(slots) > 1
        assert 3 == len(owners)
        assert is_cluster_client(redis_cluster_client)

    def test_multi_key_script_with_one_tag(
        self, redis_cluster_client: Any, prefix: str
    ) -> None:
        """Several keys with one hash tag share a slot: no CROSSSLOT."""
        script = LuaScript(
            "redis.call('SET', KEYS[1], 1, 'PX', 60000)\n"
            "redis.call('SET', KEYS[2], 2, 'PX', 60000)\n"
            "return redis.call('GET', KEYS[1]) + redis.call('GET', KEYS[2])",
            name="two_keys",
        )
        keys = [tagged_key(prefix, "u", "a"), tagged_key(prefix, "u", "b")]

        assert 3 == script(redis_cluster_client, keys, [])
