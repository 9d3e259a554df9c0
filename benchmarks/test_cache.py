"""Cache benchmarks: hit paths beside cachetools, cachebox and theine.

Run (peers from benchmarks/requirements-cache.txt):

    pip install -r benchmarks/requirements-cache.txt
    python3 -m pytest benchmarks/test_cache.py --benchmark-only \
        -p no:randomly -W default

Groups:

- ``cache-get-hit``: one lookup of a present key. ``floor`` is a bare
  ``dict.get``; raw ``cachetools.TTLCache.__getitem__`` is a peer (it is not
  thread-safe: the goal is ours <= 1.5x its time while thread-safe).
- ``cached-hit``: a call of a memoised function whose result is cached.
  The peer to beat is cachetools' ``@cached(TTLCache, lock=Lock())``
  (goal: ours >= 1.5x its speed).
- ``cache-set``: overwriting a present key, for reference (writes take a
  lock in every thread-safe cache).
- ``stampede``: not a speed test. 32 threads miss one key of a decorated
  function whose loader sleeps 20 ms; ``extra_info["loader_calls"]`` holds
  how many times the loader ran (printed at the end).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from dprims.cache import TTLCache, cached


cachetools = pytest.importorskip("cachetools")

KEYS = [f"key:{i}" for i in range(1000)]
HOT = KEYS[500]
LOADER_CALLS: dict[str, int] = {}


def _fill(setitem) -> None:
    for i, key in enumerate(KEYS):
        setitem(key, i)


# ------------------------------------------------------------- get (hit)


@pytest.mark.benchmark(group="cache-get-hit")
def test_get_hit_dict_floor(benchmark):
    data = dict.fromkeys(KEYS, 1)
    benchmark.extra_info["role"] = "floor"
    benchmark(data.get, HOT)


@pytest.mark.benchmark(group="cache-get-hit")
def test_get_hit_dprims_ttlcache(benchmark):
    cache: TTLCache[str, int] = TTLCache(maxsize=2000, ttl=3600.0)
    _fill(cache.set)
    benchmark.extra_info["role"] = "ours"
    assert cache.get(HOT) == 500
    benchmark(cache.get, HOT)


@pytest.mark.benchmark(group="cache-get-hit")
def test_get_hit_cachetools_ttlcache_getitem(benchmark):
    cache = cachetools.TTLCache(maxsize=2000, ttl=3600.0)
    _fill(cache.__setitem__)
    benchmark.extra_info["role"] = "peer"
    benchmark(cache.__getitem__, HOT)


@pytest.mark.benchmark(group="cache-get-hit")
def test_get_hit_cachetools_ttlcache_locked(benchmark):
    cache = cachetools.TTLCache(maxsize=2000, ttl=3600.0)
    _fill(cache.__setitem__)
    lock = threading.Lock()

    def get(key: str) -> object:
        with lock:
            return cache.get(key)

    benchmark.extra_info["role"] = "peer"
    benchmark(get, HOT)


@pytest.mark.benchmark(group="cache-get-hit")
def test_get_hit_cachebox_ttlcache(benchmark):
    cachebox = pytest.importorskip("cachebox")
    cache = cachebox.TTLCache(2000, 3600.0)
    _fill(cache.__setitem__)
    benchmark.extra_info["role"] = "peer"
    benchmark(cache.get, HOT)


@pytest.mark.benchmark(group="cache-get-hit")
def test_get_hit_theine_cache(benchmark):
    theine = pytest.importorskip("theine")
    cache = theine.Cache(2000)
    ttl = dt.timedelta(hours=1)
    for i, key in enumerate(KEYS):
        cache.set(key, i, ttl)
    benchmark.extra_info["role"] = "peer"
    benchmark(cache.get, HOT)


# ------------------------------------------------------------------- set


@pytest.mark.benchmark(group="cache-set")
def test_set_dprims_ttlcache(benchmark):
    cache: TTLCache[str, int] = TTLCache(maxsize=2000, ttl=3600.0)
    _fill(cache.set)
    benchmark.extra_info["role"] = "ours"
    benchmark(cache.set, HOT, 1)


@pytest.mark.benchmark(group="cache-set")
def test_set_cachetools_ttlcache_locked(benchmark):
    cache = cachetools.TTLCache(maxsize=2000, ttl=3600.0)
    _fill(cache.__setitem__)
    lock = threading.Lock()

    def set_(key: str, value: int) -> None:
        with lock:
            cache[key] = value

    benchmark.extra_info["role"] = "peer"
    benchmark(set_, HOT, 1)


@pytest.mark.benchmark(group="cache-set")
def test_set_cachebox_ttlcache(benchmark):
    cachebox = pytest.importorskip("cachebox")
    cache = cachebox.TTLCache(2000, 3600.0)
    _fill(cache.__setitem__)
    benchmark.extra_info["role"] = "peer"
    benchmark(cache.__setitem__, HOT, 1)


# --------------------------------------------------------- @cached (hit)


@pytest.mark.benchmark(group="cached-hit")
def test_cached_hit_floor(benchmark):
    def plain(x: int) -> int:
        return x

    benchmark.extra_info["role"] = "floor"
    benchmark(plain, 7)


@pytest.mark.benchmark(group="cached-hit")
def test_cached_hit_dprims(benchmark):
    @cached(ttl=3600.0, maxsize=1024)
    def f(x: int) -> int:
        return x

    f(7)
    benchmark.extra_info["role"] = "ours"
    benchmark(f, 7)


@pytest.mark.benchmark(group="cached-hit")
def test_cached_hit_cachetools_locked(benchmark):
    @cachetools.cached(
        cachetools.TTLCache(maxsize=1024, ttl=3600.0), lock=threading.Lock()
    )
    def f(x: int) -> int:
        return x

    f(7)
    benchmark.extra_info["role"] = "peer"
    benchmark(f, 7)


@pytest.mark.benchmark(group="cached-hit")
def test_cached_hit_cachebox(benchmark):
    cachebox = pytest.importorskip("cachebox")

    @cachebox.cached(cachebox.TTLCache(1024, 3600.0))
    def f(x: int) -> int:
        return x

    f(7)
    benchmark.extra_info["role"] = "peer"
    benchmark(f, 7)


@pytest.mark.benchmark(group="cached-hit")
def test_cached_hit_theine(benchmark):
    theine = pytest.importorskip("theine")

    @theine.Memoize(1024, dt.timedelta(hours=1))
    def f(x: int) -> int:
        return x

    @f.key
    def _(x: int) -> str:
        return f"f:{x}"

    f(7)
    benchmark.extra_info["role"] = "peer"
    benchmark(f, 7)


# --------------------------------------------------- stampede (loader calls)

THREADS = 32


def _stampede(func) -> None:
    barrier = threading.Barrier(THREADS, timeout=30.0)

    def worker() -> None:
        barrier.wait()
        func("hot")

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)


def _probe(benchmark, name: str, make) -> None:
    calls: list[int] = []

    def loader(key: str) -> str:
        calls.append(1)
        time.sleep(0.02)
        return key

    def run() -> None:
        _stampede(make(loader))

    benchmark.pedantic(run, rounds=3, iterations=1)
    per_round = len(calls) / 3
    benchmark.extra_info["loader_calls"] = per_round
    LOADER_CALLS[name] = per_round


@pytest.mark.benchmark(group="stampede")
def test_stampede_dprims(benchmark):
    benchmark.extra_info["role"] = "ours"
    _probe(benchmark, "dprims @cached", lambda f: cached(ttl=60.0)(f))


@pytest.mark.benchmark(group="stampede")
def test_stampede_cachetools_locked(benchmark):
    benchmark.extra_info["role"] = "peer"
    _probe(
        benchmark,
        "cachetools @cached(lock=Lock())",
        lambda f: cachetools.cached(
            cachetools.TTLCache(maxsize=64, ttl=60.0), lock=threading.Lock()
        )(f),
    )


@pytest.mark.benchmark(group="stampede")
def test_stampede_cachebox(benchmark):
    cachebox = pytest.importorskip("cachebox")
    benchmark.extra_info["role"] = "peer"
    _probe(
        benchmark,
        "cachebox @cached",
        lambda f: cachebox.cached(cachebox.TTLCache(64, 60.0))(f),
    )


@pytest.fixture(scope="module", autouse=True)
def _report_loader_calls(request):
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if not LOADER_CALLS or reporter is None or capture is None:
        return
    # Output is captured during fixture teardown; print past the capture.
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            f"[stampede] loader calls per burst of {THREADS} threads "
            "missing one key (loader sleeps 20 ms):"
        )
        for name, calls in LOADER_CALLS.items():
            reporter.write_line(f"  {name:<40} {calls:g}")
