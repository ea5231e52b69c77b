"""Read the index of a TensorFlow V2 checkpoint bundle without TensorFlow.

A V2 checkpoint ``P`` is ``P.index`` (an immutable sorted table, LevelDB's format) mapping each
tensor name to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, checksum), plus data
files ``P.data-K-of-N`` holding the raw bytes. Knowing which shard holds each tensor tells us
exactly which variables a missing shard makes unreadable, without reading a single value.

Reference: tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc} and tsl/lib/io/table_format.
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import fastproto, protowire as pw

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5

# DataType enum (tensorflow/core/framework/types.proto) -> (name as tf.DType.name, numpy dtype)
DTYPES: dict[int, tuple[str, str | None]] = {
    1: ("float32", "<f4"), 2: ("float64", "<f8"), 3: ("int32", "<i4"), 4: ("uint8", "u1"),
    5: ("int16", "<i2"), 6: ("int8", "i1"), 7: ("string", None), 8: ("complex64", "<c8"),
    9: ("int64", "<i8"), 10: ("bool", "?"), 11: ("qint8", "i1"), 12: ("quint8", "u1"),
    13: ("qint32", "<i4"), 14: ("bfloat16", None), 15: ("qint16", "<i2"), 16: ("quint16", "<u2"),
    17: ("uint16", "<u2"), 18: ("complex128", "<c16"), 19: ("float16", "<f2"),
    20: ("resource", None), 21: ("variant", None), 22: ("uint32", "<u4"), 23: ("uint64", "<u8"),
}
ITEMSIZE = {"bfloat16": 2}


class BundleError(ValueError):
    """The index file is not a readable TensorFlow V2 checkpoint index."""


DAMAGED = "is damaged (its data fails TensorFlow's checksum)"


_NUMPY_DTYPE = {name: np_dtype for name, np_dtype in DTYPES.values()}


class BundleEntry(NamedTuple):
    """One tensor's BundleEntryProto (a tuple: a checkpoint may hold tens of thousands)."""
    name: str
    dtype: str
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    sliced: bool = False

    @property
    def numpy_dtype(self) -> str | None:
        return _NUMPY_DTYPE.get(self.dtype)


@dataclass(frozen=True)
class BundleIndex:
    num_shards: int
    big_endian: bool
    entries: dict[str, BundleEntry]  # in the index's (sorted) order
    # A partitioned (sliced) variable's entry holds no data; each slice has its own entry,
    # possibly in its own shard (tf.train.experimental.MaxShardSizePolicy splits big variables).
    slices: dict[str, list[BundleEntry]] = field(default_factory=dict)


def data_file_name(prefix_name: str, shard: int, num_shards: int) -> str:
    return f"{prefix_name}.data-{shard:05d}-of-{num_shards:05d}"


def _block_entries(buf: bytes, offset: int, size: int):
    """Yield (key, value) pairs of one table block (prefix-compressed keys)."""
    if offset < 0 or size < 4 or offset + size + BLOCK_TRAILER_SIZE > len(buf):
        raise BundleError("block handle points outside the index file")
    compression = buf[offset + size]
    if compression != 0:
        raise BundleError(f"compressed index block (type {compression}) is not supported")
    num_restarts = struct.unpack_from("<I", buf, offset + size - 4)[0]
    limit = offset + size - 4 - 4 * num_restarts
    if limit < offset:
        raise BundleError("corrupt block restart array")
    read_varint = pw.read_varint
    pos = offset
    key = b""
    while pos < limit:
        # three varints; almost always one byte each
        shared = buf[pos]
        if shared < 0x80:
            pos += 1
        else:
            shared, pos = read_varint(buf, pos)
        non_shared = buf[pos] if pos < limit else 0x80
        if non_shared < 0x80:
            pos += 1
        else:
            non_shared, pos = read_varint(buf, pos)
        value_len = buf[pos] if pos < limit else 0x80
        if value_len < 0x80:
            pos += 1
        else:
            value_len, pos = read_varint(buf, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise BundleError("corrupt block entry")
        key = key[:shared] + buf[pos:pos + non_shared] if shared else buf[pos:pos + non_shared]
        pos += non_shared
        yield key, buf[pos:pos + value_len]
        pos += value_len


def _handle(buf, pos: int = 0) -> tuple[int, int, int]:
    off, pos = pw.read_varint(buf, pos)
    size, pos = pw.read_varint(buf, pos)
    return off, size, pos


def _shape(shape_bytes: bytes | None) -> tuple[int, ...]:
    if not shape_bytes:
        return ()
    msg = pw.fields(shape_bytes)
    dims = []
    for dim in msg.get(2, []):
        dmsg = pw.fields(dim)
        dims.append(pw.to_signed64(pw.first(dmsg, 1, 0)))
    return tuple(dims)


def _dtype_name(enum: int) -> str:
    found = DTYPES.get(enum)
    return found[0] if found else f"dtype_{enum}"


_DTYPE_NAMES = {enum: name for enum, (name, _) in DTYPES.items()}
_new_entry = tuple.__new__  # BundleEntry(...) without the keyword-handling constructor


# Raw TensorShapeProto bytes -> shape, shared by every index a scan reads (a folder's
# checkpoints and a model's layers repeat a few shapes); bounded, emptied by clear_caches().
SHAPES: dict[bytes, tuple] = {}
_SHAPES_LIMIT = 1 << 14


def clear_caches() -> None:
    """Forget decoded shapes (benchmarks time cold scans)."""
    SHAPES.clear()


def parse_entry(name: str, value: bytes, shapes: dict[bytes, tuple] | None = None) -> BundleEntry:
    """Decode one BundleEntryProto. ``shapes`` (raw TensorShapeProto bytes -> shape, e.g.
    SHAPES) skips rebuilding a known shape from protobuf objects, the slowest part of an entry;
    it applies only to TensorFlow's own field order (dtype first, then the shape)."""
    if fastproto.AVAILABLE:
        try:
            m = fastproto.BundleEntryProto.FromString(value)
        except fastproto.DecodeError as e:
            raise pw.WireError(f"corrupt entry for {name}: {e}") from None
        shape = None
        if shapes is not None and len(value) > 3 and value[0] == 0x08 and value[1] < 0x80 \
                and value[2] == 0x12 and value[3] < 0x80:
            raw_shape = value[4:4 + value[3]]
            shape = shapes.get(raw_shape)
            if shape is None:
                shape = shapes[raw_shape] = tuple([d.size for d in m.shape.dim])
        if shape is None:
            dims = m.shape.dim
            shape = tuple([d.size for d in dims]) if dims else ()
        dtype = m.dtype
        return _new_entry(BundleEntry, (
            name, _DTYPE_NAMES.get(dtype) or f"dtype_{dtype}", shape, m.shard_id, m.offset,
            m.size, m.crc32c, len(m.slices) > 0))
    msg = pw.fields(value)
    dtype_enum = pw.first(msg, 1, 0)
    dtype_name = DTYPES.get(dtype_enum, (f"dtype_{dtype_enum}", None))[0]
    return BundleEntry(
        name=name,
        dtype=dtype_name,
        shape=_shape(pw.first(msg, 2)),
        shard_id=pw.first(msg, 3, 0),
        offset=pw.first(msg, 4, 0),
        size=pw.first(msg, 5, 0),
        crc32c=pw.first(msg, 6, 0),
        sliced=bool(msg.get(7)),
    )


def slice_key_name(key: bytes) -> str | None:
    """The tensor name in an encoded slice key (tensor_slice_util's EncodeTensorNameSlice:
    OrderedCode NumIncreasing(0), String(name), NumIncreasing(rank), then starts/lengths)."""
    if key[:1] != b"\x00":
        return None
    out = bytearray()
    i, n = 1, len(key)
    while i + 1 < n:
        b = key[i]
        if b == 0x00:
            nxt = key[i + 1]
            if nxt == 0x01:  # the string's terminator
                return out.decode("utf-8", "replace")
            if nxt != 0xFF:
                return None
            out.append(0x00)
            i += 2
        elif b == 0xFF:
            if key[i + 1] != 0x00:
                return None
            out.append(0xFF)
            i += 2
        else:
            out.append(b)
            i += 1
    return None


def _index_block(buf: bytes) -> tuple[int, int]:
    """(offset, size) of a table's index block, from its footer; BundleError if not a table."""
    if len(buf) < FOOTER_SIZE:
        raise BundleError(f"file is too short ({len(buf)} bytes)")
    footer = buf[-FOOTER_SIZE:]
    lo, hi = struct.unpack_from("<II", footer, FOOTER_SIZE - 8)
    if (hi << 32 | lo) != TABLE_MAGIC:
        raise BundleError("not a TensorFlow checkpoint table (bad magic number)")
    try:
        _, _, pos = _handle(footer, 0)  # the metaindex handle comes first (unused)
        index_off, index_size, _ = _handle(footer, pos)
    except pw.WireError as e:
        raise BundleError(f"corrupt table footer: {e}") from None
    return index_off, index_size


def iter_table(buf: bytes):
    """Yield (key, value) of every entry of an immutable table (TF's LevelDB-style SSTable)."""
    index_off, index_size = _index_block(buf)
    try:
        for _, handle in _block_entries(buf, index_off, index_size):
            off, size, _ = _handle(handle)
            yield from _block_entries(buf, off, size)
    except pw.WireError as e:
        raise BundleError(f"corrupt table: {e}") from None


def has_table_magic(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < FOOTER_SIZE:
                return False
            f.seek(-8, os.SEEK_END)
            lo, hi = struct.unpack("<II", f.read(8))
    except OSError:
        return False
    return (hi << 32 | lo) == TABLE_MAGIC


def read_file(path: str | os.PathLike) -> bytes:
    """A whole (small) file, unbuffered: fewer system calls than open()'s buffered reader, which
    matters when a scan reads a thousand small index files."""
    with open(path, "rb", buffering=0) as f:
        return f.readall()


def read_index(index_path: str | os.PathLike) -> BundleIndex:
    """Parse ``P.index``. Raises BundleError (with a plain reason) on anything malformed."""
    buf = read_file(index_path)
    header = None
    entries: dict[str, BundleEntry] = {}
    slices: dict[str, list[BundleEntry]] = {}
    if len(SHAPES) > _SHAPES_LIMIT:
        SHAPES.clear()
    shapes = SHAPES
    try:
        for key, value in iter_table(buf):
            if key == b"":
                header = value
            elif key[:1] == b"\x00":  # an encoded slice key of a partitioned variable
                name = slice_key_name(key)
                if name is not None:
                    slices.setdefault(name, []).append(parse_entry(name, value, shapes))
            else:
                name = key.decode("utf-8", "replace")
                entries[name] = parse_entry(name, value, shapes)
    except pw.WireError as e:
        raise BundleError(f"corrupt index: {e}") from None
    if header is None:
        raise BundleError("index has no bundle header")
    try:
        header = pw.fields(header)
    except pw.WireError as e:
        raise BundleError(f"corrupt index header: {e}") from None
    return BundleIndex(
        num_shards=pw.first(header, 1, 1) or 1,
        big_endian=pw.first(header, 2, 0) == 1,
        entries=entries,
        slices=slices,
    )


def lookup_entry(index_path: str | os.PathLike, name: str) -> tuple[BundleIndex, BundleEntry | None]:
    """One tensor's entry without parsing the whole index: the index block's keys separate the
    data blocks (each >= every key of its block), so only the header's block and the block that
    can hold ``name`` are decoded. The returned BundleIndex has just that entry (or none)."""
    with open(index_path, "rb") as f:
        buf = f.read()
    index_off, index_size = _index_block(buf)
    target = name.encode("utf-8")
    header = entry = None
    try:
        for i, (separator, handle) in enumerate(_block_entries(buf, index_off, index_size)):
            if i > 0 and separator < target:
                continue
            off, size, _ = _handle(handle)
            for key, value in _block_entries(buf, off, size):
                if key == b"" and header is None:
                    header = pw.fields(value)
                elif key == target:
                    entry = parse_entry(name, value)
                    break
                elif key > target:
                    break
            if separator >= target:
                break
    except pw.WireError as e:
        raise BundleError(f"corrupt index: {e}") from None
    if header is None:
        raise BundleError("index has no bundle header")
    index = BundleIndex(num_shards=pw.first(header, 1, 1) or 1,
                        big_endian=pw.first(header, 2, 0) == 1,
                        entries={name: entry} if entry is not None else {})
    return index, entry


def _first_table_entry(path: str | os.PathLike) -> tuple[bytes, bytes] | None:
    """The first (key, value) of a table file, reading only its footer, index block and first
    data block (a V1 checkpoint keeps all its tensors in the table: it may be gigabytes)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        n = f.tell()
        if n < FOOTER_SIZE:
            raise BundleError(f"file is too short ({n} bytes)")
        f.seek(n - FOOTER_SIZE)
        footer = f.read(FOOTER_SIZE)
        lo, hi = struct.unpack_from("<II", footer, FOOTER_SIZE - 8)
        if (hi << 32 | lo) != TABLE_MAGIC:
            raise BundleError("not a TensorFlow checkpoint table (bad magic number)")

        def block(off: int, size: int) -> bytes:
            if off < 0 or size < 4 or off + size + BLOCK_TRAILER_SIZE > n:
                raise BundleError("block handle points outside the file")
            f.seek(off)
            return f.read(size + BLOCK_TRAILER_SIZE)

        try:
            _, _, pos = _handle(footer, 0)  # metaindex handle (unused)
            index_off, index_size, _ = _handle(footer, pos)
            for _, handle in _block_entries(block(index_off, index_size), 0, index_size):
                off, size, _ = _handle(handle)
                for key, value in _block_entries(block(off, size), 0, size):
                    return key, value
        except pw.WireError as e:
            raise BundleError(f"corrupt table: {e}") from None
    return None


def read_v1_meta(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every tensor of a V1 (TensorSliceWriter) checkpoint file.

    The table's empty key (sorted first) holds SavedTensorSlices{meta=1: SavedTensorSliceMeta{
    tensor=1: SavedSliceMeta{name=1, shape=2, type=3}}}; only that much of the file is read.
    """
    first = _first_table_entry(path)
    if first is None or first[0] != b"":
        raise BundleError("V1 checkpoint has no metadata entry")
    try:
        meta = pw.fields(pw.first(pw.fields(first[1]), 1, b""))
        out = []
        for tensor in meta.get(1, []):
            t = pw.fields(tensor)
            name = (pw.first(t, 1) or b"").decode("utf-8", "replace")
            dtype = DTYPES.get(pw.first(t, 3, 0), ("unknown", None))[0]
            out.append((name, _shape(pw.first(t, 2)), dtype))
    except pw.WireError as e:
        raise BundleError(f"corrupt V1 checkpoint: {e}") from None
    return sorted(out)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


try:  # a C implementation (SSE4.2/ARMv8 CRC instructions, GIL released on large buffers)
    from crc32c import crc32c as _crc32c_native
except ImportError:  # the pure-Python table below still checks small tensors
    _crc32c_native = None

FAST_CRC32C = _crc32c_native is not None


def crc32c(data: bytes, value: int = 0) -> int:
    """CRC-32C (Castagnoli), as TensorFlow checksums tensor data, continuing from ``value``.
    Without the C package this is a Python loop: meant for small tensors only."""
    if _crc32c_native is not None:
        return _crc32c_native(data, value)
    crc = value ^ 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _zeros_operators(count: int) -> list[list[int]]:
    """The first ``count`` of the 32x32 GF(2) matrices that append 1, 2, 4, 8, ... zero bytes
    to a CRC-32C register (zlib's crc32_combine method, Castagnoli polynomial), kept."""
    ops = _ZEROS_OPERATORS
    if not ops:
        op = [0x82F63B78] + [1 << n for n in range(31)]  # one zero bit
        for _ in range(3):  # -> one zero byte
            op = [_gf2_times(op, row) for row in op]
        ops.append(op)
    while len(ops) < count:
        ops.append([_gf2_times(ops[-1], row) for row in ops[-1]])
    return ops


_ZEROS_OPERATORS: list[list[int]] = []


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32C of A+B from crc(A), crc(B) and len(B): lets parts of a large tensor be
    checksummed on several threads."""
    for op in _zeros_operators(len2.bit_length()):
        if not len2:
            break
        if len2 & 1:
            crc1 = _gf2_times(op, crc1)
        len2 >>= 1
    return crc1 ^ crc2


def mask_crc32c(crc: int) -> int:
    """TensorFlow stores checksums masked (rotated and offset), as LevelDB does."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    return mask_crc32c(crc32c(data))


def read_raw(data_path: str | os.PathLike, entry: BundleEntry, check: bool = False,
             file=None, fd: int | None = None) -> bytes:
    """The stored bytes of ``entry``; with ``check``, BundleError unless they match the checksum
    TensorFlow stored in the index (use for small tensors: the checksum is computed in Python;
    string tensors are not checked, their checksum covers TensorFlow's in-memory lengths).
    ``file`` or ``fd``: the data file already open (several small reads, one open)."""
    if fd is not None:
        raw = os.pread(fd, entry.size, entry.offset)
    elif file is None:
        with open(data_path, "rb") as f:
            f.seek(entry.offset)
            raw = f.read(entry.size)
    else:
        file.seek(entry.offset)
        raw = file.read(entry.size)
    if len(raw) != entry.size:
        raise BundleError(f"{os.path.basename(data_path)} is truncated")
    if check and entry.dtype != "string" and masked_crc32c(raw) != entry.crc32c:
        raise BundleError(f"{os.path.basename(data_path)} {DAMAGED}")
    return raw


def decode_string_tensor(raw: bytes, n_elements: int) -> list[bytes]:
    """Decode a DT_STRING tensor: varint lengths, a 4-byte checksum, then the bytes."""
    pos = 0
    lengths = []
    for _ in range(n_elements):
        length, pos = pw.read_varint(raw, pos)
        lengths.append(length)
    pos += 4
    out = []
    for length in lengths:
        if pos + length > len(raw):
            raise BundleError("string tensor is truncated")
        out.append(raw[pos:pos + length])
        pos += length
    return out


# numpy dtype -> struct format of one value, for scalars decoded without building an array
_STRUCT = {"<f4": "<f", "<f8": "<d", "<i4": "<i", "<i8": "<q", "<u2": "<H", "<u4": "<I",
           "<u8": "<Q", "<i2": "<h", "<f2": "<e", "i1": "b", "u1": "B", "?": "?"}


def decode_scalar(raw: bytes, entry: BundleEntry):
    """A one-element numeric tensor as a Python number (what ``.item()`` of decode_small's
    array gives, without the array); anything else as decode_small decodes it."""
    fmt = _STRUCT.get(entry.numpy_dtype) if entry.dtype in _PLAIN_NUMERIC else None
    if fmt is not None and len(raw) == struct.calcsize(fmt) and math.prod(entry.shape) == 1:
        return struct.unpack(fmt, raw)[0]
    return decode_small(raw, entry)


_PLAIN_NUMERIC = frozenset({"float32", "float64", "int32", "int64", "uint8", "uint16", "uint32",
                            "uint64", "int16", "int8", "float16", "bool"})


def decode_small(raw: bytes, entry: BundleEntry):
    """Decode a small tensor's raw bytes into a numpy array (strings as an object array)."""
    n = int(np.prod(entry.shape)) if entry.shape else 1
    if entry.dtype == "string":
        return np.array(decode_string_tensor(raw, n), dtype=object).reshape(entry.shape)
    np_dtype = entry.numpy_dtype
    if np_dtype is None:
        raise BundleError(f"cannot decode dtype {entry.dtype} without TensorFlow")
    return np.frombuffer(raw, dtype=np_dtype, count=n).reshape(entry.shape)
