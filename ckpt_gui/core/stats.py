"""Statistics and a histogram of a tensor, whole or given in pieces (a tensor read in chunks),
in cache-sized chunks on all cores.

Two passes over the data (extremes, zeros and moments, then the histogram once the range is
known), each over chunks small enough to stay in cache; numpy releases the GIL, so the spans run
on a thread pool. Extremes, zeros and histogram positions are computed in the data's own precision
(float16 widened to float32), sums in float64, in reused per-thread buffers, so extra memory is
a few chunks per thread, not a copy of the tensor. Integers and booleans go through float64;
the low-precision types of ml_dtypes (bfloat16, float8, int4, ...) through float32, converted a
chunk at a time like float16.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import dtypes
from .model import TensorStats

CHUNK = 1 << 18  # elements per step: 1 MiB as float32 (fewer per-chunk calls; best of 2^16..2^19 here)
DEFAULT_BINS = 50


def _numeric_view(a: np.ndarray) -> np.ndarray | None:
    a = np.asarray(a)
    if dtypes.is_low_precision(a.dtype):
        return a.reshape(-1)
    if a.dtype == object or a.dtype.kind in "SUV":
        return None
    if a.dtype.kind == "c":
        a = np.abs(a)
    elif a.dtype.kind == "b":
        a = a.view(np.uint8)
    return a.reshape(-1) if a.dtype.kind in "fiu" else None


def _work_dtype(dtype: np.dtype) -> np.dtype:
    """The precision chunks are worked in: float32/float64 as stored, float16 and the
    low-precision types widened to float32, integers and booleans as float64."""
    if dtypes.is_low_precision(dtype):
        return np.dtype(np.float32)
    if dtype.kind == "f":
        return np.dtype(np.float64) if dtype.itemsize >= 8 else np.dtype(np.float32)
    return np.dtype(np.float64)


def _spans(n: int, workers: int) -> list[tuple[int, int]]:
    step = max(CHUNK, -(-n // (workers * 4)))
    step = -(-step // CHUNK) * CHUNK
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def _chunks(flat: np.ndarray, lo: int, hi: int, work: np.dtype):
    """Yield (start, chunk in the work dtype); the chunk may live in a reused buffer."""
    same = flat.dtype == work
    buf = None if same else np.empty(min(CHUNK, hi - lo), work)
    for i in range(lo, hi, CHUNK):
        c = flat[i:min(i + CHUNK, hi)]
        if not same:
            out = buf[: c.size]
            out[...] = c
            c = out
        yield i, c


def _moments(flat: np.ndarray, lo: int, hi: int, shift: float, work: np.dtype):
    nan = inf = posinf = zeros = n_finite = 0
    s1 = s2 = 0.0
    mn, mx = math.inf, -math.inf
    nonfinite_chunks = []
    tmp = np.empty(min(CHUNK, hi - lo), np.float64)
    is_zero = np.empty(min(CHUNK, hi - lo), np.bool_)
    is_float = work.kind == "f" and flat.dtype.kind not in "iub"  # may hold NaN or Inf
    for start, c in _chunks(flat, lo, hi, work):
        # c == 0 into a reused mask, then counted: faster than count_nonzero on floats
        z = is_zero[: c.size]
        np.equal(c, 0, out=z)
        zeros += int(np.count_nonzero(z))
        c_mn, c_mx = c.min(), c.max()
        if is_float and not (math.isfinite(c_mn) and math.isfinite(c_mx)):
            nonfinite_chunks.append(start)
            finite = np.isfinite(c)
            n_nan = int(np.count_nonzero(np.isnan(c)))
            nan += n_nan
            inf += c.size - int(np.count_nonzero(finite)) - n_nan
            posinf += int(np.count_nonzero(np.isposinf(c)))
            c = c[finite]
            if not c.size:
                continue
            c_mn, c_mx = c.min(), c.max()
        n_finite += c.size
        mn = min(mn, float(c_mn))
        mx = max(mx, float(c_mx))
        t = tmp[: c.size]  # sums in float64 around the shift, whatever the data's precision
        np.copyto(t, c)   # widened first (exact), then shifted in place: a third faster than
        np.subtract(t, shift, out=t)   # subtracting the float64 shift from c directly
        s1 += float(t.sum()) + c.size * shift
        # squares in place, then summed: not np.dot (a threaded BLAS call per chunk from two
        # threads is tens of times slower) and not einsum (slower than these two plain loops)
        np.multiply(t, t, out=t)
        s2 += float(t.sum())
    return nan, inf, zeros, n_finite, s1, s2, mn, mx, nonfinite_chunks, posinf


def _count_bytes(idx: np.ndarray, nbins: int) -> np.ndarray:
    """How many times each value 0..nbins-1 occurs in the uint8 array ``idx``.

    np.bincount is the slow part of a histogram (it widens its input to intp); viewing each two
    bytes as one uint16 counts pairs (256*hi + lo, in either byte order) in half the elements,
    and the pair table's row and column sums give the counts of the two bytes."""
    even = idx.size & ~1
    pairs = np.bincount(idx[:even].view(np.uint16), minlength=256 * nbins)
    table = pairs[: 256 * nbins].reshape(nbins, 256)[:, :nbins]
    counts = table.sum(axis=0) + table.sum(axis=1)
    if even < idx.size:
        counts[idx[-1]] += 1
    return counts


def _histogram(flat: np.ndarray, lo: int, hi: int, edges_lo: float, edges_hi: float, bins: int,
               work: np.dtype, nonfinite: set[int]):
    counts = np.zeros(bins + 1, dtype=np.int64)
    scale = work.type(bins / (edges_hi - edges_lo))
    offset = work.type(edges_lo)
    tmp = np.empty(min(CHUNK, hi - lo), work)
    small = bins + 1 <= 256  # bin positions fit in a byte
    positions = np.empty(min(CHUNK, hi - lo), np.uint8) if small else None
    for start, c in _chunks(flat, lo, hi, work):
        if start in nonfinite:
            c = c[np.isfinite(c)]
        x = tmp[: c.size]
        np.subtract(c, offset, out=x)  # >= 0: c >= the minimum, which is edges_lo
        np.multiply(x, scale, out=x)   # <= bins (the maximum lands exactly on the last edge)
        if small:
            p = positions[: c.size]
            np.copyto(p, x, casting="unsafe")  # truncates, as astype(intp) does, in 0..bins
            counts += _count_bytes(p, bins + 1)
        else:
            counts += np.bincount(x.astype(np.intp), minlength=bins + 1)[: bins + 1]
    counts[bins - 1] += counts[bins]  # the last bin is closed, like numpy's
    return counts[:bins]


class StatsAccumulator:
    """Statistics of a tensor given in consecutive pieces, in two passes: every piece through
    ``add_moments``, then every piece again, in the same order and cut, through
    ``add_histogram`` (its bins span the finite minimum to maximum, known only after the first
    pass). ``tensor_stats`` is the one-piece case, so a tensor read in chunks gets the very
    same arithmetic: the counts and the histogram are identical, the float64 sums are grouped
    by piece (mean, std and L2 agree to about 1e-12 relative).

    Why two passes and not one: a histogram of exact, fixed-edge bins needs its range first;
    the pieces are read twice instead of kept (a tensor read in chunks does not fit)."""

    def __init__(self, dtype: np.dtype, bins: int = DEFAULT_BINS, workers: int | None = None):
        self.dtype, self.bins = np.dtype(dtype), bins
        view = _numeric_view(np.empty(0, self.dtype))  # what the values are counted as
        self.work = None if view is None else _work_dtype(view.dtype)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.size = self.nan = self.inf = self.posinf = self.zeros = self.n = 0
        self.s1 = self.s2 = 0.0
        self.mn, self.mx = math.inf, -math.inf
        self.shift: float | None = None
        self._nonfinite: list[set[int]] = []   # per piece, its sub-chunks holding NaN/Inf
        self._hist = np.zeros(bins, np.int64)
        self._hist_pieces = 0
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _map(self, fn, spans):
        if self._pool is None or len(spans) == 1:
            return [fn(s) for s in spans]
        return list(self._pool.map(fn, spans))

    def add_moments(self, piece: np.ndarray) -> None:
        """First pass: counts, extremes and sums of the next piece (in C order)."""
        self.size += int(piece.size)
        flat = _numeric_view(piece)
        if flat is None or not flat.size:
            self._nonfinite.append(set())
            return
        if self.shift is None:  # sums are taken around the first finite values' mean
            first = flat[: min(flat.size, 1024)].astype(np.float64)
            first = first[np.isfinite(first)]
            self.shift = float(first.mean()) if first.size else 0.0
        parts = self._map(lambda s: _moments(flat, s[0], s[1], self.shift, self.work),
                          _spans(flat.size, self.workers))
        self.nan += sum(p[0] for p in parts)
        self.inf += sum(p[1] for p in parts)
        self.zeros += sum(p[2] for p in parts)
        self.n += sum(p[3] for p in parts)
        self.s1 += sum(p[4] for p in parts)
        self.s2 += sum(p[5] for p in parts)
        self.mn = min([self.mn] + [p[6] for p in parts])
        self.mx = max([self.mx] + [p[7] for p in parts])
        self.posinf += sum(p[9] for p in parts)
        self._nonfinite.append({start for p in parts for start in p[8]})

    @property
    def needs_histogram(self) -> bool:
        """Whether a second pass is wanted: bins asked for, and some finite value seen."""
        return self.bins > 0 and self.work is not None and self.n > 0

    def range(self) -> tuple[float, float]:
        """The histogram's range: the finite minimum to maximum (widened about a constant)."""
        return (self.mn, self.mx) if self.mx > self.mn else (self.mn - 0.5, self.mx + 0.5)

    def add_histogram(self, piece: np.ndarray) -> None:
        """Second pass: the next piece's values counted into the bins."""
        nonfinite = self._nonfinite[self._hist_pieces]
        self._hist_pieces += 1
        flat = _numeric_view(piece)
        if flat is None or not flat.size or not self.needs_histogram:
            return
        lo, hi = self.range()
        # float32 would overflow computing bin positions over a range near its limit
        work = self.work if hi - lo < 1e30 else np.dtype(np.float64)
        for part in self._map(lambda s: _histogram(flat, s[0], s[1], lo, hi, self.bins, work,
                                                   nonfinite), _spans(flat.size, self.workers)):
            self._hist += part

    def result(self) -> TensorStats:
        if self.work is None or self.n == 0:
            return TensorStats(self.size, None, None, None, None, None, self.nan, self.inf,
                               int(self.zeros), [], [], self.posinf)
        n, s1, s2, shift = self.n, self.s1, self.s2, self.shift
        mean = s1 / n
        d = mean - shift                      # the mean around the shift
        var = max(s2 / n - d * d, 0.0)
        sq = max(s2 + 2 * shift * (s1 - n * shift) + n * shift * shift, 0.0)
        lo, hi = self.range()
        edges = np.linspace(lo, hi, self.bins + 1) if self.bins else []
        return TensorStats(
            count=self.size, min=self.mn, max=self.mx, mean=mean, std=math.sqrt(var),
            l2=math.sqrt(sq), nan=self.nan, inf=self.inf, zeros=int(self.zeros),
            histogram=[int(c) for c in self._hist], bin_edges=[float(e) for e in edges],
            posinf=self.posinf)


def tensor_stats(array: np.ndarray, bins: int = DEFAULT_BINS,
                 workers: int | None = None) -> TensorStats:
    """min, max, mean, std, L2 norm, NaN/+Inf/-Inf/zero counts (extremes, moments and the
    histogram cover the finite values only) of a tensor in memory: one piece. ``bins=0``: no
    histogram, and no second pass."""
    array = np.asarray(array)
    with StatsAccumulator(array.dtype, bins, workers) as acc:
        acc.add_moments(array)
        if acc.needs_histogram:
            acc.add_histogram(array)
        return acc.result()
