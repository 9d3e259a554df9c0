"""Plot what each rate-limit algorithm admits from the same bursty traffic.

Every limiter allows 10 requests per second (token bucket and GCRA: rate 10,
burst 10; the window algorithms: 10 per 1 s window). The client is quiet,
then sends 25 requests in the 100 ms before a window boundary and 25 in the
100 ms after it, then a steady 20 requests a second.

Each row shows the requests offered (grey) and admitted (colour) per 50 ms,
and, in the title, the most admitted in any 1-second interval: the fixed
window lets 20 through around the boundary, the sliding window counter about
11-15 (its error bound), the sliding log and the bucket algorithms exactly
what they promise (10, and burst + rate * t for the buckets).

The limiters run on a `FakeClock` with the real in-process store, so the plot
shows the library's actual decisions, the same on every run.

    python3 benchmarks/ratelimit_plot.py   # docs/_static/ratelimit-algorithms.png
"""

from __future__ import annotations

import pathlib

import matplotlib as mpl

from dprims.ratelimit import (
    GCRA,
    FixedWindow,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)
from dprims.testing import FakeClock


mpl.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend


OUT = (
    pathlib.Path(__file__).resolve().parents[1]
    / "docs"
    / "_static"
    / "ratelimit-algorithms.png"
)
START = 1000.0  # a multiple of the window, so windows start at 0 s
BIN = 0.05
END = 4.0


def traffic() -> list[float]:
    """Return the request times, in seconds from the start."""
    times = [0.2 * i for i in range(4)]  # quiet: 5 requests a second
    times += [0.9 + 0.004 * i for i in range(25)]  # burst before 1 s
    times += [1.0 + 0.004 * i for i in range(25)]  # burst after 1 s
    times += [1.1 + 0.05 * i for i in range(int((END - 1.1) / 0.05))]
    return sorted(times)


def admitted(factory: type, args: tuple) -> list[float]:
    """Return the times that the limiter admitted."""
    clock = FakeClock(START)
    limiter = factory(*args, clock=clock)
    out = []
    for at in traffic():
        clock.set(START + at)
        if limiter.acquire("client").allowed:
            out.append(at)
    return out


def worst_second(times: list[float]) -> int:
    """Return the most admissions in any interval shorter than 1 s."""
    best = 0
    for i, start in enumerate(times):
        count = sum(1 for t in times[i:] if t - start < 1.0)
        best = max(best, count)
    return best


def main() -> None:
    """Simulate every algorithm and write the figure."""
    algorithms = [
        ("FixedWindow(10, 1.0)", FixedWindow, (10, 1.0), "tab:red"),
        ("SlidingWindow(10, 1.0)", SlidingWindow, (10, 1.0), "tab:orange"),
        ("SlidingLog(10, 1.0)", SlidingLog, (10, 1.0), "tab:green"),
        ("TokenBucket(10, 10)", TokenBucket, (10.0, 10), "tab:blue"),
        ("GCRA(10, 10)", GCRA, (10.0, 10), "tab:purple"),
    ]
    bins = [i * BIN for i in range(int(END / BIN) + 1)]
    offered = traffic()
    fig, axes = plt.subplots(
        len(algorithms), 1, figsize=(9, 9), sharex=True, sharey=True
    )
    for axis, (label, factory, args, colour) in zip(
        axes, algorithms, strict=True
    ):
        kept = admitted(factory, args)
        axis.hist(offered, bins=bins, color="lightgrey", label="offered")
        axis.hist(kept, bins=bins, color=colour, label="admitted")
        axis.set_title(
            f"{label}: {len(kept)} admitted, at most "
            f"{worst_second(kept)} in any 1 s",
            fontsize=10,
        )
        axis.axvline(1.0, color="black", linewidth=0.6, linestyle=":")
        axis.set_ylabel("per 50 ms")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("seconds (dotted: a window boundary)")
    fig.suptitle("Same traffic, 10 requests/s allowed", fontsize=12)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
