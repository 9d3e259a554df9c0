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
