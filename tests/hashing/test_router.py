"""ShardRouter, ShardChange, MovePlan, RangeMap and RegionMap."""

from __future__ import annotations

import threading

import pytest

from dprims.hashing import (
    MovePlan,
    RangeMap,
    RegionMap,
    ShardChange,
    ShardRouter,
)
from dprims.hashing._router import sample_keys


SHARDS = {"s1": "redis://a", "s2": "redis://b"}


class TestShardRouter:
    @pytest.mark.parametrize(
        "strategy", ["ring", "rendezvous", "jump", "maglev", "multiprobe"]
    )
    def test_adding_a_third_shard_moves_about_a_third(self, strategy):
        """Plans ~1/3 moved for 2 -> 3 shards with every hash strategy."""
        router = ShardRouter(SHARDS, strategy=strategy)
        plan = router.plan(ShardChange.add("s3"))
        assert plan.sampled
        assert 20_000 == plan.keys
        assert 0.27 < plan.fraction < 0.40
        assert {} == plan.moves
        assert {"s1", "s2", "s3"} == set(plan.after)
        assert ("s1", "s2") == router.selector.nodes
        assert strategy in repr(router)

    def test_plan_with_keys_matches_what_add_does(self):
        """Lists exactly the keys that then move when the shard is added."""
        router = ShardRouter(SHARDS, strategy="ring")
        keys = [f"user:{i}" for i in range(500)]
        plan = router.plan(ShardChange.add("s3", weight=2), keys)
        before = {k: router.shard_for(k) for k in keys}
        router.add("s3", "redis://c", weight=2)
        after = {k: router.shard_for(k) for k in keys}
        moved = {
            k: (before[k], after[k]) for k in keys if before[k] != after[k]
        }
        assert moved == plan.moves
        assert len(moved) == plan.moved
        assert not plan.sampled
        assert all(new == "s3" for _, new in moved.values())
        assert "redis://c" == router.shards["s3"]

    def test_removing_a_middle_jump_shard_moves_most_keys(self):
        """Shows that jump renumbering moves far more than 1/N."""
        shards = {f"s{i}": i for i in range(4)}
        jump = ShardRouter(shards, strategy="jump").plan(
            ShardChange.remove("s0")
        )
        ring = ShardRouter(shards, strategy="ring").plan(
            ShardChange.remove("s0")
        )
        assert jump.fraction > 0.5
        assert ring.fraction < 0.35

    def test_route_returns_the_shard_value(self):
        """Returns the mapped value, and the removed value on remove."""
        router = ShardRouter(SHARDS, strategy="rendezvous", weights={"s1": 2})
        assert router.route("k") == SHARDS[router.shard_for("k")]
        assert "redis://a" == router.remove("s1")
        assert "redis://b" == router.route("k")
        assert {"s2": "redis://b"} == router.shards

    def test_options_go_to_the_strategy(self):
        """Passes options such as table_size to the selector."""
        router = ShardRouter(SHARDS, strategy="maglev", table_size=251)
        assert 251 == router.selector.table_size  # type: ignore[attr-defined]

    def test_bad_arguments(self):
        """Rejects unknown strategies, weights and inconsistent selectors."""
        with pytest.raises(ValueError, match="strategy"):
            ShardRouter(SHARDS, strategy="modulo")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="weights"):
            ShardRouter(SHARDS, weights={"zz": 1})
        with pytest.raises(ValueError, match="weights"):
            ShardRouter(SHARDS, strategy="jump", weights={"s1": 2})
        with pytest.raises(ValueError, match="strategy"):
            ShardRouter(SHARDS, strategy=RangeMap({"": "x"}))
        with pytest.raises(ValueError, match="Selector itself"):
            ShardRouter(
                {"x": 1}, strategy=RangeMap({"": "x"}), weights={"x": 1}
            )
        router = ShardRouter(SHARDS)
        with pytest.raises(ValueError, match="already"):
            router.add("s1", "dup")
        with pytest.raises(ValueError, match="not present"):
            router.remove("zz")
        with pytest.raises(ValueError, match="weight"):
            router.add("s3", "x", weight=0)
        assert "s3" not in router.shards
        with pytest.raises(ValueError, match="shard"):
            ShardChange.add("")

    def test_plan_needs_a_copyable_selector(self):
        """Explains that a foreign selector without copy() cannot plan."""

        class Fixed:
            nodes = ("x",)

            def node_for(self, key):
                return "x"

        router = ShardRouter({"x": 1}, strategy=Fixed())  # type: ignore[arg-type]
        assert 1 == router.route("k")
        with pytest.raises(TypeError, match="copy"):
            router.plan(ShardChange.remove("x"))

    def test_route_asks_again_when_the_shard_just_left(self):
        """Re-routes a key whose shard left between the two reads."""

        class Racy:
            nodes = ("x",)
            answers = ["gone", "x"]

            def node_for(self, key):
                return self.answers.pop(0)

        router = ShardRouter({"x": 1}, strategy=Racy())  # type: ignore[arg-type]
        assert 1 == router.route("k")

    def test_route_during_removal_never_fails(self):
        """Routes every key to a live shard while shards come and go."""
        router = ShardRouter({f"s{i}": i for i in range(4)})
        errors: list[BaseException] = []
        stop = threading.Event()

        def read():
            while not stop.is_set():
                try:
                    for i in range(100):
                        router.route(f"k{i}")
                except BaseException as exc:
                    errors.append(exc)
                    return

        t = threading.Thread(target=read)
        t.start()
        for _ in range(200):
            router.add("s9", 9)
            router.remove("s9")
        stop.set()
        t.join(timeout=30)
        assert [] == errors

    def test_plan_counts_each_key_once(self):
        """Counts a repeated key (or 42 beside "42") once, as moves does."""
        router = ShardRouter(SHARDS)
        keys = [f"user:{i}" for i in range(200)]
        plan = router.plan(ShardChange.add("s3"), [*keys, *keys, 42, "42"])
        single = router.plan(ShardChange.add("s3"), [*keys, "42"])
        assert single.keys == plan.keys == 201
        assert len(plan.moves) == plan.moved == single.moved
        assert single.fraction == plan.fraction

    def test_plan_rejects_bad_arguments_by_name(self):
        """Names change or sample when plan gets something unusable."""
        router = ShardRouter(SHARDS)
        with pytest.raises(TypeError, match="change must be a ShardChange"):
            router.plan("s3")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="sample"):
            router.plan(ShardChange.add("s3"), sample=0)
        with pytest.raises(TypeError, match="sample"):
            router.plan(ShardChange.add("s3"), sample=1.5)  # type: ignore[arg-type]
        assert 1 == router.plan(ShardChange.add("s3"), sample=1).keys

    def test_move_plan_fraction_of_nothing(self):
        """Reports 0.0 for an empty key list."""
        router = ShardRouter(SHARDS)
        plan = router.plan(ShardChange.add("s3"), [])
        assert 0.0 == plan.fraction
        assert isinstance(plan, MovePlan)

    def test_sample_keys_are_deterministic_and_spread(self):
        """Gives the same keys each time, with varied first characters."""
        keys = sample_keys(2000)
        assert keys == sample_keys(2000)
        assert len({k[0] for k in keys}) == 36


class TestRangeMap:
    def test_routes_by_range(self):
        """Sends keys to the range whose lower bound precedes them."""
        rm = RangeMap({"": "a-f", "g": "g-p", "q": "q-z"})
        assert "a-f" == rm.node_for("apple")
        assert "g-p" == rm.node_for("g")
        assert "q-z" == rm.node_for(b"zebra")
        assert ["g-p", "q-z", "a-f"] == rm.nodes_for("kiwi", 3)
        assert ("a-f", "g-p", "q-z") == rm.nodes

    def test_split_and_merge(self):
        """Splits a range on add(at=) and merges it back on remove."""
        router = ShardRouter(
            {"x": 1, "y": 2}, strategy=RangeMap({"": "x", "m": "y"})
        )
        plan = router.plan(
            ShardChange.add("z", at="t"), ["apple", "tiger", "zoo"]
        )
        assert {"tiger": ("y", "z"), "zoo": ("y", "z")} == plan.moves
        router.add("z", 3, at="t")
        assert {"": "x", "m": "y", "t": "z"} == router.selector.ranges  # type: ignore[attr-defined]
        router.remove("x")
        assert {"": "y", "t": "z"} == router.selector.ranges  # type: ignore[attr-defined]
        assert "RangeMap(" in repr(router.selector)

    def test_errors(self):
        """Rejects a missing "" bound, bad splits and removing the last."""
        with pytest.raises(ValueError, match='""'):
            RangeMap({"a": "x"})
        rm = RangeMap({"": "x", "m": "y"})
        with pytest.raises(ValueError, match="at"):
            rm.add("z")
        with pytest.raises(ValueError, match="already a range bound"):
            rm.add("z", at="m")
        with pytest.raises(ValueError, match="already present"):
            rm.add("x", at="q")
        with pytest.raises(ValueError, match="weight"):
            rm.add("z", weight=2, at="q")
        with pytest.raises(ValueError, match="not present"):
            rm.remove("zz")
        only = RangeMap({"": "x"})
        with pytest.raises(ValueError, match="only node"):
            only.remove("x")
        with pytest.raises(TypeError, match="ranges"):
            RangeMap({"": "x", 5: "y"})  # type: ignore[dict-item]

    def test_node_with_two_ranges(self):
        """Lists a node once and keeps the first bound when one leaves."""
        rm = RangeMap({"": "x", "g": "y", "p": "x", "t": "z"})
        assert ["y", "x", "z"] == rm.nodes_for("h", 3)
        rm.remove("y")
        assert {"": "x", "p": "x", "t": "z"} == rm.ranges
        with pytest.raises(TypeError, match="at"):
            rm.add("z", at=5)  # type: ignore[arg-type]


class TestRegionMap:
    def test_routes_by_region(self):
        """Sends keys by their region prefix, and unknown ones to default."""
        rm = RegionMap({"eu": "db-eu", "us": "db-us"}, default="db-us")
        assert "db-eu" == rm.node_for("eu:42")
        assert "db-us" == rm.node_for("apac:7")
        assert "db-us" == rm.node_for("nocolon")
        assert ["db-eu", "db-us"] == rm.nodes_for("eu:1", 2)
        assert [] == rm.nodes_for("eu:1", 0)

    def test_add_and_remove(self):
        """Moves named regions to a new node, and back to the lightest."""
        rm = RegionMap({"eu": "a", "us": "b", "apac": "b"})
        rm.add("c", regions=["apac"])
        assert {"eu": "a", "us": "b", "apac": "c"} == rm.regions
        rm.remove("c")
        assert "a" == rm.regions["apac"]
        clone = rm.copy()
        clone.remove("a")
        assert ("a", "b") == rm.nodes
        assert "RegionMap(" in repr(rm)

    def test_errors(self):
        """Reports unknown regions, empty maps and bad changes."""
        rm = RegionMap({"eu": "a"}, region_of=lambda key: str(key)[:2])
        with pytest.raises(KeyError, match="us"):
            rm.node_for("us-1")
        with pytest.raises(ValueError, match="only node"):
            rm.remove("a")
        with pytest.raises(ValueError, match="not present"):
            rm.remove("zz")
        with pytest.raises(ValueError, match="already"):
            rm.add("a")
        with pytest.raises(ValueError, match="weight"):
            rm.add("b", weight=3)
        with pytest.raises(ValueError, match="default"):
            RegionMap({"eu": "a"}, default="d").remove("d")
        from dprims.hashing import NoNodesError

        with pytest.raises(NoNodesError):
            RegionMap({}).node_for("eu:1")
