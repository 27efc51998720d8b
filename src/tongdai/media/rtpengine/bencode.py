"""Bencode, the encoding of rtpengine's ng control protocol. Pure.

Four types: integers (``i42e``), byte strings (``4:spam``), lists (``l...e``) and
dictionaries (``d...e``, keys byte strings in sorted order). Strings are encoded from
and decoded to ``str`` (UTF-8; bytes that are not UTF-8 survive a round trip through
``surrogateescape``), since everything rtpengine says is text.
"""

from __future__ import annotations

from typing import Union

__all__ = ["BencodeError", "Value", "decode", "encode"]

Value = Union[int, str, bytes, list["Value"], dict[str, "Value"]]  # noqa: UP007

# Nesting deeper than this is no ng message: refuse it rather than recurse on.
_MAX_DEPTH = 32


class BencodeError(ValueError):
    """The bytes are not one well-formed bencoded value."""


def encode(value: Value) -> bytes:
    """``value`` bencoded; ``bool`` is an integer, dictionary keys are sorted."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Value, out: list[bytes]) -> None:
    match value:
        case bool() | int():
            out.append(b"i%de" % value)
        case str():
            _encode(value.encode("utf-8", "surrogateescape"), out)
        case bytes():
            out.append(b"%d:" % len(value))
            out.append(value)
        case list():
            out.append(b"l")
            for item in value:
                _encode(item, out)
            out.append(b"e")
        case dict():
            out.append(b"d")
            for key in sorted(value, key=lambda k: k.encode("utf-8", "surrogateescape")):
                _encode(key, out)
                _encode(value[key], out)
            out.append(b"e")
        case _:
            raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Value:
    """The one value ``data`` holds; ``BencodeError`` if malformed or followed by junk."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} bytes after the value")
    return value


def _decode(data: bytes, at: int, depth: int) -> tuple[Value, int]:
    if depth > _MAX_DEPTH:
        raise BencodeError("nested too deeply")
    head = data[at:at + 1]
    if head == b"i":
        end = data.find(b"e", at)
        if end < 0:
            raise BencodeError("unterminated integer")
        return _integer(data[at + 1:end]), end + 1
    if head == b"l":
        items: list[Value] = []
        at += 1
        while data[at:at + 1] != b"e":
            item, at = _decode(data, at, depth + 1)
            items.append(item)
        return items, at + 1
    if head == b"d":
        mapping: dict[str, Value] = {}
        at += 1
        while data[at:at + 1] != b"e":
            key, at = _string(data, at)
            mapping[key], at = _decode(data, at, depth + 1)
        return mapping, at + 1
    return _string(data, at)


def _string(data: bytes, at: int) -> tuple[str, int]:
    colon = data.find(b":", at)
    if colon < 0 or not data[at:colon].isdigit():
        raise BencodeError(f"expected a value at offset {at}")
    start = colon + 1
    end = start + int(data[at:colon])
    if end > len(data):
        raise BencodeError("string runs past the end")
    return data[start:end].decode("utf-8", "surrogateescape"), end


def _integer(digits: bytes) -> int:
    body = digits[1:] if digits[:1] == b"-" else digits
    if not body.isdigit() or (body[:1] == b"0" and len(body) > 1) or digits == b"-0":
        raise BencodeError(f"bad integer {digits[:20]!r}")
    return int(digits)
