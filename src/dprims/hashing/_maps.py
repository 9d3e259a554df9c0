"""Range and region maps: the non-hashing ways to shard, for comparison.

They implement the same `Selector` Protocol as the hash-based selectors so
that a `ShardRouter` can use them, and so that the hashing guide can show
side by side why hashing balances better.

Status: stable.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from typing import TYPE_CHECKING

from dprims.errors import ConfigurationError
from dprims.hashing._base import (
    NoNodesError,
    check_count,
    check_node,
    coerce_key,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from dprims.hashing._base import Key


__all__ = ()


def _text(key: Key) -> str:
    norm = coerce_key(key)
    return norm if isinstance(norm, str) else norm.decode("latin-1")


def _ordered(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


class RangeMap:
    """Give each node the keys in one or more lexical ranges (A-F, G-P, ...).

    *ranges* maps the lower bound of each range (inclusive) to its node; a
    range ends where the next begins, and the first bound must be ``""`` so
    every key has a range. Keys compare as strings (an ``int`` as its
    decimal string, ``bytes`` as Latin-1). Range scans stay on one node,
    but load follows the key distribution: names starting with S are far
    more common than with X, so range shards are rarely even.

    `add` needs the split point: ``add("s4", at="m")`` gives the new node
    the keys from ``"m"`` up to the next bound, taken from the range that
    held them. `remove` hands a node's ranges to the range before each
    (or after, for the first). Either way only the keys of the ranges
    that change hands move.

    Args:
        ranges: Lower bound to node name; must include ``""``.

    Raises:
        ValueError: If ``""`` is missing.
        TypeError: If a bound or a node name is not a ``str``.

    Example::

        >>> from dprims.hashing import RangeMap
        >>> shards = RangeMap({"": "a-f", "g": "g-p", "q": "q-z"})
        >>> shards.node_for("kiwi")
        'g-p'

    .. versionadded:: 0.1
    """

    __slots__ = ("_lock", "_snap")

    def __init__(self, ranges: Mapping[str, str]) -> None:
        if "" not in ranges:
            raise ConfigurationError(
                'ranges must have a range starting at "" so that every key '
                "has a node"
            )
        for bound, node in ranges.items():
            if not isinstance(bound, str):
                raise TypeError(
                    "ranges must map str lower bounds to node names, got "
                    f"the bound {bound!r} ({type(bound).__name__})"
                )
            check_node(node, argument="ranges")
        self._lock = threading.Lock()
        self._snap = self._freeze(dict(ranges))

    @staticmethod
    def _freeze(
        ranges: dict[str, str],
    ) -> tuple[list[str], list[str], tuple[str, ...]]:
        bounds = sorted(ranges)
        return bounds, [ranges[b] for b in bounds], _ordered(ranges.values())

    def node_for(self, key: Key) -> str:
        """Return the node whose range holds *key*."""
        bounds, owners, _ = self._snap
        return owners[bisect_right(bounds, _text(key)) - 1]

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return *n* distinct nodes: *key*'s, then those of later ranges.

        Raises:
            ValueError: If *n* is negative or more than the number of nodes.
        """
        bounds, owners, nodes = self._snap
        check_count(n, len(nodes))
        start = bisect_right(bounds, _text(key)) - 1
        found: list[str] = []
        for i in range(start, start + len(owners)):
            owner = owners[i % len(owners)]
            if len(found) < n and owner not in found:
                found.append(owner)
        return found

    def add(
        self, node: str, weight: float = 1, *, at: str | None = None
    ) -> None:
        """Give *node* the keys from *at* to the next bound.

        *weight* is accepted for `Selector` compatibility and must be 1.

        Raises:
            ValueError: If *at* is missing, empty or already a bound, if
                *node* is present, or if *weight* is not 1.
        """
        check_node(node)
        if weight != 1:
            raise ConfigurationError(
                f"weight must be 1 for RangeMap, got {weight!r}"
            )
        if at is not None and not isinstance(at, str):
            raise TypeError(f"at must be a str, got {at!r}")
        if not at:
            raise ConfigurationError(
                "at must name where the new range starts, for example "
                'add("s4", at="m")'
            )
        with self._lock:
            bounds, owners, nodes = self._snap
            if node in nodes:
                raise ConfigurationError(f"node: {node!r} is already present")
            if at in bounds:
                raise ConfigurationError(
                    f"at: {at!r} is already a range bound"
                )
            self._snap = self._freeze(
                {**dict(zip(bounds, owners, strict=True)), at: node}
            )

    def remove(self, node: str) -> None:
        """Merge each of *node*'s ranges into a neighbouring range.

        Raises:
            ValueError: If *node* is not present, or is the only node.
        """
        with self._lock:
            bounds, owners, nodes = self._snap
            if node not in nodes:
                raise ConfigurationError(f"node: {node!r} is not present")
            if len(nodes) == 1:
                raise ConfigurationError(f"node: {node!r} is the only node")
            kept = [
                (b, o)
                for b, o in zip(bounds, owners, strict=True)
                if o != node
            ]
            if kept[0][0] != "":
                # The first range left; the next one now starts at "".
                kept[0] = ("", kept[0][1])
            self._snap = self._freeze(dict(kept))

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names, in range order."""
        return self._snap[2]

    @property
    def ranges(self) -> dict[str, str]:
        """A copy of the lower-bound-to-node map."""
        bounds, owners, _ = self._snap
        return dict(zip(bounds, owners, strict=True))

    def copy(self) -> RangeMap:
        """Return an independent copy."""
        return RangeMap(self.ranges)

    def __repr__(self) -> str:
        return f"RangeMap({self.ranges!r})"


def _prefix_region(key: Key) -> str:
    text = _text(key)
    return text.split(":", 1)[0] if ":" in text else ""


class RegionMap:
    """Send each key to the node that serves its region.

    *region_of* names a key's region; by default it is the part of the key
    before the first ``":"`` (``"eu:user42"`` is in ``"eu"``). Regions keep
    data near its users and within legal borders, but a node's load is its
    regions' traffic, which no hash evens out.

    `add` takes over the regions named in *regions*; `remove` hands a
    node's regions to the node with the fewest regions (smallest name on a
    tie). A key whose region is not in the map goes to *default*, or
    raises ``KeyError`` when there is none.

    Args:
        regions: Region name to node name.
        region_of: Function from key to region name.
        default: Node for keys of unknown regions.

    Example::

        >>> from dprims.hashing import RegionMap
        >>> shards = RegionMap({"eu": "db-eu", "us": "db-us"})
        >>> shards.node_for("eu:user42")
        'db-eu'

    .. versionadded:: 0.1
    """

    __slots__ = ("_default", "_lock", "_region_of", "_snap")

    def __init__(
        self,
        regions: Mapping[str, str],
        *,
        region_of: Callable[[Key], str] = _prefix_region,
        default: str | None = None,
    ) -> None:
        for node in regions.values():
            check_node(node, argument="regions")
        if default is not None:
            check_node(default, argument="default")
        self._region_of = region_of
        self._default = default
        self._lock = threading.Lock()
        nodes = list(regions.values())
        if default is not None:
            nodes.append(default)
        self._snap = (dict(regions), _ordered(nodes))

    def node_for(self, key: Key) -> str:
        """Return the node serving *key*'s region.

        Raises:
            KeyError: If the region is unknown and there is no default.
            NoNodesError: If there are no nodes.
        """
        regions, nodes = self._snap
        if not nodes:
            raise NoNodesError("there are no nodes; add one first")
        region = self._region_of(key)
        node = regions.get(region, self._default)
        if node is None:
            raise KeyError(f"no node serves region {region!r} of {key!r}")
        return node

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return *n* distinct nodes: *key*'s, then the others by name.

        Raises:
            ValueError: If *n* is negative or more than the number of nodes.
        """
        _, nodes = self._snap
        check_count(n, len(nodes))
        if n == 0:
            return []
        first = self.node_for(key)
        return [first, *sorted(x for x in nodes if x != first)][:n]

    def add(
        self, node: str, weight: float = 1, *, regions: Iterable[str] = ()
    ) -> None:
        """Add *node* and move the named *regions* to it.

        Raises:
            ValueError: If *node* is present or *weight* is not 1.
        """
        check_node(node)
        if weight != 1:
            raise ConfigurationError(
                f"weight must be 1 for RegionMap, got {weight!r}"
            )
        with self._lock:
            current, nodes = self._snap
            if node in nodes:
                raise ConfigurationError(f"node: {node!r} is already present")
            moved = dict.fromkeys(regions, node)
            self._snap = ({**current, **moved}, (*nodes, node))

    def remove(self, node: str) -> None:
        """Remove *node*; its regions go to the node with fewest regions.

        Raises:
            ValueError: If *node* is not present, is the only node, or is
                the default.
        """
        with self._lock:
            current, nodes = self._snap
            if node not in nodes:
                raise ConfigurationError(f"node: {node!r} is not present")
            if node == self._default:
                raise ConfigurationError(f"node: {node!r} is the default node")
            rest = [x for x in nodes if x != node]
            if not rest:
                raise ConfigurationError(f"node: {node!r} is the only node")
            count = dict.fromkeys(rest, 0)
            for owner in current.values():
                if owner in count:
                    count[owner] += 1
            heir = min(rest, key=lambda x: (count[x], x))
            regions = {
                r: (heir if o == node else o) for r, o in current.items()
            }
            self._snap = (regions, tuple(rest))

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names, in the order they appeared."""
        return self._snap[1]

    @property
    def regions(self) -> dict[str, str]:
        """A copy of the region-to-node map."""
        return dict(self._snap[0])

    def copy(self) -> RegionMap:
        """Return an independent copy."""
        clone = RegionMap.__new__(RegionMap)
        clone._region_of = self._region_of
        clone._default = self._default
        clone._lock = threading.Lock()
        clone._snap = self._snap
        return clone

    def __repr__(self) -> str:
        return f"RegionMap({self.regions!r}, default={self._default!r})"
