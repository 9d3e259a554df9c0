"""Multi-probe consistent hashing (Appleton and O'Reilly, 2015).

Status: stable.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left
from typing import TYPE_CHECKING

import mmh3

from dprims.errors import ConfigurationError
from dprims.hashing._base import (
    NoNodesError,
    _Rebuilt,
    check_count,
    check_node,
    check_weight,
    coerce_key,
    initial_nodes,
    weight_repr,
)


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from dprims.hashing._base import Key


__all__ = ()

_hash128 = mmh3.hash128
_MASK64 = (1 << 64) - 1
_RING = 1 << 64


def _points(node: str, weight: float) -> list[tuple[int, str]]:
    return [
        (_hash128(f"{node}-{i}") & _MASK64, node) for i in range(int(weight))
    ]


class _Snapshot:
    __slots__ = ("nodes", "owners", "points", "weights")

    def __init__(
        self, weights: dict[str, float], pairs: list[tuple[int, str]]
    ) -> None:
        self.weights = weights
        self.nodes = tuple(weights)
        # One extra point past the end, the first point plus 2**64, so the
        # clockwise distance is points[i] - probe with no wrap-around test.
        self.points = [p for p, _ in pairs]
        self.owners = [o for _, o in pairs]
        if pairs:
            self.points.append(pairs[0][0] + _RING)
            self.owners.append(pairs[0][1])


class MultiProbeHash(_Rebuilt[_Snapshot]):
    """Hash each node once, probe each key *probes* times, take the nearest.

    Appleton and O'Reilly's multi-probe consistent hashing ("Multi-probe
    consistent hashing", 2015) puts each node at a single point of a 64-bit
    ring (a node of weight *w* at *w* points) and hashes each key to
    *probes* positions; the key goes to the node whose point follows one of
    its probes most closely. Memory is one point per node instead of a
    ring's hundreds, and the peak-to-average load falls as probes grow: the
    paper bounds the expected peak near ``1 + 1/(probes - 1)``, 1.05 at the
    default 21 probes (the hashing guide shows what we measure), at the
    cost of *probes* binary searches per lookup. Adding or removing a node moves
    only the keys that must move, as on a ring.

    Probe positions are ``h1 + i * h2`` (modulo 2**64) from the two halves
    of the key's 128-bit MurmurHash3 (double hashing, as the paper's
    reference code does).

    Lookups read an immutable snapshot and never lock; `add` and `remove`
    swap in a new one under a lock.

    Args:
        nodes: Node names, or a mapping of node name to weight.
        probes: Probes per key (at least 1); more balances better and
            looks up slower.
        weights: Whole-number weights by node name: a node of weight *w*
            gets *w* points.

    Raises:
        ValueError: On ``probes < 1``, a duplicate node, or a weight that
            is not a whole number of at least 1.

    Example::

        >>> from dprims.hashing import MultiProbeHash
        >>> mp = MultiProbeHash(["a", "b", "c"])
        >>> mp.node_for("user:42") in mp.nodes
        True

    .. versionadded:: 0.1
    """

    __slots__ = ("_probes",)

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        probes: int = 21,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if isinstance(probes, bool) or not isinstance(probes, int):
            raise TypeError(f"probes must be an int, got {probes!r}")
        if probes < 1:
            raise ConfigurationError(f"probes must be >= 1, got {probes}")
        self._probes = probes
        self._lock = threading.Lock()
        pairs = initial_nodes(nodes, weights)
        for name, weight in pairs:
            _check_whole(weight, f"weights[{name!r}]")
        self._snap = self._build(dict(pairs))

    @staticmethod
    def _build(weights: dict[str, float]) -> _Snapshot:
        pairs = sorted(
            pair
            for node, weight in weights.items()
            for pair in _points(node, weight)
        )
        return _Snapshot(weights, pairs)

    # ------------------------------------------------------------ lookups

    def node_for(self, key: Key) -> str:
        """Return the node whose point most closely follows a probe of *key*.

        Raises:
            NoNodesError: If there are no nodes.
            TypeError: If *key* is not ``str``, ``bytes`` or ``int``.
        """
        snap = self._snap
        points = snap.points
        if not points:
            raise NoNodesError("there are no nodes; add one first")
        try:
            h = _hash128(key)  # type: ignore[arg-type]  # int keys: TypeError, below
        except TypeError:
            h = _hash128(coerce_key(key))
        probe, step = h >> 64, (h & _MASK64) | 1
        best, best_at = _RING, 0
        for _ in range(self._probes):
            at = bisect_left(points, probe)
            distance = points[at] - probe
            if distance < best:
                best, best_at = distance, at
            probe = (probe + step) & _MASK64
        return snap.owners[best_at]

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return *n* distinct nodes for *key*, nearest to its probes first.

        Nodes are ranked by the clockwise distance from any probe to any of
        their points. The first is `node_for`'s answer, and when it leaves,
        the second takes over: it is a true preference list.

        Raises:
            NoNodesError: If there are no nodes (and *n* > 0).
            ValueError: If *n* is negative or more than the number of nodes.
        """
        snap = self._snap
        if not snap.nodes and n:
            raise NoNodesError("there are no nodes; add one first")
        check_count(n, len(snap.nodes))
        found: list[str] = []
        if n == 0:
            return found
        points, owners = snap.points, snap.owners
        size = len(points) - 1
        h = _hash128(coerce_key(key))
        probe, step = h >> 64, (h & _MASK64) | 1
        # One cursor per probe, each walking clockwise; merge the walks by
        # distance. (distance, probe number, index) keeps ties ordered.
        heap: list[tuple[int, int, int]] = []
        for i in range(self._probes):
            at = bisect_left(points, probe)
            heap.append((points[at] - probe, i, at % size))
            probe = (probe + step) & _MASK64
        heapq.heapify(heap)
        seen: set[str] = set()
        while len(found) < n:
            distance, i, at = heapq.heappop(heap)
            owner = owners[at]
            if owner not in seen:
                seen.add(owner)
                found.append(owner)
            nxt = at + 1
            gap = points[nxt] - points[at]
            heapq.heappush(heap, (distance + gap, i, nxt % size))
        return found

    # ------------------------------------------------------------ changes

    def add(self, node: str, weight: float = 1) -> None:
        """Add *node* with *weight* points; only keys it wins move to it.

        Raises:
            ValueError: If *node* is present or *weight* is not a whole
                number of at least 1.
        """
        check_node(node)
        value = _check_whole(check_weight(weight), "weight")
        self._insert(node, value)

    def remove(self, node: str) -> None:
        """Remove *node*; only its keys move.

        Raises:
            ValueError: If *node* is not present.
        """
        self._delete(node)

    # ------------------------------------------------------------ views

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names, in the order they were added."""
        return self._snap.nodes

    @property
    def weights(self) -> dict[str, float]:
        """A copy of the weight of each node."""
        return dict(self._snap.weights)

    @property
    def probes(self) -> int:
        """Probes per key."""
        return self._probes

    def copy(self) -> MultiProbeHash:
        """Return an independent copy (it shares the immutable points)."""
        clone = MultiProbeHash.__new__(MultiProbeHash)
        clone._probes = self._probes
        clone._lock = threading.Lock()
        clone._snap = self._snap
        return clone

    def __len__(self) -> int:
        """Return the number of nodes."""
        return len(self._snap.nodes)

    def __contains__(self, node: object) -> bool:
        """Return whether *node* is present."""
        return node in self._snap.weights

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n!r}: {weight_repr(w)}" for n, w in self._snap.weights.items()
        )
        return f"MultiProbeHash({{{shown}}}, probes={self._probes})"


def _check_whole(weight: float, argument: str) -> float:
    if not weight.is_integer() or weight < 1:
        raise ConfigurationError(
            f"{argument} must be a whole number >= 1 for MultiProbeHash "
            f"(a node of weight w gets w points), got {weight!r}"
        )
    return weight
