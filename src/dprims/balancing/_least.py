"""Load- and latency-aware policies: least connections, P2C, peak EWMA.

Status: provisional.
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.balancing._base import (
    E,
    OutlierDetection,
    RandomSource,
    _Member,
    _number,
    _Pool,
    _RandomPool,
    _View,
)
from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


__all__ = ()

#: Load of an endpoint whose cost decayed to zero while requests are still
#: in flight on it: it must not look free (Finagle's "penalty").
_PENALTY = 1e9


def _two(view: _View[E], rng: RandomSource) -> tuple[int, int]:
    """Return two distinct random indexes, drawn in proportion to weight.

    Equal weights draw uniformly in O(1); otherwise each draw is a binary
    search over the cumulative weights, O(log n). Drawing by weight is what
    lets two-choice policies honour weights as skewed as 1:1:7, where an
    endpoint must win more often than it could ever be drawn uniformly.
    """
    size = len(view.members)
    rand = rng.random
    if view.uniform:
        first = int(rand() * size)
    else:
        cumulative = view.cumulative
        total = view.total
        last = size - 1
        first = min(bisect.bisect_right(cumulative, rand() * total), last)
        # A few weighted redraws find a second endpoint almost always; a
        # uniform pick among the others bounds the work when one weight
        # dominates.
        for _ in range(3):
            second = min(bisect.bisect_right(cumulative, rand() * total), last)
            if second != first:
                return first, second
    second = int(rand() * (size - 1))
    if second >= first:
        second += 1
    return first, second


class LeastConnections(_Pool[E]):
    """Pick the endpoint with the fewest leases in flight per unit of weight.

    The score is ``in_flight / weight``; ties go to nginx's smooth weighted
    round robin among the tied endpoints, so an idle pool, or one used with
    ``pick()`` alone, still shares by weight in the order
    `WeightedRoundRobin` gives. A pick scans every available endpoint under
    the pool's lock: O(n). Only requests made through :meth:`~dprims.balancing.Balancer.lease` count as in flight. For large
    pools, `PowerOfTwoChoices` gets most of the benefit in O(1).

    Args:
        endpoints: the endpoints (weight 1 each), or a mapping of endpoint
            to weight.
        panic_threshold: when fewer than this share of the endpoints are
            available, pick among all of them; 0 turns panic mode off.
        outlier_detection: eject endpoints after consecutive failed leases.
        slow_start: seconds over which a new or recovered endpoint ramps
            from 10% to its full weight; 0 turns it off.
        clock: the clock for ejection, slow start and latency.

    .. versionadded:: 0.1
    """

    __slots__ = ()

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        slow_start: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            endpoints,
            panic_threshold=panic_threshold,
            outlier_detection=outlier_detection,
            slow_start=slow_start,
            clock=clock,
        )

    def _choose(
        self, view: _View[E], _key: str | None, _now: float | None, /
    ) -> int:
        members = view.members
        weights = view.weights
        with self._lock:
            loads: list[float] = [m.in_flight for m in members]
            if not view.uniform:
                # Division is correctly rounded, so equal ratios give equal
                # floats and ties are exact.
                loads = [
                    load / weight
                    for load, weight in zip(loads, weights, strict=True)
                ]
            least = min(loads)
            if loads.count(least) == 1:
                return loads.index(least)
            # Ties go to nginx's smooth weighted round robin among the tied
            # endpoints, so an idle pool (or one used with pick() alone)
            # still shares by weight, in the same interleaved order.
            best = 0
            best_score = float("-inf")
            total = 0.0
            for index, load in enumerate(loads):
                if load != least:
                    continue
                weight = weights[index]
                member = members[index]
                member.current += weight
                total += weight
                if member.current > best_score:
                    best = index
                    best_score = member.current
            members[best].current -= total
        return best


class PowerOfTwoChoices(_RandomPool[E]):
    """Pick two endpoints at random and use the less loaded one.

    Load is ``in_flight / weight`` as for `LeastConnections`, but only two
    random candidates are compared, so a pick is O(1) and many clients do
    not all rush to the same least-loaded endpoint (the "power of two
    choices" result: exponentially better than one random choice). With
    unequal weights the candidates are drawn in proportion to weight, in
    O(log n).

    Args:
        endpoints: the endpoints (weight 1 each), or a mapping of endpoint
            to weight.
        panic_threshold: when fewer than this share of the endpoints are
            available, pick among all of them; 0 turns panic mode off.
        outlier_detection: eject endpoints after consecutive failed leases.
        slow_start: seconds over which a new or recovered endpoint ramps
            from 10% to its full weight; 0 turns it off.
        rng: the random source; any `RandomSource`; pass a seeded
            ``random.Random(seed)`` for a reproducible sequence.
        clock: the clock for ejection, slow start and latency.

    .. versionadded:: 0.1
    """

    __slots__ = ()

    def _choose(
        self, view: _View[E], _key: str | None, _now: float | None, /
    ) -> int:
        size = len(view.members)
        if size == 1:
            return 0
        first, second = _two(view, self._rng)
        members = view.members
        weights = view.weights
        if (
            members[second].in_flight / weights[second]
            < members[first].in_flight / weights[first]
        ):
            return second
        return first


class PeakEWMA(_RandomPool[E]):
    """Pick by latency times load, with two random choices (Finagle's P2C+EWMA).

    Each endpoint keeps a *peak* exponentially weighted moving average of
    its lease latencies: a slower sample replaces the estimate at once, a
    faster one is blended in with weight ``1 - exp(-dt / decay)``, and the
    estimate decays towards zero while an endpoint is idle, so one that was
    slow is tried again later. The load of an endpoint is that cost times
    ``1 + in_flight / weight``; each pick compares two random endpoints
    (drawn by weight when weights differ) and takes the cheaper, the first
    drawn on a tie, so endpoints of equal cost share by weight. Once
    latencies are measured they decide, and a weight acts as capacity: an
    endpoint of weight *w* takes *w* times the requests in flight before
    its load doubles, so shares follow weights only roughly.
    O(1) per pick with equal weights, O(log n) otherwise.

    Failures are penalised, not rewarded: a quick 429 or 503 is exactly
    what a broken backend answers fastest, so a failed lease is recorded
    as ``failure_penalty`` times the largest of its latency, the current
    estimate and *default_rtt* (linkerd2-proxy#4537). Mark such responses
    with `Lease.mark_failure` or raise inside the lease.

    Args:
        endpoints: the endpoints (weight 1 each), or a mapping of endpoint
            to weight.
        decay: the time constant of the moving average in seconds (> 0).
        default_rtt: the latency assumed for an endpoint with no samples
            yet, in seconds (> 0).
        failure_penalty: the factor applied to a failed lease (>= 1).
        panic_threshold: when fewer than this share of the endpoints are
            available, pick among all of them; 0 turns panic mode off.
        outlier_detection: eject endpoints after consecutive failed leases.
        slow_start: seconds over which a new or recovered endpoint ramps
            from 10% to its full weight; 0 turns it off.
        rng: the random source; any `RandomSource`; pass a seeded
            ``random.Random(seed)`` for a reproducible sequence.
        clock: the clock for the moving average, ejection and slow start.

    .. versionadded:: 0.1
    """

    __slots__ = ("_decay", "_default_rtt", "_failure_penalty")

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        decay: float = 10.0,
        default_rtt: float = 0.03,
        failure_penalty: float = 4.0,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        slow_start: float = 0.0,
        rng: RandomSource | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _number("decay", decay)
        _number("default_rtt", default_rtt)
        _number("failure_penalty", failure_penalty)
        if not (decay > 0 and math.isfinite(decay)):
            raise ConfigurationError(
                f"decay must be > 0 seconds, got {decay!r}"
            )
        if not (default_rtt > 0 and math.isfinite(default_rtt)):
            raise ConfigurationError(
                f"default_rtt must be > 0 seconds, got {default_rtt!r}"
            )
        if not (failure_penalty >= 1 and math.isfinite(failure_penalty)):
            raise ConfigurationError(
                f"failure_penalty must be >= 1, got {failure_penalty!r}"
            )
        self._decay = float(decay)
        self._default_rtt = float(default_rtt)
        self._failure_penalty = float(failure_penalty)
        super().__init__(
            endpoints,
            panic_threshold=panic_threshold,
            outlier_detection=outlier_detection,
            slow_start=slow_start,
            rng=rng,
            clock=clock,
        )

    def _new_member(
        self, endpoint: E, weight: float, since: float | None, now: float
    ) -> _Member[E]:
        member = super()._new_member(endpoint, weight, since, now)
        member.ewma = self._default_rtt
        # One clock reading for all the first members: stamps a hair apart
        # would make their idle costs differ by as much, and every pick
        # without leases would then prefer the oldest one.
        member.ewma_stamp = now
        return member

    def _cost(self, member: _Member[E], now: float) -> float:
        elapsed = now - member.ewma_stamp
        if elapsed <= 0:
            return member.ewma
        return member.ewma * math.exp(-elapsed / self._decay)

    def _latency(self, member: _Member[E], now: float) -> float | None:
        return self._cost(member, now)

    def _load(self, member: _Member[E], weight: float, now: float) -> float:
        cost = self._cost(member, now)
        pending = member.in_flight
        if cost == 0.0 and pending:
            return _PENALTY + pending
        # The weight counts as capacity for the requests in flight only:
        # dividing the whole cost by it would make idle endpoints of equal
        # cost differ, so the heavier would win every comparison on top of
        # being drawn more often, and picks would skew far past the weights.
        return cost * (1.0 + pending / weight)

    def _choose(
        self, view: _View[E], _key: str | None, now: float | None, /
    ) -> int:
        size = len(view.members)
        if size == 1:
            return 0
        if now is None:
            now = self._clock.monotonic()
        first, second = _two(view, self._rng)
        members = view.members
        weights = view.weights
        if self._load(members[second], weights[second], now) < self._load(
            members[first], weights[first], now
        ):
            return second
        return first

    def _observe(
        self, member: _Member[E], latency: float, success: bool, now: float
    ) -> None:
        cost = self._cost(member, now)
        if not success:
            latency = self._failure_penalty * max(
                latency, cost, self._default_rtt
            )
        if latency > cost:
            member.ewma = latency
        else:
            weight = math.exp(-max(0.0, now - member.ewma_stamp) / self._decay)
            member.ewma = member.ewma * weight + latency * (1.0 - weight)
        member.ewma_stamp = now

    def _censored(
        self, member: _Member[E], elapsed: float, now: float
    ) -> None:
        # A cancelled request (often a caller's timeout around the lease)
        # says only that the latency is at least *elapsed*: raise the peak
        # to it, but never lower the estimate. Without this a backend that
        # never answers would keep a cost that decays to nothing.
        cost = self._cost(member, now)
        if elapsed > cost:
            member.ewma = elapsed
            member.ewma_stamp = now

    def _describe(self) -> str:
        return f", decay={self._decay!r}"
