"""Statistics and a histogram of a tensor, in cache-sized chunks on all cores.

Two passes over the data (moments and extremes, then the histogram once the range is known),
each over chunks small enough to stay in cache; numpy releases the GIL, so the chunks run on a
thread pool. Extra memory is a few chunk buffers per thread, not a copy of the tensor.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .model import TensorStats

CHUNK = 1 << 18  # elements: 2 MiB as float64
DEFAULT_BINS = 50


def _numeric_view(a: np.ndarray) -> np.ndarray | None:
    a = np.asarray(a)
    if a.dtype == object or a.dtype.kind in "SUV":
        return None
    if a.dtype.kind == "c":
        a = np.abs(a)
    elif a.dtype.kind == "b":
        a = a.view(np.uint8)
    elif a.dtype.kind not in "fiu":
        try:
            a = a.astype(np.float32)  # bfloat16 / float8 from ml_dtypes
        except (TypeError, ValueError):
            return None
    return a.reshape(-1)


def _spans(n: int, workers: int) -> list[tuple[int, int]]:
    step = max(CHUNK, -(-n // (workers * 4)))
    step = -(-step // CHUNK) * CHUNK
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def _moments(flat: np.ndarray, lo: int, hi: int, shift: float):
    nan = inf = nonzero = 0
    s1 = s2 = sq = 0.0
    mn, mx = math.inf, -math.inf
    n_finite = 0
    is_float = flat.dtype.kind == "f"
    for i in range(lo, hi, CHUNK):
        c = flat[i:min(i + CHUNK, hi)]
        nonzero += int(np.count_nonzero(c))
        x = c.astype(np.float64)
        total = float(x.sum())
        if is_float and not math.isfinite(total):
            finite = np.isfinite(x)
            nan_here = int(np.isnan(x).sum())
            nan += nan_here
            inf += int(x.size - finite.sum()) - nan_here
            x = x[finite]
            if not x.size:
                continue
        n_finite += x.size
        mn = min(mn, float(x.min()))
        mx = max(mx, float(x.max()))
        sq += float(np.dot(x, x))
        x -= shift
        s1 += float(x.sum())
        s2 += float(np.dot(x, x))
    return nan, inf, nonzero, n_finite, s1, s2, sq, mn, mx


def _histogram(flat: np.ndarray, lo: int, hi: int, edges_lo: float, edges_hi: float, bins: int):
    counts = np.zeros(bins, dtype=np.int64)
    scale = bins / (edges_hi - edges_lo)
    for i in range(lo, hi, CHUNK):
        x = flat[i:min(i + CHUNK, hi)].astype(np.float64)
        if flat.dtype.kind == "f":
            x = x[np.isfinite(x)]
        idx = ((x - edges_lo) * scale).astype(np.intp)
        np.clip(idx, 0, bins - 1, out=idx)
        counts += np.bincount(idx, minlength=bins)
    return counts


def tensor_stats(array: np.ndarray, bins: int = DEFAULT_BINS,
                 workers: int | None = None) -> TensorStats:
    """min, max, mean, std, L2 norm, NaN/Inf/zero counts and a histogram of finite values."""
    flat = _numeric_view(array)
    size = int(np.asarray(array).size)
    if flat is None or size == 0:
        return TensorStats(size, None, None, None, None, None, 0, 0, 0, [], [])
    workers = workers or min(4, os.cpu_count() or 1)
    spans = _spans(flat.size, workers)
    first = flat[: min(flat.size, 1024)].astype(np.float64)
    first = first[np.isfinite(first)]
    shift = float(first.mean()) if first.size else 0.0
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda s: _moments(flat, s[0], s[1], shift), spans))
        nan = sum(p[0] for p in parts)
        inf = sum(p[1] for p in parts)
        zeros = flat.size - sum(p[2] for p in parts)
        n = sum(p[3] for p in parts)
        if n == 0:
            return TensorStats(size, None, None, None, None, None, nan, inf, zeros, [], [])
        s1, s2, sq = (sum(p[k] for p in parts) for k in (4, 5, 6))
        mn = min(p[7] for p in parts)
        mx = max(p[8] for p in parts)
        mean_shifted = s1 / n
        var = max(s2 / n - mean_shifted * mean_shifted, 0.0)
        lo, hi = (mn, mx) if mx > mn else (mn - 0.5, mx + 0.5)
        hist = sum(pool.map(lambda s: _histogram(flat, s[0], s[1], lo, hi, bins), spans))
    edges = np.linspace(lo, hi, bins + 1)
    return TensorStats(
        count=size, min=mn, max=mx, mean=shift + mean_shifted, std=math.sqrt(var),
        l2=math.sqrt(sq), nan=nan, inf=inf, zeros=int(zeros),
        histogram=[int(c) for c in hist], bin_edges=[float(e) for e in edges])
