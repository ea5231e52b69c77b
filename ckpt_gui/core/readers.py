"""The tensor readers the formats use: V2 bundles (read and checksum-verified here, else by
TensorFlow), V1 SSTables, Keras HDF5 files; and verifying a checkpoint by reading every tensor.
``reading`` hands each checkpoint to its format, which calls these.

TF formats are read with ``tf.raw_ops.RestoreV2`` run eagerly: it checks TensorFlow's stored
checksums, reads V1 files too, and (unlike CheckpointReader.get_tensor) releases the GIL while it
reads, so a GUI thread keeps turning while a worker loads a large tensor.
"""
from __future__ import annotations

import math
import mmap
import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import closing

import numpy as np

from . import bundle, checksum, hdf5, health, limits, storage
from .inspect import status_from_counts
from .model import CheckpointInfo, VariableInfo
from .tfrt import tf


class ReadError(RuntimeError):
    """A tensor cannot be read; the message says why in plain words."""


MISSING = "its data file is missing"
DAMAGED = "its data fails TensorFlow's checksum (the data file is damaged)"


_TF_NOISE = re.compile(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]\s*$")


def _tf_error_text(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    first = _TF_NOISE.sub("", first) or type(e).__name__  # "{{function_node ...}}", "[Op:X]"
    if "No such file" in first or "NOT_FOUND" in first or "Not found" in first:
        return MISSING
    if "checksum" in first.lower() or "crc" in first.lower():
        return DAMAGED
    return first[:300]


def _as_numpy(value) -> np.ndarray:
    """The tensor's values without a copy: ``np.asarray`` views TensorFlow's buffer and keeps the
    tensor alive through the array's base (``.numpy()`` would copy: 400 MB more for a 400 MB
    tensor). Strings and other non-numeric dtypes come back as TensorFlow converts them."""
    if value.dtype.is_floating or value.dtype.is_integer or value.dtype.is_complex \
            or value.dtype.is_bool:
        return np.asarray(value)
    return value.numpy()


def read_tf_tensor(prefix: str, name: str, dtype: str) -> np.ndarray:
    if storage.is_url(prefix):  # TensorFlow cannot read s3:// (nor gs:// at another endpoint)
        return read_bundle_by_range(prefix, name)
    t = tf()
    try:
        with t.device("/cpu:0"):
            (value,) = t.raw_ops.RestoreV2(prefix=prefix, tensor_names=[name],
                                           shape_and_slices=[""], dtypes=[t.as_dtype(dtype)])
        array = _as_numpy(value)
    except (t.errors.OpError, ValueError, TypeError) as e:
        raise ReadError(_tf_error_text(e)) from None
    if not isinstance(array, np.ndarray):  # a scalar string comes back as bytes
        array = np.array(array, dtype=object if isinstance(array, bytes) else None)
    return array


def read_bundle_by_range(prefix: str, name: str) -> np.ndarray:
    """A tensor of a V2 bundle in a bucket, read by its byte range and checked against its
    checksum without TensorFlow; ReadError when that cannot be done."""
    try:
        index, entry = bundle.lookup_entry(prefix + ".index", name)
    except (OSError, bundle.BundleError) as e:
        raise ReadError(str(e)) from None
    if entry is None:
        raise ReadError(f"the checkpoint has no tensor {name}")
    if entry.sliced or index.big_endian:
        raise ReadError("a partitioned or big-endian tensor cannot be read from a bucket: "
                        "copy the checkpoint to a local folder")
    with closing(DataFiles(prefix, index.num_shards)) as files:
        files.check(entry)
        array = read_verified(files, entry, False)
        if array is not None:
            return array
        try:
            raw = bundle.read_raw(files.name(entry.shard_id), entry, check=True,
                                  fd=files.file(entry.shard_id)[0])
            return bundle.decode_small(raw, entry)
        except (OSError, bundle.BundleError) as e:
            raise ReadError(str(e)) from None


def read_keras_tensor(ckpt: CheckpointInfo, var: VariableInfo, open_weights) -> np.ndarray:
    """A dataset of a Keras HDF5 file (or of the weights of a .keras archive or directory),
    opened by ``open_weights(ckpt.path)``."""
    try:
        with open_weights(ckpt.path) as f:
            return hdf5.read_dataset(f, var.name)
    except Exception as e:
        raise ReadError(str(e) or type(e).__name__) from None


def read_keras_chunks(ckpt: CheckpointInfo, var: VariableInfo, open_weights, max_bytes: int
                      ) -> Iterator[np.ndarray]:
    """read_keras_tensor's values in C order, in pieces of at most ``max_bytes``."""
    try:
        with open_weights(ckpt.path) as f:
            yield from hdf5.iter_dataset(f, var.name, max_bytes)
    except Exception as e:
        raise ReadError(str(e) or type(e).__name__) from None


def read_v1_tensor(ckpt: CheckpointInfo, var: VariableInfo) -> np.ndarray:
    """A tensor of a TF1 V1 SSTable: TensorFlow reads it, when it fits the memory budget."""
    _check_fits(var.name, bundle.memory_needed(var.dtype, var.shape, 0))
    return read_tf_tensor(ckpt.path, var.name, var.dtype)


def read_bundle_tensor(ckpt: CheckpointInfo, var: VariableInfo) -> np.ndarray:
    """A tensor of a V2 bundle: read and checksum-verified here when its entry allows, else by
    TensorFlow."""
    try:
        index, entry = bundle.lookup_entry(ckpt.path + ".index", var.name)
    except (OSError, bundle.BundleError) as e:
        raise ReadError(str(e)) from None
    if entry is None:
        return read_tf_tensor(ckpt.path, var.name, var.dtype)  # it words the absence
    with closing(DataFiles(ckpt.path, index.num_shards)) as files:
        files.check(entry, _slices(ckpt.path, entry))
        array = read_verified(files, entry, index.big_endian)
    if array is not None:
        return array
    return read_tf_tensor(ckpt.path, var.name, var.dtype)


def read_bundle_chunks(ckpt: CheckpointInfo, var: VariableInfo, max_bytes: int,
                       out: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """A tensor of a V2 bundle as flat pieces in C order of at most ``max_bytes`` each, read by
    byte ranges of its data file: the tensor is never whole in memory. A piece lives in a
    buffer reused once the piece after it is asked for (a fresh allocation per piece
    costs more in page faults than its read): keep a copy of what must outlive it. The
    entry's CRC32C is computed as the pieces arrive and a mismatch raises ReadError after the
    last piece, so a result made from damaged data is never kept. ``out`` (a flat array of
    the entry's type and size): the pieces are read into it instead. A tensor this cannot read so (a
    string, partitioned or big-endian tensor; no C CRC32C to check it) comes whole from
    read_bundle_tensor."""
    try:
        index, entry = bundle.lookup_entry(ckpt.path + ".index", var.name)
    except (OSError, bundle.BundleError) as e:
        raise ReadError(str(e)) from None
    if (entry is None or entry.sliced or index.big_endian or entry.numpy_dtype is None
            or not checksum.FAST_CRC32C or not hasattr(os, "preadv")):
        yield read_bundle_tensor(ckpt, var)
        return
    with closing(DataFiles(ckpt.path, index.num_shards)) as files:
        files.check(entry, whole=False)
        fd, _ = files.file(entry.shard_id)
        dtype = np.dtype(entry.numpy_dtype)
        step = max(max_bytes // dtype.itemsize, 1) * dtype.itemsize
        spans = [(lo, min(lo + step, entry.size)) for lo in range(0, entry.size, step)]
        crc = 0
        if out is not None and (out.dtype != dtype or out.nbytes != entry.size
                                or not out.flags.c_contiguous):
            out = None
        into = out.reshape(-1).view(np.uint8) if out is not None else None
        for lo, hi, buffer, piece_crc in _prefetched(fd, entry.offset, spans, into):
            if piece_crc is None:
                raise ReadError(f"{os.path.basename(files.name(entry.shard_id))} is truncated")
            crc = checksum.crc32c_combine(crc, piece_crc, hi - lo) if lo else piece_crc
            yield buffer[: hi - lo].view(dtype)
        if checksum.mask_crc32c(crc) != entry.crc32c:
            raise ReadError(f"{os.path.basename(files.name(entry.shard_id))} {bundle.DAMAGED}")


def _prefetched(fd: int, offset: int, spans: list[tuple[int, int]],
                into: np.ndarray | None = None):
    """(lo, hi, buffer, CRC32C or None if the file ends early) for each
    byte span of the file from ``offset``, the next span read on a second thread while the
    caller works on this one (pread and the C CRC32C release the GIL): into two buffers, each
    reused every other span, or into ``into`` (bytes, a span's at its place: ``buffer`` is
    then ``into[lo:hi]``)."""
    if not spans:
        return
    from concurrent.futures import ThreadPoolExecutor

    if into is None:
        size = max(hi - lo for lo, hi in spans)
        buffers = [np.empty(size, np.uint8) for _ in range(min(2, len(spans)))]

    def buffer(k: int) -> np.ndarray:
        return buffers[k % len(buffers)] if into is None else into[spans[k][0]:spans[k][1]]

    def read(k: int):
        lo, hi = spans[k]
        return _read_part(fd, offset + lo, memoryview(buffer(k)), 0, hi - lo)

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, 0)
        for k, (lo, hi) in enumerate(spans):
            crc = pending.result()
            if k + 1 < len(spans):
                pending = pool.submit(read, k + 1)
            yield lo, hi, buffer(k), crc
            if crc is None:
                return


def _slices(prefix: str, entry: bundle.BundleEntry) -> list[bundle.BundleEntry] | None:
    """A partitioned variable's slices (from the whole index: they are rare), else None."""
    if not entry.sliced:
        return None
    try:
        return bundle.read_index(prefix + ".index").slices.get(entry.name, [])
    except (OSError, bundle.BundleError) as e:
        raise ReadError(str(e)) from None


def _check_fits(name: str, nbytes: int) -> None:
    try:
        limits.check_fits(name, nbytes)
    except limits.OverBudget as e:
        raise ReadError(str(e)) from None


class DataFiles:
    """The data files of a V2 checkpoint, opened only as regular files (storage), each once,
    and the checks an entry passes before TensorFlow or numpy reads it: TensorFlow would open
    a FIFO and block, read /dev/zero without end, and allocate whatever an index declares."""

    def __init__(self, prefix: str, num_shards: int):
        self.prefix, self.num_shards = prefix, num_shards
        self._files: dict[int, tuple[int, int] | str] = {}  # shard -> (fd, size) or problem

    def file(self, shard: int) -> tuple[int, int]:
        """(open descriptor, size) of data file ``shard``; ReadError saying why not."""
        if not 0 <= shard < self.num_shards:
            raise ReadError(f"shard {shard} is out of range")
        got = self._files.get(shard)
        if got is None:
            try:
                fd, st = storage.open_regular(self.name(shard))
                got = (fd, st.st_size)
            except OSError as e:
                got = str(e)
            self._files[shard] = got
        if isinstance(got, str):
            raise ReadError(got)
        return got

    def name(self, shard: int) -> str:
        return bundle.data_file_name(self.prefix, shard, self.num_shards)

    def check(self, entry: bundle.BundleEntry,
              parts: list[bundle.BundleEntry] | None = None, whole: bool = True) -> None:
        """ReadError unless ``entry`` can be read as it says: its data in regular files, within
        them, its sizes consistent, and (read ``whole``) it fits the memory budget. A
        partitioned variable's ``parts``: its slices' entries."""
        if not entry.sliced:
            _, size = self.file(entry.shard_id)
            problem = bundle.entry_problem(entry, size, os.path.basename(self.name(
                entry.shard_id)))
            if problem:
                raise ReadError(problem)
            stored = entry.size
        else:
            for part in parts or ():
                if part.offset + part.size > self.file(part.shard_id)[1]:
                    raise ReadError(f"{os.path.basename(self.name(part.shard_id))} is truncated")
            stored = sum(p.size for p in parts or ())
        if whole:
                _check_fits(entry.name, bundle.memory_needed(entry.dtype, entry.shape, stored))

    def close(self) -> None:
        for got in self._files.values():
            if not isinstance(got, str):
                storage.close(got[0])
        self._files.clear()


READ_CHUNK = 1 << 20  # bytes per read: checksummed while still in cache
READ_PART = 64 << 20  # tensors above this are read in parallel parts, one per core


def read_verified(files: DataFiles, entry: bundle.BundleEntry, big_endian: bool
                  ) -> np.ndarray | None:
    """A numeric, unsliced V2 tensor (``entry``, checked by ``files.check``) read straight
    from its data file with numpy, its CRC32C checked against the index the way TensorFlow
    checks it; None whenever that cannot be done quickly and exactly (no C CRC32C, a
    string/bfloat16/sliced/big-endian tensor, a short file or a failing checksum), and the
    caller then reads through TensorFlow, which words the problem. Unverified data is never
    returned.

    Why: RestoreV2 takes about as long as TF's reader; plain reads plus a hardware CRC, in
    parallel parts, take about half of that for a large tensor. The result is a fresh array
    (_empty) marked read-only, like the TensorFlow-backed one."""
    if not checksum.FAST_CRC32C or not hasattr(os, "preadv"):
        return None
    if entry.sliced or big_endian or entry.numpy_dtype is None:
        return None
    array = _empty(entry.shape, np.dtype(entry.numpy_dtype))
    fd, _ = files.file(entry.shard_id)
    try:
        crc = _read_with_crc(fd, entry.offset, memoryview(array.reshape(-1).view(np.uint8)))
    except OSError:
        return None
    if crc is None or checksum.mask_crc32c(crc) != entry.crc32c:
        return None
    array.flags.writeable = False
    return array


_large_reads = 0  # large tensors this process has read (_empty)


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialized array: numpy's own (transparent huge pages for a large one), except for
    the process's first large tensor, which goes to private anonymous memory of ordinary pages.

    Why, as measured on the machines here (virtualized, 2 cores): faulting in 400 MB of huge
    pages takes 40-200 ms once a process has freed some, against 220-400 ms for ordinary pages
    (a diff or a history reads tensor after tensor: 2.0x TF's reader with ordinary pages, 1.2x
    with huge pages); but a process's first huge pages often take 0.5-1.4 s (right after
    ``import tensorflow`` every time), so a one-shot ``show`` reads its tensor into ordinary
    pages. The mapping is freed with the last array that views it."""
    global _large_reads
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes <= READ_PART or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype)
    _large_reads += 1
    if _large_reads > 1:
        return np.empty(shape, dtype)
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype).reshape(shape)


def _read_with_crc(fd: int, offset: int, out: memoryview) -> int | None:
    """Fill ``out`` from the open file ``fd`` at ``offset``; the CRC32C of the bytes, or None if the file
    ends early. A large tensor is read as one contiguous part per core (pread and the C CRC32C
    both release the GIL: copying from the page cache is the cost, and it scales), the parts'
    checksums then combined into the whole one."""
    workers = min(os.cpu_count() or 1, 4) if len(out) > READ_PART else 1
    step = max(-(-len(out) // workers), 1)  # (an empty tensor: one empty part)
    spans = [(lo, min(lo + step, len(out))) for lo in range(0, len(out), step)] or [(0, 0)]
    if len(spans) == 1:
        crcs = [_read_part(fd, offset, out, *spans[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(spans)) as pool:
            crcs = list(pool.map(lambda span: _read_part(fd, offset, out, *span), spans))
    if any(c is None for c in crcs):
        return None
    crc = crcs[0]
    for (lo, hi), part_crc in zip(spans[1:], crcs[1:]):
        crc = checksum.crc32c_combine(crc, part_crc, hi - lo)
    return crc


def _read_part(fd: int, offset: int, out: memoryview, lo: int, hi: int) -> int | None:
    """Read out[lo:hi] from the file at offset+lo in cache-sized chunks, each checksummed right
    after it arrives; its CRC32C, or None if the file ends early.
    In a bucket the span comes in concurrent range requests, then is checksummed."""
    if storage.is_remote(fd):
        part = out[lo:hi]
        if fd.readinto(offset + lo, part) < len(part):
            return None
        return checksum.crc32c(part)
    crc = 0
    for start in range(lo, hi, READ_CHUNK):
        chunk = out[start:min(start + READ_CHUNK, hi)]
        filled = 0
        while filled < len(chunk):
            got = os.preadv(fd, [chunk[filled:]], offset + start + filled)
            if not got:
                return None
            filled += got
        crc = checksum.crc32c(chunk, crc)
    return crc


def verify_with_tensorflow(ckpt: CheckpointInfo, guard: "_Guard", sharded: bool,
                           progress, cancelled) -> CheckpointInfo:
    """Verify a TF checkpoint through TensorFlow, each tensor checked first by ``guard``;
    ``sharded``: its data lies in P.data-K-of-N files (a problem names the shard)."""
    with closing(guard):
        def read(v):
            guard(v)
            try:
                return read_tf_tensor(ckpt.path, v.name, v.dtype)
            except ReadError as e:
                raise ReadError(_name_the_file(ckpt, v, str(e), sharded)) from None
        return verify_variables(ckpt, read, progress, cancelled)


def verify_keras_file(ckpt: CheckpointInfo, open_weights, progress,
                      cancelled) -> CheckpointInfo:
    """Verify a Keras HDF5 file (or the weights of a .keras archive or directory, opened by
    ``open_weights(ckpt.path)``) with h5py."""
    try:
        with open_weights(ckpt.path) as f:
            return verify_variables(ckpt, lambda v: hdf5.read_dataset(f, v.name), progress,
                                    cancelled)
    except Exception as e:  # the file itself cannot be opened: nothing is readable
        def fail(v, reason=str(e) if isinstance(e, storage.UnreadableFile)
                 else f"the file cannot be opened: {str(e) or type(e).__name__}"):
            raise ReadError(reason)
        return verify_variables(ckpt, fail, progress, cancelled)


class _Guard:
    """Called with a variable before TensorFlow reads it: ReadError if it must not be read
    (see DataFiles.check); ``close()`` closes the data files it opened."""

    def __init__(self, check, files: DataFiles | None = None):
        self._check, self._files = check, files

    def __call__(self, v) -> None:
        self._check(v)

    def close(self) -> None:
        if self._files is not None:
            self._files.close()


def memory_guard() -> _Guard:
    """Refuses a tensor that does not fit the memory budget (a V1 SSTable: no data files)."""
    return _Guard(lambda v: _check_fits(v.name, bundle.memory_needed(v.dtype, v.shape, 0)))


def bundle_guard(ckpt: CheckpointInfo) -> _Guard:
    """Refuses a tensor of a V2 bundle whose data file is missing, short or not regular."""
    try:
        index = bundle.read_index(ckpt.path + ".index")
    except (OSError, bundle.BundleError) as e:
        def refuse(v, reason=str(e)):
            raise ReadError(reason)
        return _Guard(refuse)
    files, entries = DataFiles(ckpt.path, index.num_shards), index.entries

    def check(v):
        entry = entries.get(v.name)
        if entry is not None:
            files.check(entry, index.slices.get(v.name, []))
    return _Guard(check, files)


_SHARDS = re.compile(r"\.data-\d{5}-of-(\d{5})$")


def _name_the_file(ckpt: CheckpointInfo, v, text: str, sharded: bool) -> str:
    """Say which file a missing or damaged tensor lives in, as the index-based problems do."""
    if text not in (MISSING, DAMAGED):
        return text
    fname = os.path.basename(ckpt.path)
    if sharded:
        total = next((int(m.group(1)) for f in ckpt.files if (m := _SHARDS.search(f.name))), None)
        if total is None or v.shard is None:
            return text
        fname = bundle.data_file_name(fname, v.shard, total)
    return f"{fname} is missing" if text == MISSING else f"{fname} {bundle.DAMAGED}"


_COUNTED = re.compile(r"^(?P<problem>.*): \d+ of \d+ variables cannot be read$")


def verify_variables(ckpt: CheckpointInfo, read, progress, cancelled) -> CheckpointInfo:
    """Read every variable of ``ckpt`` with ``read(variable)``; mark each readable or not and
    the checkpoint's status from what reading found."""
    failures: Counter[str] = Counter()
    n = ckpt.n_variables
    readable = 0
    for i, v in enumerate(ckpt.variables):
        if cancelled is not None and cancelled():
            return ckpt
        if progress is not None:
            progress(i, n, v.name)
        try:
            v.flags = health.tensor_flags(read(v), v.role)
            v.readable, v.problem = True, None
            readable += 1
        except Exception as e:  # h5py raises many types on damaged data
            v.readable, v.flags = False, ()
            v.problem = v.problem or str(e) or type(e).__name__
            failures[v.problem] += 1
    ckpt.verified = True
    ckpt.n_readable = readable
    # Counts said before reading (from the index) are replaced by what reading found.
    kept = [p for p in ckpt.problems
            if not ((m := _COUNTED.match(p)) and m.group("problem") in failures)]
    ckpt.problems = kept + [f"{problem}: {count} of {n} variables cannot be read"
                            for problem, count in failures.items()]
    if n:
        ckpt.status = status_from_counts(n, n - readable)
    return ckpt
