"""Read one tensor on demand, and verify a checkpoint by reading all of them.

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
from collections.abc import Callable

import numpy as np

from . import bundle, checksum, hdf5
from .inspect import status_from_counts
from .model import HDF5_FORMATS, TF_V1, CheckpointInfo
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


def read_tensor(ckpt: CheckpointInfo, name: str) -> np.ndarray:
    """The value of variable ``name`` (its key or its object path) of ``ckpt`` as a numpy array
    (strings as bytes objects). A numeric TF tensor comes back read-only: it shares
    TensorFlow's buffer instead of being copied."""
    var = ckpt.variable(name)
    if var is None:
        raise ReadError(f"{ckpt.name} has no variable {name}")
    if ckpt.format in HDF5_FORMATS:
        try:
            with hdf5.open_weights(ckpt.path, ckpt.format) as f:
                return hdf5.read_dataset(f, var.name)
        except Exception as e:
            raise ReadError(str(e) or type(e).__name__) from None
    if ckpt.format != TF_V1:
        array = read_verified_from_bundle(ckpt.path, var.name)
        if array is not None:
            return array
    return read_tf_tensor(ckpt.path, var.name, var.dtype)


READ_CHUNK = 1 << 20  # bytes per read: checksummed while still in cache
READ_PART = 64 << 20  # tensors above this are read in parallel parts, one per core
def read_verified_from_bundle(prefix: str, name: str) -> np.ndarray | None:
    """A numeric, unsliced V2 tensor read straight from its data file with numpy, its CRC32C
    checked against the index the way TensorFlow checks it; None whenever that cannot be done
    quickly and exactly (no C CRC32C, a string/bfloat16/sliced/big-endian tensor, anything
    missing, short or failing the checksum), and the caller then reads through TensorFlow,
    which words the problem. Unverified data is never returned.

    Why: RestoreV2 takes about as long as TF's reader; plain reads plus a hardware CRC, in
    parallel parts, take about half of that for a large tensor. The result is a fresh array
    marked read-only, like the TensorFlow-backed one."""
    if not checksum.FAST_CRC32C or not hasattr(os, "preadv"):
        return None
    try:
        index, entry = bundle.lookup_entry(prefix + ".index", name)
    except (OSError, bundle.BundleError):
        return None
    if entry is None or entry.sliced or index.big_endian or entry.numpy_dtype is None:
        return None
    dtype = np.dtype(entry.numpy_dtype)
    if any(d < 0 for d in entry.shape) or math.prod(entry.shape) * dtype.itemsize != entry.size:
        return None
    array = _empty(entry.shape, dtype)
    path = bundle.data_file_name(prefix, entry.shard_id, index.num_shards)
    try:
        crc = _read_with_crc(path, entry.offset, memoryview(array.reshape(-1).view(np.uint8)))
    except OSError:
        return None
    if crc is None or checksum.mask_crc32c(crc) != entry.crc32c:
        return None
    array.flags.writeable = False
    return array


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialized array; a large one in private anonymous memory of ordinary pages.

    Why: numpy asks for transparent huge pages for large arrays, and on the machines measured
    (virtualized, 2 cores) the first touch of fresh huge pages in a new process costs 0.3-0.5 s
    per 400 MB, against ~0.25 s for ordinary pages faulted in by the two reading threads. The
    mapping is freed with the last array that views it."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes <= READ_PART or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype)
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype).reshape(shape)


def _read_with_crc(path: str, offset: int, out: memoryview) -> int | None:
    """Fill ``out`` from ``path`` at ``offset``; the CRC32C of the bytes, or None if the file
    ends early. A large tensor is read as one contiguous part per core (pread and the C CRC32C
    both release the GIL: copying from the page cache is the cost, and it scales), the parts'
    checksums then combined into the whole one."""
    workers = min(os.cpu_count() or 1, 4) if len(out) > READ_PART else 1
    step = max(-(-len(out) // workers), 1)  # (an empty tensor: one empty part)
    spans = [(lo, min(lo + step, len(out))) for lo in range(0, len(out), step)] or [(0, 0)]
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
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
    after it arrives; its CRC32C, or None if the file ends early."""
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


def verify_checkpoint(ckpt: CheckpointInfo,
                      progress: Callable[[int, int, str], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> CheckpointInfo:
    """Read every tensor; mark each readable or not; set n_readable, status and problems."""
    if ckpt.format not in HDF5_FORMATS:
        def read(v):
            try:
                return read_tf_tensor(ckpt.path, v.name, v.dtype)
            except ReadError as e:
                raise ReadError(_name_the_file(ckpt, v, str(e))) from None
        return _verify_with(ckpt, read, progress, cancelled)
    try:
        with hdf5.open_weights(ckpt.path, ckpt.format) as f:
            return _verify_with(ckpt, lambda v: hdf5.read_dataset(f, v.name), progress, cancelled)
    except Exception as e:  # the file itself cannot be opened: nothing is readable
        def fail(v, reason=f"the file cannot be opened: {e}"):
            raise ReadError(reason)
        return _verify_with(ckpt, fail, progress, cancelled)


_SHARDS = re.compile(r"\.data-\d{5}-of-(\d{5})$")


def _name_the_file(ckpt: CheckpointInfo, v, text: str) -> str:
    """Say which file a missing or damaged tensor lives in, as the index-based problems do."""
    if text not in (MISSING, DAMAGED):
        return text
    fname = os.path.basename(ckpt.path)
    if ckpt.format != TF_V1:
        total = next((int(m.group(1)) for f in ckpt.files if (m := _SHARDS.search(f.name))), None)
        if total is None or v.shard is None:
            return text
        fname = bundle.data_file_name(fname, v.shard, total)
    return f"{fname} is missing" if text == MISSING else f"{fname} {bundle.DAMAGED}"


_COUNTED = re.compile(r"^(?P<problem>.*): \d+ of \d+ variables cannot be read$")


def _verify_with(ckpt: CheckpointInfo, read, progress, cancelled) -> CheckpointInfo:
    failures: Counter[str] = Counter()
    n = ckpt.n_variables
    readable = 0
    for i, v in enumerate(ckpt.variables):
        if cancelled is not None and cancelled():
            return ckpt
        if progress is not None:
            progress(i, n, v.name)
        try:
            read(v)
            v.readable, v.problem = True, None
            readable += 1
        except Exception as e:  # h5py raises many types on damaged data
            v.readable = False
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
