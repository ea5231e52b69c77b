"""Statistics and a histogram of a tensor, whole or given in pieces (a tensor read in chunks),
in one pass over each piece, in cache-sized chunks on all cores.

Each chunk's extremes, zeros and moments are taken and, when the histogram's range so far holds
it, its values are counted, while the chunk is in cache (a chunk the range does not hold yet,
and every chunk of the first piece, is counted once the piece's extremes are known). numpy, and
the compiled loops of ``kernels`` for large tensors, release the GIL, so the spans of a piece
run on one shared thread pool. Extremes and zeros are computed in the data's own precision
(float16 widened to float32), sums and bin positions in float64, in per-thread buffers of a
chunk, never a copy of the tensor. Integers and booleans go through float64; the low-precision
types of ml_dtypes (bfloat16, float8, int4, ...) through float32, converted a chunk at a time.

The histogram counts into FINE counting bins per bin shown, over the range of the first piece
(a tensor in memory is one piece: its bins span exactly its finite minimum to maximum). A later
piece reaching past the range doubles it, downwards or upwards, pairs of counting bins merging
into one, as often as needed: no value ever changes bin. The bins shown are then whole groups
of counting bins, from the one holding the minimum to the one holding the maximum: every count
is exact for the edges it is shown with, and a tensor read in chunks is read once, not twice.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import dtypes
from .model import TensorStats

CHUNK = 1 << 18  # elements per step: 1 MiB as float32 (fewer per-chunk calls; best of 2^16..2^19 here)
DEFAULT_BINS = 50
FINE = 32        # counting bins per bin shown (a range doubled twice still shows about ``bins``)
# Tensors of at least this many elements are counted by the compiled loops of ``kernels``
# (2-4x faster per element than numpy's passes; loading numba costs ~0.5 s once a process).
KERNELS_FROM = 1 << 21


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads every accumulator's spans run on (one pool for the process: starting
    threads per tensor cost more than counting a small one)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(min(4, os.cpu_count() or 1),
                                       thread_name_prefix="ckpt_gui-stats")
        return _POOL


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


class _NumpySums:
    """kernels.shifted_sums in numpy passes, in reused buffers: (Σ(c − shift), Σ(c − shift)²,
    zeros) of a finite chunk."""

    def __init__(self, size: int):
        self.tmp = np.empty(size, np.float64)
        self.is_zero = np.empty(size, np.bool_)

    def __call__(self, c: np.ndarray, shift: float) -> tuple[float, float, int]:
        z = self.is_zero[: c.size]
        np.equal(c, 0, out=z)   # into a reused mask, then counted: faster than count_nonzero
        t = self.tmp[: c.size]
        np.copyto(t, c)          # widened first (exact), then shifted in place: a third faster
        np.subtract(t, shift, out=t)   # than subtracting the float64 shift from c directly
        s1 = float(t.sum())
        np.multiply(t, t, out=t)  # not np.dot: a threaded BLAS call per chunk from two threads
        return s1, float(t.sum()), int(np.count_nonzero(z))   # is tens of times slower


@dataclass
class _Bins:
    """The histogram's counting bins while a piece is counted: ``nbins`` from ``lo`` to
    ``hi``. A chunk's finite values are counted at once if the range holds them (kernels.py's
    bin_counts, or the same in numpy), else left for when the range has grown."""
    lo: float
    hi: float
    nbins: int
    fast: bool

    def holds(self, mn: float, mx: float) -> bool:
        return self.lo <= mn and mx <= self.hi

    def count(self, c: np.ndarray) -> np.ndarray:
        """Counts of the finite chunk ``c`` per bin, then of those at the top edge. Positions
        are computed in float64 whatever the data's type: float32 would move values near an
        edge across it."""
        offset, scale = self.lo, self.nbins / (self.hi - self.lo)
        if self.fast:
            from .kernels import bin_counts
            return bin_counts(c, offset, scale, self.nbins)
        x = np.subtract(c, offset, dtype=np.float64)   # as the kernel: truncated, within
        np.multiply(x, scale, out=x)                      # 0..nbins
        np.clip(x, 0, self.nbins, out=x)
        return np.bincount(x.astype(np.intp), minlength=self.nbins + 1)


@dataclass
class _Part:
    """What one span of a piece adds up to."""
    nan: int = 0
    inf: int = 0
    posinf: int = 0
    zeros: int = 0
    n: int = 0                      # finite values
    s1: float = 0.0                 # Σx and Σ(x − shift)² of the finite values
    s2: float = 0.0
    mn: float = math.inf
    mx: float = -math.inf
    counts: np.ndarray | None = None   # of the chunks counted at once
    later: list[int] = field(default_factory=list)     # chunks to count once the range is grown
    nonfinite: list[int] = field(default_factory=list)  # chunks holding NaN or Inf


def _count_span(flat: np.ndarray, lo: int, hi: int, shift: float, work: np.dtype, fast: bool,
                bins: _Bins | None, histogram: bool) -> _Part:
    """Extremes, zeros and moments of flat[lo:hi], chunk by chunk, and each chunk's histogram
    while it is in cache when ``bins`` (the range so far) holds it."""
    part = _Part(counts=np.zeros(bins.nbins + 1, np.int64) if bins else None)
    if fast:
        from .kernels import shifted_sums as sums
    else:
        sums = _NumpySums(min(CHUNK, hi - lo))
    is_float = work.kind == "f" and flat.dtype.kind not in "iub"  # may hold NaN or Inf
    for start, c in _chunks(flat, lo, hi, work):
        c_mn, c_mx = c.min(), c.max()
        if is_float and not (math.isfinite(c_mn) and math.isfinite(c_mx)):
            part.nonfinite.append(start)
            finite = np.isfinite(c)
            n_nan = int(np.count_nonzero(np.isnan(c)))
            part.nan += n_nan
            part.inf += c.size - int(np.count_nonzero(finite)) - n_nan
            part.posinf += int(np.count_nonzero(np.isposinf(c)))
            c = c[finite]
            if not c.size:
                continue
            c_mn, c_mx = c.min(), c.max()
        c_mn, c_mx = float(c_mn), float(c_mx)
        part.n += c.size
        part.mn, part.mx = min(part.mn, c_mn), max(part.mx, c_mx)
        c1, c2, z = sums(c, shift)
        part.s1 += c1 + c.size * shift
        part.s2 += c2
        part.zeros += z
        if bins is not None and bins.holds(c_mn, c_mx):
            part.counts += bins.count(c)
        elif histogram:
            part.later.append(start)
    return part


def _count_later(flat: np.ndarray, starts: list[int], work: np.dtype, bins: _Bins,
                 nonfinite: set[int]) -> np.ndarray:
    """The histogram counts of the chunks at ``starts`` (see _Part.later)."""
    counts = np.zeros(bins.nbins + 1, np.int64)
    for start in starts:
        _, c = next(_chunks(flat, start, min(start + CHUNK, flat.size), work))
        counts += bins.count(c[np.isfinite(c)] if start in nonfinite else c)
    return counts


class StatsAccumulator:
    """Statistics of a tensor given in consecutive pieces (``add``, in C order), in one pass
    over each; see the module's docstring for the histogram's bins. ``tensor_stats`` is the
    one-piece case: a tensor read in chunks gets the very same counts, extremes and moments
    (the float64 sums grouped by piece: mean, std and L2 agree to about 1e-12 relative), and
    its histogram's bins hold the same values wherever the bins are the same.

    ``kernels``: count with the compiled loops (kernels.py) rather than numpy's passes;
    ``workers``: how many of the shared pool's threads a piece is spread over."""

    def __init__(self, dtype: np.dtype, bins: int = DEFAULT_BINS, workers: int | None = None,
                 kernels: bool = False):
        self.dtype, self.bins, self.kernels = np.dtype(dtype), bins, kernels
        view = _numeric_view(np.empty(0, self.dtype))  # what the values are counted as
        self.work = None if view is None else _work_dtype(view.dtype)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.size = self.nan = self.inf = self.posinf = self.zeros = self.n = 0
        self.s1 = self.s2 = 0.0
        self.mn, self.mx = math.inf, -math.inf
        self.shift: float | None = None
        self.fine = bins * max(1, min(FINE, (1 << 16) // max(bins, 1)))  # counting bins
        self._lo = self._hi = 0.0          # the counting bins' range
        self._counts: np.ndarray | None = None   # per counting bin, then those at the top edge
        self._grown = False

    def _map(self, fn, spans):
        if self.workers == 1 or len(spans) == 1:
            return [fn(s) for s in spans]
        return list(_pool().map(fn, spans))

    def add(self, piece: np.ndarray) -> None:
        """The next piece (in C order): its counts, extremes and sums, and its histogram."""
        self.size += int(piece.size)
        flat = _numeric_view(piece)
        if flat is None or not flat.size:
            return
        if self.shift is None:  # sums are taken around the first finite values' mean
            first = flat[: min(flat.size, 1024)].astype(np.float64)
            first = first[np.isfinite(first)]
            self.shift = float(first.mean()) if first.size else 0.0
        spans = _spans(flat.size, self.workers)
        bins = None if self._counts is None else _Bins(self._lo, self._hi, self.fine,
                                                        self.kernels)
        parts = self._map(lambda s: _count_span(flat, s[0], s[1], self.shift, self.work,
                                                self.kernels, bins, self.bins > 0), spans)
        self.nan += sum(p.nan for p in parts)
        self.inf += sum(p.inf for p in parts)
        self.posinf += sum(p.posinf for p in parts)
        self.zeros += sum(p.zeros for p in parts)
        self.s1 += sum(p.s1 for p in parts)
        self.s2 += sum(p.s2 for p in parts)
        if bins is not None:
            self._counts += sum(p.counts for p in parts)
        n = sum(p.n for p in parts)
        if not n:
            return
        self.n += n
        mn, mx = min(p.mn for p in parts), max(p.mx for p in parts)
        self.mn, self.mx = min(self.mn, mn), max(self.mx, mx)
        later = [start for p in parts for start in p.later]
        if self.bins > 0 and later:
            self._cover(mn, mx)
            bins = _Bins(self._lo, self._hi, self.fine, self.kernels)
            nonfinite = {start for p in parts for start in p.nonfinite}
            groups = [later[k::self.workers] for k in range(min(self.workers, len(later)))]
            for counts in self._map(lambda g: _count_later(flat, g, self.work, bins, nonfinite),
                                    groups):
                self._counts += counts

    def _cover(self, mn: float, mx: float) -> None:
        """Make the counting bins' range reach from ``mn`` to ``mx``: the first piece's range
        (widened about a constant), then doubled, downwards or upwards, until it does."""
        if self._counts is None:
            self._lo, self._hi = (mn, mx) if mx > mn else (mn - 0.5, mx + 0.5)
            self._counts = np.zeros(self.fine + 1, np.int64)
            return
        b = self.fine
        while mn < self._lo or mx > self._hi:
            old, width = self._counts, self._hi - self._lo
            pairs = old[0:b:2] + old[1:b:2]
            self._counts = np.zeros_like(old)
            if mn < self._lo:   # the top edge stays: old bin i becomes (b + i) // 2
                self._counts[b // 2:b] = pairs
                self._counts[b] = old[b]
                self._lo = self._hi - 2 * width
            else:               # the bottom edge stays: old bin i becomes i // 2
                self._counts[: b // 2] = pairs
                self._counts[b // 2] += old[b]   # the old top edge is the new middle
                self._hi = self._lo + 2 * width
            self._grown = True

    def _shown(self) -> tuple[list[int], list[float]]:
        """(histogram, bin edges): groups of the counting bins (see the module docstring)."""
        b = self.fine
        counts = self._counts[:b].copy()
        counts[b - 1] += self._counts[b]   # the last bin is closed, like numpy's
        lo, hi = self._lo, self._hi
        width = (hi - lo) / b
        if not self._grown:    # one range all along: ``bins`` bins from minimum to maximum
            first, group, shown = 0, b // self.bins, self.bins
        else:
            first = min(int((self.mn - lo) / width), b - 1)
            last = min(int((self.mx - lo) / width), b - 1)
            nonzero = np.flatnonzero(counts)   # (where rounding put an extreme)
            first, last = min(first, int(nonzero[0])), max(last, int(nonzero[-1]))
            group = -(-(last - first + 1) // self.bins)
            shown = -(-(last - first + 1) // group)
        grouped = np.zeros(shown * group, np.int64)
        taken = counts[first:first + shown * group]
        grouped[: taken.size] = taken
        end = first + shown * group
        top = hi if end == b else lo + end * width
        edges = np.linspace(lo + first * width if first else lo, top, shown + 1)
        return [int(c) for c in grouped.reshape(shown, group).sum(axis=1)], \
            [float(e) for e in edges]

    def result(self) -> TensorStats:
        if self.work is None or self.n == 0:
            return TensorStats(self.size, None, None, None, None, None, self.nan, self.inf,
                               int(self.zeros), [], [], self.posinf)
        n, s1, s2, shift = self.n, self.s1, self.s2, self.shift
        mean = s1 / n
        d = mean - shift                      # the mean around the shift
        var = max(s2 / n - d * d, 0.0)
        sq = max(s2 + 2 * shift * (s1 - n * shift) + n * shift * shift, 0.0)
        histogram, edges = self._shown() if self.bins > 0 else ([], [])
        return TensorStats(
            count=self.size, min=self.mn, max=self.mx, mean=mean, std=math.sqrt(var),
            l2=math.sqrt(sq), nan=self.nan, inf=self.inf, zeros=int(self.zeros),
            histogram=histogram, bin_edges=edges, posinf=self.posinf)


def tensor_stats(array: np.ndarray, bins: int = DEFAULT_BINS,
                 workers: int | None = None) -> TensorStats:
    """min, max, mean, std, L2 norm, NaN/+Inf/-Inf/zero counts (extremes, moments and the
    histogram cover the finite values only) of a tensor in memory: one piece, so the
    histogram's ``bins`` bins span exactly its finite minimum to maximum. ``bins=0``: no
    histogram."""
    array = np.asarray(array)
    acc = StatsAccumulator(array.dtype, bins, workers, kernels=array.size >= KERNELS_FROM)
    acc.add(array)
    return acc.result()
