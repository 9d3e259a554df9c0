"""The JSON serializer and the Serializer protocol."""

from __future__ import annotations

import math

import pytest

from dprims.cache._serializers import JSONSerializer, Serializer


class TestJSONSerializer:
    """JSONSerializer encodes to compact UTF-8 JSON and refuses the rest."""

    @pytest.mark.parametrize(
        "value",
        [None, True, 3, -1.5, "é✓", [1, [2]], {"a": {"b": None}}],
    )
    def test_round_trips(self, value):
        """Returns an equal value after dumps and loads."""
        codec = JSONSerializer()
        assert value == codec.loads(codec.dumps(value))

    def test_output_is_compact_utf8(self):
        """Writes no spaces and keeps non-ASCII text as UTF-8."""
        assert '{"a":[1,2],"é":"✓"}'.encode() == JSONSerializer().dumps(
            {"a": [1, 2], "é": "✓"}
        )

    def test_sort_keys(self):
        """Writes dict keys in order when asked, so equal dicts are equal bytes."""
        assert b'{"a":1,"b":2}' == JSONSerializer(sort_keys=True).dumps(
            {"b": 2, "a": 1}
        )

    def test_tuples_come_back_as_lists(self):
        """Documents JSON's lossy conversion of tuples."""
        codec = JSONSerializer()
        assert [1, 2] == codec.loads(codec.dumps((1, 2)))

    @pytest.mark.parametrize(
        ("value", "name"),
        [(object(), "object"), ({1, 2}, "set"), (b"raw", "bytes")],
    )
    def test_unencodable_type_names_the_type(self, value, name):
        """Raises TypeError whose message names the value's type."""
        with pytest.raises(TypeError, match=f"type {name} as JSON"):
            JSONSerializer().dumps(value)

    def test_nested_unencodable_names_outer_type(self):
        """Names the outer type and the inner culprit."""
        with pytest.raises(TypeError, match=r"type dict as JSON.*set"):
            JSONSerializer().dumps({"a": {1}})

    @pytest.mark.parametrize("value", [math.nan, math.inf, [-math.inf]])
    def test_refuses_non_finite_floats(self, value):
        """Raises ValueError for NaN and infinities."""
        with pytest.raises(ValueError, match="as JSON"):
            JSONSerializer().dumps(value)

    def test_refuses_circular_values(self):
        """Raises ValueError for a value that contains itself."""
        loop: list[object] = []
        loop.append(loop)
        with pytest.raises(ValueError, match="type list"):
            JSONSerializer().dumps(loop)

    def test_loads_rejects_garbage(self):
        """Raises ValueError for bytes that are not JSON."""
        with pytest.raises(ValueError):
            JSONSerializer().loads(b"\xff{")

    def test_is_a_serializer(self):
        """Satisfies the runtime-checkable Serializer protocol."""
        assert isinstance(JSONSerializer(), Serializer)
        assert not isinstance(object(), Serializer)

    def test_repr(self):
        """Shows its option."""
        assert "JSONSerializer(sort_keys=True)" == repr(
            JSONSerializer(sort_keys=True)
        )
