"""Shared Redis plumbing for the backend modules.

What lives here:

- `LuaScript`: a server-side script loaded from package data, run with
  EVALSHA and re-sent with EVAL when the server answers NOSCRIPT (after a
  restart, a failover or ``SCRIPT FLUSH``). EVAL both runs and caches the
  script on the node that owns the keys, which is what Redis Cluster needs:
  a ``SCRIPT LOAD`` sent to one node does not reach the others.
- `tagged_key`: key naming with a ``{hash tag}`` so that every key of one
  logical object lands in one Cluster slot, and with escaping so that no user
  key can forge another prefix's key.
- `redis_errors`: the one place where redis-py exceptions become dprims
  errors.
- `is_async_client`: tells an asyncio client from a blocking one.
- `DirectScripts`: a lean EVALSHA path for hot scripts on a standalone
  blocking client, over connections of its own.

This module imports redis-py; only backend modules import it, so that
``import dprims.<family>`` never needs the ``redis`` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import weakref
from importlib import resources
from typing import TYPE_CHECKING, Any

from dprims.errors import (
    BackendError,
    BackendTimeout,
    ConfigurationError,
    _map_errors,
    _missing_extra,
)


try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.exceptions
except ImportError as exc:  # pragma: no cover -- exercised without the extra
    raise _missing_extra("redis", "redis") from exc

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


__all__ = ()

_ERROR_MAP: tuple[tuple[type[BaseException], type[BackendError]], ...] = (
    (redis.exceptions.TimeoutError, BackendTimeout),
    (TimeoutError, BackendTimeout),
    (redis.exceptions.RedisError, BackendError),
    (redis.exceptions.RedisClusterException, BackendError),
    (ConnectionError, BackendError),
    (OSError, BackendError),
)


@contextlib.contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Raise redis-py failures inside the block as `BackendError`.

    Timeouts become `BackendTimeout`. The driver exception is chained as
    ``__cause__``.
    """
    with _map_errors("redis", _ERROR_MAP, what):
        yield


def is_async_client(client: object) -> bool:
    """Return whether *client* is one of redis-py's asyncio clients."""
    return isinstance(
        client,
        (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster),
    )


def is_cluster_client(client: object) -> bool:
    """Return whether *client* talks to a Redis Cluster."""
    return isinstance(
        client,
        (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster),
    )


_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def escape_key_part(part: str) -> str:
    """Return *part* with ``%``, ``{`` and ``}`` percent-escaped.

    The escaping is injective, and the result contains no braces, so it can
    sit inside a hash tag without ending it early.
    """
    return part.translate(_ESCAPES)


def check_prefix(prefix: object, *, argument: str = "prefix") -> str:
    """Return *prefix* if it is a usable key prefix, else raise.

    Raises:
        TypeError: if *prefix* is not a str.
        ConfigurationError: if it is empty or contains a brace, which would
            change which part of the key Redis Cluster hashes.
    """
    if not isinstance(prefix, str):
        raise TypeError(
            f"{argument} must be a str, got {type(prefix).__name__}"
        )
    if not prefix or "{" in prefix or "}" in prefix:
        raise ConfigurationError(
            f"{argument} must be a non-empty string without '{{' or '}}', "
            f"got {prefix!r}"
        )
    return prefix


def tagged_key(prefix: str, key: str, *suffix: str) -> str:
    """Return the Redis key for *key* under *prefix*, hash-tagged on *key*.

    The result looks like ``prefix:{escaped key}:suffix...``. Every key built
    for the same (*prefix*, *key*) pair hashes to the same Cluster slot, so
    one Lua script may touch all of them.

    >>> tagged_key("rl", "user:{42}", "tokens")
    'rl:{user:%7B42%7D}:tokens'

    Raises:
        TypeError: if *key* is not a str.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    tail = "".join(f":{part}" for part in suffix)
    return f"{prefix}:{{{escape_key_part(key)}}}{tail}"


def decode(value: object) -> object:
    """Return *value* with bytes (also inside lists) decoded as UTF-8.

    Script replies come back as bytes or str depending on the client's
    ``decode_responses``; callers should not have to care which.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


class LuaScript:
    """A Lua script run with EVALSHA, falling back to EVAL on NOSCRIPT.

    The SHA1 digest is computed locally, so no client or class-level cache
    is needed: the first call on a server that does not know the script
    costs one extra round trip (the EVAL), after which EVALSHA works on that
    node. Thread-safe and asyncio-safe; one instance serves any number of
    clients.
    """

    __slots__ = ("name", "sha", "source")

    def __init__(self, source: str, *, name: str = "script") -> None:
        self.source = source
        self.name = name
        self.sha = hashlib.sha1(
            source.encode("utf-8"), usedforsecurity=False
        ).hexdigest()

    @classmethod
    def from_package(cls, package: str, resource: str) -> LuaScript:
        """Return the script stored as package data *resource* in *package*.

        Example: ``LuaScript.from_package("dprims.ratelimit._lua",
        "token_bucket.lua")``.
        """
        text = resources.files(package).joinpath(resource).read_text("utf-8")
        return cls(text, name=resource)

    def __call__(
        self, client: Any, keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        """Run the script on the blocking *client* and return its reply.

        Raises:
            BackendError: if Redis fails or cannot be reached.
        """
        # The success path enters no context manager: this runs once per
        # decision on hot paths, and every microsecond there counts.
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            with redis_errors(f"script {self.name}"):
                return client.eval(self.source, len(keys), *keys, *args)
        except BaseException:
            with redis_errors(f"script {self.name}"):
                raise

    async def run_async(
        self, client: Any, keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        """Run the script on the asyncio *client* and return its reply.

        Raises:
            BackendError: if Redis fails or cannot be reached.
        """
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            with redis_errors(f"script {self.name}"):
                return await client.eval(self.source, len(keys), *keys, *args)
        except BaseException:
            with redis_errors(f"script {self.name}"):
                raise

    def __repr__(self) -> str:
        return f"LuaScript(name={self.name!r}, sha={self.sha[:12]!r})"


#: Connection classes whose connections `DirectScripts` may open itself:
#: plain TCP, TLS and Unix sockets. Anything else (Sentinel-managed
#: connections, a user's subclass with extra behaviour) keeps the client's
#: own path.
_DIRECT_CLASSES = (
    redis.connection.Connection,
    redis.connection.SSLConnection,
    redis.connection.UnixDomainSocketConnection,
)

#: Idle private connections kept per `DirectScripts`; beyond this, a
#: returned connection is closed. Covers the threads of a typical worker.
_DIRECT_IDLE_MAX = 64

#: Every live `DirectScripts`, so that a forked child can drop the parent's
#: sockets (used by both processes otherwise).
_DIRECT_ALL: weakref.WeakSet[DirectScripts] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for direct in list(_DIRECT_ALL):
        direct._after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch -- POSIX
    os.register_at_fork(after_in_child=_forget_after_fork)


class DirectScripts:
    """Runs hot scripts on a standalone blocking client, with less overhead.

    Going through ``client.evalsha`` costs a rate-limit decision more
    Python than the script costs Redis: redis-py 8's pool checks each
    connection it hands out with a ``poll`` system call and records
    observability counters around every command, and the command layer
    re-packs every argument. This class keeps a small free list of
    connections of its own, built from the client's pool settings (same
    host, credentials, TLS, timeouts and health checks), and sends
    pre-packed EVALSHA commands on them. On this project's benchmark
    machine that halves the client-side time of a decision.

    Failures keep the semantics of the client's own path: a connection
    that fails is closed, never reused; a broken connection (the server
    restarted, an idle socket was cut) falls back once to the client's
    own path, which reconnects under the client's retry policy; a timeout
    is raised at once (the script may have run, and a second attempt
    would double the wait). Error replies (NOSCRIPT included) are raised
    as redis-py raises them, and the connection stays in use.

    Use `for_client`, which returns None for clients it does not cover
    (asyncio, Cluster, Sentinel, custom connection classes).
    """

    __slots__ = (
        "__weakref__",
        "_encode",
        "_idle",
        "_kwargs",
        "_lock",
        "_make",
    )

    def __init__(self, pool: Any) -> None:
        self._make = pool.connection_class
        self._kwargs = dict(pool.connection_kwargs)
        encoding = self._kwargs.get("encoding", "utf-8")
        errors = self._kwargs.get("encoding_errors", "strict")

        def encode(text: str) -> bytes:
            return text.encode(encoding, errors)

        self._encode = encode
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        _DIRECT_ALL.add(self)

    @classmethod
    def for_client(cls, client: object) -> DirectScripts | None:
        """Return a `DirectScripts` for *client*, or None if not covered."""
        if type(client) is not redis.Redis:
            return None
        pool: Any = getattr(client, "connection_pool", None)
        if type(pool) not in (
            redis.ConnectionPool,
            redis.BlockingConnectionPool,
        ):
            return None
        if pool.connection_class not in _DIRECT_CLASSES:
            return None
        if getattr(pool, "cache", None) is not None:
            # Client-side caching wraps connections in a proxy of its own.
            return None
        return cls(pool)

    @staticmethod
    def header(sha: str, numkeys: int) -> bytes:
        """Return the packed start of ``EVALSHA sha numkeys``.

        The command it starts has *numkeys* keys and one argument.
        """
        return b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$%d\r\n%d\r\n" % (
            3 + numkeys + 1,
            sha.encode("ascii"),
            len(str(numkeys)),
            numkeys,
        )

    def pack(self, value: str | bytes) -> bytes:
        """Return *value* packed as one bulk string of a command."""
        data = value if isinstance(value, bytes) else self._encode(value)
        return b"$%d\r\n%s\r\n" % (len(data), data)

    def call(self, packed: bytes, fallback: Any) -> Any:
        """Send the packed command *packed* and return the reply.

        *fallback* is called with no argument to run the same command on the
        client's own path when the private connection turns out broken.

        Raises:
            redis.exceptions.RedisError: as the client would raise it.
        """
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._make(**self._kwargs)
        try:
            conn.send_packed_command((packed,))
            reply = conn.read_response()
        except redis.exceptions.ResponseError:
            # A complete error reply: the connection is still in step.
            self._release(conn)
            raise
        except redis.exceptions.TimeoutError:
            conn.disconnect()
            raise
        except (redis.exceptions.ConnectionError, OSError):
            conn.disconnect()
            return fallback()
        except BaseException:
            # Interrupted mid-reply: the connection is out of step.
            conn.disconnect()
            raise
        self._release(conn)
        return reply

    def _release(self, conn: Any) -> None:
        idle = self._idle
        if len(idle) < _DIRECT_IDLE_MAX:
            idle.append(conn)
        else:
            conn.disconnect()

    def close(self) -> None:
        """Close the idle private connections (those in use close later)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()

    def _after_fork(self) -> None:
        # The child must not talk on the parent's sockets; the parent keeps
        # them. Dropping the objects closes only the child's descriptors.
        self._idle = []
