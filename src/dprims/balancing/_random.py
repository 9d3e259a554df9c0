"""Uniform and weighted random choice.

Status: provisional.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.balancing._base import (
    E,
    OutlierDetection,
    RandomSource,
    _RandomPool,
    _View,
)


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


__all__ = ()


class RandomChoice(_RandomPool[E]):
    """Pick an available endpoint uniformly at random, ignoring weights.

    O(1) per pick, no lock. Random choice needs no shared counter, so many
    independent clients spread load evenly without coordinating.

    Args:
        endpoints: the endpoints, or a mapping of endpoint to weight (the
            weights are kept but not used).
        panic_threshold: when fewer than this share of the endpoints are
            available, pick among all of them; 0 turns panic mode off.
        outlier_detection: eject endpoints after consecutive failed leases.
        rng: the random source; any `RandomSource`; pass a seeded
            ``random.Random(seed)`` for a reproducible sequence.
        clock: the clock for ejection timing and latency.

    .. versionadded:: 0.1
    """

    __slots__ = ()

    _uses_weights = False

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        rng: RandomSource | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            endpoints,
            panic_threshold=panic_threshold,
            outlier_detection=outlier_detection,
            rng=rng,
            clock=clock,
        )

    def _choose(
        self, view: _View[E], _key: str | None, _now: float | None, /
    ) -> int:
        return int(self._rng.random() * len(view.members))


class WeightedRandom(_RandomPool[E]):
    """Pick an available endpoint at random with probability ∝ its weight.

    O(log n) per pick (a binary search over cumulative weights), no lock.

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
        point = self._rng.random() * view.total
        index = bisect.bisect_right(view.cumulative, point)
        # Float rounding can put the point at the very end.
        return min(index, len(view.members) - 1)
