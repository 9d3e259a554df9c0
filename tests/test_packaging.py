from __future__ import annotations

import importlib
import importlib.resources
import subprocess
import sys
from importlib.metadata import version

import pytest

import dprims


FAMILIES = [
    "dprims.balancing",
    "dprims.cache",
    "dprims.hashing",
    "dprims.ratelimit",
]
PUBLIC_MODULES = [
    "dprims",
    "dprims.errors",
    "dprims.testing",
    *FAMILIES,
    "dprims.cache.redis",
    "dprims.cache.tiered",
    "dprims.ratelimit.memory",
    "dprims.ratelimit.middleware",
    "dprims.ratelimit.redis",
]


class TestPackaging:
    def test_version_comes_from_metadata(self) -> None:
        """__version__ is the installed distribution's version."""
        assert version("dprims") == dprims.__version__

    def test_unknown_attribute_raises(self) -> None:
        """Module __getattr__ only serves __version__."""
        with pytest.raises(AttributeError, match="no_such_name"):
            _ = dprims.no_such_name  # type: ignore[attr-defined]

    @pytest.mark.parametrize("name", PUBLIC_MODULES)
    def test_all_is_sorted_and_resolvable(self, name: str) -> None:
        """Every public module lists unique names that exist.

        Their order is checked by ruff (RUF022, isort-style sorting).
        """
        module = importlib.import_module(name)

        assert len(set(module.__all__)) == len(module.__all__)
        for attribute in module.__all__:
            assert getattr(module, attribute) is not None

    def test_import_needs_no_optional_driver(self) -> None:
        """Importing dprims and its core modules loads neither redis nor kazoo."""
        code = (
            "import sys, dprims, dprims.errors, dprims.testing, "
            f"dprims._clock, {', '.join(FAMILIES)}\n"
            "bad = sorted(m for m in sys.modules "
            "if m.split('.')[0] in {'redis', 'kazoo'})\n"
            "print(','.join(bad))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )

        assert "" == result.stdout.strip()

    def test_ships_py_typed(self) -> None:
        """The package is marked as typed."""
        files = importlib.resources.files("dprims")

        assert files.joinpath("py.typed").is_file()
