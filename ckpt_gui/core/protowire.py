"""Minimal protocol-buffer wire-format decoding.

The TensorFlow checkpoint index and object graph are small protobuf messages. Decoding the
handful of fields we need by hand keeps scanning independent of ``import tensorflow`` (which
takes seconds), so a directory listing appears before TensorFlow has loaded.
"""
from __future__ import annotations

import struct


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, new position)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise WireError("varint too long")


def fields(buf: bytes | memoryview) -> dict[int, list]:
    """Decode one message into {field number: [values]}.

    Varints come back as ints, fixed32/fixed64 as ints, length-delimited fields as bytes
    (nested messages are decoded by the caller, who knows the schema).
    """
    out: dict[int, list] = {}
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == 0:
            value, pos = read_varint(buf, pos)
        elif wire_type == 1:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire_type == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > end:
                raise WireError("truncated length-delimited field")
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wire_type == 5:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        out.setdefault(number, []).append(value)
    return out


def first(msg: dict[int, list], number: int, default=None):
    values = msg.get(number)
    return values[0] if values else default


def packed_or_repeated_varints(msg: dict[int, list], number: int) -> list[int]:
    """Repeated int fields may be packed (one bytes value) or not (several ints)."""
    out: list[int] = []
    for value in msg.get(number, []):
        if isinstance(value, bytes):
            pos = 0
            while pos < len(value):
                v, pos = read_varint(value, pos)
                out.append(v)
        else:
            out.append(value)
    return out


def to_signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
