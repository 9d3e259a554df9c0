"""Property tests: a TTL cache never returns an expired item."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dprims.cache import TTLCache, cached
from dprims.testing import FakeClock


KEYS = st.sampled_from("abcdef")
TTLS = st.one_of(st.none(), st.floats(0.001, 20.0))
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, st.integers(), TTLS),
        st.tuples(st.just("advance"), st.floats(0.0, 15.0)),
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("delete"), KEYS),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, maxsize=st.integers(1, 8))
def test_never_returns_expired_or_wrong_value(ops, maxsize):
    """Returns only the last value set for a key, and only before it expires."""
    clock = FakeClock(0.0)
    cache: TTLCache[str, int] = TTLCache(
        maxsize=maxsize, ttl=10.0, clock=clock
    )
    model: dict[str, tuple[int, float]] = {}
    missing = object()
    for op in ops:
        now = clock.monotonic()
        if op[0] == "set":
            _, key, value, ttl = op
            cache.set(key, value, ttl=ttl)
            model[key] = (value, now + (10.0 if ttl is None else ttl))
        elif op[0] == "advance":
            clock.advance(op[1])
        elif op[0] == "delete":
            cache.delete(op[1])
            model.pop(op[1], None)
        else:
            got: Any = cache.get(op[1], missing)
            if got is not missing:
                value, expires = model[op[1]]
                assert now < expires
                assert value == got
            elif maxsize >= 6 and op[1] in model:
                # Nothing can have been evicted for room: only expiry.
                assert not now < model[op[1]][1]
        assert len(cache) <= maxsize


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(0.0, 8.0), max_size=30),
    jitter=st.floats(0.0, 0.99),
)
def test_decorator_value_never_older_than_ttl(steps, jitter):
    """Serves no value loaded more than ttl ago, whatever the jitter."""
    clock = FakeClock(0.0)

    @cached(ttl=5.0, jitter=jitter, clock=clock)
    def now_value(key: str) -> float:
        return clock.monotonic()

    for step in steps:
        clock.advance(step)
        loaded_at = now_value("k")
        assert clock.monotonic() - loaded_at < 5.0
