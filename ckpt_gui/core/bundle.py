"""Read the index of a TensorFlow V2 checkpoint bundle without TensorFlow.

A V2 checkpoint ``P`` is ``P.index`` (an immutable sorted table, LevelDB's format) mapping each
tensor name to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, checksum), plus data
files ``P.data-K-of-N`` holding the raw bytes. Knowing which shard holds each tensor tells us
exactly which variables a missing shard makes unreadable, without reading a single value.

Reference: tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc} and tsl/lib/io/table_format.
"""
from __future__ import annotations

import math
import operator
import os
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from . import dtypes, entrydecode, fastproto, limits, protowire as pw, storage
from .checksum import masked_crc32c

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5

# DataType enum (tensorflow/core/framework/types.proto, TF 2.21) -> (name as tf.DType.name,
# numpy dtype); the low-precision ones (bfloat16, 24-33) have theirs from ml_dtypes (dtypes.py)
DTYPES: dict[int, tuple[str, str | None]] = {
    1: ("float32", "<f4"), 2: ("float64", "<f8"), 3: ("int32", "<i4"), 4: ("uint8", "u1"),
    5: ("int16", "<i2"), 6: ("int8", "i1"), 7: ("string", None), 8: ("complex64", "<c8"),
    9: ("int64", "<i8"), 10: ("bool", "?"), 11: ("qint8", "i1"), 12: ("quint8", "u1"),
    13: ("qint32", "<i4"), 14: ("bfloat16", None), 15: ("qint16", "<i2"), 16: ("quint16", "<u2"),
    17: ("uint16", "<u2"), 18: ("complex128", "<c16"), 19: ("float16", "<f2"),
    20: ("resource", None), 21: ("variant", None), 22: ("uint32", "<u4"), 23: ("uint64", "<u8"),
    24: ("float8_e5m2", None), 25: ("float8_e4m3fn", None), 26: ("float8_e4m3fnuz", None),
    27: ("float8_e4m3b11fnuz", None), 28: ("float8_e5m2fnuz", None), 29: ("int4", None),
    30: ("uint4", None), 31: ("int2", None), 32: ("uint2", None), 33: ("float4_e2m1fn", None),
}
ITEMSIZE = dtypes.ITEMSIZE  # bytes per element of the dtypes without a numpy one in DTYPES


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
    def numpy_dtype(self) -> str | np.dtype | None:
        return _NUMPY_DTYPE.get(self.dtype) or dtypes.numpy_dtype(self.dtype)


@dataclass
class BundleIndex:
    """A parsed ``.index``: its header and every tensor's entry, as columns in the index's
    (sorted) order, so a scan of a 10,000-variable checkpoint builds no per-entry objects it
    does not need; ``row(i)`` and ``entries`` give BundleEntry tuples. The columns may be
    shared with other indexes of the same layout: never change them."""
    num_shards: int
    big_endian: bool
    names: list[str]
    dtypes: list[str]
    shapes: list[tuple[int, ...]]
    shard_ids: list[int]
    offsets: list[int]
    sizes: list[int]
    crcs: list[int]
    sliced: list[bool]
    # A partitioned (sliced) variable's entry holds no data; each slice has its own entry,
    # possibly in its own shard (tf.train.experimental.MaxShardSizePolicy splits big variables).
    slices: dict[str, list[BundleEntry]] = field(default_factory=dict)
    # What readers derive from the layout alone (everything but checksums), kept by them under
    # their own key; indexes of one layout (read_index) share it, and their column lists.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, num_shards: int, big_endian: bool, entries: list[BundleEntry],
           slices: dict[str, list[BundleEntry]] | None = None) -> "BundleIndex":
        columns = list(zip(*entries)) if entries else [[] for _ in BundleEntry._fields]
        return cls(num_shards, big_endian, *map(list, columns), slices=slices or {})

    def __len__(self) -> int:
        return len(self.names)

    def row(self, i: int) -> BundleEntry:
        return _new_entry(BundleEntry, (
            self.names[i], self.dtypes[i], self.shapes[i], self.shard_ids[i], self.offsets[i],
            self.sizes[i], self.crcs[i], self.sliced[i]))

    @cached_property
    def entries(self) -> dict[str, BundleEntry]:
        """Every entry by name, in index order."""
        return {name: self.row(i) for i, name in enumerate(self.names)}


def data_file_name(prefix_name: str, shard: int, num_shards: int) -> str:
    return f"{prefix_name}.data-{shard:05d}-of-{num_shards:05d}"


def _block_into(buf: bytes, offset: int, size: int, keys: list, starts: list,
                lengths: list) -> None:
    """Append the keys of one table block (prefix-compressed) to ``keys``, and where the
    values lie in ``buf`` to ``starts`` and ``lengths`` (one int64 array each). One loop
    without a generator and without copying values: an index can hold tens of thousands of
    entries."""
    if offset < 0 or size < 4 or offset + size + BLOCK_TRAILER_SIZE > len(buf):
        raise BundleError("block handle points outside the index file")
    compression = buf[offset + size]
    if compression != 0:
        raise BundleError(f"compressed index block (type {compression}) is not supported")
    num_restarts = struct.unpack_from("<I", buf, offset + size - 4)[0]
    limit = offset + size - 4 - 4 * num_restarts
    if limit < offset:
        raise BundleError("corrupt block restart array")
    if limit - offset >= _FAST_BLOCK and _block_fast(buf, offset, limit, keys, starts, lengths):
        return
    read_varint = pw.read_varint
    block_starts: list[int] = []
    block_lengths: list[int] = []
    add_key, add_start, add_length = keys.append, block_starts.append, block_lengths.append
    pos = offset
    key = b""
    while pos < limit:
        # three varints (shared key bytes, new key bytes, value length); almost always one
        # byte each (the block's restart array and trailer follow ``limit``: no IndexError)
        shared, non_shared, value_len = buf[pos], buf[pos + 1], buf[pos + 2]
        if not (shared | non_shared | value_len) & 0x80 and pos + 3 <= limit:
            pos += 3
        else:
            shared, pos = read_varint(buf, pos)
            non_shared, pos = read_varint(buf, pos)
            value_len, pos = read_varint(buf, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise BundleError("corrupt block entry")
        key = key[:shared] + buf[pos:pos + non_shared] if shared else buf[pos:pos + non_shared]
        add_key(key)
        pos += non_shared
        add_start(pos)
        add_length(value_len)
        pos += value_len
    starts.append(np.array(block_starts, dtype=np.int64))
    lengths.append(np.array(block_lengths, dtype=np.int64))


_FAST_BLOCK = 4096  # bytes of entries from which _block_fast pays for its numpy checks


def _block_fast(buf: bytes, offset: int, limit: int, keys: list, starts: list,
                lengths: list) -> bool:
    """What _block_into's loop gives, for a big block whose lengths all fit in one byte (a
    checkpoint's keys and entries: the common case), with less done per entry: this loop only
    follows the entries and rebuilds the keys; numpy then checks, for all entries at once,
    what the careful loop checks as it goes. False, with nothing appended, when the block is
    not like that (the careful loop then decodes it, or says what is wrong)."""
    heads: list[int] = []
    found: list[bytes] = []
    add_head, add_key = heads.append, found.append
    pos = offset
    key = b""
    while pos < limit:  # (the restart array follows ``limit``: no IndexError)
        add_head(pos)
        shared, non_shared, value_len = buf[pos], buf[pos + 1], buf[pos + 2]
        pos += 3 + non_shared
        key = key[:shared] + buf[pos - non_shared:pos]
        add_key(key)
        pos += value_len
    if pos != limit or not heads:
        return False
    head_at = np.array(heads, dtype=np.int64)
    head = np.frombuffer(buf, dtype=np.uint8)[head_at[:, None] + np.arange(3)].astype(np.int64)
    if (head >= 0x80).any():  # a longer varint: the entries were not followed right
        return False
    shared, non_shared, value_len = head[:, 0], head[:, 1], head[:, 2]
    if shared[0] != 0 or (shared[1:] > (shared + non_shared)[:-1]).any():
        return False  # a key sharing more than the one before it has
    keys.extend(found)
    starts.append(head_at + 3 + non_shared)
    lengths.append(value_len)
    return True


def _block_entries(buf: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one table block."""
    keys: list[bytes] = []
    starts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    _block_into(buf, offset, size, keys, starts, lengths)
    return [(k, buf[a:a + n]) for k, a, n in zip(keys, starts[0].tolist(), lengths[0].tolist())]


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


class _DtypeNames(dict):
    def __missing__(self, enum: int) -> str:
        return f"dtype_{enum}"


_DTYPE_NAMES = _DtypeNames({enum: name for enum, (name, _) in DTYPES.items()})
_new_entry = tuple.__new__  # BundleEntry(...) without the keyword-handling constructor


# Raw TensorShapeProto bytes -> shape, shared by every index a scan reads (a folder's
# checkpoints and a model's layers repeat a few shapes); bounded, emptied by clear_caches().
SHAPES: dict[bytes, tuple] = {}
_SHAPES_LIMIT = 1 << 14


def clear_caches() -> None:
    """Forget decoded shapes and index layouts (benchmarks time cold scans)."""
    SHAPES.clear()
    _LAYOUTS.clear()


def parse_entry(name: str, value: bytes) -> BundleEntry:
    """Decode one BundleEntryProto (read_index decodes a whole index at once)."""
    try:
        c = entrydecode.decode_entries(value, [0], [len(value)])
    except entrydecode.DecodeError as e:
        raise pw.WireError(f"corrupt entry for {name}: {e}") from None
    shape = SHAPES.get(c.shape_bytes[0])
    dtype = c.dtypes[0]
    return _new_entry(BundleEntry, (
        name, _DTYPE_NAMES[dtype],
        shape if shape is not None else _cache_shape(c.shape_bytes[0]), c.shard_ids[0],
        c.offsets[0], c.sizes[0], c.crcs[0], c.sliced[0]))


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


def table_entries(buf: bytes, blocks: list | None = None
                  ) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """The keys of every entry of an immutable table (TF's LevelDB-style SSTable), in order,
    and where each one's value lies in ``buf`` (starts, lengths: int64 arrays); each block's
    (offset, size) is appended to ``blocks`` when given."""
    index_off, index_size = _index_block(buf)
    keys: list[bytes] = []
    starts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    try:
        for _, handle in _block_entries(buf, index_off, index_size):
            off, size, _ = _handle(handle)
            _block_into(buf, off, size, keys, starts, lengths)
            if blocks is not None:
                blocks.append((off, size))
    except pw.WireError as e:
        raise BundleError(f"corrupt table: {e}") from None
    if blocks is not None:
        blocks.append((index_off, index_size))
        meta_off, meta_size, _ = _handle(buf[-FOOTER_SIZE:])
        blocks.append((meta_off, meta_size))
    if len(starts) == 1:
        return keys, starts[0], lengths[0]
    empty = np.zeros(0, np.int64)
    return keys, np.concatenate([empty, *starts]), np.concatenate([empty, *lengths])


def has_table_magic(path: str | os.PathLike) -> bool:
    try:
        return ends_with_table_magic(storage.read_ends(path, 0, 8)[1])
    except OSError:
        return False


def ends_with_table_magic(tail: bytes) -> bool:
    """Whether a file's last bytes (at least 8) are an immutable table's footer magic."""
    if len(tail) < 8:
        return False
    lo, hi = struct.unpack("<II", tail[-8:])
    return (hi << 32 | lo) == TABLE_MAGIC


# A descriptor of a regular file for storage.read_fd, and its stat; storage.close closes it.
# storage.UnreadableFile (an OSError saying why) otherwise.
open_fd = storage.open_regular


def read_file_stat(path: str | os.PathLike) -> tuple[bytes, os.stat_result]:
    """A whole index file and its stat, in four system calls (open, fstat, read, close): a
    scan reads a thousand small index files, and needs their sizes and times anyway. An index
    bigger than the memory budget is refused before it is read."""
    return storage.read_small(path, limits.memory_budget())


def read_file(path: str | os.PathLike) -> bytes:
    return read_file_stat(path)[0]


def read_index(index_path: str | os.PathLike) -> BundleIndex:
    """Parse ``P.index``. Raises BundleError (with a plain reason) on anything malformed."""
    return index_from_bytes(read_file(index_path))


def index_from_bytes(buf: bytes) -> BundleIndex:
    """An index file's decoding.

    The checkpoints of one training run share an index layout: the same tensors at the same
    offsets, only the checksums differ. An index equal, outside its checksums, to one read
    before reuses that one's decoding (see _Layout), so a folder of a thousand checkpoints
    decodes its layout once."""
    seen = _LAYOUTS.get(len(buf))
    if seen is not None:
        index = seen.reuse(buf)
        if index is not None:
            return index
    index = parse_index(buf)
    if len(_LAYOUTS) >= _LAYOUTS_LIMIT or sum(_LAYOUTS) + len(buf) > _LAYOUTS_BYTES:
        _LAYOUTS.clear()  # (the keys are the files' sizes)
    _LAYOUTS[len(buf)] = _Layout(buf, index)
    return index


def parse_index(buf: bytes, blocks: list | None = None) -> BundleIndex:
    """Decode a whole index file's bytes (``blocks``: see table_entries)."""
    keys, starts, lengths = table_entries(buf, blocks)
    if not keys or keys[0] != b"":  # the header's empty key sorts first
        raise BundleError("index has no bundle header")
    try:
        start, length = int(starts[0]), int(lengths[0])
        header = pw.fields(buf[start:start + length])
    except pw.WireError as e:
        raise BundleError(f"corrupt index header: {e}") from None
    # Encoded slice keys of partitioned variables start with a zero byte: they sort next.
    first = 1
    while first < len(keys) and keys[first][:1] == b"\x00":
        first += 1
    slices: dict[str, list[BundleEntry]] = {}
    try:
        for key, start, length in zip(keys[1:first], starts[1:first].tolist(),
                                      lengths[1:first].tolist()):
            name = slice_key_name(key)
            if name is not None:
                slices.setdefault(name, []).append(
                    parse_entry(name, buf[start:start + length]))
        columns = entrydecode.decode_entries(buf, starts[first:], lengths[first:])
    except (pw.WireError, entrydecode.DecodeError) as e:
        raise BundleError(f"corrupt index: {e}") from None
    keys = keys[first:]
    joined = b"\n".join(keys).decode("utf-8", "replace")
    names = joined.split("\n") if joined.count("\n") == len(keys) - 1 else [
        k.decode("utf-8", "replace") for k in keys]  # a name holding a newline: one by one
    if len(SHAPES) > _SHAPES_LIMIT:
        SHAPES.clear()
    for raw in set(columns.shape_bytes).difference(SHAPES):  # a model repeats a few shapes
        _cache_shape(raw)
    return BundleIndex(
        num_shards=_num_shards(header),
        big_endian=pw.first(header, 2, 0) == 1,
        names=names,
        dtypes=list(map(_DTYPE_NAMES.__getitem__, columns.dtypes)),
        shapes=list(map(SHAPES.__getitem__, columns.shape_bytes)),
        shard_ids=columns.shard_ids, offsets=columns.offsets,
        sizes=columns.sizes, crcs=columns.crcs, sliced=columns.sliced, slices=slices)


MAX_SHARDS = 99_999  # TensorFlow names data files P.data-K-of-N with five digits


def _num_shards(header: dict) -> int:
    """The header's shard count; BundleError for one no data file name can carry (a hostile
    index could declare a billion, each then looked for)."""
    n = pw.first(header, 1, 1) or 1
    if not 0 < n <= MAX_SHARDS:
        raise BundleError(f"corrupt index header: it declares {n} data files")
    return n


class _Layout:
    """An index file's bytes and decoding, and -- once a second file of its size comes --
    where its checksums are: each entry's crc32c (a fixed32, TensorFlow's last field) and each
    block trailer's. A file equal to it outside those bytes has the same entries except their
    checksums (a checksum's four bytes are opaque: any value parses the same way). One
    struct.Struct cuts a file into the bytes between checksums and the checksums, in C."""

    def __init__(self, buf: bytes, index: BundleIndex):
        self.buf, self.index = buf, index
        self.cut: struct.Struct | None = None  # -> (bytes, checksum, bytes, checksum, ..., bytes)
        self.between: tuple[bytes, ...] = ()   # the bytes between checksums, in this file
        self.crcs = None                       # (cut parts) -> the rows' checksums
        self.learned = False

    def _learn(self) -> None:
        self.learned = True
        index, buf = self.index, self.buf
        if index.slices or any(index.sliced) or not len(index):
            return
        blocks: list[tuple[int, int]] = []
        _, starts, lengths = table_entries(buf, blocks)
        first = len(starts) - len(index)  # the rows' values follow the header's
        marks = [(off + size + 1, None) for off, size in blocks]  # trailer: type, masked crc
        for row, (start, length, crc) in enumerate(zip(starts[first:].tolist(),
                                                       lengths[first:].tolist(), index.crcs)):
            end = start + length
            if length >= 5 and buf[end - 5] == 0x35 \
                    and int.from_bytes(buf[end - 4:end], "little") == crc:
                marks.append((end - 4, row))
            elif crc != 0:  # (proto3 leaves a zero checksum out)
                return      # a layout this reuse does not know
        fmt, at, item = ["<"], 0, 0
        items: dict[int, int] = {}  # row -> where its checksum is among the cut parts
        for pos, row in sorted(marks):
            if pos < at or pos + 4 > len(buf):  # (the footer's metaindex handle is not checked)
                return
            fmt.append(f"{pos - at}sI")
            if row is not None:
                items[row] = item + 1
            item, at = item + 2, pos + 4
        fmt.append(f"{len(buf) - at}s")
        self.cut = struct.Struct("".join(fmt))
        self.between = self.cut.unpack(buf)[0::2]
        if len(items) == len(index):
            pick = operator.itemgetter(*(items[row] for row in range(len(index))))
            self.crcs = (lambda parts: list(pick(parts))) if len(items) > 1 \
                else (lambda parts: [parts[items[0]]])
        else:  # some rows keep a zero checksum
            known = list(index.crcs)
            self.crcs = lambda parts: [parts[items[r]] if r in items else c
                                       for r, c in enumerate(known)]

    def reuse(self, buf: bytes) -> BundleIndex | None:
        """The decoding of ``buf`` if it has this layout, else None."""
        if not self.learned:
            self._learn()
        if self.cut is None:
            return None
        parts = self.cut.unpack(buf)
        if parts[0::2] != self.between:
            return None
        i = self.index
        return BundleIndex(i.num_shards, i.big_endian, i.names, i.dtypes, i.shapes, i.shard_ids,
                           i.offsets, i.sizes, self.crcs(parts), i.sliced, i.slices, i.memo)


# File size -> the layout last decoded at that size (bounded, emptied by clear_caches()).
_LAYOUTS: dict[int, _Layout] = {}
_LAYOUTS_LIMIT = 256
_LAYOUTS_BYTES = 64 << 20  # index files kept, in all (a big model's index is megabytes)


def _cache_shape(raw: bytes) -> tuple[int, ...]:
    """Decode a TensorShapeProto and remember it in SHAPES."""
    if fastproto.AVAILABLE:
        try:
            dims = fastproto.TensorShapeProto.FromString(raw).dim
        except fastproto.DecodeError as e:
            raise BundleError(f"corrupt index: bad shape: {e}") from None
        shape = tuple([d.size for d in dims])
    else:
        try:
            shape = _shape(raw)
        except pw.WireError as e:
            raise BundleError(f"corrupt index: bad shape: {e}") from None
    SHAPES[raw] = shape
    return shape


def lookup_entry(index_path: str | os.PathLike, name: str) -> tuple[BundleIndex, BundleEntry | None]:
    """One tensor's entry without parsing the whole index: the index block's keys separate the
    data blocks (each >= every key of its block), so only the header's block and the block that
    can hold ``name`` are decoded. The returned BundleIndex has just that entry (or none)."""
    buf = read_file(index_path)
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
    index = BundleIndex.of(_num_shards(header), pw.first(header, 2, 0) == 1,
                           [entry] if entry is not None else [])
    return index, entry


def _first_table_entry(path: str | os.PathLike) -> tuple[bytes, bytes] | None:
    """The first (key, value) of a table file, reading only its footer, index block and first
    data block (a V1 checkpoint keeps all its tensors in the table: it may be gigabytes)."""
    with storage.open_file(path) as f:
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


def itemsize(dtype: str) -> int | None:
    """Bytes per element of a fixed-size dtype (None: strings, resources, unknown)."""
    np_dtype = _NUMPY_DTYPE.get(dtype)
    return np.dtype(np_dtype).itemsize if np_dtype else ITEMSIZE.get(dtype)


STRING_OVERHEAD = 32  # bytes TensorFlow keeps per string element, besides its characters


def memory_needed(dtype: str, shape: tuple[int, ...], size: int) -> int:
    """Bytes a tensor takes once read (a string tensor: its stored bytes and one string object
    per element)."""
    n = math.prod(max(d, 0) for d in shape)
    per_item = itemsize(dtype)
    return n * per_item if per_item is not None else size + n * STRING_OVERHEAD


def entry_problem(entry: BundleEntry, data_size: int, data_name: str) -> str | None:
    """Why ``entry`` cannot be what it says, before anything is read: an unknown dimension, a
    numeric tensor whose stored size is not its element count times its item size, a string
    tensor shorter than its element count (one length byte each), data past the end of its
    file (``data_size`` bytes, named ``data_name``). An index from a hostile folder can declare
    any size; TensorFlow allocates what it declares."""
    shape = entry.shape
    if any(d < 0 for d in shape):
        return f"its index entry has an unknown dimension (shape {list(shape)})"
    n = math.prod(shape)
    per_item = itemsize(entry.dtype)
    if per_item is not None and n * per_item != entry.size:
        return (f"its index entry is inconsistent: shape {list(shape)} of {entry.dtype} takes "
                f"{n * per_item} bytes, the entry says {entry.size}")
    if entry.dtype == "string" and entry.size < n:
        return (f"its index entry is inconsistent: {n} strings cannot be stored in "
                f"{entry.size} bytes")
    if entry.offset + entry.size > data_size:
        return f"{data_name} is truncated"
    return None


def read_raw(data_path: str | os.PathLike, entry: BundleEntry, check: bool = False,
             file=None, fd: int | None = None) -> bytes:
    """The stored bytes of ``entry``; with ``check``, BundleError unless they match the checksum
    TensorFlow stored in the index (use for small tensors: the checksum is computed in Python;
    string tensors are not checked, their checksum covers TensorFlow's in-memory lengths).
    ``file`` or ``fd``: the data file already open (several small reads, one open)."""
    limits.check_fits(entry.name, entry.size)
    if fd is not None:
        raw = storage.read_fd(fd, entry.size, entry.offset)
    elif file is None:
        raw = storage.read_range(data_path, entry.offset, entry.size)
    else:
        file.seek(entry.offset)
        raw = file.read(entry.size)
    problem = _problem(raw, entry, os.path.basename(data_path), check)
    if problem is not None:
        raise problem
    return raw


def _problem(raw: bytes, entry: BundleEntry, data_name: str, check: bool = True
             ) -> BundleError | None:
    """Why ``raw``, read for ``entry``, is not its data: too short, or (``check``) failing its
    checksum."""
    if len(raw) != entry.size:
        return BundleError(f"{data_name} is truncated")
    if check and entry.dtype != "string" and masked_crc32c(raw) != entry.crc32c:
        return BundleError(f"{data_name} {DAMAGED}")
    return None


def read_entries(fd: int, data_name: str, entries: list[BundleEntry]
                 ) -> list[bytes | BundleError]:
    """The checked stored bytes of several small tensors of one data file (``fd``), in one
    read when they lie close together (a checkpoint's counters); each is its bytes or the
    BundleError saying why it cannot be read (``data_name`` names the file in it)."""
    if not entries:
        return []
    lo = min(e.offset for e in entries)
    hi = max(e.offset + e.size for e in entries)
    span = storage.read_fd(fd, hi - lo, lo) if hi - lo <= 1 << 20 else None
    out: list[bytes | BundleError] = []
    budget = limits.memory_budget()
    for e in entries:
        if span is None and e.size > budget:
            out.append(BundleError(f"{e.name} declares {e.size} bytes, more than the memory "
                                   "budget"))
            continue
        raw = span[e.offset - lo:e.offset - lo + e.size] if span is not None \
            else storage.read_fd(fd, e.size, e.offset)
        out.append(_problem(raw, e, data_name) or raw)
    return out


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


def scalar_struct(dtype: str, shape: tuple[int, ...], size: int) -> struct.Struct | None:
    """The struct that decodes a one-element numeric tensor of ``dtype`` stored in ``size``
    bytes (its one value: ``.unpack(raw)[0]``), else None."""
    fmt = _STRUCT.get(_NUMPY_DTYPE.get(dtype)) if dtype in _PLAIN_NUMERIC else None
    if fmt is None or math.prod(shape) != 1:
        return None
    packer = _STRUCTS.get(fmt)
    if packer is None:
        packer = _STRUCTS[fmt] = struct.Struct(fmt)
    return packer if packer.size == size else None


_STRUCTS: dict[str, struct.Struct] = {}


def decode_scalar(raw: bytes, entry: BundleEntry):
    """A one-element numeric tensor as a Python number (what ``.item()`` of decode_small's
    array gives, without the array); anything else as decode_small decodes it."""
    packer = scalar_struct(entry.dtype, entry.shape, len(raw))
    return packer.unpack(raw)[0] if packer is not None else decode_small(raw, entry)


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
