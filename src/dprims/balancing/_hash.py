"""Sticky balancing by key over consistent or rendezvous hashing.

Status: provisional.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Literal

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.balancing._base import (
    E,
    OutlierDetection,
    _normalise,
    _number,
    _Pool,
    _View,
)
from dprims.errors import ConfigurationError, NoEndpointAvailable
from dprims.hashing import ConsistentHashRing, RendezvousHash


if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping


__all__ = ()


class HashBalancer(_Pool[E]):
    """Send each key (a client IP, a user id) to the same endpoint.

    Placement comes from `dprims.hashing`: ``algorithm="ring"`` uses a
    `dprims.hashing.ConsistentHashRing` (with *vnodes* points per unit of
    weight), ``"rendezvous"`` a `dprims.hashing.RendezvousHash`. Both
    hash endpoint *names*, which *name* derives from each endpoint (``str``
    by default) and which must be unique, so a key lands on the same
    endpoint in every process, whatever ``PYTHONHASHSEED`` is. When an
    endpoint joins or leaves, only the keys that must move move.

    Health does not reshuffle keys: while a key's endpoint is unhealthy or
    ejected, the key goes to the next endpoint in its preference list, and
    comes back when its endpoint recovers. With *bounded_load* set to a
    factor ``c > 1`` (consistent hashing with bounded loads, Mirrokni et
    al.), an endpoint with ``ceil(c * (in_flight_total + 1) * weight /
    total_weight)`` leases or more open is also skipped, which caps hot
    spots at the cost of some stickiness; only :meth:`~dprims.balancing.Balancer.lease` counts load.

    A pick is a single hash lookup when the key's endpoint is available
    and under its bound; otherwise it walks the preference list, O(n).

    Args:
        endpoints: the endpoints (weight 1 each), or a mapping of endpoint
            to weight.
        algorithm: ``"ring"`` (the default) or ``"rendezvous"``.
        vnodes: ring points per unit of weight (``"ring"`` only).
        bounded_load: the load bound factor (> 1), or None for pure hashing.
        name: maps an endpoint to its stable name for hashing.
        panic_threshold: when fewer than this share of the endpoints are
            available, pick among all of them; 0 turns panic mode off.
        outlier_detection: eject endpoints after consecutive failed leases.
        clock: the clock for ejection timing and latency.

    Raises:
        ValueError: for an unknown *algorithm*, *bounded_load* <= 1, or two
            endpoints with the same name.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_bound",
        "_changes",
        "_index",
        "_name",
        "_names",
        "_selector",
    )

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        algorithm: Literal["ring", "rendezvous"] = "ring",
        vnodes: int = 160,
        bounded_load: float | None = None,
        name: Callable[[E], str] = str,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if bounded_load is not None:
            _number("bounded_load", bounded_load)
        if bounded_load is not None and not (
            bounded_load > 1 and math.isfinite(bounded_load)
        ):
            raise ConfigurationError(
                f"bounded_load must be a factor > 1 or None, got "
                f"{bounded_load!r}"
            )
        if not callable(name):
            raise TypeError(f"name must be callable, got {name!r}")
        self._bound = bounded_load
        self._name = name
        # Serialises membership changes, which touch the names, the pool
        # and the selector in turn; picks never take it.
        self._changes = threading.Lock()
        pairs = _normalise(endpoints)
        self._names: dict[E, str] = {}
        weights: dict[str, float] = {}
        for endpoint, weight in pairs:
            weights[self._claim(endpoint)] = weight
        if algorithm == "ring":
            self._selector: ConsistentHashRing | RendezvousHash = (
                ConsistentHashRing(weights, vnodes=vnodes)
            )
        elif algorithm == "rendezvous":
            self._selector = RendezvousHash(weights)
        else:
            raise ConfigurationError(
                f"algorithm must be 'ring' or 'rendezvous', got {algorithm!r}"
            )
        self._index: tuple[object, dict[str, int]] = (None, {})
        super().__init__(
            dict(pairs),
            panic_threshold=panic_threshold,
            outlier_detection=outlier_detection,
            clock=clock,
        )

    def _claim(self, endpoint: E) -> str:
        label: object = self._name(endpoint)
        if not isinstance(label, str) or not label:
            raise TypeError(
                f"name({endpoint!r}) must return a non-empty str, got "
                f"{label!r}"
            )
        if label in self._names.values():
            raise ConfigurationError(
                f"endpoints must have unique names: {endpoint!r} is named "
                f"{label!r} like another endpoint"
            )
        self._names[endpoint] = label
        return label

    def add(self, endpoint: E, weight: float = 1) -> None:
        """Add *endpoint* with *weight*; only keys that now hash to it move.

        Raises:
            ValueError: if *endpoint* or its name is already in the pool, or
                *weight* is not a finite number > 0.
        """
        with self._changes:
            if endpoint in self._names:
                raise ConfigurationError(
                    f"endpoint {endpoint!r} is already in the pool"
                )
            label = self._claim(endpoint)
            try:
                super().add(endpoint, weight)
            except BaseException:
                del self._names[endpoint]
                raise
            self._selector.add(label, weight)

    def remove(self, endpoint: E) -> None:
        """Remove *endpoint*; only its keys move.

        Raises:
            ValueError: if *endpoint* is not a member.
        """
        with self._changes:
            super().remove(endpoint)
            self._selector.remove(self._names.pop(endpoint))

    def set_weight(self, endpoint: E, weight: float) -> None:
        """Change the weight of *endpoint*, moving keys accordingly.

        Raises:
            ValueError: if *endpoint* is not a member or *weight* is not a
                finite number > 0.
        """
        with self._changes:
            super().set_weight(endpoint, weight)
            label = self._names[endpoint]
            self._selector.remove(label)
            self._selector.add(label, weight)

    def _positions(self, view: _View[E]) -> dict[str, int]:
        cached_view, positions = self._index
        if cached_view is view:
            return positions
        # A remove() running beside this pick may already have dropped the
        # name of a member this (older) view still holds: name it afresh.
        names = self._names
        positions = {
            names.get(m.endpoint) or self._name(m.endpoint): i
            for i, m in enumerate(view.members)
        }
        self._index = (view, positions)
        return positions

    def _fits(self, view: _View[E], index: int) -> bool:
        bound = self._bound
        if bound is None:
            return True
        load = sum(m.in_flight for m in view.members) + 1
        cap = math.ceil(bound * load * view.weights[index] / view.total)
        return view.members[index].in_flight < cap

    def _choose(
        self, view: _View[E], key: str | None, _now: float | None, /
    ) -> int:
        if key is None:
            raise ConfigurationError(
                "key is required for a HashBalancer (a client IP, a user id)"
            )
        positions = self._positions(view)
        selector = self._selector
        first = positions.get(selector.node_for(key))
        if first is not None and self._fits(view, first):
            return first
        fallback = first
        for label in selector.nodes_for(key, len(selector.nodes)):
            index = positions.get(label)
            if index is None:
                continue
            if fallback is None:
                fallback = index
            if self._fits(view, index):
                return index
        if (
            fallback is None
        ):  # pragma: no cover -- needs a pick to land between a pool change and the selector's
            raise NoEndpointAvailable(
                "the pool changed during the pick; try again"
            )
        return fallback

    def _describe(self) -> str:
        bound = f", bounded_load={self._bound!r}" if self._bound else ""
        return f", selector={type(self._selector).__name__}{bound}"
