"""Round robin and nginx's smooth weighted round robin.

Status: provisional.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

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


class WeightedRoundRobin(_Pool[E]):
    """Pick endpoints in turn in proportion to their weights, interleaved.

    This is nginx's smooth weighted round robin: weights 3:1 give
    ``a a b a``, never ``a a a b``, so a heavy endpoint never gets a burst.
    Every pick adds each endpoint's weight to its running score, picks the
    highest (the first on ties) and subtracts the total from it. A pick is
    O(n) in the number of available endpoints and takes the pool's lock;
    membership and weight changes keep the running scores, so the shares
    stay fair across them.

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

    __slots__ = ()

    def _choose(
        self, view: _View[E], _key: str | None, _now: float | None, /
    ) -> int:
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
