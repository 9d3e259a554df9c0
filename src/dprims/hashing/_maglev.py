"""Maglev hashing (Eisenbud et al., NSDI 2016), with weights.

Status: stable.
"""

from __future__ import annotations

import threading
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

_hash32 = mmh3.hash
_OFFSET_SEED = 0x4D41474C  # "MAGL"
_SKIP_SEED = 0x45563031  # "EV01"
_KEY_SEED = 0x6B657973  # "keys"


def is_prime(n: int) -> bool:
    """Return whether *n* is prime (deterministic for n < 3.3e24)."""
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    for p in small:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in small:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def build_table(weights: Mapping[str, float], size: int) -> list[str]:
    """Return Maglev's lookup table of *size* slots for weighted nodes.

    Each node has a permutation of the slots, ``(offset + j * skip) % size``,
    from two hashes of its name (distinct seeds); nodes take turns claiming
    their next free slot until every slot is claimed. With weights, a node
    takes a turn each time its credit reaches 1, its credit growing by
    ``weight / max_weight`` per round, so its share of slots is its share
    of the total weight. Nodes take turns in name order, so the table
    depends only on the set of (name, weight) pairs.

    Cost: about ``size * ln(size)`` probes (the coupon collector's bound),
    in pure Python roughly 0.1 s for 65537 slots, whatever the node count.
    """
    names = sorted(weights)
    if not names:
        return []
    top = max(weights.values())
    share = [weights[n] / top for n in names]
    skip = [
        _hash32(n, _SKIP_SEED, signed=False) % (size - 1) + 1 for n in names
    ]
    pos = [_hash32(n, _OFFSET_SEED, signed=False) % size for n in names]
    credit = [0.0] * len(names)
    owner = [-1] * size
    filled = 0
    rounds = range(len(names))
    while True:
        for i in rounds:
            credit[i] += share[i]
            if credit[i] < 1.0:
                continue
            credit[i] -= 1.0
            c, step = pos[i], skip[i]
            while owner[c] >= 0:
                c += step
                if c >= size:
                    c -= size
            owner[c] = i
            pos[i] = c + step if c + step < size else c + step - size
            filled += 1
            if filled == size:
                return [names[i] for i in owner]


class _Snapshot:
    __slots__ = ("nodes", "table", "weights")

    def __init__(self, weights: dict[str, float], table: list[str]) -> None:
        self.weights = weights
        self.nodes = tuple(weights)
        self.table = table


class MaglevHash(_Rebuilt[_Snapshot]):
    """Look keys up in a prime-sized table that Maglev's permutations fill.

    Google's Maglev load balancer (Eisenbud et al., NSDI 2016) fills a
    table of *table_size* slots so that each node owns an equal share (up
    to one slot), or a share proportional to its weight; a lookup is one
    hash and one list index, ``O(1)`` whatever the node count. Balance is
    near perfect: the busiest node owns at most ``ceil(M/N)`` slots, so with
    ``M`` much larger than ``N`` keys spread as evenly as sampling allows.

    The price is disruption and build cost. When a node joins or leaves,
    most slots keep their owner but a few percent more keys move than the
    ``1/N`` minimum (measured in the hashing guide), because the other nodes'
    turns shift. `add` and `remove` rebuild the whole table, about
    ``M ln M`` steps: roughly 0.1 s in pure Python for the default 65537
    slots, more for larger tables. Pick ``table_size`` prime and at least
    100 times the number of nodes (the paper's advice) to keep each node's
    share within 1% of its target.

    Lookups read an immutable snapshot and never lock; `add` and `remove`
    build the new table under a lock, then swap it in.

    Args:
        nodes: Node names, or a mapping of node name to weight.
        table_size: Number of slots; must be a prime at least as large as
            the number of nodes.
        weights: Relative weights by node name (others weigh 1). A node
            whose share of the slots rounds to none owns no slot, so
            `node_for` never returns it (`slots` shows it).

    Raises:
        ValueError: On a *table_size* that is not prime or smaller than
            the node count, a duplicate node, or a weight not above 0.

    Example::

        >>> from dprims.hashing import MaglevHash
        >>> maglev = MaglevHash(["a", "b", "c"], table_size=251)
        >>> maglev.node_for("user:42") in maglev.nodes
        True

    .. versionadded:: 0.1
    """

    __slots__ = ("_size",)

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        table_size: int = 65537,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if isinstance(table_size, bool) or not isinstance(table_size, int):
            raise TypeError(f"table_size must be an int, got {table_size!r}")
        if not is_prime(table_size):
            raise ConfigurationError(
                f"table_size must be a prime number, got {table_size} "
                "(for example 251, 4099, 65537 or 655373)"
            )
        self._size = table_size
        self._lock = threading.Lock()
        self._snap = self._build(dict(initial_nodes(nodes, weights)))

    def _build(self, weights: dict[str, float]) -> _Snapshot:
        if len(weights) > self._size:
            raise ConfigurationError(
                f"table_size={self._size} is smaller than the number of "
                f"nodes ({len(weights)})"
            )
        return _Snapshot(weights, build_table(weights, self._size))

    # ------------------------------------------------------------ lookups

    def node_for(self, key: Key) -> str:
        """Return the node in *key*'s slot of the table.

        Raises:
            NoNodesError: If there are no nodes.
            TypeError: If *key* is not ``str``, ``bytes`` or ``int``.
        """
        table = self._snap.table
        try:
            return table[_hash32(key, _KEY_SEED) % len(table)]  # type: ignore[arg-type]  # int keys: TypeError, below
        except TypeError:
            return self.node_for(coerce_key(key))
        except ZeroDivisionError:
            raise NoNodesError("there are no nodes; add one first") from None

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return *n* distinct nodes: *key*'s slot owner, then the next ones.

        The later nodes are the first new owners met walking the table
        forward from *key*'s slot. Maglev has no true preference list: when
        the first node leaves, its keys do not all go to the second. For
        replica placement prefer `ConsistentHashRing` or `RendezvousHash`.
        A node whose weight is too small to own any slot still counts: such
        nodes come last, in name order.

        Raises:
            NoNodesError: If there are no nodes (and *n* > 0).
            ValueError: If *n* is negative or more than the number of nodes.
        """
        snap = self._snap
        if not snap.nodes and n:
            raise NoNodesError("there are no nodes; add one first")
        check_count(n, len(snap.nodes))
        table = snap.table
        found: list[str] = []
        if n == 0:
            return found
        seen: set[str] = set()
        size = len(table)
        start = _hash32(coerce_key(key), _KEY_SEED) % size
        for i in range(start, start + size):
            owner = table[i % size]
            if owner not in seen:
                seen.add(owner)
                found.append(owner)
                if len(found) == n:
                    return found
        # A node of tiny weight may own no slot at all; the walk never
        # meets it, but it is still one of the n distinct nodes asked for.
        found.extend(sorted(set(snap.nodes) - seen)[: n - len(found)])
        return found

    # ------------------------------------------------------------ changes

    def add(self, node: str, weight: float = 1) -> None:
        """Add *node* and rebuild the table (see the class for the cost).

        Raises:
            ValueError: If *node* is present, *weight* is not above 0, or
                the table would have fewer slots than nodes.
        """
        check_node(node)
        value = check_weight(weight)
        self._insert(node, value)

    def remove(self, node: str) -> None:
        """Remove *node* and rebuild the table.

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
    def table_size(self) -> int:
        """The number of slots in the lookup table."""
        return self._size

    def slots(self) -> dict[str, int]:
        """Return how many table slots each node owns."""
        counts = dict.fromkeys(self._snap.weights, 0)
        for owner in self._snap.table:
            counts[owner] += 1
        return counts

    def copy(self) -> MaglevHash:
        """Return an independent copy (it shares the immutable table)."""
        clone = MaglevHash.__new__(MaglevHash)
        clone._size = self._size
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
        return f"MaglevHash({{{shown}}}, table_size={self._size})"
