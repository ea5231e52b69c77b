"""Read one tensor on demand, and verify a checkpoint by reading all of them.

TF formats are read with ``tf.raw_ops.RestoreV2`` run eagerly: it checks TensorFlow's stored
checksums, reads V1 files too, and (unlike CheckpointReader.get_tensor) releases the GIL while it
reads, so a GUI thread keeps turning while a worker loads a large tensor.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable

import numpy as np

from . import bundle, hdf5
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
    return read_tf_tensor(ckpt.path, var.name, var.dtype)


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
