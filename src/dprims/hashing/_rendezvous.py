"""Rendezvous (highest random weight) hashing, weighted by the log method.

Status: stable.
"""

from __future__ import annotations

import heapq
import math
import threading
from itertools import repeat
from operator import sub, truediv
from typing import TYPE_CHECKING

import mmh3

from dprims.errors import ConfigurationError
from dprims.hashing._base import (
    NoNodesError,
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

_hash32 = mmh3.hash
#: Seed of the key hash, which then seeds the hash of every node name.
_KEY_SEED = 0x9E3779B9
#: A signed 32-bit score s maps to u = (s + _OFFSET) / 2**32 in (0, 1).
_OFFSET = 2.0**31 + 0.5
_LOG_2_32 = 32 * math.log(2)
#: Group nodes by weight when there are at least this many nodes per
#: distinct weight; below it, scoring every node is as fast.
_GROUP_RATIO = 8


class _Snapshot:
    __slots__ = (
        "groups",
        "names",
        "nodes",
        "uniform",
        "weight_list",
        "weights",
    )

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights
        self.nodes = tuple(weights)
        # Scores are computed in name order, so that an exact tie goes to
        # the smaller name whatever order the nodes were added in.
        self.names = tuple(sorted(weights))
        self.weight_list = [weights[n] for n in self.names]
        self.uniform = len(set(self.weight_list)) <= 1
        # Nodes grouped by weight, each group in name order with the
        # nodes' positions in names. Within a group the score rises with
        # the hash, so only each group's top hash needs a logarithm.
        # Worth it only when groups are few: each costs a few list passes.
        by_weight: dict[float, list[int]] = {}
        for i, w in enumerate(self.weight_list):
            by_weight.setdefault(w, []).append(i)
        self.groups: tuple[tuple[float, tuple[str, ...], tuple[int, ...]], ...]
        self.groups = ()
        if not self.uniform and len(by_weight) * _GROUP_RATIO <= len(
            self.names
        ):
            self.groups = tuple(
                (w, tuple(self.names[i] for i in at), tuple(at))
                for w, at in by_weight.items()
            )


class RendezvousHash:
    """Give each key to the node that scores highest for it.

    Every node scores every key with a hash of (key, node name); the key
    goes to the top scorer, and `nodes_for` returns the top *n*. Removing a
    node moves only its keys (each to its own runner-up, so they spread
    evenly over the others); adding one moves only the keys it now wins,
    ``1/(N+1)`` of them on average. Load is balanced up to sampling noise,
    with no virtual nodes and no memory beyond the node list.

    Weights use the logarithmic method (Schindelhauer and Schomaker,
    "Weighted distributed hash tables", 2005): node *i* scores
    ``w_i / -ln(u_i)`` with ``u_i`` the hash mapped into (0, 1), which gives
    node *i* exactly ``w_i / sum(w)`` of the keys and still moves only the
    keys that must move when a weight appears or disappears. When all
    weights are equal the logarithm is skipped (it would not change the
    order).

    A lookup costs one hash per node, done in C (``mmh3`` over the node
    names, seeded with the key's hash): about a microsecond per 10 nodes.
    Unequal weights add a logarithm per node, about three times the cost,
    unless the weights take few distinct values (at least 8 nodes per
    value, such as weights 1, 2 and 3 over 100 nodes): then only each
    weight's top hash needs one, and a lookup costs about what an
    unweighted one does. Use it for tens to a few hundred nodes; beyond
    that a `ConsistentHashRing` or a `MaglevHash` answers in constant or
    logarithmic time.

    Lookups read an immutable snapshot and never lock; `add` and `remove`
    replace the snapshot under a lock.

    Args:
        nodes: Node names, or a mapping of node name to weight.
        weights: Relative weights (above 0) by node name; missing nodes
            weigh 1.

    Raises:
        ValueError: On a duplicate node or a weight that is not above 0.
        TypeError: On a node that is not a ``str``.

    Example::

        >>> from dprims.hashing import RendezvousHash
        >>> hrw = RendezvousHash(["a", "b", "c"], weights={"c": 2})
        >>> len(set(hrw.nodes_for("user:42", 3)))
        3

    .. versionadded:: 0.1
    """

    __slots__ = ("_lock", "_snap")

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._snap = _Snapshot(dict(initial_nodes(nodes, weights)))

    # ------------------------------------------------------------ lookups

    def node_for(self, key: Key) -> str:
        """Return the node that scores highest for *key*.

        Raises:
            NoNodesError: If there are no nodes.
            TypeError: If *key* is not ``str``, ``bytes`` or ``int``.
        """
        snap = self._snap
        names = snap.names
        if not names:
            raise NoNodesError("there are no nodes; add one first")
        try:
            seed = _hash32(key, _KEY_SEED, False)  # type: ignore[arg-type]  # int keys: TypeError, below
        except TypeError:
            seed = _hash32(coerce_key(key), _KEY_SEED, False)
        if snap.uniform:
            hashes = list(map(_hash32, names, repeat(seed)))
            return names[hashes.index(max(hashes))]
        if snap.groups:
            return names[_grouped_winner(snap.groups, seed)]
        scores = _weighted_scores(snap, seed)
        return names[scores.index(max(scores))]

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return the *n* nodes that score highest for *key*, best first.

        The list is stable under membership changes: removing one of its
        nodes shifts the rest up by one, and no other node enters ahead of
        them.

        Raises:
            NoNodesError: If there are no nodes (and *n* > 0).
            ValueError: If *n* is negative or more than the number of nodes.
        """
        snap = self._snap
        if not snap.names and n:
            raise NoNodesError("there are no nodes; add one first")
        check_count(n, len(snap.names))
        scores = self._scores(snap, key)
        best = heapq.nlargest(n, range(len(scores)), key=scores.__getitem__)
        return [snap.names[i] for i in best]

    @staticmethod
    def _scores(snap: _Snapshot, key: Key) -> list[float]:
        try:
            seed = _hash32(key, _KEY_SEED, signed=False)  # type: ignore[arg-type]  # int keys: TypeError, below
        except TypeError:
            seed = _hash32(coerce_key(key), _KEY_SEED, signed=False)
        if snap.uniform:
            # Ints are ordered like the floats they stand for.
            return list(map(_hash32, snap.names, repeat(seed)))
        return _weighted_scores(snap, seed)

    # ------------------------------------------------------------ changes

    def add(self, node: str, weight: float = 1) -> None:
        """Add *node* with relative *weight*; only keys it wins move to it.

        Raises:
            ValueError: If *node* is already present or *weight* is not
                above 0.
        """
        check_node(node)
        value = check_weight(weight)
        with self._lock:
            current = self._snap.weights
            if node in current:
                raise ConfigurationError(f"node: {node!r} is already present")
            self._snap = _Snapshot({**current, node: value})

    def remove(self, node: str) -> None:
        """Remove *node*; each of its keys goes to its runner-up.

        Raises:
            ValueError: If *node* is not present.
        """
        with self._lock:
            current = self._snap.weights
            if node not in current:
                raise ConfigurationError(f"node: {node!r} is not present")
            self._snap = _Snapshot(
                {k: v for k, v in current.items() if k != node}
            )

    # ------------------------------------------------------------ views

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names, in the order they were added."""
        return self._snap.nodes

    @property
    def weights(self) -> dict[str, float]:
        """A copy of the weight of each node."""
        return dict(self._snap.weights)

    def copy(self) -> RendezvousHash:
        """Return an independent copy with the same nodes and weights."""
        clone = RendezvousHash.__new__(RendezvousHash)
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
        return f"RendezvousHash({{{shown}}})"


def _weighted_scores(snap: _Snapshot, seed: int) -> list[float]:
    """Return every node's score ``w / -ln(u)`` for the key of *seed*."""
    hashes = map(_hash32, snap.names, repeat(seed))
    # w / -ln(u), computed in C over the whole list.
    neg_log_u = map(
        sub,
        repeat(_LOG_2_32),
        map(math.log, map(_OFFSET.__add__, hashes)),
    )
    return list(map(truediv, snap.weight_list, neg_log_u))


def _grouped_winner(
    groups: tuple[tuple[float, tuple[str, ...], tuple[int, ...]], ...],
    seed: int,
) -> int:
    """Return the position in names of the top scorer, group by group.

    The answer is exactly `_weighted_scores`'s first maximum: within a
    group (one weight) the score is strictly increasing in the hash (two
    32-bit hashes differ by far more than a rounding error once mapped
    through the logarithm), so the group's first top hash is its first
    top score, and a tie between groups goes to the smaller position.
    """
    best = -1.0
    at = -1
    log = math.log
    for weight, names, positions in groups:
        hashes = list(map(_hash32, names, repeat(seed)))
        top = max(hashes)
        # The same operations, in the same order, as _weighted_scores.
        score = weight / (_LOG_2_32 - log(_OFFSET + top))
        if score > best:
            best = score
            at = positions[hashes.index(top)]
        elif score == best:
            at = min(at, positions[hashes.index(top)])
    return at
