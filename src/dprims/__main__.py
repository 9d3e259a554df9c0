"""Command line: ``python -m dprims demo`` runs a tour of every primitive.

The tour uses only in-process defaults, so it needs no server. Each primitive
family contributes a ``_demo.tour(out)`` function that prints a few readable
lines about what it just did.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


__all__ = ["main"]

#: (section name, module with a ``tour(out)`` function), in tour order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("ratelimit", "dprims.ratelimit._demo"),
    ("cache", "dprims.cache._demo"),
    ("hashing", "dprims.hashing._demo"),
    ("balancing", "dprims.balancing._demo"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dprims",
        description="dprims: typed building blocks for scalable services.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a tour of every primitive on in-process defaults",
        description="Run a tour of every primitive on in-process defaults "
        "(no servers needed).",
    )
    demo.add_argument(
        "--only",
        choices=[name for name, _ in SECTIONS],
        action="append",
        help="run only this section (may be repeated)",
    )
    return parser


def run_demo(
    only: Sequence[str] | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """Run the tour sections in *only* (all when None), printing via *out*."""
    for name, module_name in SECTIONS:
        if only and name not in only:
            continue
        module = importlib.import_module(module_name)
        out(f"== {name} ==")
        module.tour(out)
        out("")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 2
    run_demo(args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
