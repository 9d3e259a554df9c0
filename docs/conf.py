"""Sphinx configuration for the dprims documentation."""

from __future__ import annotations

from importlib.metadata import version as _version


project = "dprims"
author = "dprims maintainers"
copyright = "2026, dprims maintainers"
release = _version("dprims")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# Files named _*.md are partials pulled into a chapter with {include}.
exclude_patterns = ["_build", "**/_*.md", "_*.md"]

default_role = "any"
nitpicky = True
nitpick_ignore_regex = [
    # Third-party and typing internals that have no inventory here.
    (r"py:.*", r"(redis|kazoo|attrs|cachetools|mmh3)\..*"),
    (r"py:.*", r"(_?typeshed|typing_extensions)\..*"),
    (r"py:.*", r"(P|T|R|K|V|KT|VT|T_co|E)"),
    (r"py:.*", r"dprims\..*\._.*"),
    (r"py:class", r"Any"),
    # No network here, so no intersphinx: standard-library names stay plain.
    (
        r"py:.*|any",
        (
            r"~?(str|int|float|bytes|bool|object|None|type|tuple|list|dict|"
            r"set|frozenset|Exception|BaseException|[A-Za-z]+Error|PathLike|"
            r"Path|Iterator|Iterable|Sequence|Mapping|MutableMapping|"
            r"Callable|Awaitable|Coroutine|Generator|AsyncIterator|"
            r"AsyncGenerator|Hashable|Event|Lock|RLock|Random|Pattern|"
            r"Logger|TracebackType|Popen|ParamSpec|TypeVar|Generic|Protocol|"
            r"Literal|(collections|typing|random|re|asyncio|threading|"
            r"logging|socket|subprocess|os|pathlib|contextlib|concurrent|"
            r"json|time|multiprocessing|types|abc|functools|http|wsgiref)"
            r"(\.[\w.]+)?)"
        ),
    ),
    # The Clock protocol lives in a private module; the guide documents it.
    (r"py:class", r"(dprims\._clock\.)?Clock"),
]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# No network here or in CI: intersphinx inventories are not fetched.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

doctest_global_setup = """
from dprims.testing import FakeClock
"""

html_theme = "furo"
html_title = f"dprims {release}"
