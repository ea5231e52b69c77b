"""The compiled loops (core/kernels.py) against numpy, and the one-pass histogram whose range
doubles as pieces reach past it (core/stats.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ckpt_gui.core import kernels, stats
from ckpt_gui.core.stats import StatsAccumulator, tensor_stats


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shifted_sums_and_distance_equal_numpy_in_float64(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, 100_003).astype(dtype)
    y = rng.normal(3, 2, 100_003).astype(dtype)
    x[:7] = 0
    s1, s2, zeros = kernels.shifted_sums(x, 2.5)
    d = x.astype(np.float64) - 2.5
    assert s1 == pytest.approx(d.sum(), rel=1e-12)
    assert s2 == pytest.approx((d * d).sum(), rel=1e-12)
    assert zeros == int((x == 0).sum())
    diff = x.astype(np.float64) - y.astype(np.float64)
    assert kernels.squared_distance(x, y) == pytest.approx((diff * diff).sum(), rel=1e-12)
    y[5] = np.nan
    assert math.isnan(kernels.squared_distance(x, y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bin_counts_equal_numpy_histogram(dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 200_001).astype(dtype)
    lo, hi, nbins = float(x.min()), float(x.max()), 1600
    counts = kernels.bin_counts(x, lo, nbins / (hi - lo), nbins)
    expected, _ = np.histogram(x.astype(np.float64), bins=np.linspace(lo, hi, nbins + 1))
    assert counts.sum() == x.size
    merged = counts[:nbins].copy()
    merged[-1] += counts[nbins]    # the maximum, on the top edge
    assert np.abs(merged - expected).sum() <= 2   # (a value on an inner edge either side)


def test_tensor_stats_are_the_same_with_kernels_or_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(1, 3, (700, 3001)).astype(np.float32)
    a[3, :100] = 0
    a[9, 9], a[10, 10] = np.nan, -np.inf
    assert a.size >= stats.KERNELS_FROM
    with_kernels = tensor_stats(a)
    acc = StatsAccumulator(a.dtype, kernels=False)
    acc.add(a)
    without = acc.result()
    assert with_kernels.histogram == without.histogram
    assert with_kernels.bin_edges == without.bin_edges
    assert (with_kernels.min, with_kernels.max, with_kernels.zeros, with_kernels.nan,
            with_kernels.inf) == (without.min, without.max, 100, 1, 1)
    for field in ("mean", "std", "l2"):
        assert getattr(with_kernels, field) == pytest.approx(getattr(without, field), rel=1e-12)


@pytest.mark.parametrize("kernels_on", [True, False])
def test_a_range_grown_down_and_up_keeps_every_count_exact(kernels_on):
    """Integers from 0..9, then down to -31, then up to 96, in pieces: each growth doubles
    the range, merging pairs of counting bins; every value is still in the bin its edges say
    (integers and these edges are exact in binary, so numpy's count is the truth)."""
    pieces = [np.arange(0, 10, dtype=np.float32), np.arange(-31, 5, dtype=np.float32),
              np.arange(50, 97, dtype=np.float32), np.full(5, 9.0, np.float32)]
    acc = StatsAccumulator(np.float32, bins=10, kernels=kernels_on)
    for p in pieces:
        acc.add(p)
    s = acc.result()
    values = np.concatenate(pieces).astype(np.float64)
    assert (s.min, s.max, s.count) == (-31.0, 96.0, values.size)
    assert s.bin_edges[0] <= -31 < s.bin_edges[1] and s.bin_edges[-2] <= 96 <= s.bin_edges[-1]
    assert 5 <= len(s.histogram) <= 10
    expected, _ = np.histogram(values, bins=np.asarray(s.bin_edges))
    assert s.histogram == expected.tolist()
    # one piece: its bins are exactly its range, as numpy's
    whole = tensor_stats(values.astype(np.float32), bins=10)
    assert whole.bin_edges == pytest.approx(np.linspace(-31, 96, 11).tolist())
    assert whole.histogram == np.histogram(values, bins=10)[0].tolist()
