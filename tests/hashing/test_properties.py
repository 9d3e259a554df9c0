"""Hypothesis properties that every selector must keep (issue #5).

Determinism, minimal disruption on add and remove, distinct and stable
``nodes_for`` lists, and weights respected. Maglev is the exception the
issue allows: it may move a few extra keys, which is measured and bounded
here rather than forbidden.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dprims.hashing import (
    ConsistentHashRing,
    MaglevHash,
    MultiProbeHash,
    RendezvousHash,
)


SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

node_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.:", min_size=1, max_size=12
)
node_sets = st.lists(node_names, min_size=2, max_size=12, unique=True)
keys = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
)
KEYS = [f"key:{i}" for i in range(600)]

FACTORIES = {
    "ring": lambda nodes: ConsistentHashRing(nodes, vnodes=40),
    "ketama": lambda nodes: ConsistentHashRing(nodes, mode="ketama"),
    "rendezvous": RendezvousHash,
    "maglev": lambda nodes: MaglevHash(nodes, table_size=1009),
    "multiprobe": MultiProbeHash,
}
# Selectors whose add/remove moves no key that did not have to move.
MINIMAL = ["ring", "rendezvous", "multiprobe"]
# Selectors whose nodes_for is a preference list: drop the first node and
# the rest move up.
PREFERENCE = ["ring", "rendezvous", "multiprobe"]


@pytest.mark.parametrize("kind", sorted(FACTORIES))
class TestEverySelector:
    @SETTINGS
    @given(nodes=node_sets, key=keys)
    def test_deterministic_and_order_independent(self, kind, nodes, key):
        """Places a key the same whatever order the nodes were given in."""
        first = FACTORIES[kind](nodes)
        if kind == "ketama":
            # libketama breaks point collisions by insertion order; with
            # 160 points per node a collision is about 1 in 10**5 rings.
            second = FACTORIES[kind](list(nodes))
        else:
            second = FACTORIES[kind](list(reversed(nodes)))
        assert first.node_for(key) == second.node_for(key)
        assert first.node_for(key) == first.node_for(key)

    @SETTINGS
    @given(nodes=node_sets, key=keys, data=st.data())
    def test_nodes_for_is_distinct_and_starts_with_node_for(
        self, kind, nodes, key, data
    ):
        """Returns n distinct known nodes, the first being node_for's."""
        selector = FACTORIES[kind](nodes)
        n = data.draw(st.integers(min_value=1, max_value=len(nodes)))
        chosen = selector.nodes_for(key, n)
        assert n == len(chosen) == len(set(chosen))
        assert set(chosen) <= set(nodes)
        assert selector.node_for(key) == chosen[0]
        assert chosen == selector.nodes_for(key, n)

    @SETTINGS
    @given(nodes=node_sets, data=st.data())
    def test_remove_moves_only_the_removed_nodes_keys(self, kind, nodes, data):
        """Removing a node moves its keys and (but for Maglev) no others."""
        gone = data.draw(st.sampled_from(nodes))
        before = FACTORIES[kind](nodes)
        after = FACTORIES[kind](nodes)
        after.remove(gone)
        moved = [k for k in KEYS if before.node_for(k) != after.node_for(k)]
        assert all(after.node_for(k) != gone for k in KEYS)
        if kind in MINIMAL:
            assert all(before.node_for(k) == gone for k in moved)
        elif kind == "maglev":
            # Maglev may also move some keys between surviving nodes.
            owned = sum(before.node_for(k) == gone for k in KEYS)
            assert len(moved) <= owned + len(KEYS) // 4

    @SETTINGS
    @given(nodes=node_sets, new=node_names)
    def test_add_moves_keys_only_to_the_new_node(self, kind, nodes, new):
        """Adding a node moves keys only onto it (Maglev: mostly onto it)."""
        if new in nodes:
            return
        before = FACTORIES[kind](nodes)
        after = FACTORIES[kind](nodes)
        after.add(new)
        moved = [k for k in KEYS if before.node_for(k) != after.node_for(k)]
        to_new = [k for k in moved if after.node_for(k) == new]
        if kind in MINIMAL:
            assert moved == to_new
        elif kind == "maglev":
            assert len(moved) - len(to_new) <= len(KEYS) // 4

    @SETTINGS
    @given(nodes=node_sets, key=keys)
    def test_preference_list_survives_removal(self, kind, nodes, key):
        """After the first choice leaves, the second becomes the first."""
        if kind not in PREFERENCE:
            return
        selector = FACTORIES[kind](nodes)
        first, *rest = selector.nodes_for(key, len(nodes))
        selector.remove(first)
        assert rest == selector.nodes_for(key, len(nodes) - 1)


class TestMovementSizes:
    def test_adding_the_eleventh_node_moves_about_one_eleventh(self):
        """Adding 1 node to 10 moves about 1/11 of keys for minimal kinds."""
        nodes = [f"n{i}" for i in range(10)]
        sample = [f"k{i}" for i in range(20_000)]
        for kind in MINIMAL:
            before = FACTORIES[kind](nodes)
            after = FACTORIES[kind](nodes)
            after.add("n10")
            moved = sum(
                before.node_for(k) != after.node_for(k) for k in sample
            )
            assert 0.06 < moved / len(sample) < 0.13, kind


class TestWeights:
    @pytest.mark.parametrize(
        "factory",
        [
            lambda w: ConsistentHashRing(w),
            lambda w: RendezvousHash(w),
            lambda w: MaglevHash(w, table_size=4099),
            lambda w: MultiProbeHash(w),
        ],
        ids=["ring", "rendezvous", "maglev", "multiprobe"],
    )
    def test_weight_three_gets_about_three_times_the_keys(self, factory):
        """A node of weight 3 gets about 3/6 of keys beside three of 1."""
        selector = factory({"big": 3, "a": 1, "b": 1, "c": 1})
        counts = Counter(selector.node_for(f"k{i}") for i in range(30_000))
        share = counts["big"] / 30_000
        # Multi-probe uses 3 points, so its share is noisier.
        assert 0.40 < share < 0.60

    @SETTINGS
    @given(weight=st.floats(min_value=0.25, max_value=4.0))
    def test_rendezvous_share_follows_any_weight(self, weight):
        """Rendezvous gives w/(w+3) of keys to a node of weight w."""
        selector = RendezvousHash({"w": weight, "a": 1, "b": 1, "c": 1})
        counts = Counter(selector.node_for(f"k{i}") for i in range(4000))
        expected = weight / (weight + 3)
        sigma = math.sqrt(expected * (1 - expected) / 4000)
        assert abs(counts["w"] / 4000 - expected) < 5 * sigma


def test_placement_is_the_same_in_another_process():
    """Places keys the same in a fresh interpreter with another hash seed."""
    code = (
        "from dprims.hashing import ConsistentHashRing, RendezvousHash\n"
        "r = ConsistentHashRing(['a', 'b', 'c'])\n"
        "h = RendezvousHash(['a', 'b', 'c'])\n"
        "print(''.join(r.node_for(f'k{i}') + h.node_for(f'k{i}')"
        " for i in range(50)))\n"
    )
    ring = ConsistentHashRing(["a", "b", "c"])
    hrw = RendezvousHash(["a", "b", "c"])
    here = "".join(
        ring.node_for(f"k{i}") + hrw.node_for(f"k{i}") for i in range(50)
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        timeout=60,
    )
    assert here == out.stdout.strip()


_EVERY_SELECTOR = """
from dprims.hashing import *
nodes = {f"n{i}": 1 + i % 3 for i in range(12)}
keys = [f"k{i}" for i in range(300)] + [b"raw", 7, -7, 2**80]
selectors = [
    ConsistentHashRing(nodes),
    ConsistentHashRing({n: int(w) for n, w in nodes.items()}, mode="ketama"),
    RendezvousHash(nodes),
    RendezvousHash(list(nodes)),
    MaglevHash(nodes, table_size=1009),
    MultiProbeHash(nodes),
    JumpHash(list(nodes)),
]
out = [",".join(s.nodes_for(k, 3)) for s in selectors for k in keys]
out += [str(jump_hash(k, 1000)) for k in keys]
bounded = BoundedLoadRing(nodes)
out += [bounded.assign(k) for k in keys]
print("|".join(out))
"""


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_every_selector_places_alike_in_other_processes(hash_seed):
    """Places keys identically in interpreters with other hash seeds."""
    runs = [
        subprocess.run(
            [sys.executable, "-c", _EVERY_SELECTOR],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
        ).stdout
        for seed in ("random", hash_seed)
    ]
    assert runs[0] == runs[1]
    assert runs[0].count("|") > 1000
