"""Plot database load during an expiry burst, with and without single-flight.

Scenario: 100 product keys are cached with the same TTL (they were loaded
together at startup), and each gets about 40 requests a second. At the TTL
all of them expire in the same instant. Every request that finds its key
missing asks the database, until the first answer is stored. Each query
takes 50 ms, more when many run at once (the database saturates).

Left: queries in flight around the expiry instant, without single-flight
(cachetools' ``@cached``: every miss is a query) and with it (dprims'
``@cached``: one query per key, the other callers wait for it). Right:
queries started per 100 ms with single-flight, without and with
``jitter=0.2``: jitter turns one spike into a low, spread-out load.

The traffic is simulated on a discrete clock (1 ms steps) with a fixed
seed, so the plot is the same on every run; the single-flight behaviour
simulated here is the one the test suite checks (one loader call per key
and burst).

    python3 benchmarks/cache_stampede_plot.py   # docs/_static/cache-stampede.png
"""

from __future__ import annotations

import math
import pathlib
import random

import matplotlib as mpl


mpl.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend


OUT = (
    pathlib.Path(__file__).resolve().parents[1]
    / "docs"
    / "_static"
    / "cache-stampede.png"
)
KEYS = 100
RATE = 40.0  # requests per second per key
TTL = 60.0
BASE_QUERY = 0.050  # seconds, on an idle database
CAPACITY = 50  # concurrent queries the database serves at full speed
STEP = 0.001


def query_time(in_flight: int) -> float:
    """Return how long a query takes with *in_flight* queries running."""
    return BASE_QUERY * max(1.0, in_flight / CAPACITY)


def simulate(
    *, single_flight: bool, jitter: float, start: float, end: float
) -> tuple[list[float], list[int], list[int]]:
    """Return (times, queries in flight, queries started) per step."""
    rng = random.Random(5)
    expires = [TTL * (1.0 - jitter * rng.random()) for _ in range(KEYS)]
    next_arrival = [start + rng.expovariate(RATE) for _ in range(KEYS)]
    loading = [False] * KEYS
    running: list[tuple[float, int]] = []  # (finish time, key)
    times: list[float] = []
    in_flight: list[int] = []
    started: list[int] = []
    for i in range(math.ceil((end - start) / STEP)):
        now = start + i * STEP
        still = []
        for finish, key in running:
            if finish <= now:
                loading[key] = False
                expires[key] = now + TTL
            else:
                still.append((finish, key))
        running = still
        began = 0
        for key in range(KEYS):
            while next_arrival[key] <= now:
                next_arrival[key] += rng.expovariate(RATE)
                if now < expires[key] or (single_flight and loading[key]):
                    continue  # a hit, or a wait for the one load
                loading[key] = True
                running.append((now + query_time(len(running) + 1), key))
                began += 1
        times.append(now - TTL)
        in_flight.append(len(running))
        started.append(began)
    return times, in_flight, started


def per_bin(times: list[float], counts: list[int], width: float):
    """Sum *counts* into bins of *width* seconds."""
    bins: dict[int, int] = {}
    for t, n in zip(times, counts, strict=True):
        bins[math.floor(t / width)] = bins.get(math.floor(t / width), 0) + n
    keys = sorted(bins)
    return [k * width for k in keys], [bins[k] for k in keys]


def main() -> None:
    """Draw both panels and save the PNG under docs/_static/."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    for label, single_flight in (
        ("no single-flight (cachetools @cached)", False),
        ("single-flight (dprims @cached)", True),
    ):
        times, in_flight, _ = simulate(
            single_flight=single_flight,
            jitter=0.0,
            start=TTL - 0.25,
            end=TTL + 0.75,
        )
        left.plot(times, in_flight, label=label, linewidth=1.6)
    left.set_title("All keys expire at once")
    left.set_xlabel("seconds after the expiry instant")
    left.set_ylabel("database queries in flight")
    left.legend(loc="center right", frameon=False, fontsize=8)
    left.grid(alpha=0.3)

    for label, jitter in (
        ("single-flight, jitter=0", 0.0),
        ("single-flight, jitter=0.2", 0.2),
    ):
        times, _, started = simulate(
            single_flight=True,
            jitter=jitter,
            start=TTL * 0.75,
            end=TTL + 1.0,
        )
        xs, ys = per_bin(times, started, 0.1)
        right.step(xs, ys, where="post", label=label, linewidth=1.4)
    right.set_title("Jitter spreads the reloads")
    right.set_xlabel("seconds relative to the TTL")
    right.set_ylabel("queries started per 100 ms")
    right.legend(loc="upper left", frameon=False, fontsize=8)
    right.grid(alpha=0.3)

    fig.suptitle(
        f"Expiry burst: {KEYS} hot keys, {RATE:g} requests/s each, "
        f"{BASE_QUERY * 1000:g} ms queries"
    )
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
