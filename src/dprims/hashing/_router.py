"""ShardRouter: keys to named shards, and what a membership change moves.

Status: stable.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import attrs
import mmh3

from dprims.errors import ConfigurationError
from dprims.hashing._base import check_node, check_weight, coerce_key
from dprims.hashing._jump import JumpHash
from dprims.hashing._maglev import MaglevHash
from dprims.hashing._multiprobe import MultiProbeHash
from dprims.hashing._rendezvous import RendezvousHash
from dprims.hashing._ring import ConsistentHashRing


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from dprims.hashing._base import Key, Selector


__all__ = ()

T = TypeVar("T")

_STRATEGIES = ("ring", "rendezvous", "jump", "maglev", "multiprobe")


@attrs.frozen
class ShardChange:
    """One membership change to plan or apply: add or remove a shard.

    Build it with `ShardChange.add` or `ShardChange.remove`. *options*
    carries what a selector needs beyond the weight, such as
    ``at="m"`` for a `RangeMap` or ``regions=("eu",)`` for a `RegionMap`.

    .. versionadded:: 0.1
    """

    kind: Literal["add", "remove"]
    shard: str
    weight: float = 1
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def add(cls, shard: str, weight: float = 1, **options: Any) -> ShardChange:
        """Return the change that adds *shard* with *weight*."""
        check_node(shard, argument="shard")
        check_weight(weight)
        return cls("add", shard, weight, tuple(sorted(options.items())))

    @classmethod
    def remove(cls, shard: str) -> ShardChange:
        """Return the change that removes *shard*."""
        check_node(shard, argument="shard")
        return cls("remove", shard)

    def apply_to(self, selector: Selector) -> None:
        """Make this change on *selector*."""
        if self.kind == "add":
            selector.add(self.shard, self.weight, **dict(self.options))
        else:
            selector.remove(self.shard)


@attrs.frozen
class MovePlan:
    """What a `ShardChange` would do to the keys, computed before doing it.

    *fraction* is ``moved / keys``: over the keys you passed to
    `ShardRouter.plan`, or, when you passed none, over a fixed sample of
    *keys* synthetic keys (``sampled`` is then True). *moves* maps each
    moving key you passed to its ``(old shard, new shard)``, with an
    ``int`` key as its decimal string (the form every selector hashes);
    *before* and *after* count keys per shard.

    .. versionadded:: 0.1
    """

    change: ShardChange
    keys: int
    moved: int
    sampled: bool
    moves: dict[str | bytes, tuple[str, str]] = attrs.field(eq=False)
    before: dict[str, int] = attrs.field(eq=False)
    after: dict[str, int] = attrs.field(eq=False)

    @property
    def fraction(self) -> float:
        """The share of keys that would move, from 0.0 to 1.0."""
        return self.moved / self.keys if self.keys else 0.0


def sample_keys(count: int) -> list[str]:
    """Return *count* deterministic keys spread evenly over the key space.

    They are base-36 strings of hashes, so they also spread evenly over
    lexical ranges (first characters ``0-9a-z``), which matters for
    `RangeMap`.
    """
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    keys = []
    for i in range(count):
        value = mmh3.hash128(f"sample-{i}")
        text = []
        for _ in range(12):
            value, digit = divmod(value, 36)
            text.append(digits[digit])
        keys.append("".join(text))
    return keys


def _make(
    strategy: str, weights: dict[str, float], options: dict[str, Any]
) -> Selector:
    if strategy == "ring":
        return ConsistentHashRing(weights, **options)
    if strategy == "rendezvous":
        return RendezvousHash(weights, **options)
    if strategy == "maglev":
        return MaglevHash(weights, **options)
    if strategy == "multiprobe":
        return MultiProbeHash(weights, **options)
    if any(w != 1 for w in weights.values()):
        raise ConfigurationError(
            "weights: the jump strategy does not take weights"
        )
    return JumpHash(weights)


class ShardRouter(Generic[T]):
    """Route keys to named shards (DSNs, Redis clients, ...) by a strategy.

    *shards* maps each shard's name to the value `route` returns for it,
    for example a Redis client per shard. *strategy* picks the placement:
    ``"ring"`` (`ConsistentHashRing`), ``"rendezvous"``, ``"jump"``,
    ``"maglev"`` or ``"multiprobe"``, built over the shard names with
    *weights* and any *options* (``vnodes=...``, ``table_size=...``); or a
    ready `Selector` whose nodes are the shard names, such as a `RangeMap`
    or `RegionMap`.

    Before resharding, `plan` tells which share of keys (and, for the keys
    you give, which keys) a `ShardChange` would move, so you can copy them
    ahead or decide the change is too costly; `add` and `remove` then make
    the change.

    `route` and `shard_for` are safe while another thread adds or removes
    a shard: they see the shard set before or after the change.

    Args:
        shards: Shard name to the value `route` returns.
        strategy: A strategy name or a `Selector`.
        weights: Relative weights by shard name (strategy names only).
        options: Extra keyword arguments for the strategy's constructor.

    Raises:
        ValueError: On an unknown strategy, or a `Selector` whose nodes
            are not the shard names.

    Example::

        >>> from dprims.hashing import ShardChange, ShardRouter
        >>> router = ShardRouter({"s1": "redis://a", "s2": "redis://b"})
        >>> router.route("user:42") in ("redis://a", "redis://b")
        True
        >>> plan = router.plan(ShardChange.add("s3"))
        >>> 0.2 < plan.fraction < 0.45
        True

    .. versionadded:: 0.1
    """

    __slots__ = ("_lock", "_selector", "_shards", "_strategy")

    def __init__(
        self,
        shards: Mapping[str, T],
        *,
        strategy: Literal["ring", "rendezvous", "jump", "maglev", "multiprobe"]
        | Selector = "ring",
        weights: Mapping[str, float] | None = None,
        **options: Any,
    ) -> None:
        self._shards: dict[str, T] = dict(shards)
        for name in self._shards:
            check_node(name, argument="shards")
        if isinstance(strategy, str):
            if strategy not in _STRATEGIES:
                raise ConfigurationError(
                    f"strategy must be one of {_STRATEGIES} or a Selector, "
                    f"got {strategy!r}"
                )
            given = dict(weights or {})
            unknown = sorted(set(given) - set(self._shards))
            if unknown:
                raise ConfigurationError(f"weights: unknown shards {unknown}")
            self._selector = _make(
                strategy,
                {name: given.get(name, 1) for name in self._shards},
                options,
            )
            self._strategy: str = strategy
        else:
            if weights is not None or options:
                raise ConfigurationError(
                    "weights and options apply to strategy names only; "
                    "configure the Selector itself"
                )
            if set(strategy.nodes) != set(self._shards):
                raise ConfigurationError(
                    f"strategy: the selector's nodes {sorted(strategy.nodes)} "
                    f"are not the shard names {sorted(self._shards)}"
                )
            self._selector = strategy
            self._strategy = type(strategy).__name__
        self._lock = threading.Lock()

    def shard_for(self, key: Key) -> str:
        """Return the name of *key*'s shard."""
        return self._selector.node_for(key)

    def route(self, key: Key) -> T:
        """Return the value (client, DSN, ...) of *key*'s shard."""
        name = self._selector.node_for(key)
        try:
            return self._shards[name]
        except KeyError:
            # The shard left between the two reads; the selector no longer
            # returns it, so asking again settles on a live shard.
            return self.route(key)

    def plan(
        self,
        change: ShardChange,
        keys: Iterable[Key] | None = None,
        *,
        sample: int = 20_000,
    ) -> MovePlan:
        """Return what *change* would move, without changing anything.

        With *keys*, every one of them is placed before and after, and the
        plan lists those that move; a key given twice (or as both ``42``
        and ``"42"``, which are the same key) is counted once. Without, the
        share is measured on *sample* synthetic keys (the same ones every
        time).

        Raises:
            ValueError: If the change is invalid (as `add` or `remove`
                would raise), or *sample* is below 1.
            TypeError: If *change* is not a `ShardChange`, a key is not
                ``str``, ``bytes`` or ``int``, or the selector cannot be
                copied (it has no ``copy()`` method).
        """
        if not isinstance(change, ShardChange):
            raise TypeError(
                "change must be a ShardChange (ShardChange.add(...) or "
                f"ShardChange.remove(...)), got {type(change).__name__}: "
                f"{change!r}"
            )
        if isinstance(sample, bool) or not isinstance(sample, int):
            raise TypeError(f"sample must be an int, got {sample!r}")
        if sample < 1:
            raise ConfigurationError(f"sample must be >= 1, got {sample}")
        copier = getattr(self._selector, "copy", None)
        if copier is None:
            raise TypeError(
                f"cannot plan with {type(self._selector).__name__}: it "
                "has no copy() method"
            )
        before_sel: Selector = copier()
        after_sel: Selector = copier()
        change.apply_to(after_sel)
        sampled = keys is None
        checked = (
            sample_keys(sample)
            if keys is None
            # dict.fromkeys drops repeats and keeps the caller's order.
            else list(dict.fromkeys(coerce_key(k) for k in keys))
        )
        moves: dict[str | bytes, tuple[str, str]] = {}
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        moved = 0
        for key in checked:
            old = before_sel.node_for(key)
            new = after_sel.node_for(key)
            before[old] += 1
            after[new] += 1
            if old != new:
                moved += 1
                if not sampled:
                    moves[key] = (old, new)
        return MovePlan(
            change=change,
            keys=len(checked),
            moved=moved,
            sampled=sampled,
            moves=moves,
            before=dict(before),
            after=dict(after),
        )

    def add(
        self, shard: str, value: T, weight: float = 1, **options: Any
    ) -> None:
        """Add *shard*, routed to *value*; some keys now route to it.

        *options* go to the selector's ``add`` (``at=`` for a `RangeMap`,
        ``regions=`` for a `RegionMap`).
        """
        with self._lock:
            if shard in self._shards:
                raise ConfigurationError(
                    f"shard: {shard!r} is already present"
                )
            # The value first, so a reader that already sees the shard in
            # the selector always finds its value.
            self._shards = {**self._shards, shard: value}
            try:
                ShardChange.add(shard, weight, **options).apply_to(
                    self._selector
                )
            except BaseException:
                self._shards = {
                    k: v for k, v in self._shards.items() if k != shard
                }
                raise

    def remove(self, shard: str) -> T:
        """Remove *shard* and return its value; its keys route elsewhere."""
        with self._lock:
            if shard not in self._shards:
                raise ConfigurationError(f"shard: {shard!r} is not present")
            self._selector.remove(shard)
            value = self._shards[shard]
            self._shards = {
                k: v for k, v in self._shards.items() if k != shard
            }
            return value

    @property
    def shards(self) -> dict[str, T]:
        """A copy of the shard-name-to-value map."""
        return dict(self._shards)

    @property
    def selector(self) -> Selector:
        """The selector that places keys."""
        return self._selector

    def __repr__(self) -> str:
        return (
            f"ShardRouter(shards={list(self._shards)!r}, "
            f"strategy={self._strategy!r})"
        )
