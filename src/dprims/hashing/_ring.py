"""Consistent hash ring with virtual nodes, and a ketama-compatible mode.

Status: stable.
"""

from __future__ import annotations

import functools
import struct
import threading
from array import array
from bisect import bisect_right
from collections.abc import Callable
from hashlib import md5
from importlib import import_module
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, cast

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
    from collections.abc import Iterable, Iterator, Mapping

    from dprims.hashing._base import Key


__all__ = ()

_hash32 = mmh3.hash
_first_word = cast(
    "Callable[[bytes], tuple[int]]", struct.Struct("<I").unpack_from
)


def _fastest_md5() -> Callable[[bytes], Any]:
    # CPython's own MD5 skips OpenSSL's per-call setup, which is most of
    # the cost of hashing a short key: ketama lookups get about 2x faster.
    try:
        return cast("Callable[[bytes], Any]", import_module("_md5").md5)
    except ImportError:  # pragma: no cover -- a Python built without it
        return functools.partial(md5, usedforsecurity=False)


_md5 = _fastest_md5()
#: A hasher takes (key, seed, signed), the positional signature of
#: mmh3.hash, so the hot path calls the C function with no wrapper.
Hasher = Callable[[str | bytes, int, bool], int]


def _ketama_hash(key: str | bytes, seed: int = 0, signed: bool = False) -> int:  # noqa: ARG001 -- mmh3.hash's signature
    # libketama hashes a key to the first 4 bytes of its MD5, little-endian.
    # md5() of an int raises TypeError, which sends node_for to coerce_key.
    data = key.encode() if isinstance(key, str) else key
    return _first_word(_md5(data).digest())[0]


def _mmh3_points(node: str, count: int) -> list[tuple[int, str]]:
    # A node's points depend only on its name and its own vnode count, never
    # on the other nodes: that is what makes add/remove move only the keys
    # that must move.
    return [(_hash32(f"{node}-{i}", 0, False), node) for i in range(count)]


class _Snapshot:
    """An immutable view of the ring; readers take one and never lock."""

    __slots__ = (
        "hasher",
        "index",
        "lookup",
        "nodes",
        "owners",
        "points",
        "shift",
        "weights",
    )

    def __init__(
        self,
        pairs: list[tuple[int, str]],
        hasher: Hasher,
        weights: dict[str, float],
    ) -> None:
        points = [p for p, _ in pairs]
        owners = [o for _, o in pairs]
        if owners:
            owners.append(owners[0])
        self.points = points
        # owners[len(points)] repeats owners[0], so the key that hashes past
        # the last point wraps to the first without a branch.
        self.owners = owners
        self.hasher = hasher
        self.weights = weights
        self.nodes = tuple(weights)
        # A bucket index over the top bits of the 32-bit hash: the points of
        # bucket b are points[index[b]:index[b + 1]]. With one or two points
        # per bucket, a lookup compares one or two points instead of
        # log2(points) of them scattered over memory; at 1000 nodes that
        # halves the lookup time. An array keeps it at 4 bytes per bucket.
        bits = max(1, min(20, len(points).bit_length() - 1))
        self.shift = 32 - bits
        self.index = array(
            "I",
            [
                bisect_right(points, (b << self.shift) - 1)
                for b in range(1 << bits)
            ],
        )
        self.index.append(len(points))
        self.lookup = (points, owners, self.index, self.shift, hasher)

    def pairs(self) -> list[tuple[int, str]]:
        """Return the sorted (point, owner) pairs, for the next rebuild."""
        return list(zip(self.points, self.owners[:-1], strict=True))


class ConsistentHashRing:
    """Place keys on a ring of virtual nodes; each key goes to the next point.

    Each node puts ``round(vnodes * weight)`` points on a ring of 32-bit
    positions, the MurmurHash3 (x86, 32-bit, seed 0, unsigned) of
    ``"<node>-<i>"``, as libketama does with MD5. A
    key hashes to a position the same way and belongs to the node owning the
    first point after it, wrapping past the end. Adding a node therefore
    moves only the keys that now fall to it (about ``1/(N+1)`` of them), and
    removing one moves only its own keys. The spread of load shrinks as
    ``1/sqrt(vnodes)``: with the default 160 points per node the busiest
    node carries about 1.2 times the mean.

    ``mode="ketama"`` reproduces libketama's continuum as ``uhashring``
    builds it (``HashRing(nodes, hash_fn="ketama")``), so memcached clients
    that already use ketama keep every key where it was. There, *vnodes*
    counts points per node at weight 1 (``uhashring``'s ``vnodes=40`` with
    ``replicas=4`` is ``vnodes=160`` here) and must be a multiple of 4, a
    node's share of points is scaled by its weight relative to the total,
    as libketama does (so one node's change moves points of the others),
    and ``bytes`` keys are hashed as they are (``uhashring`` would hash
    their ``repr``).

    Lookups (`node_for`, `nodes_for`) never lock: they read one immutable
    snapshot, which `add` and `remove` replace in a single assignment, so a
    reader running beside a writer sees the ring before or after the change,
    never half of it. Writers serialize on a lock; each rebuilds the sorted
    point list in ``O(points)`` (``O(points log points)`` in ketama mode).

    Args:
        nodes: Node names, or a mapping of node name to weight.
        vnodes: Points per node at weight 1 (at least 1).
        weights: Relative weights (above 0) by node name; missing nodes
            weigh 1.
        mode: ``"mmh3"`` (the default) or ``"ketama"``.

    Raises:
        ValueError: On a duplicate node, a weight that is not above 0,
            ``vnodes < 1``, or an unknown *mode*.
        TypeError: On a node that is not a ``str``.

    Example::

        >>> from dprims.hashing import ConsistentHashRing
        >>> ring = ConsistentHashRing(["a", "b", "c"])
        >>> ring.node_for("user:42") in ring.nodes
        True

    .. versionadded:: 0.1
    """

    __slots__ = ("_lock", "_mode", "_snap", "_vnodes")

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        vnodes: int = 160,
        weights: Mapping[str, float] | None = None,
        mode: Literal["mmh3", "ketama"] = "mmh3",
    ) -> None:
        if isinstance(vnodes, bool) or not isinstance(vnodes, int):
            raise TypeError(f"vnodes must be an int, got {vnodes!r}")
        if vnodes < 1:
            raise ConfigurationError(f"vnodes must be >= 1, got {vnodes}")
        if mode not in ("mmh3", "ketama"):
            raise ConfigurationError(
                f"mode must be 'mmh3' or 'ketama', got {mode!r}"
            )
        if mode == "ketama" and vnodes % 4:
            raise ConfigurationError(
                "vnodes must be a multiple of 4 in ketama mode (each MD5 "
                f"digest gives 4 points), got {vnodes}"
            )
        self._vnodes = vnodes
        self._mode = mode
        self._lock = threading.Lock()
        start = dict(initial_nodes(nodes, weights))
        if mode == "ketama":
            self._snap = _Snapshot(
                _ketama_points(start, vnodes), _ketama_hash, start
            )
        else:
            pairs = [
                pair
                for node, weight in start.items()
                for pair in _mmh3_points(node, self._count(weight))
            ]
            # Equal points sort by node name, so the smaller name wins a
            # tie whatever the order the nodes were added in.
            self._snap = _Snapshot(sorted(pairs), _hash32, start)

    # ------------------------------------------------------------ lookups

    def node_for(self, key: Key) -> str:
        """Return the node that owns *key*.

        Most callers want this. It costs one hash and a binary search over
        the one or two points in the key's bucket of a precomputed index, and
        allocates nothing but the hash.

        Raises:
            NoNodesError: If the ring has no nodes.
            TypeError: If *key* is not ``str``, ``bytes`` or ``int``.
        """
        # One unpack of a tuple is cheaper than five attribute loads.
        points, owners, index, shift, hasher = self._snap.lookup
        try:
            h = hasher(key, 0, False)  # type: ignore[arg-type]  # int keys: TypeError, below
            b = h >> shift
            return owners[bisect_right(points, h, index[b], index[b + 1])]
        except TypeError:
            return self.node_for(coerce_key(key))
        except IndexError:
            raise NoNodesError(
                "the ring has no nodes; add one before looking up keys"
            ) from None

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return *n* distinct nodes for *key*, most preferred first.

        The first is what `node_for` returns; the others follow clockwise, so
        this is the replica preference list: when the first node leaves,
        the second takes its keys, and the rest keep their order. (In
        ketama mode a node whose weight is too small for a single point
        comes after all the others.)

        Raises:
            NoNodesError: If the ring has no nodes (and *n* > 0).
            ValueError: If *n* is negative or more than the number of nodes.
        """
        snap = self._snap
        if not snap.nodes and n:
            raise NoNodesError(
                "the ring has no nodes; add one before looking up keys"
            )
        check_count(n, len(snap.nodes))
        return list(islice(walk(snap, key), n))

    # ------------------------------------------------------------ changes

    def add(self, node: str, weight: float = 1) -> None:
        """Add *node* with relative *weight* (its points scale with it).

        Only keys that now fall to *node* move (in ketama mode, the weights
        are relative to the total, so other nodes' points change too).

        Raises:
            ValueError: If *node* is already in the ring or *weight* is not
                above 0.
        """
        check_node(node)
        value = check_weight(weight)
        with self._lock:
            current = self._snap.weights
            if node in current:
                raise ConfigurationError(
                    f"node: {node!r} is already in the ring"
                )
            weights = {**current, node: value}
            if self._mode == "ketama":
                pairs = _ketama_points(weights, self._vnodes)
            else:
                fresh = sorted(_mmh3_points(node, self._count(value)))
                # Timsort merges the two sorted runs in linear time.
                pairs = sorted([*self._snap.pairs(), *fresh])
            self._snap = _Snapshot(pairs, self._snap.hasher, weights)

    def remove(self, node: str) -> None:
        """Remove *node*; its keys go to the next node clockwise.

        Raises:
            ValueError: If *node* is not in the ring.
        """
        with self._lock:
            current = self._snap.weights
            if node not in current:
                raise ConfigurationError(f"node: {node!r} is not in the ring")
            remaining = {k: v for k, v in current.items() if k != node}
            if self._mode == "ketama":
                pairs = _ketama_points(remaining, self._vnodes)
            else:
                pairs = [p for p in self._snap.pairs() if p[1] != node]
            self._snap = _Snapshot(pairs, self._snap.hasher, remaining)

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
    def vnodes(self) -> int:
        """Points per node at weight 1."""
        return self._vnodes

    @property
    def mode(self) -> str:
        """``"mmh3"`` or ``"ketama"``."""
        return self._mode

    @property
    def points(self) -> int:
        """The number of points on the ring (its size in memory)."""
        return len(self._snap.points)

    def copy(self) -> ConsistentHashRing:
        """Return an independent copy (it shares the immutable points)."""
        clone = ConsistentHashRing.__new__(ConsistentHashRing)
        clone._vnodes = self._vnodes
        clone._mode = self._mode
        clone._lock = threading.Lock()
        clone._snap = self._snap
        return clone

    def __len__(self) -> int:
        """Return the number of nodes."""
        return len(self._snap.nodes)

    def __contains__(self, node: object) -> bool:
        """Return whether *node* is in the ring."""
        return node in self._snap.weights

    def __repr__(self) -> str:
        snap = self._snap
        shown = ", ".join(
            f"{n!r}: {weight_repr(w)}" for n, w in snap.weights.items()
        )
        return (
            f"ConsistentHashRing({{{shown}}}, vnodes={self._vnodes}, "
            f"mode={self._mode!r}, points={len(snap.points)})"
        )

    def _count(self, weight: float) -> int:
        return max(1, round(self._vnodes * weight))


def walk(snap: _Snapshot, key: Key) -> Iterator[str]:
    """Yield each node of *snap* once, clockwise from *key*'s position."""
    points = snap.points
    start = bisect_right(points, snap.hasher(coerce_key(key), 0, False))
    owners = snap.owners
    size = len(points)
    seen: set[str] = set()
    for i in range(start, start + size):
        owner = owners[i % size]
        if owner not in seen:
            seen.add(owner)
            yield owner
            if len(seen) == len(snap.nodes):
                return
    # In ketama mode a node of tiny weight can get no point at all (its
    # share of digests rounds down to 0). It is still a node, so a
    # preference list of every node ends with such nodes, in name order.
    yield from sorted(set(snap.nodes) - seen)


def _ketama_points(
    weights: dict[str, float], vnodes: int
) -> list[tuple[int, str]]:
    """Return libketama's continuum as ``uhashring`` builds it.

    Node ``s`` with weight ``w`` gets ``floor(digests * N * w / W)`` MD5
    digests of ``"s-0"``, ``"s-1"``, ... (``digests = vnodes / 4``, ``N``
    nodes, ``W`` the total weight); each 16-byte digest gives four points,
    its little-endian 32-bit words. When two nodes share a point, the node
    added later owns it.
    """
    digests = vnodes // 4
    count = len(weights)
    whole = all(w.is_integer() for w in weights.values())
    total = sum(weights.values())
    owner_of: dict[int, str] = {}
    for node, weight in weights.items():
        if whole:
            # Integer arithmetic, exactly as uhashring does with int weights.
            ks = (digests * count * int(weight)) // int(total)
        else:
            ks = int(digests * count * weight // total)
        for w in range(ks):
            digest = md5(
                f"{node}-{w}".encode(), usedforsecurity=False
            ).digest()
            for r in range(0, 16, 4):
                owner_of[int.from_bytes(digest[r : r + 4], "little")] = node
    return sorted(owner_of.items())
