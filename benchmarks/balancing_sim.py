"""A deterministic discrete-event simulation of load-balancing policies.

Ten backends, each one server with a FIFO queue and exponential service
times; requests arrive as a Poisson process. One backend is slower than the
others. Each policy is the real `dprims.balancing` class, driven on
simulated time through its ordinary API: a `FakeClock` is set to each
event's time, a request enters ``lb.lease()`` when it arrives and leaves it
when its response is sent, so load- and latency-aware policies see exactly
what they would see in production, and nobody tells them which backend is
slow.

Scenarios (from issue 6):

(a) one backend 10x slower, offered load 80% of total capacity: round
    robin gives the slow backend a tenth of the traffic, more than it can
    serve, so its queue grows without bound;
(b) one backend 2x slower, offered load 50%: round robin is stable but the
    slow backend's queue makes its tail long.

Run ``python benchmarks/balancing_sim.py`` for the table, and add
``--plot docs/_static/balancing-sim.png`` (needs matplotlib) to redraw the
figure used in docs/balancing.md. The same seed always gives the same
numbers.
"""

from __future__ import annotations

import argparse
import collections
import heapq
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dprims.balancing import (
    LeastConnections,
    PeakEWMA,
    PowerOfTwoChoices,
    RandomChoice,
    RoundRobin,
)
from dprims.testing import FakeClock


if TYPE_CHECKING:
    from collections.abc import Callable


#: Mean service time of a normal backend, in seconds.
SERVICE = 0.010
BACKENDS = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    slow_factor: float
    load: float


SCENARIOS = (
    Scenario("a", "(a) one backend 10x slower, 80% load", 10.0, 0.8),
    Scenario("b", "(b) one backend 2x slower, 50% load", 2.0, 0.5),
)


def _policies(
    seed: int,
) -> dict[str, Callable[[list[str], FakeClock], object]]:
    return {
        "RoundRobin": lambda eps, clock: RoundRobin(eps, clock=clock),
        "RandomChoice": lambda eps, clock: RandomChoice(
            eps, rng=random.Random(seed), clock=clock
        ),
        "LeastConnections": lambda eps, clock: LeastConnections(
            eps, clock=clock
        ),
        "PowerOfTwoChoices": lambda eps, clock: PowerOfTwoChoices(
            eps, rng=random.Random(seed), clock=clock
        ),
        "PeakEWMA": lambda eps, clock: PeakEWMA(
            eps, rng=random.Random(seed), clock=clock
        ),
    }


POLICIES = tuple(_policies(0))


@dataclass(frozen=True)
class Result:
    policy: str
    scenario: str
    p50: float
    p99: float
    slow_share: float


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


def simulate(
    policy: str, scenario: Scenario, *, requests: int = 40_000, seed: int = 1
) -> Result:
    """Run one policy through one scenario and return its latencies."""
    rng = random.Random(seed)
    clock = FakeClock(0.0)
    endpoints = [f"backend-{i}" for i in range(BACKENDS)]
    means = dict.fromkeys(endpoints, SERVICE)
    slow = endpoints[-1]
    means[slow] = SERVICE * scenario.slow_factor
    capacity = sum(1.0 / mean for mean in means.values())
    rate = scenario.load * capacity
    lb = _policies(seed)[policy](endpoints, clock)

    queues: dict[str, collections.deque] = {
        ep: collections.deque() for ep in endpoints
    }
    busy = dict.fromkeys(endpoints, False)
    # (time, sequence, kind, endpoint): kind 0 = arrival, 1 = completion.
    events: list[tuple[float, int, int, str]] = []
    sequence = 0
    now = 0.0
    for _ in range(requests):
        now += rng.expovariate(rate)
        events.append((now, sequence, 0, ""))
        sequence += 1
    heapq.heapify(events)
    latencies: list[float] = []
    to_slow = 0

    def start(endpoint: str, at: float) -> None:
        nonlocal sequence
        service = rng.expovariate(1.0 / means[endpoint])
        heapq.heappush(events, (at + service, sequence, 1, endpoint))
        sequence += 1
        busy[endpoint] = True

    while events:
        at, _, kind, endpoint = heapq.heappop(events)
        clock.set(at)
        if kind == 0:
            lease = lb.lease()
            endpoint = lease.__enter__()
            to_slow += endpoint == slow
            queues[endpoint].append((at, lease))
            if not busy[endpoint]:
                start(endpoint, at)
        else:
            arrived, lease = queues[endpoint].popleft()
            lease.__exit__(None, None, None)
            latencies.append(at - arrived)
            busy[endpoint] = False
            if queues[endpoint]:
                start(endpoint, at)
    latencies.sort()
    return Result(
        policy=policy,
        scenario=scenario.name,
        p50=_percentile(latencies, 0.50),
        p99=_percentile(latencies, 0.99),
        slow_share=to_slow / requests,
    )


def run_all(*, requests: int = 40_000, seed: int = 1) -> list[Result]:
    """Run every policy through every scenario."""
    return [
        simulate(policy, scenario, requests=requests, seed=seed)
        for scenario in SCENARIOS
        for policy in POLICIES
    ]


def goals(results: list[Result]) -> list[tuple[str, float, bool]]:
    """Return (goal, measured ratio, met) for the goals in issue 6."""
    p99 = {(r.scenario, r.policy): r.p99 for r in results}
    checks = []
    for policy in ("PowerOfTwoChoices", "PeakEWMA"):
        ratio = p99["b", policy] / p99["b", "RoundRobin"]
        checks.append(
            (f"(b) {policy} p99 <= 0.5x RoundRobin", ratio, ratio <= 0.5)
        )
    for scenario in ("a", "b"):
        ratio = p99[scenario, "PeakEWMA"] / p99[scenario, "LeastConnections"]
        checks.append(
            (
                f"({scenario}) PeakEWMA p99 <= 2x LeastConnections",
                ratio,
                ratio <= 2.0,
            )
        )
    return checks


def table(results: list[Result]) -> str:
    """Format the results and the goals as text."""
    lines = []
    for scenario in SCENARIOS:
        lines.append(scenario.label)
        lines.append(
            f"  {'policy':<18} {'p50 ms':>9} {'p99 ms':>10} {'to slow':>8}"
        )
        for r in results:
            if r.scenario == scenario.name:
                lines.append(
                    f"  {r.policy:<18} {r.p50 * 1e3:>9.1f} "
                    f"{r.p99 * 1e3:>10.1f} {r.slow_share:>8.1%}"
                )
    lines.append("goals:")
    for goal, ratio, met in goals(results):
        lines.append(
            f"  {goal:<44} {ratio:6.2f}  {'met' if met else 'MISSED'}"
        )
    return "\n".join(lines)


def plot(results: list[Result], path: str) -> None:
    """Draw p50 and p99 per policy for both scenarios into *path*."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    width = 0.38
    for ax, scenario in zip(axes, SCENARIOS, strict=True):
        rows = [r for r in results if r.scenario == scenario.name]
        xs = range(len(rows))
        ax.bar(
            [x - width / 2 for x in xs],
            [r.p50 * 1e3 for r in rows],
            width,
            label="p50",
            color="#7fa7d9",
        )
        ax.bar(
            [x + width / 2 for x in xs],
            [r.p99 * 1e3 for r in rows],
            width,
            label="p99",
            color="#1f4e8c",
        )
        ax.set_xticks(list(xs))
        ax.set_xticklabels(
            [r.policy.replace("PowerOfTwoChoices", "P2C") for r in rows],
            rotation=20,
        )
        ax.set_yscale("log")
        ax.set_title(scenario.label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("latency (ms, log scale)")
    axes[0].legend()
    fig.suptitle(
        "10 backends, Poisson arrivals, exponential service (10 ms mean)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plot", metavar="PNG", help="also draw the figure")
    args = parser.parse_args()
    results = run_all(requests=args.requests, seed=args.seed)
    print(table(results))
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
