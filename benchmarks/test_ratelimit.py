"""Rate limiting: dprims beside limits, pyrate-limiter and throttled-py.

Groups (each entry in a group does the same number of decisions per op, so
the ratios are ratios of decisions per second):

- ``inproc-hot-key``: one key hammered in a loop (1000 decisions per op).
  The limit is 100/s, so after the first burst nearly every decision is a
  refusal: the path an abusive client exercises.
- ``inproc-10k-keys``: 10,000 distinct keys in turn (10,000 decisions per
  op); each key comes back every few tens of milliseconds, so nearly every
  decision admits and writes state.
- ``redis-hot-key``: one decision per op from one client to a real
  redis-server; the floor is a trivial EVALSHA on the same client.
- ``redis-acquire-many``: ten keys decided at once, against ten single
  calls and one trivial EVALSHA.
- ``probe-8-threads``: 8 threads hammer one key whose limit is 1000 for the
  whole run; ``extra_info["admitted"]`` says how many got through. It is a
  report, not a speed race (its ops/s mean nothing).
- ``probe-redis-8-threads``: the same against each Redis backend (limit
  200, 8 x 100 tries per round).

The floor in process is a bare inline token bucket: a dict lookup, a
refill and a store, with no lock, so it is not safe under threads; it is
the least work a limiter can do in Python.

The ``token-bucket`` package over-admits under threads (the probe measured
up to four times its limit here), so it carries the role ``racy`` and does not
count as "best peer": the goal is to beat the fastest peer that stays
exact.

Run::

    pip install -r benchmarks/requirements-ratelimit.txt
    python3 -m pytest benchmarks/test_ratelimit.py --benchmark-only \\
        -p no:randomly -W default
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from dprims import testing
from dprims.errors import ServerNotFoundError
from dprims.ratelimit import (
    GCRA,
    FixedWindow,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HOT_KEYS = ["hot"] * 1000
MANY_KEYS = [f"user:{i}" for i in range(10_000)]
LIMIT = 100  # per second, for every speed benchmark
PROBE_LIMIT = 1000  # for the whole probe; nothing refills meanwhile
PROBE_THREADS = 8
PROBE_ATTEMPTS = 1000  # per thread and round
PROBE_ROUNDS = 5


# ------------------------------------------------------------ factories


def _limits() -> Any:
    return pytest.importorskip("limits")


def _pyrate() -> Any:
    return pytest.importorskip("pyrate_limiter")


def _throttled() -> Any:
    return pytest.importorskip("throttled")


def floor_token_bucket() -> Callable[[str], bool]:
    """Return the bare inline token bucket: no lock, no value object."""
    state: dict[str, tuple[float, float]] = {}
    rate = float(LIMIT)
    burst = float(LIMIT)
    monotonic = time.monotonic

    def take(key: str) -> bool:
        now = monotonic()
        previous = state.get(key)
        if previous is None:
            tokens = burst
        else:
            tokens = previous[0] + (now - previous[1]) * rate
            # An if is cheaper than a call to min() on the hot path.
            if tokens > burst:  # noqa: PLR1730
                tokens = burst
        if tokens >= 1.0:
            state[key] = (tokens - 1.0, now)
            return True
        return False

    return take


def dprims_memory(
    kind: str, limit: int, period: float
) -> Callable[[str], Any]:
    rate = limit / period
    limiter: Any = {
        "token-bucket": lambda: TokenBucket(rate=rate, burst=limit),
        "gcra": lambda: GCRA(rate=rate, burst=limit),
        "fixed-window": lambda: FixedWindow(limit=limit, window=period),
        "sliding-window": lambda: SlidingWindow(limit=limit, window=period),
        "sliding-log": lambda: SlidingLog(limit=limit, window=period),
    }[kind]()
    return limiter.acquire


def limits_memory(
    kind: str, limit: int, period: float
) -> Callable[[str], Any]:
    limits = _limits()
    from limits import storage, strategies

    strategy = {
        "fixed": strategies.FixedWindowRateLimiter,
        "moving": strategies.MovingWindowRateLimiter,
        "sliding": strategies.SlidingWindowCounterRateLimiter,
    }[kind](storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(limit, int(period))
    return functools.partial(strategy.hit, item)


class _PerKeyFactory:
    """A pyrate-limiter bucket factory with one bucket per key.

    pyrate-limiter's ready-made limiters put every name in one bucket, which
    would turn a per-user limit into a global one.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        pyrate = _pyrate()
        self._make = make
        self._buckets: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._clock = pyrate.MonotonicClock()
        self._item = pyrate.RateItem

    def wrap_item(self, name: str, weight: int = 1) -> Any:
        return self._item(name, self._clock.now(), weight=weight)

    def get(self, item: Any) -> Any:
        bucket = self._buckets.get(item.name)
        if bucket is None:
            with self._lock:
                bucket = self._buckets.setdefault(item.name, self._make())
        return bucket


def pyrate_memory(
    kind: str, limit: int, period: float
) -> Callable[[str], Any]:
    pyrate = _pyrate()
    rates = [pyrate.Rate(limit, int(period * 1000))]
    if kind == "sliding-log":

        def make() -> Any:
            return pyrate.InMemoryBucket(rates)

    else:
        algorithm = {"gcra": pyrate.GCRA, "token-bucket": pyrate.TokenBucket}[
            kind
        ]

        def make() -> Any:
            return pyrate.StateBucket(rates, algorithm=algorithm())

    factory = type("PerKeyFactory", (_PerKeyFactory, pyrate.BucketFactory), {})
    limiter = pyrate.Limiter(factory(make))
    return functools.partial(limiter.try_acquire, blocking=False)


def throttled_memory(
    kind: str, limit: int, period: float
) -> Callable[[str], Any]:
    throttled = _throttled()
    quota = throttled.per_duration(
        dt.timedelta(seconds=period), limit, burst=limit
    )
    limiter = throttled.Throttled(
        using=kind.replace("-", "_"),
        quota=quota,
        store=throttled.MemoryStore(),
    )
    return limiter.limit


def token_bucket_memory(
    kind: str, limit: int, period: float
) -> Callable[[str], Any]:
    token_bucket = pytest.importorskip("token_bucket")
    limiter = token_bucket.Limiter(
        limit / period, limit, token_bucket.MemoryStorage()
    )
    return limiter.consume


IN_PROCESS = [
    pytest.param(
        dprims_memory, "token-bucket", "ours", id="dprims-token-bucket"
    ),
    pytest.param(dprims_memory, "gcra", "ours", id="dprims-gcra"),
    pytest.param(
        dprims_memory, "fixed-window", "ours", id="dprims-fixed-window"
    ),
    pytest.param(
        dprims_memory, "sliding-window", "ours", id="dprims-sliding-window"
    ),
    pytest.param(
        dprims_memory, "sliding-log", "ours", id="dprims-sliding-log"
    ),
    pytest.param(limits_memory, "fixed", "peer", id="limits-fixed-window"),
    pytest.param(limits_memory, "moving", "peer", id="limits-moving-window"),
    pytest.param(limits_memory, "sliding", "peer", id="limits-sliding-window"),
    pytest.param(
        pyrate_memory, "sliding-log", "peer", id="pyrate-sliding-log"
    ),
    pytest.param(pyrate_memory, "gcra", "peer", id="pyrate-gcra"),
    pytest.param(
        pyrate_memory, "token-bucket", "peer", id="pyrate-token-bucket"
    ),
    pytest.param(
        throttled_memory, "fixed-window", "peer", id="throttled-fixed-window"
    ),
    pytest.param(
        throttled_memory,
        "sliding-window",
        "peer",
        id="throttled-sliding-window",
    ),
    pytest.param(throttled_memory, "gcra", "peer", id="throttled-gcra"),
    pytest.param(
        throttled_memory, "token-bucket", "peer", id="throttled-token-bucket"
    ),
    pytest.param(
        token_bucket_memory, "token-bucket", "racy", id="token-bucket"
    ),
]


def _loop(
    decide: Callable[[str], object], keys: list[str]
) -> Callable[[], None]:
    def run() -> None:
        for key in keys:
            decide(key)

    return run


@pytest.mark.benchmark(group="inproc-hot-key (1000 decisions per op)")
@pytest.mark.parametrize(("factory", "kind", "role"), IN_PROCESS)
def test_inproc_hot_key(
    benchmark: Any, factory: Callable[..., Any], kind: str, role: str
) -> None:
    decide = factory(kind, LIMIT, 1.0)
    benchmark.extra_info["role"] = role
    benchmark(_loop(decide, HOT_KEYS))


@pytest.mark.benchmark(group="inproc-hot-key (1000 decisions per op)")
def test_inproc_hot_key_floor(benchmark: Any) -> None:
    benchmark.extra_info["role"] = "floor"
    benchmark(_loop(floor_token_bucket(), HOT_KEYS))


@pytest.mark.benchmark(group="inproc-10k-keys (10000 decisions per op)")
@pytest.mark.parametrize(("factory", "kind", "role"), IN_PROCESS)
def test_inproc_10k_keys(
    benchmark: Any, factory: Callable[..., Any], kind: str, role: str
) -> None:
    decide = factory(kind, LIMIT, 1.0)
    benchmark.extra_info["role"] = role
    benchmark(_loop(decide, MANY_KEYS))


@pytest.mark.benchmark(group="inproc-10k-keys (10000 decisions per op)")
def test_inproc_10k_keys_floor(benchmark: Any) -> None:
    benchmark.extra_info["role"] = "floor"
    benchmark(_loop(floor_token_bucket(), MANY_KEYS))


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="module")
def redis_srv() -> Iterator[testing.RedisServer]:
    """One real redis-server for every Redis benchmark of this module."""
    try:
        manager = testing.redis_server()
        server = manager.__enter__()
    except ServerNotFoundError as exc:
        pytest.skip(f"redis-server not installed: {exc}")
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
def redis_client(redis_srv: testing.RedisServer) -> Iterator[Any]:
    client = redis_srv.client()
    client.flushall()
    yield client
    client.close()


def dprims_redis(
    kind: str,
    limit: int,
    period: float,
    server: testing.RedisServer,
    client: Any,
) -> Callable[[str], Any]:
    from dprims.ratelimit import RedisStore

    store = RedisStore(client, prefix="bench")
    rate = limit / period
    limiter: Any = {
        "token-bucket": lambda: TokenBucket(
            rate=rate, burst=limit, store=store
        ),
        "gcra": lambda: GCRA(rate=rate, burst=limit, store=store),
        "fixed-window": lambda: FixedWindow(
            limit=limit, window=period, store=store
        ),
        "sliding-window": lambda: SlidingWindow(
            limit=limit, window=period, store=store
        ),
        "sliding-log": lambda: SlidingLog(
            limit=limit, window=period, store=store
        ),
    }[kind]()
    return limiter.acquire


def limits_redis(
    kind: str,
    limit: int,
    period: float,
    server: testing.RedisServer,
    client: Any,
) -> Callable[[str], Any]:
    limits = _limits()
    from limits import storage, strategies

    strategy = {
        "fixed": strategies.FixedWindowRateLimiter,
        "moving": strategies.MovingWindowRateLimiter,
        "sliding": strategies.SlidingWindowCounterRateLimiter,
    }[kind](storage.RedisStorage(server.url))
    item = limits.RateLimitItemPerSecond(limit, int(period))
    return functools.partial(strategy.hit, item)


def pyrate_redis(
    kind: str,
    limit: int,
    period: float,
    server: testing.RedisServer,
    client: Any,
) -> Callable[[str], Any]:
    # pyrate-limiter's Redis buckets hold one key each: the benchmark
    # hammers one key, so one bucket is a fair setup.
    pyrate = _pyrate()
    rates = [pyrate.Rate(limit, int(period * 1000))]
    if kind == "sliding-log":
        bucket = pyrate.RedisBucket.init(rates, client, "pyrate-bench")
    else:
        bucket = pyrate.StateBucket(
            rates,
            algorithm=pyrate.GCRA(),
            store=pyrate.RedisStateStore(client, "pyrate-bench-gcra"),
        )
    limiter = pyrate.Limiter(bucket)
    return functools.partial(limiter.try_acquire, blocking=False)


def throttled_redis(
    kind: str,
    limit: int,
    period: float,
    server: testing.RedisServer,
    client: Any,
) -> Callable[[str], Any]:
    throttled = _throttled()
    quota = throttled.per_duration(
        dt.timedelta(seconds=period), limit, burst=limit
    )
    limiter = throttled.Throttled(
        using=kind.replace("-", "_"),
        quota=quota,
        store=throttled.RedisStore(server=server.url),
    )
    return limiter.limit


def evalsha_floor(
    kind: str,
    limit: int,
    period: float,
    server: testing.RedisServer,
    client: Any,
) -> Callable[[str], Any]:
    sha = client.script_load("return 1")
    return functools.partial(client.evalsha, sha, 1)


REDIS = [
    pytest.param(
        dprims_redis, "token-bucket", "ours", id="dprims-token-bucket"
    ),
    pytest.param(dprims_redis, "gcra", "ours", id="dprims-gcra"),
    pytest.param(
        dprims_redis, "fixed-window", "ours", id="dprims-fixed-window"
    ),
    pytest.param(
        dprims_redis, "sliding-window", "ours", id="dprims-sliding-window"
    ),
    pytest.param(dprims_redis, "sliding-log", "ours", id="dprims-sliding-log"),
    pytest.param(limits_redis, "fixed", "peer", id="limits-fixed-window"),
    pytest.param(limits_redis, "moving", "peer", id="limits-moving-window"),
    pytest.param(limits_redis, "sliding", "peer", id="limits-sliding-window"),
    pytest.param(pyrate_redis, "sliding-log", "peer", id="pyrate-sliding-log"),
    pytest.param(pyrate_redis, "gcra", "peer", id="pyrate-gcra"),
    pytest.param(
        throttled_redis, "fixed-window", "peer", id="throttled-fixed-window"
    ),
    pytest.param(
        throttled_redis,
        "sliding-window",
        "peer",
        id="throttled-sliding-window",
    ),
    pytest.param(throttled_redis, "gcra", "peer", id="throttled-gcra"),
    pytest.param(
        throttled_redis, "token-bucket", "peer", id="throttled-token-bucket"
    ),
    pytest.param(evalsha_floor, "", "floor", id="evalsha-return-1"),
]


@pytest.mark.redis
@pytest.mark.benchmark(group="redis-hot-key (1 decision per op)")
@pytest.mark.parametrize(("factory", "kind", "role"), REDIS)
def test_redis_hot_key(
    benchmark: Any,
    redis_srv: testing.RedisServer,
    redis_client: Any,
    *,
    factory: Callable[..., Any],
    kind: str,
    role: str,
) -> None:
    decide = factory(kind, LIMIT, 1.0, redis_srv, redis_client)
    benchmark.extra_info["role"] = role
    benchmark(decide, "hot")


def _counting_client(server: testing.RedisServer) -> Any:
    """Return a client that counts its round trips (one per socket write).

    Server-side statistics cannot tell a round trip from the commands a
    Lua script runs inside it, so the count is taken on the client.
    """
    redis = pytest.importorskip("redis")

    class CountingConnection(redis.Connection):
        writes = 0

        def send_packed_command(
            self, command: Any, check_health: bool = True
        ) -> None:
            type(self).writes += 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool(
        host=server.host,
        port=server.port,
        socket_timeout=5.0,
        connection_class=CountingConnection,
    )
    client = redis.Redis(connection_pool=pool)
    client.counter = CountingConnection
    return client


MANY_TEN = [f"user:{i}" for i in range(10)]


@pytest.mark.redis
@pytest.mark.benchmark(group="redis-acquire-many (10 keys per op)")
@pytest.mark.parametrize(
    "how", ["acquire_many", "acquire-x10", "evalsha-floor"]
)
def test_redis_acquire_many(
    benchmark: Any,
    redis_srv: testing.RedisServer,
    redis_client: Any,
    how: str,
    request: pytest.FixtureRequest,
) -> None:
    from dprims.ratelimit import RedisStore

    client = _counting_client(redis_srv)
    limiter = TokenBucket(
        rate=float(LIMIT),
        burst=LIMIT,
        store=RedisStore(client, prefix="m"),
    )
    if how == "acquire_many":
        run: Callable[[], object] = functools.partial(
            limiter.acquire_many, MANY_TEN
        )
        role = "ours"
    elif how == "acquire-x10":

        def run() -> object:
            return [limiter.acquire(key) for key in MANY_TEN]

        role = "ours"
    else:
        sha = client.script_load("return 1")
        run = functools.partial(client.evalsha, sha, 10, *MANY_TEN)
        role = "floor"
    run()  # loads the script, so the count below is one steady call
    before = client.counter.writes
    run()
    trips = client.counter.writes - before
    benchmark.extra_info["role"] = role
    benchmark.extra_info["round_trips_per_op"] = trips
    _report(request, f"redis-acquire-many {how}: {trips} round trip(s) per op")
    try:
        benchmark(run)
    finally:
        client.close()


# ----------------------------------------------------------------- probe


def _report(request: pytest.FixtureRequest, line: str) -> None:
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    # Output is captured while a test runs; these lines are the report.
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def _hammer(
    decide: Callable[[str], object],
    admitted: Callable[[object], bool],
    attempts: int = PROBE_ATTEMPTS,
) -> int:
    """Return how many of 8 x *attempts* concurrent tries on one key got in."""
    barrier = threading.Barrier(PROBE_THREADS)
    counts = [0] * PROBE_THREADS

    def worker(slot: int) -> None:
        barrier.wait(timeout=30)
        got = 0
        for _ in range(attempts):
            if admitted(decide("probe")):
                got += 1
        counts[slot] = got

    threads = [
        threading.Thread(target=worker, args=(slot,))
        for slot in range(PROBE_THREADS)
    ]
    # A short switch interval makes the interpreter swap threads in the
    # middle of read-modify-write sequences, where races hide.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(previous)
    return sum(counts)


def _allowed(result: object) -> bool:
    if isinstance(result, bool):
        return result
    if hasattr(result, "allowed"):
        return bool(result.allowed)
    return not result.limited


@pytest.mark.benchmark(
    group="probe-8-threads (admitted of 1000; not a speed race)"
)
@pytest.mark.parametrize(("factory", "kind", "role"), IN_PROCESS)
def test_probe_overadmission(
    benchmark: Any,
    factory: Callable[..., Any],
    kind: str,
    role: str,
    request: pytest.FixtureRequest,
) -> None:
    # One hour for 1000 units: a round lasts well under a second, during
    # which refill adds a fraction of one unit. Races are rare events, so
    # each round starts afresh (a new limiter, a new key) and the worst
    # round is reported.
    def rounds() -> list[int]:
        return [
            _hammer(factory(kind, PROBE_LIMIT, 3600.0), _allowed)
            for _ in range(PROBE_ROUNDS)
        ]

    admitted = benchmark.pedantic(rounds, rounds=1, iterations=1)
    worst = max(admitted)
    benchmark.extra_info["role"] = role
    benchmark.extra_info["admitted"] = admitted
    benchmark.extra_info["limit"] = PROBE_LIMIT
    over = worst - PROBE_LIMIT
    _report(
        request,
        f"probe {request.node.callspec.id:<26} worst of {PROBE_ROUNDS} "
        f"rounds: admitted {worst:>5} of {PROBE_LIMIT} "
        f"({'+' if over > 0 else ''}{over}); all rounds: {admitted}",
    )


REDIS_PROBE_LIMIT = 200
REDIS_PROBE_ATTEMPTS = 100  # per thread and round: 800 tries for 200 slots
REDIS_PROBE_ROUNDS = 3


@pytest.mark.redis
@pytest.mark.benchmark(
    group="probe-redis-8-threads (admitted of 200; not a speed race)"
)
@pytest.mark.parametrize(
    ("factory", "kind", "role"),
    [param for param in REDIS if param.values[2] != "floor"],
)
def test_probe_overadmission_redis(
    benchmark: Any,
    redis_srv: testing.RedisServer,
    redis_client: Any,
    *,
    factory: Callable[..., Any],
    kind: str,
    role: str,
    request: pytest.FixtureRequest,
) -> None:
    # The same probe against each Redis backend, with one shared client
    # (redis-py's pool gives each thread its own connection).
    def rounds() -> list[int]:
        admitted = []
        for _ in range(REDIS_PROBE_ROUNDS):
            redis_client.flushall()
            decide = factory(
                kind, REDIS_PROBE_LIMIT, 3600.0, redis_srv, redis_client
            )
            admitted.append(_hammer(decide, _allowed, REDIS_PROBE_ATTEMPTS))
        return admitted

    admitted = benchmark.pedantic(rounds, rounds=1, iterations=1)
    worst = max(admitted)
    benchmark.extra_info["role"] = role
    benchmark.extra_info["admitted"] = admitted
    benchmark.extra_info["limit"] = REDIS_PROBE_LIMIT
    over = worst - REDIS_PROBE_LIMIT
    _report(
        request,
        f"probe redis {request.node.callspec.id:<26} worst of "
        f"{REDIS_PROBE_ROUNDS} rounds: admitted {worst:>4} of "
        f"{REDIS_PROBE_LIMIT} ({'+' if over > 0 else ''}{over}); "
        f"all rounds: {admitted}",
    )
