"""Round robin and nginx's smooth weighted round robin.

Status: provisional.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Generic

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.balancing._base import E, OutlierDetection, _Pool, _View
from dprims.errors import NoEndpointAvailable


if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping


__all__ = ()


class RoundRobin(_Pool[E]):
    """Pick the available endpoints in turn, ignoring weights.

    Each pick is O(1) and takes no lock: a shared atomic counter hands every
    caller its own turn, so concurrent threads still share the endpoints
    evenly. When membership or health changes, the rotation continues over
    the new set. Use `WeightedRoundRobin` for weights or slow start.

    Args:
        endpoints: the endpoints (any hashable objects), or a mapping of
            endpoint to weight (the weights are kept but not used).
        panic_threshold: when fewer than this share of the endpoints are
            available, pick among all of them (Envoy's panic mode); 0 turns
            panic mode off.
        outlier_detection: eject endpoints after consecutive failed leases;
            None (the default) never ejects.
        clock: the clock for ejection timing and latency.

    .. versionadded:: 0.1
    """

    __slots__ = ("_counter", "_cycle", "_rotation")

    _uses_weights = False

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._counter = itertools.count()
        super().__init__(
            endpoints,
            panic_threshold=panic_threshold,
            outlier_detection=outlier_detection,
            clock=clock,
        )

    def pick(self, key: str | None = None) -> E:  # noqa: ARG002 -- the Balancer signature
        """Return the next endpoint in turn; *key* is ignored.

        Raises:
            NoEndpointAvailable: if no endpoint may be picked.
        """
        cycle = self._cycle
        if cycle is not None:
            return next(cycle)
        view = self._current(None)
        endpoints = view.endpoints
        if not endpoints:
            raise NoEndpointAvailable(view.reason)
        return endpoints[next(self._counter) % len(endpoints)]

    def _installed(self, view: _View[E]) -> None:
        # The lock-free fast path may skip the clock only while the view
        # cannot expire by itself (no ejection or ramp in progress).
        # itertools.cycle advances atomically under the GIL, so threads
        # sharing it still take strict turns. A new rotation starts where
        # the shared counter is, so frequent changes do not favour the
        # first endpoints.
        endpoints = view.endpoints
        if view.expires is None and endpoints:
            start = next(self._counter) % len(endpoints)
            cycle = itertools.cycle(endpoints[start:] + endpoints[:start])
            positions = {e: i for i, e in enumerate(endpoints)}
            self._rotation: tuple[_View[E], Iterator[E], dict[E, int]] | None
            self._rotation = (view, cycle, positions)
            self._cycle: Iterator[E] | None = cycle
        else:
            self._rotation = None
            self._cycle = None

    def _choose(
        self, view: _View[E], _key: str | None, _now: float | None, /
    ) -> int:
        # Leases take their turn from the same rotation as picks.
        rotation = self._rotation
        if rotation is not None and rotation[0] is view:
            return rotation[2][next(rotation[1])]
        return next(self._counter) % len(view.members)


#: Largest ``total weight x endpoints`` for which `WeightedRoundRobin`
#: precomputes a whole period of its order: bounds the work (and memory) a
#: membership or weight change costs.
_PRECOMPUTE_LIMIT = 16_384
#: Periods of lead-in searched before the order must have become cyclic.
_MAX_LEAD_PERIODS = 3


class WeightedRoundRobin(_Pool[E]):
    """Pick endpoints in turn in proportion to their weights, interleaved.

    This is nginx's smooth weighted round robin: weights 3:1 give
    ``a a b a``, never ``a a a b``, so a heavy endpoint never gets a burst.
    Every pick adds each endpoint's weight to its running score, picks the
    highest (the first on ties) and subtracts the total from it.
    Membership and weight changes keep the running scores, so the shares
    stay fair across them.

    With integer weights (the usual case) the order repeats after *total
    weight* picks, so it is computed once per change of the pool, in
    O(n x total weight), and a pick is O(1) with no lock, as cheap as
    `RoundRobin`'s. Fractional weights, slow-start ramps and pools with
    ``total weight x endpoints`` above 16384 fall back to computing each
    pick: O(n) under the pool's lock. Both give the same order.

    Args:
        endpoints: the endpoints (weight 1 each), or a mapping of endpoint
            to weight (> 0, any finite number).
        panic_threshold: when fewer than this share of the endpoints are
            available, pick among all of them; 0 turns panic mode off.
        outlier_detection: eject endpoints after consecutive failed leases;
            None (the default) never ejects.
        slow_start: seconds over which a new or recovered endpoint ramps
            from 10% to its full weight; 0 (the default) turns it off.
        clock: the clock for ejection, slow start and latency.

    .. versionadded:: 0.1
    """

    __slots__ = ("_period",)

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        slow_start: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._period: _Period[E] | None = None
        super().__init__(
            endpoints,
            panic_threshold=panic_threshold,
            outlier_detection=outlier_detection,
            slow_start=slow_start,
            clock=clock,
        )

    def pick(self, key: str | None = None) -> E:  # noqa: ARG002 -- the Balancer signature
        """Return the next endpoint in the smooth weighted order.

        *key* is ignored.

        Raises:
            NoEndpointAvailable: if no endpoint may be picked.
        """
        view = self._view
        if view.expires is not None:
            view = self._current(None)
        period = self._period
        if period is not None and period.view is view:
            return next(period.turns)[2]
        if not view.members:
            raise NoEndpointAvailable(view.reason)
        return view.endpoints[self._step(view)]

    def _installed(self, view: _View[E]) -> None:
        # Called with the lock held. First write back the running scores
        # where the old period stands, so the new order continues from
        # them exactly as the step-by-step algorithm would.
        old = self._period
        self._period = None
        if old is not None:
            currents = old.replay(next(old.turns)[0])
            for member, current in zip(
                old.view.members, currents, strict=True
            ):
                member.current = current
        self._period = _Period.compute(view)

    def _choose(
        self, view: _View[E], _key: str | None, _now: float | None, /
    ) -> int:
        # Leases take their turn from the same order as picks.
        period = self._period
        if period is not None and period.view is view:
            return next(period.turns)[1]
        return self._step(view)

    def _step(self, view: _View[E]) -> int:
        members = view.members
        weights = view.weights
        with self._lock:
            best = 0
            best_score = float("-inf")
            for index, member in enumerate(members):
                member.current += weights[index]
                if member.current > best_score:
                    best = index
                    best_score = member.current
            members[best].current -= view.total
        return best


class _Period(Generic[E]):
    """The precomputed smooth order of a view: a lead-in, then a cycle.

    From the scores a view starts with, the order settles within a period
    or two into a cycle of *total weight* picks (each endpoint picked
    exactly weight times); the picks before that are the lead-in.
    """

    __slots__ = ("order", "start", "turns", "view")

    def __init__(
        self,
        view: _View[E],
        order: list[int],
        lead: int,
        start: tuple[float, ...],
    ) -> None:
        self.view = view
        self.order = tuple(order)
        self.start = start
        endpoints = view.endpoints
        turns = [
            (position, index, endpoints[index])
            for position, index in enumerate(order)
        ]
        # Each pick takes the next (position, index, endpoint); next() on
        # this chain runs in C without releasing the GIL, so threads take
        # strict turns without a lock, and the position says how far the
        # order got when the pool changes.
        self.turns: Iterator[tuple[int, int, E]] = itertools.chain(
            turns[:lead], itertools.cycle(turns[lead:])
        )

    @classmethod
    def compute(cls, view: _View[E]) -> _Period[E] | None:
        """Return the order of *view* from its scores now, or None."""
        weights = view.weights
        size = len(weights)
        total = view.total
        if (
            not size
            or total * size > _PRECOMPUTE_LIMIT
            or not all(w.is_integer() for w in weights)
        ):
            return None
        start = tuple(m.current for m in view.members)
        currents = list(start)
        order: list[int] = []
        boundary = start
        for _ in range(_MAX_LEAD_PERIODS + 1):
            for _ in range(int(total)):
                best = 0
                best_score = float("-inf")
                for index in range(size):
                    current = currents[index] + weights[index]
                    currents[index] = current
                    if current > best_score:
                        best = index
                        best_score = current
                currents[best] -= total
                order.append(best)
            # Once a whole period brings every score back to where it
            # started, the order repeats from there on.
            if tuple(currents) == boundary:
                return cls(view, order, len(order) - int(total), start)
            boundary = tuple(currents)
        # Rounding or an unusual start: pick step by step instead.
        return None

    def replay(self, position: int) -> list[float]:
        """Return the running scores at *position* in the order."""
        weights = self.view.weights
        total = self.view.total
        currents = list(self.start)
        for best in self.order[:position]:
            for index, weight in enumerate(weights):
                currents[index] += weight
            currents[best] -= total
        return currents
