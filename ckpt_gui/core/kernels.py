"""The per-element loops of statistics, histograms and distances, compiled by numba.

numpy spends one pass over memory per operation: a float64 mean and spread of a float32 chunk
take five (widen, shift, sum, square, sum), a histogram four (shift, scale, cast, bincount, the
last alone ~0.8 ns an element). Each function here is one loop that does the work of several
such passes while its elements are in registers, so a tensor read in chunks is counted about
as fast as TensorFlow reads it (benchmarks/bench_chunked.py, bench_trajectory.py).

Compiled on first use for the array types given (float32 and float64 chunks: stats.py widens
every other type to one of these) and cached on disk by numba (``cache=True``: next to this
file, or in the user's cache folder when that is read-only), so only the first run on a
machine pays the compilation, about a second. ``nogil``: callers run chunks on a thread pool.

Inputs are flat, contiguous, and finite where a function says so: the callers check a chunk's
extremes with numpy first (NaN and Inf take numpy's masked path), so no NaN ever reaches a loop
compiled with reassociation.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Float64 sums may be regrouped (so that they run in SIMD lanes): the result moves by a few
# units in the last place, as any pairwise sum does. No 'nnan'/'ninf': NaN still propagates.
_SUMS = {"reassoc", "nsz", "contract"}
_BLOCK = 2048   # histogram positions computed per step (vectorised), then counted


@njit(nogil=True, cache=True, fastmath=_SUMS)
def shifted_sums(x, shift):
    """(Σ(x − shift), Σ(x − shift)², count of zeros) of a finite chunk, the sums in float64
    whatever the chunk's precision (shifting by about the mean keeps the spread exact)."""
    s1 = 0.0
    s2 = 0.0
    zeros = 0
    for i in range(x.size):
        d = np.float64(x[i]) - shift
        s1 += d
        s2 += d * d
        zeros += x[i] == 0
    return s1, s2, zeros


@njit(nogil=True, cache=True, boundscheck=False)
def bin_counts(x, offset, scale, nbins):
    """How many finite values of ``x`` fall in each of ``nbins`` equal bins from ``offset``
    (``scale`` bins per unit; both float64), plus one more count (index ``nbins``) of those at
    or past the top edge. Four interleaved tables: consecutive values in one bin do not wait
    on each other."""
    stride = nbins + 1
    counts = np.zeros(4 * stride, np.int32)   # a chunk has fewer than 2**31 elements
    top = np.float64(nbins)
    pos = np.empty(_BLOCK, np.int32)
    for start in range(0, x.size, _BLOCK):
        m = min(_BLOCK, x.size - start)
        block = x[start:start + m]
        for j in range(m):   # vectorised: float64 positions, truncated, clamped to 0..nbins
            v = (np.float64(block[j]) - offset) * scale   # so that no rounding ever indexes
            v = v if v < top else top                      # outside the counts
            pos[j] = np.int32(v if v > 0 else 0.0)
        m4 = m & ~3
        for j in range(0, m4, 4):
            counts[pos[j]] += 1
            counts[stride + pos[j + 1]] += 1
            counts[2 * stride + pos[j + 2]] += 1
            counts[3 * stride + pos[j + 3]] += 1
        for j in range(m4, m):
            counts[pos[j]] += 1
    total = np.zeros(stride, np.int64)
    for k in range(4):
        total += counts[k * stride:(k + 1) * stride]
    return total


@njit(nogil=True, cache=True, fastmath=_SUMS)
def squared_distance(a, b):
    """Σ(a − b)² in float64 of two chunks of one type (NaN or Inf in either: NaN or Inf)."""
    s = 0.0
    for i in range(a.size):
        d = np.float64(a[i]) - np.float64(b[i])
        s += d * d
    return s


def warm() -> None:
    """Compile (or load from numba's cache) every loop for the types stats.py gives them, so
    that the first large tensor does not wait for it (the app calls this on a worker thread
    at start; benchmarks and memory tests before they measure)."""
    for dtype in (np.float32, np.float64):
        x = np.zeros(4, dtype)
        shifted_sums(x, 0.0)
        bin_counts(x, 0.0, 1.0, 4)
        squared_distance(x, x)
