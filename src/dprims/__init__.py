"""dprims: typed building blocks for scalable services.

Each primitive family is imported from its own package (``dprims.ratelimit``,
``dprims.cache``, ``dprims.hashing``, ``dprims.balancing``, ...). Importing
``dprims`` itself loads nothing else, so it never needs an optional extra.
"""

from __future__ import annotations


__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415

        return version("dprims")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
