from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dprims import testing
from dprims._redis import (
    DirectScripts,
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


ECHO = LuaScript(
    "-- KEYS[1]: unused, routes the call\n"
    "-- ARGV[1]: a value\n"
    "-- Returns: ARGV[1]\n"
    "return ARGV[1]\n",
    name="echo",
)


def _direct_call(direct: DirectScripts, client: Any, value: str) -> Any:
    """Run ECHO through *direct*, with the client's own path as fallback."""
    packed = (
        DirectScripts.header(ECHO.sha, 1)
        + direct.pack("k")
        + direct.pack(value)
    )
    return direct.call(packed, lambda: ECHO(client, ["k"], [value]))


@pytest.mark.redis
class TestDirectScripts:
    """The lean EVALSHA path against a real redis-server."""

    def test_covers_plain_blocking_clients_only(
        self, redis_proc: testing.RedisServer
    ) -> None:
        """Asyncio, Cluster and subclassed clients keep the client's path."""
        import redis
        import redis.asyncio

        plain = redis_proc.client()
        async_client = redis.asyncio.Redis(
            host=redis_proc.host, port=redis_proc.port, socket_timeout=1.0
        )

        class Custom(redis.Connection):
            pass

        custom = redis.Redis(
            connection_pool=redis.ConnectionPool(
                host=redis_proc.host,
                port=redis_proc.port,
                connection_class=Custom,
            )
        )
        try:
            assert DirectScripts.for_client(plain) is not None
            assert DirectScripts.for_client(async_client) is None
            assert DirectScripts.for_client(custom) is None
            assert DirectScripts.for_client(object()) is None
        finally:
            plain.close()
            custom.close()
            asyncio.run(async_client.aclose())

    def test_replies_and_noscript(self, redis_client: Any) -> None:
        """Replies come back; NOSCRIPT is raised and the connection kept."""
        import redis

        direct = DirectScripts.for_client(redis_client)
        assert direct is not None
        redis_client.script_flush()
        with pytest.raises(redis.exceptions.NoScriptError):
            _direct_call(direct, redis_client, "x")
        assert 1 == len(direct._idle)
        ECHO(redis_client, ["k"], ["load"])  # EVAL caches the script
        assert b"caf\xc3\xa9" == _direct_call(direct, redis_client, "café")
        assert 1 == len(direct._idle)
        direct.close()
        assert [] == direct._idle

    def test_decoded_replies(self, redis_proc: testing.RedisServer) -> None:
        """A decode_responses client gets str, as from its own path."""
        client = redis_proc.client(decode_responses=True)
        try:
            direct = DirectScripts.for_client(client)
            assert direct is not None
            ECHO(client, ["k"], ["load"])
            assert "v" == _direct_call(direct, client, "v")
        finally:
            client.close()

    def test_threads_never_see_each_others_replies(
        self, redis_client: Any
    ) -> None:
        """8 threads x 300 calls: every reply is the caller's own."""
        import threading

        direct = DirectScripts.for_client(redis_client)
        assert direct is not None
        ECHO(redis_client, ["k"], ["load"])
        wrong: list[tuple[str, Any]] = []

        def work(slot: int) -> None:
            for i in range(300):
                value = f"{slot}-{i}"
                reply = _direct_call(direct, redis_client, value)
                if reply != value.encode():
                    wrong.append((value, reply))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert [] == wrong
        assert 1 <= len(direct._idle) <= 8
        direct.close()

    def test_server_restart_falls_back_then_recovers(
        self, own_redis: testing.RedisServer
    ) -> None:
        """A connection cut by a restart is dropped; the call still works."""
        client = own_redis.client()
        try:
            direct = DirectScripts.for_client(client)
            assert direct is not None
            ECHO(client, ["k"], ["load"])
            assert b"a" == _direct_call(direct, client, "a")
            stale = direct._idle[0]
            own_redis.stop()
            own_redis.start()
            # The idle connection is dead; the fallback runs on the
            # client's own path (EVAL after the restart lost the script).
            assert b"b" == _direct_call(direct, client, "b")
            assert stale not in direct._idle
            ECHO(client, ["k"], ["load"])
            assert b"c" == _direct_call(direct, client, "c")
            assert 1 == len(direct._idle)
        finally:
            client.close()

    def test_timeout_is_raised_and_connection_dropped(
        self, own_redis: testing.RedisServer
    ) -> None:
        """A paused server: TimeoutError after socket_timeout, no reuse."""
        import redis

        client = own_redis.client(socket_timeout=0.3)
        try:
            direct = DirectScripts.for_client(client)
            assert direct is not None
            ECHO(client, ["k"], ["load"])
            assert b"a" == _direct_call(direct, client, "a")
            own_redis.pause()
            try:
                with pytest.raises(redis.exceptions.TimeoutError):
                    _direct_call(direct, client, "b")
                assert [] == direct._idle
            finally:
                own_redis.resume()
            assert b"c" == _direct_call(direct, client, "c")
        finally:
            client.close()

    def test_forked_child_opens_its_own_connection(
        self, redis_client: Any
    ) -> None:
        """After fork the child never talks on the parent's socket."""
        import os
        import warnings

        direct = DirectScripts.for_client(redis_client)
        assert direct is not None
        ECHO(redis_client, ["k"], ["load"])
        assert b"parent" == _direct_call(direct, redis_client, "parent")
        parent_conn = direct._idle[0]
        with warnings.catch_warnings():
            # 3.12+ warns about fork() in a process with threads; the child
            # here only runs this code and exits.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover -- runs in the child
            code = 1
            try:
                if direct._idle == [] and (
                    _direct_call(direct, redis_client, "child") == b"child"
                ):
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        assert [parent_conn] == direct._idle
        assert b"again" == _direct_call(direct, redis_client, "again")
        direct.close()
