"""Decode all of an index's BundleEntryProto values at once, into columns.

A checkpoint of a big model has tens of thousands of entries. Decoding them one message at a
time costs microseconds each in Python (even through the compiled protobuf parser, reading a
field is a Python call), which made a scan slower than ``tf.train.list_variables``. TensorFlow
writes every entry the same way, so the fields sit at positions numpy can compute for all
entries together:

    08 <dtype>  12 <n> <TensorShapeProto: n bytes>  [18 <shard_id>] [20 <offset>] [28 <size>]
    [35 <crc32c: 4 bytes>]

(proto3 omits a field that is zero; a one-byte dtype and shape length cover every dtype and
shapes up to rank ~25). An entry laid out any other way -- a partitioned variable's ``slices``,
a writer with another field order, a damaged value -- is decoded by the protobuf parser
instead, one by one, so the columns are always what a full decode gives.

Reference: tensorflow/core/protobuf/tensor_bundle.proto (BundleEntryProto).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fastproto, protowire as pw

_VARINT_BYTES = 10                    # the longest a 64-bit varint can be
_PAD = bytes(_VARINT_BYTES + 8)       # so windows past a value's end stay inside the buffer
_FIELDS = ((0x18, "shard_ids"), (0x20, "offsets"), (0x28, "sizes"))


@dataclass
class EntryColumns:
    """Fields of n entries, each a list of n Python values in index order."""
    dtypes: list[int]
    shape_bytes: list[bytes]          # the raw TensorShapeProto of each entry
    shard_ids: list[int]
    offsets: list[int]
    sizes: list[int]
    crcs: list[int]
    sliced: list[bool]


class DecodeError(ValueError):
    """An entry is not a well-formed BundleEntryProto."""


def _varints(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values and lengths of the varints starting at positions ``at`` of ``buf``: one pass
    per byte, each over the varints not yet ended (offsets take three or four)."""
    value = np.zeros(len(at), dtype=np.uint64)
    length = np.zeros(len(at), dtype=np.int64)
    going = np.arange(len(at))
    for j in range(_VARINT_BYTES):
        byte = buf[at[going] + j]
        value[going] |= (byte & 0x7F).astype(np.uint64) << np.uint64(7 * j)
        length[going] = j + 1
        going = going[byte >= 0x80]
        if not len(going):
            return value, length
    raise DecodeError("varint too long")


# Below this many entries numpy's fixed cost per call (a few hundred microseconds) is more than
# decoding them one by one.
VECTOR_MIN = 96


def decode_entries(data: bytes, starts, lengths) -> EntryColumns:
    """Columns of the BundleEntryProto messages at ``data[start:start + length]`` for each
    of ``starts`` and ``lengths`` (int sequences or arrays); DecodeError if one is malformed."""
    n = len(starts)
    if n < VECTOR_MIN:
        columns = EntryColumns([0] * n, [b""] * n, [0] * n, [0] * n, [0] * n, [0] * n,
                               [False] * n)
        for i, (start, length) in enumerate(zip(np.asarray(starts).tolist(),
                                                np.asarray(lengths).tolist())):
            _decode_one(data[start:start + length], i, columns)
        return columns
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = starts + lengths
    buf = np.frombuffer(data + _PAD, dtype=np.uint8)
    size = len(data)

    # 08 <dtype> 12 <shape length>, all one byte: the common head
    head = np.minimum(starts[:, None] + np.arange(4), size)
    h = buf[head]
    common = ((lengths >= 4) & (h[:, 0] == 0x08) & (h[:, 1] < 0x80) & (h[:, 2] == 0x12)
              & (h[:, 3] < 0x80))
    shape_start = starts + 4
    pos = np.where(common, shape_start + h[:, 3], ends)
    common &= pos <= ends
    cols = {}
    for tag, name in _FIELDS:  # optional varints, in field order
        here = common & (pos < ends) & (buf[np.minimum(pos, size)] == tag)
        value = np.zeros(n, dtype=np.uint64)
        if here.any():
            v, used = _varints(buf, pos[here] + 1)
            value[here] = v
            pos[here] += 1 + used
        cols[name] = value
    here = common & (pos < ends) & (buf[np.minimum(pos, size)] == 0x35)
    crc = np.zeros(n, dtype=np.uint32)
    if here.any():
        at = pos[here] + 1
        crc[here] = buf[at[:, None] + np.arange(4)].astype(np.uint32) @ np.array(
            [1, 1 << 8, 1 << 16, 1 << 24], dtype=np.uint32)
        pos[here] += 5
    common &= pos == ends  # anything left (slices, unknown fields) needs the full parser

    columns = EntryColumns(
        dtypes=h[:, 1].tolist(),
        shape_bytes=[data[a:b] for a, b in zip(shape_start.tolist(),
                                               (shape_start + h[:, 3]).tolist())],
        shard_ids=cols["shard_ids"].tolist(), offsets=cols["offsets"].tolist(),
        sizes=cols["sizes"].tolist(), crcs=crc.tolist(), sliced=[False] * n)
    if not common.all():
        for i in np.flatnonzero(~common).tolist():
            _decode_one(data[starts[i]:ends[i]], i, columns)
    return columns


def _decode_one(value: bytes, i: int, out: EntryColumns) -> None:
    """Entry ``i`` through the protobuf parser (a few entries, or an uncommon layout)."""
    if fastproto.AVAILABLE:
        try:
            m = fastproto.BundleEntryProto.FromString(value)
        except fastproto.DecodeError as e:
            raise DecodeError(str(e)) from None
        if len(value) >= 4 and value[0] == 0x08 and value[2] == 0x12 and value[3] < 0x80:
            shape = value[4:4 + value[3]]  # as written: the key under which shapes are kept
        else:
            shape = m.shape.SerializeToString()
        fields = (m.dtype, shape, m.shard_id, m.offset, m.size, m.crc32c, len(m.slices) > 0)
    else:
        try:
            msg = pw.fields(value)
        except pw.WireError as e:
            raise DecodeError(str(e)) from None
        fields = (pw.first(msg, 1, 0), pw.first(msg, 2, b""), pw.first(msg, 3, 0),
                  pw.first(msg, 4, 0), pw.first(msg, 5, 0), pw.first(msg, 6, 0),
                  bool(msg.get(7)))
    (out.dtypes[i], out.shape_bytes[i], out.shard_ids[i], out.offsets[i], out.sizes[i],
     out.crcs[i], out.sliced[i]) = fields
