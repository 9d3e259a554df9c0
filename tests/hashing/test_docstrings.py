"""The examples in dprims.hashing docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

import dprims.hashing as package


MODULES = [
    "dprims.hashing._bounded",
    "dprims.hashing._jump",
    "dprims.hashing._maglev",
    "dprims.hashing._maps",
    "dprims.hashing._multiprobe",
    "dprims.hashing._rendezvous",
    "dprims.hashing._ring",
    "dprims.hashing._router",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    """Runs every >>> example in the module's docstrings without failure."""
    result = doctest.testmod(importlib.import_module(name))
    assert 0 == result.failed
    assert result.attempted > 0


def test_every_public_object_has_versionadded():
    """Marks each public name with a correctly spelled versionadded."""
    for name in package.__all__:
        if name == "Key":
            continue
        doc = getattr(package, name).__doc__ or ""
        assert ".. versionadded:: 0.1" in doc, name
