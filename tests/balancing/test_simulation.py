"""Tests that the shipped simulator (benchmarks/balancing_sim.py) works."""

from __future__ import annotations

import importlib.util
import pathlib
import sys


SIM = pathlib.Path(__file__).parents[2] / "benchmarks" / "balancing_sim.py"


def load():
    spec = importlib.util.spec_from_file_location("balancing_sim", SIM)
    module = importlib.util.module_from_spec(spec)
    sys.modules["balancing_sim"] = module
    spec.loader.exec_module(module)
    return module


def test_deterministic_and_load_aware():
    """Repeats itself exactly and shows load-aware policies avoid the slow backend."""
    sim = load()
    scenario = sim.SCENARIOS[1]
    first = sim.simulate("PeakEWMA", scenario, requests=3000)
    assert first == sim.simulate("PeakEWMA", scenario, requests=3000)
    round_robin = sim.simulate("RoundRobin", scenario, requests=3000)
    assert 0.1 == round_robin.slow_share
    assert first.slow_share < round_robin.slow_share


def test_table_lists_every_policy_and_goal():
    """Formats every policy of both scenarios and the four goals."""
    sim = load()
    results = [
        sim.simulate(policy, scenario, requests=500)
        for scenario in sim.SCENARIOS
        for policy in sim.POLICIES
    ]
    text = sim.table(results)
    for policy in sim.POLICIES:
        assert 2 == text.count(f"  {policy} ")
    assert 4 == len(sim.goals(results))
