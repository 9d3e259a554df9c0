"""Tests for HashBalancer: stickiness, minimal movement, health, bounds."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dprims.balancing import HashBalancer
from dprims.hashing import ConsistentHashRing, RendezvousHash


KEYS = [f"10.0.{i // 256}.{i % 256}" for i in range(600)]
NODES = ["10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80", "10.1.0.4:80"]


class TestHashBalancer:
    @pytest.mark.parametrize(
        ("algorithm", "selector"),
        [("ring", ConsistentHashRing), ("rendezvous", RendezvousHash)],
    )
    def test_same_placement_as_hashing(self, algorithm, selector):
        """Places keys exactly as the dprims.hashing selector does."""
        lb = HashBalancer(NODES, algorithm=algorithm)
        reference = selector(NODES)
        assert [reference.node_for(k) for k in KEYS] == [
            lb.pick(k) for k in KEYS
        ]

    def test_sticky(self):
        """Sends the same key to the same endpoint every time."""
        lb = HashBalancer(NODES)
        first = [lb.pick(k) for k in KEYS]
        assert first == [lb.pick(k) for k in KEYS]
        assert set(NODES) == set(first)

    def test_removal_moves_only_its_keys(self):
        """Moves only the keys of a removed endpoint."""
        lb = HashBalancer(NODES)
        before = {k: lb.pick(k) for k in KEYS}
        lb.remove(NODES[0])
        after = {k: lb.pick(k) for k in KEYS}
        moved = {k for k in KEYS if before[k] != after[k]}
        assert {k for k in KEYS if before[k] == NODES[0]} == moved

    def test_add_moves_keys_only_to_the_new_one(self):
        """Moves keys only onto an added endpoint."""
        lb = HashBalancer(NODES[:3])
        before = {k: lb.pick(k) for k in KEYS}
        lb.add(NODES[3])
        after = {k: lb.pick(k) for k in KEYS}
        assert {NODES[3]} == {after[k] for k in KEYS if before[k] != after[k]}

    def test_unhealthy_keys_fail_over_and_return(self):
        """Moves an unhealthy endpoint's keys away and back, others stay."""
        lb = HashBalancer(NODES)
        before = {k: lb.pick(k) for k in KEYS}
        lb.set_healthy(NODES[1], False)
        during = {k: lb.pick(k) for k in KEYS}
        for key in KEYS:
            if before[key] == NODES[1]:
                assert NODES[1] != during[key]
            else:
                assert before[key] == during[key]
        lb.set_healthy(NODES[1], True)
        assert before == {k: lb.pick(k) for k in KEYS}

    def test_names_not_python_hash(self):
        """Hashes names from the name function, not the objects."""
        endpoints = [("10.1.0.1", 80), ("10.1.0.2", 80)]
        lb = HashBalancer(endpoints, name=lambda e: f"{e[0]}:{e[1]}")
        reference = ConsistentHashRing(["10.1.0.1:80", "10.1.0.2:80"])
        for key in KEYS[:50]:
            host, port = lb.pick(key)
            assert reference.node_for(key) == f"{host}:{port}"

    def test_weights(self):
        """Gives a heavier endpoint more keys."""
        lb = HashBalancer({"a": 3, "b": 1})
        counts = collections.Counter(lb.pick(k) for k in KEYS)
        assert counts["a"] > 2 * counts["b"]
        lb.set_weight("b", 3)
        counts = collections.Counter(lb.pick(k) for k in KEYS)
        assert counts["b"] > counts["a"] / 2

    def test_bounded_load_caps_hot_keys(self):
        """Spills a hot key's leases beyond the load bound."""
        lb = HashBalancer(NODES, bounded_load=1.25)
        leases = [lb.lease("hot") for _ in range(40)]
        counts = collections.Counter(lease.__enter__() for lease in leases)
        assert max(counts.values()) <= 1.25 * 40 / 4 + 1
        assert 4 == len(counts)
        for lease in leases:
            lease.__exit__(None, None, None)
        unbounded = HashBalancer(NODES)
        assert 1 == len({unbounded.pick("hot") for _ in range(40)})

    @settings(max_examples=20, deadline=None)
    @given(n=st.integers(1, 60), factor=st.floats(1.05, 3.0))
    def test_bounded_load_property(self, n, factor):
        """Never lets one endpoint hold more than the bound allows."""
        lb = HashBalancer(NODES, bounded_load=factor)
        leases = [lb.lease(f"k{i % 3}") for i in range(n)]
        for index, lease in enumerate(leases):
            lease.__enter__()
            opened = index + 1
            worst = max(s.in_flight for s in lb.stats())
            assert worst <= max(1, -(-factor * opened // 4)) + 1
        for lease in leases:
            lease.__exit__(None, None, None)

    def test_key_required(self):
        """Requires a key."""
        with pytest.raises(ValueError, match="key"):
            HashBalancer(NODES).pick()

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"algorithm": "maglevv"}, ValueError, "algorithm"),
            ({"bounded_load": 1.0}, ValueError, "bounded_load"),
            ({"name": "str"}, TypeError, "name"),
            ({"name": lambda e: 42}, TypeError, "name"),
        ],
    )
    def test_rejects_bad_options(self, kwargs, error, match):
        """Rejects unknown algorithms, bounds <= 1 and bad name functions."""
        with pytest.raises(error, match=match):
            HashBalancer(NODES, **kwargs)

    def test_rejects_duplicate_names(self):
        """Rejects two endpoints with the same name."""
        with pytest.raises(ValueError, match="unique names"):
            HashBalancer([1, "1"])
        lb = HashBalancer(["a"])
        with pytest.raises(ValueError, match="already"):
            lb.add("a")
        with pytest.raises(ValueError, match="weight"):
            lb.add("b", weight=0)
        lb.add("b")
        assert ("a", "b") == lb.endpoints

    def test_repr(self):
        """Shows the selector and the bound."""
        assert "selector=RendezvousHash, bounded_load=1.5" in repr(
            HashBalancer(NODES, algorithm="rendezvous", bounded_load=1.5)
        )


class TestHashConcurrency:
    def test_picks_while_membership_changes(self):
        """Keeps answering from live endpoints while others come and go."""
        import threading

        lb = HashBalancer(NODES[:2])
        errors: list[BaseException] = []
        done = threading.Event()

        def picker():
            try:
                for i in range(3000):
                    if done.is_set():
                        return
                    lb.pick(KEYS[i % len(KEYS)])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def churner():
            for _ in range(100):
                lb.add(NODES[3])
                lb.remove(NODES[3])
            done.set()

        threads = [threading.Thread(target=picker) for _ in range(2)]
        threads.append(threading.Thread(target=churner))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [] == errors
        assert tuple(NODES[:2]) == lb.endpoints
