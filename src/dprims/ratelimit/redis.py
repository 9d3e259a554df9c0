"""The Redis store: limiter state shared by every process, decided in Lua.

Each decision is one ``EVALSHA`` of one script (one round trip), which
reads the Redis server's clock with ``TIME``, so clients whose clocks
disagree still agree on the limit. Every key gets a TTL and a
``{hash tag}`` on the user key, so a `MultiLimiter` (several keys of one
user key) works on Redis Cluster. :meth:`~dprims.ratelimit.Limiter.acquire_many`
sends all its keys in one script call on a standalone server; on Cluster it
groups them by slot and pipelines one script call per slot, which redis-py
sends to every node at once (one round trip per node, in parallel).

Status: stable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from importlib import resources
from typing import TYPE_CHECKING, Any

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims._redis import (
    DirectScripts,
    LuaScript,
    check_prefix,
    is_async_client,
    is_cluster_client,
    redis_errors,
    tagged_key,
)
from dprims.errors import BackendError, ConfigurationError
from dprims.ratelimit._base import (
    Decision,
    _new_decision,
    check_cost,
    check_positive,
)
from dprims.ratelimit.memory import MemoryBackend, MemoryStore


try:
    import redis.exceptions
except ImportError as exc:  # pragma: no cover -- exercised without the extra
    from dprims.errors import _missing_extra

    raise _missing_extra("redis", "redis") from exc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from dprims.ratelimit._base import Penalty, RateLimitHooks
    from dprims.ratelimit._concurrency import ConcurrencyLimiter
    from dprims.ratelimit._limiters import Limiter


__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

_PACKAGE = "dprims.ratelimit._lua"
_ALGORITHM_FILES = {
    1: "token_bucket.lua",
    2: "gcra.lua",
    3: "fixed_window.lua",
    4: "sliding_window.lua",
    5: "sliding_log.lua",
}
_SCRIPTS: dict[tuple[int, ...], LuaScript] = {}
_SCRIPTS_LOCK = threading.Lock()


def script_for(kinds: Iterable[int]) -> LuaScript:
    """Return the decision script for limiters of the given *kinds*.

    Each algorithm is its own file; the script for a limiter is the prelude,
    that algorithm's file and the driver, so the server defines only the
    functions it runs (Lua re-creates them on every call). A MultiLimiter
    mixing algorithms gets one script with all of its algorithms, so it
    still decides in one round trip. EVALSHA sends only the digest.
    """
    wanted = tuple(sorted(set(kinds)))
    script = _SCRIPTS.get(wanted)
    if script is None:
        files = resources.files(_PACKAGE)
        names = [
            "prelude.lua",
            *(_ALGORITHM_FILES[kind] for kind in wanted),
            "decide.lua",
        ]
        source = "\n".join(
            files.joinpath(name).read_text("utf-8") for name in names
        )
        name = "ratelimit-" + "-".join(str(kind) for kind in wanted)
        with _SCRIPTS_LOCK:
            script = _SCRIPTS.setdefault(wanted, LuaScript(source, name=name))
    return script


CONCURRENCY = LuaScript.from_package(_PACKAGE, "concurrency.lua")

#: The hot path of each algorithm (one acquire of one limit, no penalty):
#: a script that does only that decision, with its numbers pre-computed
#: here and passed as ARGV, so the server interprets nothing.
_FAST_FILES = {
    1: "acquire_token_bucket.lua",
    2: "acquire_gcra.lua",
    3: "acquire_fixed_window.lua",
    4: "acquire_sliding_window.lua",
    5: "acquire_sliding_log.lua",
}
_FAST_SCRIPTS = {
    kind: LuaScript.from_package(_PACKAGE, name)
    for kind, name in _FAST_FILES.items()
}

_POLICIES = ("raise", "deny", "allow", "local")


def _retries(client: Any) -> int | None:
    """Return how many times *client* retries a failed command, if known."""
    # The same inspection as dprims.cache.redis (kept local: the primitive
    # packages do not import each other).
    get_retry = getattr(client, "get_retry", None)
    retry = get_retry() if callable(get_retry) else None
    if retry is None:
        retry = getattr(client, "retry", None)
    count = getattr(retry, "_retries", None)
    return count if isinstance(count, int) else None


class RedisStore:
    """Keeps limiter state in Redis, shared by every process that uses it.

    Works with blocking and asyncio redis-py clients, standalone or
    Cluster (use the ``_async`` methods of a limiter with an asyncio
    client). The client must have a ``socket_timeout``.

    With a standalone blocking ``redis.Redis`` (plain TCP, TLS or Unix
    socket connections), ``acquire`` of one limit
    sends its script on a few connections the store opens itself from the
    client's settings, skipping redis-py's per-command overhead (about half
    the client-side time of a decision); `close` closes them. A decision
    there waits at most one ``socket_timeout`` on a stalled server. Every
    other call goes through the client and waits ``socket_timeout`` for
    each attempt redis-py makes: one plus the client's retries, plus its
    backoff between them. redis-py 8 retries up to 10 times by default, so
    a paused server costs 9-10 s per call even with
    ``socket_timeout=0.5``. For a bound of about one (or two) socket
    timeouts, build the client with ``retry=Retry(NoBackoff(), 0)`` (or
    ``Retry(NoBackoff(), 1)``); a warning is logged here when the client
    retries more than once.

    Failure policy (*on_error*), when a round trip fails or times out:

    - ``"raise"`` (default): raise :class:`~dprims.errors.BackendError`
      (:class:`~dprims.errors.BackendTimeout` on a timeout).
    - ``"deny"`` (fail closed): refuse, with ``retry_after`` set to
      *retry_interval*.
    - ``"allow"`` (fail open): admit.
    - ``"local"``: decide with an in-process limiter of the same
      parameters (a `MemoryStore` per limiter), so each process enforces
      the limit on its own.

    With any policy but ``"raise"``, after a failure the store does not
    try Redis again for *retry_interval* seconds (so a dead server costs
    one timeout, not one per request), logs one warning when Redis becomes
    unreachable and one info line when it is back, and counts failures in
    ``failures`` and policy decisions in ``fallbacks``.

    Args:
        client: A redis-py client: ``redis.Redis``, ``redis.RedisCluster``
            or their ``redis.asyncio`` versions.
        prefix: Starts every key; must not contain braces.
        on_error: ``"raise"``, ``"deny"``, ``"allow"`` or ``"local"``.
        retry_interval: Seconds to apply the policy before trying Redis
            again (> 0).
        max_local_keys: Bound on each fallback limiter's keys.
        clock: Measures *retry_interval* and round-trip latency.

    Raises:
        ValueError: if *on_error* or *retry_interval* is invalid, or the
            client has no socket timeout.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_clock",
        "_direct",
        "_down_until",
        "_lock",
        "client",
        "cluster",
        "failures",
        "fallbacks",
        "is_async",
        "local",
        "on_error",
        "prefix",
        "retry_interval",
    )

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "dprims:rl",
        on_error: str = "raise",
        retry_interval: float = 1.0,
        max_local_keys: int = 100_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if on_error not in _POLICIES:
            raise ConfigurationError(
                f"on_error must be one of {', '.join(_POLICIES)}, got "
                f"{on_error!r}"
            )
        _check_timeout(client)
        self.client = client
        self.prefix = check_prefix(prefix)
        self.on_error = on_error
        self.retry_interval = check_positive(retry_interval, "retry_interval")
        self.is_async = is_async_client(client)
        self.cluster = is_cluster_client(client)
        self.local = MemoryStore(max_keys=max_local_keys)
        # The hot path of a standalone blocking client skips redis-py's
        # command layer (see DirectScripts); everything else uses the client.
        self._direct = DirectScripts.for_client(client)
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until = 0.0
        self.failures = 0
        self.fallbacks = 0
        retries = _retries(client)
        if retries is not None and retries > 1:
            logger.warning(
                "the redis client of RedisStore %r retries a failed command "
                "%d times, so a stalled server makes each decision wait that "
                "many socket timeouts (plus backoff); build it with "
                "retry=Retry(NoBackoff(), 1) or Retry(NoBackoff(), 0)",
                self.prefix,
                retries,
                extra={
                    "event": "ratelimit.redis.many_retries",
                    "prefix": self.prefix,
                },
            )

    def close(self) -> None:
        """Close the connections this store opened itself.

        With a standalone blocking client, single decisions travel on a few
        connections the store opens from the client's settings (they skip
        redis-py's per-command overhead); ``client.close()`` does not know
        them. They also close when the store is garbage-collected. The
        client itself stays open: it belongs to the caller.
        """
        if self._direct is not None:
            self._direct.close()

    @property
    def available(self) -> bool:
        """False while the failure policy is applied without trying Redis."""
        return self._clock.monotonic() >= self._down_until

    def _bind(
        self,
        front: object,
        parts: Sequence[Limiter],
        *,
        penalty: Penalty | None,
        hooks: RateLimitHooks | None,
        name: str,
        now: Callable[[], float],
    ) -> RedisBackend:
        return RedisBackend(
            self,
            front,
            parts,
            penalty=penalty,
            hooks=hooks,
            name=name,
            now=now,
        )

    def _bind_concurrency(
        self, limiter: ConcurrencyLimiter
    ) -> RedisConcurrency:
        return RedisConcurrency(self, limiter)

    # ------------------------------------------------------------- failure

    def _skip(self) -> bool:
        """Return whether to apply the policy without trying Redis."""
        return self._down_until != 0.0 and self.available is False

    def _failed(self, error: BackendError) -> None:
        """Record a failed round trip; raise it under the "raise" policy."""
        with self._lock:
            self.failures += 1
            if self.on_error == "raise":
                raise error
            first = self._down_until == 0.0
            self._down_until = self._clock.monotonic() + self.retry_interval
            self.fallbacks += 1
        if first:
            logger.warning(
                "ratelimit.redis_unavailable: applying on_error=%r for "
                "%.3g s before retrying: %s",
                self.on_error,
                self.retry_interval,
                error,
                extra={"policy": self.on_error, "error": str(error)},
            )

    def _fallback_used(self) -> None:
        with self._lock:
            self.fallbacks += 1

    def _recovered(self) -> None:
        if self._down_until != 0.0:
            with self._lock:
                self._down_until = 0.0
            logger.info("ratelimit.redis_recovered")

    def __repr__(self) -> str:
        kind = "cluster" if self.cluster else "standalone"
        return (
            f"RedisStore(prefix={self.prefix!r}, {kind}, "
            f"async={self.is_async}, on_error={self.on_error!r})"
        )


def _check_timeout(client: Any) -> None:
    """Refuse a client that would wait forever on a silent server."""
    kwargs: Any = None
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        kwargs = getattr(pool, "connection_kwargs", None)
    manager = getattr(client, "nodes_manager", None)
    if kwargs is None and manager is not None:
        kwargs = getattr(manager, "connection_kwargs", None)
    if isinstance(kwargs, dict) and kwargs.get("socket_timeout") is None:
        raise ConfigurationError(
            "client must have a socket_timeout (for example "
            "redis.Redis(..., socket_timeout=1.0)): without one, a "
            "paused or unreachable Redis blocks every decision forever"
        )


def _run(
    script: LuaScript, client: Any, keys: Sequence[str], args: Sequence[object]
) -> Any:
    """Run *script* like `LuaScript.__call__`, with a cheaper success path.

    Entering `redis_errors` (two generator context managers) costs more
    than the rest of the client side of a decision, so the happy path runs
    bare and only a failure goes through the shared mapping.
    """
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return script(client, keys, args)
    except BaseException:
        with redis_errors(f"script {script.name}"):
            raise


async def _run_async(
    script: LuaScript, client: Any, keys: Sequence[str], args: Sequence[object]
) -> Any:
    """Do what `_run` does on an asyncio client."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return await script.run_async(client, keys, args)
    except BaseException:
        with redis_errors(f"script {script.name}"):
            raise


_RETRY_ALONE = (
    redis.exceptions.NoScriptError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
)


def _flatten(
    groups: list[list[int]], replies: list[Any], count: int
) -> list[Any]:
    """Return the per-slot replies as one reply in the order of the items."""
    flat: list[Any] = [None] * (count * 5)
    for group, reply in zip(groups, replies, strict=True):
        for position, index in enumerate(group):
            flat[index * 5 : index * 5 + 5] = reply[
                position * 5 : position * 5 + 5
            ]
    return flat


def _recover(
    script: LuaScript,
    client: Any,
    error: BaseException,
    keys: Sequence[str],
    args: Sequence[object],
) -> Any:
    """Handle *error* raised by an EVALSHA of *script*, as `_run` does.

    NOSCRIPT re-sends the script; any other error becomes a BackendError.
    """
    if isinstance(error, redis.exceptions.NoScriptError):
        return script(client, keys, args)
    with redis_errors(f"script {script.name}"):
        raise error


async def _recover_async(
    script: LuaScript,
    client: Any,
    error: BaseException,
    keys: Sequence[str],
    args: Sequence[object],
) -> Any:
    """Do what `_recover` does on an asyncio client."""
    if isinstance(error, redis.exceptions.NoScriptError):
        return await script.run_async(client, keys, args)
    with redis_errors(f"script {script.name}"):
        raise error


#: Bound on each limiter's cache of Redis key names.
_NAMES_MAX = 4096

#: "1" as the reply of a client with and without ``decode_responses``.
_ONE = frozenset((b"1", "1"))


def _fast_decision(reply: Any, limit: int) -> Decision:
    """Return the Decision of a hot-path script's reply (see its header)."""
    allowed, remaining, retry, reset = reply.split()
    return _new_decision(
        Decision,
        (
            allowed in _ONE,
            limit,
            int(remaining),
            int(retry) / 1e6,
            int(reset) / 1e6,
        ),
    )


def _decision(reply: Sequence[Any], at: int) -> Decision:
    return _new_decision(
        Decision,
        (
            reply[at] == 1,
            int(reply[at + 1]),
            int(reply[at + 2]),
            int(reply[at + 3]) / 1e6,
            int(reply[at + 4]) / 1e6,
        ),
    )


class RedisBackend:
    """Decides for one limiter (or one `MultiLimiter`) on a RedisStore."""

    __slots__ = (
        "_direct_head",
        "_direct_names",
        "_fast",
        "_fast_args",
        "_fast_names",
        "_front",
        "_hooks",
        "_local",
        "_name",
        "_now",
        "_params",
        "_parts",
        "_penalty",
        "_script",
        "_static",
        "_store",
        "_suffixes",
    )

    def __init__(
        self,
        store: RedisStore,
        front: object,
        parts: Sequence[Limiter],
        *,
        penalty: Penalty | None,
        hooks: RateLimitHooks | None,
        name: str,
        now: Callable[[], float],
    ) -> None:
        self._store = store
        self._front = front
        self._parts = tuple(parts)
        self._penalty = penalty
        self._hooks = hooks
        self._name = name
        self._now = now
        self._local: MemoryBackend | None = None
        self._suffixes = tuple(part._name for part in parts)
        if penalty is not None:
            self._suffixes += (f"{name}:ban",)
        self._script = script_for(part._kind for part in parts)
        self._params: list[object] = []
        self._static = ""
        # The hot path: one limit, no penalty -> the algorithm's own script.
        self._fast: LuaScript | None = None
        if penalty is None and len(self._parts) == 1:
            self._fast = _FAST_SCRIPTS.get(self._parts[0]._kind)
        # (the part's params it was built from, ARGV for cost 1, the ARGV
        # tail after the cost, the limit)
        self._fast_args: tuple[object, bytes, bytes, int] = (None, b"", b"", 0)
        # User key -> Redis key for the fast script: escaping costs more
        # than a lookup. Bounded: emptied when it reaches _NAMES_MAX.
        self._fast_names: dict[str, str] = {}
        # The same on the DirectScripts path: user key -> (Redis key, that
        # key packed as a command argument), and the packed command head.
        self._direct_names: dict[str, tuple[str, bytes]] = {}
        self._direct_head = (
            b""
            if self._fast is None
            else DirectScripts.header(self._fast.sha, 1)
        )

    # ---------------------------------------------------------- arguments

    def _capacity(self) -> int:
        return min(part._capacity for part in self._parts)

    def _fast_state(self) -> tuple[object, bytes, bytes, int]:
        """Return the fast script's arguments, rebuilt after a reconfigure.

        One tuple, swapped in one assignment, so a thread never sees the
        arguments of one configuration with the limit of another.
        """
        part = self._parts[0]
        params = part._params
        _, first, second = part._lua()
        tail = f" {first!r} {second!r}".encode()
        state = (params, b"1" + tail, tail, part._capacity)
        self._fast_args = state
        return state

    def _static_args(self) -> str:
        """Return the arguments that depend only on the configuration.

        Rebuilt only when a limiter was reconfigured, so the hot path does
        not format floats on every call.
        """
        params = [part._params for part in self._parts]
        if params != self._params:
            penalty = self._penalty
            fields = [
                str(len(self._parts)),
                "0" if penalty is None else str(penalty.threshold),
                "0" if penalty is None else repr(penalty.window * 1e6),
                "0" if penalty is None else repr(penalty.ban * 1e6),
            ]
            for part in self._parts:
                kind, first, second = part._lua()
                fields += (str(kind), repr(first), repr(second))
            self._static = ",".join(fields)
            self._params = params
        return self._static

    def _request(
        self, mode: str, items: Sequence[tuple[str, int]], max_delay: float
    ) -> tuple[list[str], list[object]]:
        prefix = self._store.prefix
        static = self._static_args()
        suffixes = self._suffixes
        keys: list[str] = []
        args: list[object] = [mode, len(items)]
        for key, cost in items:
            keys += [tagged_key(prefix, key, suffix) for suffix in suffixes]
            args += (cost, max_delay, static)
        return keys, args

    def _costs(self, items: Sequence[tuple[str, int]]) -> None:
        capacity = self._capacity()
        for _, cost in items:
            if cost.__class__ is not int or cost != 1:
                check_cost(cost, capacity)

    # ------------------------------------------------------------ failure

    def _local_backend(self) -> MemoryBackend:
        if self._local is None:
            self._local = MemoryBackend(
                self._store.local,
                self._front,
                self._parts,
                penalty=self._penalty,
                hooks=self._hooks,
                name=self._name,
                now=self._now,
                fresh=True,
            )
        return self._local

    def _policy(self, items: Sequence[tuple[str, int]]) -> list[Decision]:
        store = self._store
        if store.on_error == "local":
            return self._local_backend().acquire_many(items)
        capacity = self._capacity()
        wait = store.retry_interval
        if store.on_error == "deny":
            return [
                _new_decision(Decision, (False, capacity, 0, wait, wait))
                for _ in items
            ]
        return [
            _new_decision(
                Decision, (True, capacity, capacity - cost, 0.0, 0.0)
            )
            for _, cost in items
        ]

    def _report(
        self, items: Sequence[tuple[str, int]], out: list[Decision]
    ) -> None:
        hooks = self._hooks
        if hooks is not None:
            for (key, _), decision in zip(items, out, strict=True):
                hooks.on_decision(self._name, key, decision)

    def _timed(self, started: float, error: BaseException | None) -> None:
        if self._hooks is not None:
            self._hooks.on_backend(self._now() - started, error)

    # --------------------------------------------------------- blocking

    def _client(self) -> Any:
        store = self._store
        if store.is_async:
            raise TypeError(
                "this RedisStore has an asyncio client: use the *_async "
                "methods"
            )
        return store.client

    def _run(
        self,
        mode: str,
        items: Sequence[tuple[str, int]],
        max_delay: float = -1.0,
    ) -> Any:
        """Run the script for *items*; raises BackendError on failure."""
        client = self._client()
        started = 0.0 if self._hooks is None else self._now()
        try:
            if self._store.cluster and len(items) > 1:
                reply = self._run_cluster(client, mode, items, max_delay)
            else:
                keys, args = self._request(mode, items, max_delay)
                reply = _run(self._script, client, keys, args)
        except BackendError as exc:
            self._timed(started, exc)
            raise
        self._timed(started, None)
        self._store._recovered()
        return reply

    def _slot_groups(
        self, client: Any, items: Sequence[tuple[str, int]]
    ) -> list[list[int]]:
        groups: dict[int, list[int]] = {}
        prefix = self._store.prefix
        for index, (key, _) in enumerate(items):
            slot = client.keyslot(tagged_key(prefix, key))
            groups.setdefault(slot, []).append(index)
        return list(groups.values())

    def _run_cluster(
        self,
        client: Any,
        mode: str,
        items: Sequence[tuple[str, int]],
        max_delay: float,
    ) -> list[Any]:
        # One script call per slot (a script may touch one slot only),
        # pipelined per node on that node's own connection: redis-py's
        # cluster pipeline refuses EVALSHA. Nodes are visited in turn, so
        # this costs one round trip per node holding some of the keys.
        groups = self._slot_groups(client, items)
        requests = [
            self._request(mode, [items[i] for i in group], max_delay)
            for group in groups
        ]
        by_node: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        with redis_errors("acquire_many"):
            for number, (keys, _) in enumerate(requests):
                node = client.get_node_from_key(keys[0])
                nodes[node.name] = node
                by_node.setdefault(node.name, []).append(number)
            replies: list[Any] = [None] * len(requests)
            for name, numbers in by_node.items():
                pipe = client.get_redis_connection(nodes[name]).pipeline(
                    transaction=False
                )
                for number in numbers:
                    keys, args = requests[number]
                    pipe.evalsha(self._script.sha, len(keys), *keys, *args)
                for number, reply in zip(
                    numbers, pipe.execute(raise_on_error=False), strict=True
                ):
                    replies[number] = reply
        for number, reply in enumerate(replies):
            if isinstance(reply, _RETRY_ALONE):
                # Not executed (unknown script, or the slot moved): send it
                # through the cluster client, which follows redirections.
                keys, args = requests[number]
                replies[number] = _run(self._script, client, keys, args)
            elif isinstance(reply, Exception):
                with redis_errors("acquire_many"):
                    raise reply
        return _flatten(groups, replies, len(items))

    def acquire(self, key: str, cost: int = 1) -> Decision:
        """Decide one request: one round trip.

        The usual case (blocking client, Redis up, no hooks) takes a short
        path; everything else goes through `acquire_many`.
        """
        store = self._store
        if store._down_until != 0.0 or store.is_async or self._hooks:
            return self.acquire_many(((key, cost),))[0]
        fast = self._fast
        if fast is not None:
            state = self._fast_args
            if state[0] is not self._parts[0]._params:
                state = self._fast_state()
            _, arg, tail, limit = state
            if cost.__class__ is not int or cost != 1:
                check_cost(cost, limit)
                arg = b"%d%s" % (cost, tail)
            if key.__class__ is not str:
                tagged_key(store.prefix, key)  # raises a TypeError if not str
            client = store.client
            direct = store._direct
            try:
                if direct is not None:
                    entry = self._direct_names.get(key)
                    if entry is None:
                        entry = self._direct_name(direct, key)
                    name = entry[0]
                    reply = direct.call(
                        self._direct_head + entry[1] + direct.pack(arg),
                        lambda: client.evalsha(fast.sha, 1, name, arg),
                    )
                else:
                    name = self._fast_names.get(key) or self._fast_name(key)
                    reply = client.evalsha(fast.sha, 1, name, arg)
            except BaseException as error:
                try:
                    reply = _recover(fast, client, error, (name,), (arg,))
                except BackendError as exc:
                    store._failed(exc)
                    return self._policy(((key, cost),))[0]
            allowed, remaining, retry, reset = reply.split()
            return _new_decision(
                Decision,
                (
                    allowed in _ONE,
                    limit,
                    int(remaining),
                    int(retry) / 1e6,
                    int(reset) / 1e6,
                ),
            )
        if cost.__class__ is not int or cost != 1:
            check_cost(cost, self._capacity())
        prefix = store.prefix
        keys = [tagged_key(prefix, key, suffix) for suffix in self._suffixes]
        args = ("a", 1, cost, -1.0, self._static_args())
        try:
            reply = _run(self._script, store.client, keys, args)
        except BackendError as exc:
            store._failed(exc)
            return self._policy(((key, cost),))[0]
        return _decision(reply, 0)

    def acquire_many(self, items: Iterable[tuple[str, int]]) -> list[Decision]:
        """Decide several requests in one round trip (one per node)."""
        items = list(items)
        self._costs(items)
        if not items:
            return []
        store = self._store
        if store._skip():
            store._fallback_used()
            out = self._policy(items)
        else:
            try:
                reply = self._run("a", items)
            except BackendError as exc:
                store._failed(exc)
                out = self._policy(items)
            else:
                out = [_decision(reply, 5 * i) for i in range(len(items))]
        self._report(items, out)
        return out

    def peek(self, key: str) -> Decision:
        """Return what a request of cost 1 would get."""
        store = self._store
        if store._skip():
            return self._peek_policy(key)
        try:
            reply = self._run("p", [(key, 1)])
        except BackendError as exc:
            store._failed(exc)
            return self._peek_policy(key)
        return _decision(reply, 0)

    def _peek_policy(self, key: str) -> Decision:
        if self._store.on_error == "local":
            return self._local_backend().peek(key)
        decision = self._policy([(key, 1)])[0]
        return decision._replace(remaining=decision.remaining + decision[0])

    def reset(self, key: str) -> None:
        """Forget *key*; under a policy, forgets it locally only."""
        store = self._store
        if not store._skip():
            try:
                self._run("r", [(key, 1)])
            except BackendError as exc:
                store._failed(exc)
            else:
                return
        if store.on_error == "local":
            self._local_backend().reset(key)

    def reserve(
        self, key: str, cost: int, max_delay: float | None
    ) -> tuple[bool, float, object]:
        """Book *cost* in one script; return ok, the delay and the ticket.

        The ticket of a Redis booking is the script's string (bytes or
        str); one booked by the ``"local"`` policy's limiter is that
        limiter's tuple, so `refund` knows where to give it back.
        """
        check_cost(cost, self._capacity())
        store = self._store
        tagged_key(store.prefix, key)  # raises a TypeError if not str
        limit = -1.0 if max_delay is None else max_delay * 1e6
        if not store._skip():
            try:
                reply = self._run("v", [(key, cost)], limit)
            except BackendError as exc:
                store._failed(exc)
            else:
                return reply[0] == 1, int(reply[1]) / 1e6, reply[2]
        return self._reserve_policy(key, cost, max_delay)

    def _reserve_policy(
        self, key: str, cost: int, max_delay: float | None
    ) -> tuple[bool, float, object]:
        store = self._store
        if store.on_error == "local":
            return self._local_backend().reserve(key, cost, max_delay)
        if store.on_error == "deny":
            return False, store.retry_interval, None
        return True, 0.0, None

    def refund(self, key: str, cost: int, ticket: object) -> None:
        """Give back what the booking of *ticket* took (see `reserve`).

        A Redis booking is given back on Redis only: while Redis is away
        it stays counted there (the failure policy applies as usual).
        """
        if not isinstance(ticket, (bytes, str)):
            if ticket is not None and self._local is not None:
                self._local.refund(key, cost, ticket)
            return
        store = self._store
        if store._skip():
            store._fallback_used()
            return
        keys, args = self._request("f", [(key, cost)], -1.0)
        args.append(ticket)
        client = self._client()
        started = 0.0 if self._hooks is None else self._now()
        try:
            _run(self._script, client, keys, args)
        except BackendError as exc:
            self._timed(started, exc)
            store._failed(exc)
            return
        self._timed(started, None)
        store._recovered()

    # ------------------------------------------------------------ asyncio

    def _async_client(self) -> Any:
        store = self._store
        if not store.is_async:
            raise TypeError(
                "this RedisStore has a blocking client: use the methods "
                "without the _async suffix"
            )
        return store.client

    async def _run_async(
        self,
        mode: str,
        items: Sequence[tuple[str, int]],
        max_delay: float = -1.0,
    ) -> Any:
        client = self._async_client()
        started = 0.0 if self._hooks is None else self._now()
        try:
            if self._store.cluster and len(items) > 1:
                reply = await self._run_cluster_async(
                    client, mode, items, max_delay
                )
            else:
                keys, args = self._request(mode, items, max_delay)
                reply = await _run_async(self._script, client, keys, args)
        except BackendError as exc:
            self._timed(started, exc)
            raise
        self._timed(started, None)
        self._store._recovered()
        return reply

    async def _run_cluster_async(
        self,
        client: Any,
        mode: str,
        items: Sequence[tuple[str, int]],
        max_delay: float,
    ) -> list[Any]:
        # One script call per slot, all in flight at once: the round trips
        # overlap, so the wait is about one round trip.
        groups = self._slot_groups(client, items)
        calls = []
        for group in groups:
            keys, args = self._request(
                mode, [items[i] for i in group], max_delay
            )
            calls.append(_run_async(self._script, client, keys, args))
        replies = await asyncio.gather(*calls)
        return _flatten(groups, list(replies), len(items))

    def _fast_request(self, key: str, cost: int) -> tuple[str, bytes, int]:
        """Return the key, the argument and the limit of the fast script."""
        state = self._fast_args
        if state[0] is not self._parts[0]._params:
            state = self._fast_state()
        _, arg, tail, limit = state
        if cost.__class__ is not int or cost != 1:
            check_cost(cost, limit)
            arg = b"%d%s" % (cost, tail)
        store = self._store
        if key.__class__ is not str:
            tagged_key(store.prefix, key)  # raises a TypeError if not str
        name = self._fast_names.get(key)
        if name is None:
            name = self._fast_name(key)
        return name, arg, limit

    def _direct_name(
        self, direct: DirectScripts, key: str
    ) -> tuple[str, bytes]:
        """Return (and remember) the Redis key of *key*, also packed."""
        names = self._direct_names
        if len(names) >= _NAMES_MAX:
            names.clear()
        name = tagged_key(self._store.prefix, key, self._suffixes[0])
        entry = (name, direct.pack(name))
        names[key] = entry
        return entry

    def _fast_name(self, key: str) -> str:
        """Return (and remember) the Redis key of *key* for the fast path."""
        names = self._fast_names
        if len(names) >= _NAMES_MAX:
            names.clear()
        name = tagged_key(self._store.prefix, key, self._suffixes[0])
        names[key] = name
        return name

    async def acquire_async(self, key: str, cost: int) -> Decision:
        """Decide one request (asyncio): one round trip.

        As in `acquire`, one limit without a penalty or hooks runs its
        algorithm's own script.
        """
        store = self._store
        fast = self._fast
        if (
            fast is None
            or store._down_until != 0.0
            or not store.is_async
            or self._hooks
        ):
            return (await self.acquire_many_async(((key, cost),)))[0]
        name, arg, limit = self._fast_request(key, cost)
        client = store.client
        try:
            reply = await client.evalsha(fast.sha, 1, name, arg)
        except BaseException as error:
            try:
                reply = await _recover_async(
                    fast, client, error, (name,), (arg,)
                )
            except BackendError as exc:
                store._failed(exc)
                return self._policy(((key, cost),))[0]
        return _fast_decision(reply, limit)

    async def acquire_many_async(
        self, items: Iterable[tuple[str, int]]
    ) -> list[Decision]:
        """Decide several requests (asyncio)."""
        items = list(items)
        self._costs(items)
        if not items:
            return []
        store = self._store
        if store._skip():
            store._fallback_used()
            out = self._policy(items)
        else:
            try:
                reply = await self._run_async("a", items)
            except BackendError as exc:
                store._failed(exc)
                out = self._policy(items)
            else:
                out = [_decision(reply, 5 * i) for i in range(len(items))]
        self._report(items, out)
        return out

    async def peek_async(self, key: str) -> Decision:
        """Peek (asyncio)."""
        store = self._store
        if store._skip():
            return self._peek_policy(key)
        try:
            reply = await self._run_async("p", [(key, 1)])
        except BackendError as exc:
            store._failed(exc)
            return self._peek_policy(key)
        return _decision(reply, 0)

    async def reset_async(self, key: str) -> None:
        """Reset (asyncio)."""
        store = self._store
        if not store._skip():
            try:
                await self._run_async("r", [(key, 1)])
            except BackendError as exc:
                store._failed(exc)
            else:
                return
        if store.on_error == "local":
            self._local_backend().reset(key)

    async def reserve_async(
        self, key: str, cost: int, max_delay: float | None
    ) -> tuple[bool, float, object]:
        """Reserve (asyncio)."""
        check_cost(cost, self._capacity())
        store = self._store
        tagged_key(store.prefix, key)  # raises a TypeError if not str
        limit = -1.0 if max_delay is None else max_delay * 1e6
        if not store._skip():
            try:
                reply = await self._run_async("v", [(key, cost)], limit)
            except BackendError as exc:
                store._failed(exc)
            else:
                return reply[0] == 1, int(reply[1]) / 1e6, reply[2]
        return self._reserve_policy(key, cost, max_delay)

    async def refund_async(self, key: str, cost: int, ticket: object) -> None:
        """Refund (asyncio)."""
        if not isinstance(ticket, (bytes, str)):
            if ticket is not None and self._local is not None:
                self._local.refund(key, cost, ticket)
            return
        store = self._store
        if store._skip():
            store._fallback_used()
            return
        keys, args = self._request("f", [(key, cost)], -1.0)
        args.append(ticket)
        client = self._async_client()
        started = 0.0 if self._hooks is None else self._now()
        try:
            await _run_async(self._script, client, keys, args)
        except BackendError as exc:
            self._timed(started, exc)
            store._failed(exc)
            return
        self._timed(started, None)
        store._recovered()


class RedisConcurrency:
    """The Redis half of a `ConcurrencyLimiter`: one script per call."""

    __slots__ = ("_limiter", "_store")

    def __init__(self, store: RedisStore, limiter: ConcurrencyLimiter) -> None:
        self._store = store
        self._limiter = limiter

    def _args(
        self, mode: str, key: str, token: str
    ) -> tuple[list[str], list[object]]:
        limiter = self._limiter
        return (
            [tagged_key(self._store.prefix, key, limiter._name)],
            [mode, token, limiter._limit, repr(limiter._lease * 1e6)],
        )

    def _call(self, mode: str, key: str, token: str) -> Any:
        store = self._store
        if store.is_async:
            raise TypeError(
                "this RedisStore has an asyncio client: use the *_async "
                "methods"
            )
        keys, args = self._args(mode, key, token)
        return _run(CONCURRENCY, store.client, keys, args)

    async def _call_async(self, mode: str, key: str, token: str) -> Any:
        store = self._store
        if not store.is_async:
            raise TypeError(
                "this RedisStore has a blocking client: use the methods "
                "without the _async suffix"
            )
        keys, args = self._args(mode, key, token)
        return await _run_async(CONCURRENCY, store.client, keys, args)

    def acquire(self, key: str, token: str) -> Decision:
        return _decision(self._call("a", key, token), 0)

    def release(self, key: str, token: str) -> None:
        self._call("r", key, token)

    def renew(self, key: str, token: str) -> bool:
        return bool(self._call("n", key, token) == 1)

    def peek(self, key: str) -> Decision:
        return _decision(self._call("p", key, ""), 0)

    def reset(self, key: str) -> None:
        self._call("x", key, "")

    async def acquire_async(self, key: str, token: str) -> Decision:
        return _decision(await self._call_async("a", key, token), 0)

    async def release_async(self, key: str, token: str) -> None:
        await self._call_async("r", key, token)

    async def renew_async(self, key: str, token: str) -> bool:
        return bool(await self._call_async("n", key, token) == 1)

    async def peek_async(self, key: str) -> Decision:
        return _decision(await self._call_async("p", key, ""), 0)

    async def reset_async(self, key: str) -> None:
        await self._call_async("x", key, "")
