"""Previews, statistics and .npy exports of tensors of any size, read in chunks.

A tensor larger than STREAM_ABOVE, or than the memory budget, is never read whole: its format
reads it as pieces of at most CHUNK_BYTES (``CheckpointFormat.read_chunks``: byte ranges of a
V2 bundle's data file, slices of an HDF5 dataset, tensorstore slices of an Orbax array), and
each piece is counted and reduced, then dropped. Memory is then bounded by a couple of pieces
and the picture, not by the tensor.

Statistics, histogram and heatmap are made in the one pass that reads the pieces
(stats.StatsAccumulator, counting with the compiled loops of ``kernels``; preview.BlockReducer,
which finds NaN and Inf piece by piece), and the data's checksums (a V2 bundle's CRC32C) are
checked as they arrive. They equal what a whole-array preview gives: counts and extremes
exactly, mean, std and L2 to about 1e-12 (float64 sums grouped by piece), block means to float32
rounding; the histogram's counts are exact for its edges, and its first and last bins hold the
extremes (a whole array's edges are exactly its extremes: see stats.py). The 1-99 % colour
range is, as for any reduced picture, the percentiles of its painted cells.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import numpy as np

from . import dtypes, formats, limits
from .model import CheckpointInfo, TensorStats, VariableInfo
from .preview import MEAN, BlockReducer, TensorPreview, block_steps, drawn, plane_of
from .stats import DEFAULT_BINS, StatsAccumulator


def _env_bytes(name: str, default: int) -> int:
    try:
        return int(float(os.environ.get(name, "") or default))
    except ValueError:
        return default


# Bytes of one piece read at a time, and the size above which a tensor is read in pieces
# (environment variables for tests and benchmarks; modules may also set these attributes).
# Below STREAM_ABOVE (and the memory budget) a whole read is the better trade: one pass instead
# of two (measured 1.2-1.4x faster for 200-400 MB), hover shows elements, slices are instant.
# 16 MB pieces: the piece just read and the next one being read fit the 32 MB L3 cache measured
# (a 1 GB preview took 10-15 % fewer CPU seconds than with 64 MB pieces; 8 MB gained nothing).
CHUNK_BYTES = _env_bytes("CKPT_GUI_CHUNK_BYTES", 16 << 20)
STREAM_ABOVE = _env_bytes("CKPT_GUI_STREAM_ABOVE", 512 << 20)

Progress = Callable[[int, int, str], None]   # (bytes done, bytes in all, what)
Check = Callable[[], None]                    # raises to stop (the GUI's cancel)


def numeric_dtype(var: VariableInfo) -> np.dtype | None:
    """The numpy type of a numeric variable once read (ml_dtypes' for the low-precision
    ones), None for strings and unknown types."""
    dtype = dtypes.numpy_dtype(var.dtype)
    if dtype is None:
        try:
            dtype = np.dtype(var.dtype)
        except TypeError:
            return None
    return dtype if dtype.kind in "biufc" or dtypes.is_low_precision(dtype) else None


def nbytes_of(var: VariableInfo) -> int | None:
    """The bytes of a numeric variable once read, None for strings and unknown dtypes."""
    dtype = numeric_dtype(var)
    return None if dtype is None else math.prod(max(d, 0) for d in var.shape) * dtype.itemsize


def streams(ckpt: CheckpointInfo, var: VariableInfo) -> bool:
    """Whether ``var`` is previewed and exported from pieces: a numeric tensor of more than one
    element, larger than STREAM_ABOVE or than the memory budget, in a format that reads pieces."""
    size = nbytes_of(var)
    if size is None or math.prod(var.shape) <= 1:
        return False
    return (formats.for_name(ckpt.format).reads_in_chunks
            and size > min(STREAM_ABOVE, limits.memory_budget()))


def pieces(ckpt: CheckpointInfo, var: VariableInfo, max_bytes: int | None = None,
           into: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The tensor's elements in C order as flat pieces, checksums checked (read_chunks; each
    valid until the next is asked for). ``into``: a flat array of the tensor's size (of
    ``numeric_dtype``), which the pieces are then slices of: read straight into it where the
    format can (``reads_into``), else copied there."""
    fmt = formats.for_name(ckpt.format)
    direct = {"out": into} if into is not None and fmt.reads_into else {}
    at = 0
    with closing(fmt.read_chunks(ckpt, var, max_bytes or CHUNK_BYTES, **direct)) as chunks:
        for chunk in chunks:
            piece = np.asarray(chunk).reshape(-1)
            if into is not None:
                place = into[at:at + piece.size]
                if not np.may_share_memory(place, piece):
                    place[...] = piece
                piece, at = place, at + piece.size
            yield piece


class _Steps:
    """Progress over the read of a tensor of ``total`` bytes, and the cancel check."""

    def __init__(self, var: VariableInfo, progress: Progress | None, check: Check | None):
        self.total = max(nbytes_of(var) or 0, 1)
        self.done, self._progress, self._check = 0, progress, check

    def __call__(self, piece: np.ndarray, what: str) -> None:
        self.done += piece.nbytes
        if self._check is not None:
            self._check()
        if self._progress is not None:
            self._progress(min(self.done, self.total), self.total, what)


def stream_stats(ckpt: CheckpointInfo, var: VariableInfo, bins: int = DEFAULT_BINS,
                 progress: Progress | None = None, check: Check | None = None) -> TensorStats:
    """stats.tensor_stats of ``var``, read in pieces."""
    step = _Steps(var, progress, check)
    acc = None
    for piece in pieces(ckpt, var):
        acc = acc or StatsAccumulator(piece.dtype, bins, kernels=True)
        acc.add(piece)
        step(piece, "statistics")
    return (acc or StatsAccumulator(np.float32, bins)).result()


def stream_preview(ckpt: CheckpointInfo, var: VariableInfo, index: tuple[int, ...] | None = None,
                   stats: TensorStats | None = None, bins: int = 64, blocks: str = MEAN,
                   progress: Progress | None = None, check: Check | None = None
                   ) -> TensorPreview:
    """preview.make_preview of a numeric tensor read in pieces: its statistics (unless given:
    another slice of a tensor already counted, when only the drawn plane is read) and its
    picture, reduced by blocks as the pieces of the drawn plane pass; ``array`` is None and
    ``streamed`` True."""
    shape = tuple(var.shape)
    kind, index, (rows, cols), most = plane_of(shape, index)
    start = int(np.ravel_multi_index(index + (0, 0), shape)) if index else 0
    stop = start + rows * cols
    step = _Steps(var, progress, check)
    if stats is not None:
        step.total = max(stop * step.total // max(math.prod(shape), 1), 1)
    reducer = BlockReducer(rows, cols, block_steps(rows, cols, *most), blocks)
    acc = None
    at = 0
    # each piece is counted (on the accumulator's threads) while its drawn part is reduced
    unit = reducer.unit * numeric_dtype(var).itemsize
    size = CHUNK_BYTES // unit * unit or CHUNK_BYTES   # whole rows of blocks: nothing carried
    with ThreadPoolExecutor(1, thread_name_prefix="ckpt_gui-blocks") as drawing:
        for piece in pieces(ckpt, var, size):
            lo, hi = max(start - at, 0), min(stop - at, piece.size)
            reduced = drawing.submit(reducer.feed, piece[lo:hi]) if lo < hi else None
            if stats is None:
                acc = acc or StatsAccumulator(piece.dtype, bins, kernels=True)
                acc.add(piece)
            if reduced is not None:
                reduced.result()
            at += piece.size
            step(piece, "statistics and picture" if stats is None else "picture")
            if stats is not None and at >= stop:
                break   # only the plane was wanted
    if stats is None:
        stats = (acc or StatsAccumulator(np.float32, bins)).result()
    return drawn(ckpt.name, var, None, stats, kind, index, reducer.result(), blocks)


def write_npy(ckpt: CheckpointInfo, var: VariableInfo, path: str,
              progress: Progress | None = None, check: Check | None = None) -> None:
    """Write ``var`` to the .npy file ``path`` as its pieces are read (numpy's format: a header,
    then the elements in C order), never holding the tensor; written to ``path.part`` and
    renamed at the end, so a cancelled or failed export leaves no partial file."""
    step = _Steps(var, progress, check)
    part = path + ".part"
    try:
        with open(part, "wb") as f:
            header = None
            for piece in pieces(ckpt, var):
                if header is None:
                    header = np.lib.format.header_data_from_array_1_0(piece)
                    header["shape"] = tuple(var.shape)
                    np.lib.format.write_array_header_1_0(f, header)
                f.write(memoryview(np.ascontiguousarray(piece).view(np.uint8)))
                step(piece, "export")
        os.replace(part, path)
    except BaseException:
        try:
            os.remove(part)
        except OSError:
            pass
        raise
