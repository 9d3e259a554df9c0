"""Serializers that turn cached values into bytes for a shared store.

A value stored in Redis crosses a process boundary, so it is encoded with
a serializer. JSON is the default: it is safe to decode data that another
process (or an attacker with write access to Redis) put there. Pickle is
never used by default, because unpickling runs arbitrary code.

This module imports only the standard library, so ``dprims.cache`` can
expose it without the ``redis`` extra.

Status: stable.
"""

from __future__ import annotations

import json
from typing import Protocol, runtime_checkable


__all__ = ()


@runtime_checkable
class Serializer(Protocol):
    """**Protocol:** turns a cached value into bytes and back.

    ``dumps`` must raise ``TypeError`` or ``ValueError`` for a value it
    cannot encode, so that nothing is written. ``loads`` receives only bytes
    that ``dumps`` produced, possibly in another process; a serializer must never run code found in the data (so no
    pickle for data read from the network).

    .. versionadded:: 0.1
    """

    def dumps(self, value: object) -> bytes:
        """Return *value* encoded as bytes."""
        ...

    def loads(self, data: bytes) -> object:
        """Return the value that *data* encodes."""
        ...


class JSONSerializer:
    """Encode values as compact UTF-8 JSON; the default serializer.

    JSON round-trips ``None``, bools, ints, floats, strings, lists and dicts
    with string keys. Two conversions are lossy and worth knowing: a tuple
    comes back as a list, and int, float, bool or ``None`` dict keys come
    back as strings. NaN and infinities are refused, since other languages'
    JSON parsers reject them.

    Stateless and thread-safe.

    Args:
        sort_keys: write dict keys in sorted order, so equal dicts give
            equal bytes (handy when values are compared or hashed outside).

    .. versionadded:: 0.1
    """

    __slots__ = ("_sort_keys",)

    def __init__(self, *, sort_keys: bool = False) -> None:
        self._sort_keys = sort_keys

    def dumps(self, value: object) -> bytes:
        """Return *value* as UTF-8 JSON.

        Raises:
            TypeError: if *value*, or something inside it, has a type JSON
                cannot represent; the message names the type of *value*.
            ValueError: if *value* holds NaN or an infinity, or refers to
                itself.
        """
        try:
            text = json.dumps(
                value,
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
                sort_keys=self._sort_keys,
            )
        except TypeError as exc:
            raise TypeError(
                f"cannot encode a value of type {type(value).__name__} as "
                f"JSON: {exc}"
            ) from exc
        except ValueError as exc:
            raise ValueError(
                f"cannot encode a value of type {type(value).__name__} as "
                f"JSON: {exc}"
            ) from exc
        return text.encode("utf-8")

    def loads(self, data: bytes) -> object:
        """Return the value encoded in the UTF-8 JSON *data*.

        Raises:
            ValueError: if *data* is not valid UTF-8 JSON.
        """
        return json.loads(data)

    def __repr__(self) -> str:
        return f"JSONSerializer(sort_keys={self._sort_keys!r})"
