"""What changed between two checkpoints, of any formats, in one folder or two.

Variables are paired by identity (core/pairing.py), then each pair is read (one pair in memory
at a time) and compared:

- ``same``: the same dtype and shape and bitwise-equal values (a NaN equals a NaN at the same
  position, whatever its payload); ``changed``: anything else, with max |a-b|, the L2 norm of
  a-b and the relative change ‖a-b‖/‖a‖, computed in float64 (complex128 for complex tensors)
  a chunk at a time for every numeric dtype (bfloat16 and the other ml_dtypes included).
  Positions where one side is NaN count in ``nan_mismatch`` and are left out of the
  numbers (a NaN of x is left out of ‖a‖ too). Strings are only same or changed.
- ``shape_changed``: paired, of another shape (nothing is read); ``only_a``/``only_b``: no
  partner; ``unreadable``: one side cannot be read (``problem`` says why).

Counters (save_counter, iterations) and metadata (the object graph) are compared the same way
but kept apart, in ``DiffResult.counters``: they differ between any two saves and say nothing
about the weights, so ``DiffResult.identical`` (and the CLI's exit code) ignores them.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import dtypes, formats
from .model import COUNTER, METADATA, CheckpointInfo, VariableInfo
from .pairing import Pair, pair_variables
from .readers import ReadError

SAME, CHANGED, SHAPE_CHANGED, ONLY_A, ONLY_B, UNREADABLE = (
    "same", "changed", "shape_changed", "only_a", "only_b", "unreadable")
STATUSES = (UNREADABLE, SHAPE_CHANGED, ONLY_A, ONLY_B, CHANGED, SAME)   # the order of the list
CHUNK = 1 << 18   # elements compared at a time (2 MiB per float64 buffer)


@dataclass
class VariableDiff:
    name: str                       # the pair's identity (a's, else b's)
    status: str
    role: str
    key_a: str | None = None        # the checkpoint keys
    key_b: str | None = None
    name_b: str | None = None       # b's identity, when it differs from ``name``
    how: str | None = None          # how the two were paired (core/pairing.py)
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    dtype_a: str | None = None
    dtype_b: str | None = None
    max_abs_diff: float | None = None
    l2_diff: float | None = None
    rel_change: float | None = None
    nan_mismatch: int = 0
    problem: str | None = None

    def sort_key(self) -> tuple:
        """Most changed first: unreadable, shape changed, only in one, then by relative
        change (then L2), the same last."""
        change = self.rel_change if self.rel_change is not None else -1.0
        return (STATUSES.index(self.status), -change, -(self.l2_diff or 0.0), self.name)


@dataclass
class DiffResult:
    a: str                          # checkpoint names
    b: str
    a_directory: str = ""
    b_directory: str = ""
    variables: list[VariableDiff] = field(default_factory=list)   # sorted by change
    counters: list[VariableDiff] = field(default_factory=list)    # counters and metadata
    cancelled: bool = False

    @property
    def identical(self) -> bool:
        """Every variable (counters and metadata aside) is the same."""
        return not self.cancelled and all(v.status == SAME for v in self.variables)

    def counts(self) -> dict[str, int]:
        return {s: sum(v.status == s for v in self.variables) for s in STATUSES
                if any(v.status == s for v in self.variables)}


@dataclass
class Comparison:
    """What two tensors' comparison found (numbers None for strings and mixed kinds)."""
    same: bool
    max_abs_diff: float | None = None
    l2_diff: float | None = None
    rel_change: float | None = None
    nan_mismatch: int = 0


def read_variable(ckpt: CheckpointInfo, var: VariableInfo) -> np.ndarray:
    return formats.for_name(ckpt.format).read(ckpt, var)


def diff_checkpoints(a: CheckpointInfo, b: CheckpointInfo,
                     progress: Callable[[int, int, str], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> DiffResult:
    """Pair ``a``'s and ``b``'s variables and compare each pair, one pair in memory at a
    time. Cancelled part-way: what was compared, ``cancelled`` set."""
    result = DiffResult(a.name, b.name, os.path.dirname(a.path), os.path.dirname(b.path))
    pairs = pair_variables(a, b)
    for i, pair in enumerate(pairs):
        if cancelled is not None and cancelled():
            result.cancelled = True
            break
        d = _diff_pair(a, b, pair, progress, i, len(pairs))
        bookkeeping = (pair.a or pair.b).role in (COUNTER, METADATA)
        (result.counters if bookkeeping else result.variables).append(d)
    if progress is not None:
        progress(len(pairs), len(pairs), "")
    result.variables.sort(key=VariableDiff.sort_key)
    result.counters.sort(key=VariableDiff.sort_key)
    return result


def _diff_pair(a, b, pair: Pair, progress, i: int, n: int) -> VariableDiff:
    va, vb = pair.a, pair.b
    first = va or vb
    d = VariableDiff(first.identity, SAME, first.role, how=pair.how)
    if va is not None:
        d.key_a, d.shape_a, d.dtype_a = va.name, tuple(va.shape), va.dtype
    if vb is not None:
        d.key_b, d.shape_b, d.dtype_b = vb.name, tuple(vb.shape), vb.dtype
        if vb.identity != d.name:
            d.name_b = vb.identity
    if va is None or vb is None:
        d.status = ONLY_B if va is None else ONLY_A
        return d
    if d.shape_a != d.shape_b:
        d.status = SHAPE_CHANGED
        return d
    if progress is not None:
        progress(i, n, d.name)
    try:
        x = np.asarray(read_variable(a, va))
        y = np.asarray(read_variable(b, vb))
    except (ReadError, OSError, ValueError) as e:
        d.status, d.problem = UNREADABLE, str(e) or type(e).__name__
        return d
    c = compare_arrays(x, y)
    d.status = SAME if c.same else CHANGED
    d.max_abs_diff, d.l2_diff, d.rel_change = c.max_abs_diff, c.l2_diff, c.rel_change
    d.nan_mismatch = c.nan_mismatch
    return d


def is_numeric(x: np.ndarray) -> bool:
    """Whether a tensor's values are numbers (bool and the ml_dtypes types included)."""
    return dtypes.is_low_precision(x.dtype) or x.dtype.kind in "fiubc"


def compare_arrays(x: np.ndarray, y: np.ndarray) -> Comparison:
    """Whether two tensors of one shape hold the same values, and by how much they differ:
    first their bits (a chunk at a time, stopping at the first difference), then, only when
    they differ, the numbers."""
    if not (is_numeric(x) and is_numeric(y)):
        return Comparison(x.dtype == y.dtype and bool(np.all(x == y)))
    fx, fy = x.reshape(-1), y.reshape(-1)
    if x.dtype == y.dtype and all(_bits_equal(fx[lo:lo + CHUNK], fy[lo:lo + CHUNK])
                                  for lo in range(0, fx.size, CHUNK)):
        return Comparison(True, 0.0, 0.0, 0.0)
    return _differences(fx, fy)


def _differences(fx: np.ndarray, fy: np.ndarray, workers: int | None = None) -> Comparison:
    """max |x-y|, ‖x-y‖ and ‖x-y‖/‖x‖ in float64 (complex128), in contiguous spans on a
    thread each (numpy releases the GIL), each a chunk at a time in its own reused buffers;
    positions where one side is NaN are counted and left out."""
    workers = workers or min(4, os.cpu_count() or 1)
    step = -(-max(CHUNK, -(-fx.size // workers)) // CHUNK) * CHUNK
    spans = [(lo, min(lo + step, fx.size)) for lo in range(0, fx.size, step)] or [(0, 0)]
    if len(spans) == 1:
        parts = [_span_sums(fx, fy, *spans[0])]
    else:
        with ThreadPoolExecutor(len(spans)) as pool:
            parts = list(pool.map(lambda span: _span_sums(fx, fy, *span), spans))
    max_abs = max(p[0] for p in parts)
    l2, norm = math.sqrt(sum(p[1] for p in parts)), math.sqrt(sum(p[2] for p in parts))
    rel = l2 / norm if norm > 0 else (0.0 if l2 == 0 else math.inf)
    return Comparison(False, max_abs, l2, rel, sum(p[3] for p in parts))


def _span_sums(fx: np.ndarray, fy: np.ndarray, lo: int, hi: int
               ) -> tuple[float, float, float, int]:
    """(max |x-y|, Σ|x-y|², Σ|x|², NaN mismatches) over fx[lo:hi] and fy[lo:hi]."""
    work = np.complex128 if "c" in (fx.dtype.kind, fy.dtype.kind) else np.float64
    wx, wy, sq = (np.empty(min(CHUNK, hi - lo), work) for _ in range(3))
    max_abs, sum_d2, sum_x2, mismatch = 0.0, 0.0, 0.0, 0
    for start in range(lo, hi, CHUNK):
        n = min(CHUNK, hi - start)
        x, y, s = wx[:n], wy[:n], sq[:n]
        np.copyto(x, fx[start:start + n], casting="unsafe")
        np.copyto(y, fy[start:start + n], casting="unsafe")
        sum_x2 += _sum_squares(x, s, skip_nan=True)
        with np.errstate(invalid="ignore"):   # inf - inf: handled below
            d = np.subtract(x, y, out=y)
        d2 = _sum_squares(d, s)
        if math.isnan(d2):   # a NaN on one side: counted, left out of the numbers
            undefined = np.isnan(d)
            mismatch += int(np.count_nonzero(undefined & ~_agree(x, fy[start:start + n])))
            d[undefined] = 0.0
            d2 = _sum_squares(d, s)
        sum_d2 += d2
        m = np.abs(d) if d.dtype.kind == "c" else d
        max_abs = max(max_abs, float(np.abs(m.max())), float(np.abs(m.min())))
    return max_abs, sum_d2, sum_x2, mismatch


def _agree(x: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Where x (widened) and the chunk cy hold the same value or both NaN (equal infinities
    leave a NaN difference too)."""
    y = cy.astype(x.dtype)
    return (x == y) | (np.isnan(x) & np.isnan(y))


def _sum_squares(w: np.ndarray, scratch: np.ndarray, skip_nan: bool = False) -> float:
    """Σ|w|² (NaN when w holds a NaN, unless ``skip_nan`` leaves them out). No BLAS: np.dot
    and np.vdot crawl when their threads compete for a busy machine's cores."""
    if w.dtype.kind == "c":
        w, scratch = w.view(np.float64), scratch.view(np.float64)[:2 * w.size]
    s = float(np.add.reduce(np.square(w, out=scratch[:w.size])))
    if skip_nan and math.isnan(s):
        kept = w[~np.isnan(w)]
        s = float(np.add.reduce(np.square(kept)))
    return s


def _bits_equal(cx: np.ndarray, cy: np.ndarray) -> bool:
    """Whether two chunks of one dtype hold the same bits, a NaN equalling any NaN at the
    same position."""
    ux, uy = _bits(cx), _bits(cy)
    if np.array_equal(ux, uy):
        return True
    if not (cx.dtype.kind in "fc" or dtypes.is_low_precision(cx.dtype)):
        return False
    differ = ux != uy
    if differ.ndim > 1:
        differ = differ.any(axis=-1)
    wide = np.complex128 if cx.dtype.kind == "c" else np.float64
    return bool(np.all(np.isnan(cx[differ].astype(wide)) & np.isnan(cy[differ].astype(wide))))


def _bits(c: np.ndarray) -> np.ndarray:
    """The chunk's bits as unsigned integers, one per element (complex: two per element)."""
    size = c.dtype.itemsize
    if c.dtype.kind == "c":
        return np.ascontiguousarray(c).view(f"u{size // 2}").reshape(-1, 2)
    return np.ascontiguousarray(c).view(f"u{size}")


def overlaid_histograms(x: np.ndarray, y: np.ndarray, bins: int = 64
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, counts of x, counts of y): the finite values of both on the same bins."""
    def finite(a):
        a = dtypes.as_float32(np.asarray(a)).reshape(-1)
        if a.dtype.kind == "c":
            a = np.abs(a)
        a = a.astype(np.float64, copy=False) if a.dtype.kind in "iub" else a
        return a[np.isfinite(a)]

    fx, fy = finite(x), finite(y)
    both = [v for v in (fx, fy) if v.size]
    lo = min((float(v.min()) for v in both), default=0.0)
    hi = max((float(v.max()) for v in both), default=1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    return edges, np.histogram(fx, edges)[0], np.histogram(fy, edges)[0]


def difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """a - b for the picture, in float64 (complex: the magnitude of the difference)."""
    if "c" in (x.dtype.kind, y.dtype.kind):
        return np.abs(x.astype(np.complex128) - y.astype(np.complex128))
    return x.astype(np.float64) - y.astype(np.float64)


def result_dict(r: DiffResult) -> dict:
    """The JSON the CLI prints: ``a``, ``b``, ``variables`` (sorted by change) and
    ``counters``; a non-finite number as the string "inf" or "nan"."""
    return {"a": r.a, "b": r.b, "a_directory": r.a_directory, "b_directory": r.b_directory,
            "identical": r.identical, "counts": r.counts(),
            "variables": [_variable_dict(v) for v in r.variables],
            "counters": [_variable_dict(v) for v in r.counters]}


def _variable_dict(v: VariableDiff) -> dict:
    d = {"name": v.key_a if v.key_a is not None else v.key_b, "path": v.name,
         "status": v.status, "max_abs_diff": _number(v.max_abs_diff),
         "l2_diff": _number(v.l2_diff), "rel_change": _number(v.rel_change), "role": v.role,
         "name_b": v.key_b, "path_b": v.name_b or v.name if v.key_b else None, "how": v.how,
         "shape_a": _shape(v.shape_a), "shape_b": _shape(v.shape_b),
         "dtype_a": v.dtype_a, "dtype_b": v.dtype_b}
    if v.nan_mismatch:
        d["nan_mismatch"] = v.nan_mismatch
    if v.problem:
        d["problem"] = v.problem
    return d


def _number(x: float | None):
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else "inf"


def _shape(s):
    return None if s is None else list(s)
