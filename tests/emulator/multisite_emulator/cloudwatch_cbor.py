"""CBOR (RFC 8949) codec for the Smithy rpcv2Cbor protocol.

The current AWS SDKs talk to CloudWatch with rpcv2Cbor, whose bodies are CBOR;
the emulator has to read what the Rust SDK sends and answer in kind, and the
standard library has no CBOR. This module is deliberately independent of moto
and of the CloudWatch model: other emulator modules (IAM reads alarm names) use
``decode_cbor`` directly.

Decoding covers RFC 8949 in full: unsigned/negative integers, byte and text
strings (definite and indefinite length), arrays and maps (both), tags,
simple values, half/single/double floats. Tag 1 (epoch date/time) becomes an
aware UTC ``datetime``, tags 2/3 (bignums) become ``int``; other tags come back
as ``Tag``; ``undefined`` decodes to ``None`` as Smithy requires.

Encoding produces what Smithy clients and aws-smithy-cbor expect: definite
lengths, the shortest integer heads, every ``float`` as a 64-bit double (never
half precision: Smithy says SHOULD NOT, and minicbor only reads it with an
optional feature), ``datetime`` as tag 1 with integer seconds when whole and
float seconds otherwise (exactly what botocore's CBOR serializer does).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["CBORDecodeError", "Simple", "Tag", "decode_cbor", "encode_cbor"]

_UNSIGNED, _NEGATIVE, _BYTES, _TEXT, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)
_INDEFINITE = 31
_BREAK = 0xFF
_EPOCH_TAG, _POSITIVE_BIGNUM, _NEGATIVE_BIGNUM = 1, 2, 3
_MAX_NESTING = 256  # a malicious body must not exhaust the Python stack


class CBORDecodeError(ValueError):
    """The bytes are not one well-formed CBOR data item."""


@dataclass(frozen=True)
class Tag:
    """A tagged item whose tag has no Python mapping here (anything but 1, 2, 3)."""

    number: int
    value: Any


@dataclass(frozen=True)
class Simple:
    """An unassigned simple value (RFC 8949 §3.3): not false/true/null/undefined."""

    value: int


# -- decoding -----------------------------------------------------------------


class _Break:
    """Sentinel for the 0xff "break" stop code, only legal inside indefinite items."""


_BREAK_MARK = _Break()


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise CBORDecodeError(f"truncated CBOR: needed {count} byte(s) at offset {self.pos}")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def head(self) -> tuple[int, int, int | None]:
        """(major type, additional info, argument); the argument is None for info 31."""
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            return major, info, int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == _INDEFINITE:
            return major, info, None
        raise CBORDecodeError(f"reserved additional information {info} at offset {self.pos - 1}")


def decode_cbor(data: bytes) -> Any:
    """Decode exactly one CBOR data item; trailing bytes are an error."""
    reader = _Reader(bytes(data))
    value = _item(reader, 0)
    if value is _BREAK_MARK:
        raise CBORDecodeError("unexpected break stop code")
    if reader.pos != len(reader.data):
        raise CBORDecodeError(f"{len(reader.data) - reader.pos} trailing byte(s) after the CBOR item")
    return value


def _item(reader: _Reader, depth: int) -> Any:
    if depth > _MAX_NESTING:
        raise CBORDecodeError("CBOR nested too deeply")
    major, info, argument = reader.head()
    if major == _SIMPLE:
        return _simple_or_float(reader, info, argument)
    if argument is None and major in (_UNSIGNED, _NEGATIVE, _TAG):
        raise CBORDecodeError(f"indefinite length is not allowed for major type {major}")
    if major == _UNSIGNED:
        return argument
    if major == _NEGATIVE:
        return -1 - argument
    if major in (_BYTES, _TEXT):
        return _string(reader, major, argument)
    if major == _ARRAY:
        return _array(reader, argument, depth)
    if major == _MAP:
        return _map(reader, argument, depth)
    return _tagged(reader, argument, depth)


def _string(reader: _Reader, major: int, length: int | None) -> bytes | str:
    if length is not None:
        raw = reader.take(length)
    else:  # indefinite: definite-length chunks of the same major type, then break
        chunks = []
        while True:
            chunk_major, _, chunk_length = reader.head()
            if (chunk_major, chunk_length) == (_SIMPLE, None):
                break
            if chunk_major != major or chunk_length is None:
                raise CBORDecodeError("indefinite-length string chunk of the wrong type")
            chunks.append(reader.take(chunk_length))
        raw = b"".join(chunks)
    if major == _BYTES:
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CBORDecodeError(f"text string is not valid UTF-8: {exc}") from None


def _array(reader: _Reader, length: int | None, depth: int) -> list[Any]:
    if length is not None:
        items = [_item(reader, depth + 1) for _ in range(length)]
        if any(item is _BREAK_MARK for item in items):
            raise CBORDecodeError("break stop code inside a definite-length array")
        return items
    items = []
    while (item := _item(reader, depth + 1)) is not _BREAK_MARK:
        items.append(item)
    return items


def _map(reader: _Reader, length: int | None, depth: int) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    count = 0
    while length is None or count < length:
        key = _item(reader, depth + 1)
        if key is _BREAK_MARK:
            if length is not None:
                raise CBORDecodeError("break stop code inside a definite-length map")
            break
        value = _item(reader, depth + 1)
        if value is _BREAK_MARK:
            raise CBORDecodeError("map key without a value")
        try:
            result[key] = value
        except TypeError:
            raise CBORDecodeError(f"unhashable map key {key!r}") from None
        count += 1
    return result


def _tagged(reader: _Reader, number: int, depth: int) -> Any:
    value = _item(reader, depth + 1)
    if value is _BREAK_MARK:
        raise CBORDecodeError("tag without content")
    if number == _EPOCH_TAG:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CBORDecodeError(f"tag 1 content must be a number, not {value!r}")
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise CBORDecodeError(f"tag 1 timestamp out of range: {value!r}") from exc
    if number in (_POSITIVE_BIGNUM, _NEGATIVE_BIGNUM):
        if not isinstance(value, bytes):
            raise CBORDecodeError(f"bignum tag {number} content must be a byte string")
        magnitude = int.from_bytes(value, "big")
        return magnitude if number == _POSITIVE_BIGNUM else -1 - magnitude
    return Tag(number, value)


def _simple_or_float(reader: _Reader, info: int, argument: int | None) -> Any:
    if info == _INDEFINITE:
        return _BREAK_MARK
    if info == 25:
        return struct.unpack(">e", argument.to_bytes(2, "big"))[0]
    if info == 26:
        return struct.unpack(">f", argument.to_bytes(4, "big"))[0]
    if info == 27:
        return struct.unpack(">d", argument.to_bytes(8, "big"))[0]
    if info == 24 and argument < 32:
        raise CBORDecodeError(f"simple value {argument} must use the one-byte form")
    return {20: False, 21: True, 22: None, 23: None}.get(argument, Simple(argument))


# -- encoding -----------------------------------------------------------------


def encode_cbor(value: Any) -> bytes:
    """Encode ``value`` (dict, list/tuple, str, bytes, int, float, bool, None,
    datetime, Tag, Simple) as one CBOR data item with definite lengths.

    A naive ``datetime`` is taken as UTC, as moto stores them.
    """
    out = bytearray()
    _encode(out, value)
    return bytes(out)


def _head(out: bytearray, major: int, argument: int) -> None:
    if argument < 24:
        out.append((major << 5) | argument)
        return
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            out.append((major << 5) | info)
            out += argument.to_bytes(size, "big")
            return
    raise ValueError(f"CBOR argument too large: {argument}")


def _encode(out: bytearray, value: Any) -> None:
    if value is None:
        out.append(0xF6)
    elif isinstance(value, bool):
        out.append(0xF5 if value else 0xF4)
    elif isinstance(value, int):
        _encode_int(out, value)
    elif isinstance(value, float):
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(out, _TEXT, len(raw))
        out += raw
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        _head(out, _BYTES, len(raw))
        out += raw
    elif isinstance(value, (list, tuple)):
        _head(out, _ARRAY, len(value))
        for item in value:
            _encode(out, item)
    elif isinstance(value, dict):
        _head(out, _MAP, len(value))
        for key, item in value.items():
            _encode(out, key)
            _encode(out, item)
    elif isinstance(value, datetime):
        _head(out, _TAG, _EPOCH_TAG)
        _encode(out, _epoch_seconds(value))
    elif isinstance(value, Tag):
        _head(out, _TAG, value.number)
        _encode(out, value.value)
    elif isinstance(value, Simple):
        if not 0 <= value.value <= 255 or 20 <= value.value <= 31:
            raise ValueError(f"not an unassigned simple value: {value.value}")
        _head(out, _SIMPLE, value.value)
    else:
        raise TypeError(f"cannot CBOR-encode {type(value).__name__}")


def _encode_int(out: bytearray, value: int) -> None:
    if 0 <= value < 1 << 64:
        _head(out, _UNSIGNED, value)
    elif -(1 << 64) <= value < 0:
        _head(out, _NEGATIVE, -1 - value)
    else:  # beyond 64 bits: a bignum (RFC 8949 §3.4.3)
        magnitude = value if value > 0 else -1 - value
        _head(out, _TAG, _POSITIVE_BIGNUM if value > 0 else _NEGATIVE_BIGNUM)
        _encode(out, magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big"))


def _epoch_seconds(value: datetime) -> int | float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    seconds = value.timestamp()
    return int(seconds) if value.microsecond == 0 else seconds
