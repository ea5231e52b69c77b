"""What the preview panel draws, computed away from the GUI: a tensor, its statistics, and a
display array small enough to paint (a 2-D slice or a vector, reduced by blocks when large),
with its NaN/+Inf/-Inf cells marked so that they are drawn in their own colours, never as
numbers; the object graph as a tree; JSON strings pretty-printed."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from . import dtypes, objgraph, protowire
from .model import ObjectNode, TensorStats, VariableInfo
from .roles import OBJECT_GRAPH_KEY
from .stats import tensor_stats

MAX_IMAGE_SIDE = 1024
MAX_VECTOR = 4096
IMAGE, VECTOR, SCALAR, TEXT, TREE = "image", "vector", "scalar", "text", "tree"

# How a block of elements becomes one painted cell when a tensor is larger than the screen.
MEAN, MAX_ABS = "mean", "max|x|"

# Codes of TensorPreview.special: what a painted cell holds besides a finite value. A block
# holding any NaN is NaN, else any +Inf is +Inf, else any -Inf is -Inf: one bad element is
# never averaged away.
FINITE, NAN, POSINF, NEGINF = 0, 1, 2, 3

# Colour ranges (lo, hi) a heatmap can be drawn with; AUTO is symmetric for signed data and
# min-max for non-negative data.
AUTO, SYMMETRIC, MIN_MAX, PERCENTILE = "auto", "±max|x|", "min–max", "1–99 %"
RANGE_MODES = (AUTO, SYMMETRIC, MIN_MAX, PERCENTILE)
PERCENTILES = (1.0, 99.0)


@dataclass
class TreeRow:
    """One row of a read-only tree view (the object graph): plain data, no Qt."""
    label: str
    detail: str = ""
    children: list["TreeRow"] = field(default_factory=list)


@dataclass
class TensorPreview:
    checkpoint: str
    variable: VariableInfo
    array: np.ndarray | None          # the whole tensor (export, hover, slicing); None when
                                      # it was read in chunks (``streamed``)
    stats: TensorStats
    kind: str                         # image | vector | scalar | text | tree
    display: np.ndarray | None        # what is painted (float32, finite), None for the others
    step: tuple[int, ...] = (1, 1)    # display cell -> tensor index factor per axis
    index: tuple[int, ...] = ()       # fixed leading indices of a >2-D tensor
    text: str = ""
    special: np.ndarray | None = None  # uint8 FINITE/NAN/POSINF/NEGINF per cell; None: all finite
    blocks: str = MEAN                # how cells were reduced when step > 1
    display_range: tuple[float, float] | None = None  # finite min/max of the painted cells
    percentiles: tuple[float, float] | None = None    # PERCENTILES of the painted cells
    tree: TreeRow | None = None
    streamed: bool = False            # read in chunks (core/chunked.py): only ``display`` is kept

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape if self.array is not None else tuple(self.variable.shape)

    @property
    def dtype(self) -> str:
        return str(self.array.dtype) if self.array is not None else self.variable.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def downsampled(self) -> bool:
        return any(s > 1 for s in self.step)

    @property
    def signed(self) -> bool:
        """Whether the tensor has negative values (a diverging colour map fits it)."""
        return self.stats.min is not None and self.stats.min < 0

    @property
    def constant(self) -> float | None:
        """The one value every painted cell holds, if they all hold the same finite value."""
        r = self.display_range
        if r is None or r[0] != r[1]:
            return None
        return r[0] if not self.downsampled or self.stats.min == self.stats.max else None

    def tensor_index(self, i: int) -> tuple[int, ...]:
        """The tensor index of element ``i`` of a vector view (1-D, 1xN or Nx1 alike)."""
        return tuple(int(k) for k in np.unravel_index(i, self.shape))


def colour_levels(p: TensorPreview, mode: str) -> tuple[float, float]:
    """The value range the colour map spans for ``mode``. Signed data keeps zero in the middle
    for the symmetric and percentile ranges (±max|x|, ±the larger of the 1st/99th percentile's
    magnitudes); min-max is the one asymmetric choice. Never empty: a constant picture gets the
    colour its value has in a range reaching from zero (or -|value|) to it."""
    lo, hi = p.display_range or (0.0, 1.0)
    if mode == AUTO:
        mode = SYMMETRIC if p.signed else MIN_MAX
    if mode == PERCENTILE and p.percentiles is not None:
        lo, hi = p.percentiles
        mode = SYMMETRIC if p.signed else MIN_MAX
    if mode == SYMMETRIC:
        bound = max(abs(lo), abs(hi))
        lo, hi = -bound, bound
    if hi > lo:
        return lo, hi
    bound = abs(lo) or 1.0
    return (-bound, bound) if mode == SYMMETRIC or lo <= 0 else (0.0, lo)


def _as_float(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "c":
        a = np.abs(a)
    return a.astype(np.float32, copy=False)


def _blocks(x: np.ndarray, by: int, bx: int, ufunc, dtype=None) -> np.ndarray:
    """``ufunc`` reduced over each by x bx block of the 2-D ``x`` (sides multiples of them):
    first down the rows, whole rows combined element-wise (contiguous, vectorized), then across
    bx-wide groups of the much smaller result. Twenty times faster than reducing a 4-D view
    over axes (1, 3), whose inner loops are bx elements long."""
    rows, cols = x.shape
    down = ufunc.reduce(x.reshape(rows // by, by, cols), axis=1, dtype=dtype)
    return ufunc.reduce(down.reshape(rows // by, cols // bx, bx), axis=2)


def _special_codes(seg: np.ndarray, by: int, bx: int) -> np.ndarray:
    """FINITE/NAN/POSINF/NEGINF of each by x bx block of ``seg``."""
    def held(mask):
        return _blocks(mask, by, bx, np.logical_or)
    codes = np.where(held(np.isneginf(seg)), NEGINF, FINITE)
    codes = np.where(held(np.isposinf(seg)), POSINF, codes)
    return np.where(held(np.isnan(seg)), NAN, codes).astype(np.uint8)


def _reduce_cells(seg: np.ndarray, by: int, bx: int, how: str, finite_only: bool
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """One painted cell per by x bx block of ``seg`` (whose sides are multiples of them):
    the block's mean, or its element of largest magnitude with its sign (MAX_ABS; of a
    block holding both x and -x, x). With ``finite_only`` (the tensor has NaN or Inf) the
    reduction skips non-finite elements and the block's code says what it held; otherwise the
    fast path, as float32 sums."""
    if seg.dtype.kind == "c":
        seg = np.abs(seg)
    special = None
    if finite_only:
        special = _special_codes(seg, by, bx)
        finite = np.isfinite(seg)
        seg = np.where(finite, seg, 0)
    if how == MAX_ABS:
        # the largest and the smallest value of each block: the one further from zero
        # (non-finite elements count as 0, which never wins over a finite value)
        hi, lo = _blocks(seg, by, bx, np.maximum), _blocks(seg, by, bx, np.minimum)
        out = np.where(np.abs(lo) > np.abs(hi), lo, hi).astype(np.float32)
    elif finite_only:
        total = _blocks(seg, by, bx, np.add, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (total / _blocks(finite, by, bx, np.add, dtype=np.int64)).astype(np.float32)
    else:
        out = _blocks(seg, by, bx, np.add, dtype=np.float32) / np.float32(by * bx)
    if special is not None:
        out[special != FINITE] = 0.0
    return out, special


def _spans(n: int, size: int) -> list[tuple[int, int, int]]:
    """(start, stop, block) runs covering 0..n: whole blocks of ``size``, then the remainder
    as one shorter block, so no element is left out of the picture."""
    whole = n // size * size
    runs = [(0, whole, size)] if whole else []
    return runs + [(whole, n, n - whole)] if whole < n else runs


PIECE = 1 << 22  # elements reduce_blocks works on at a time


def block_steps(rows: int, cols: int, max_rows: int, max_cols: int) -> tuple[int, int]:
    """(sy, sx): the block a painted cell stands for, so that at most max_rows x max_cols."""
    return -(-rows // max_rows), -(-cols // max_cols)


class BlockReducer:
    """A rows x cols plane reduced by (sy, sx) blocks into ``out`` (and ``special``), from
    pieces of it: whole planes (reduce_blocks) or its elements arriving in C order
    (``feed``, for a tensor read in chunks). Pieces of about 4M elements are reduced at a
    time (row bands, and column bands of a long vector), so a trimmed, non-contiguous view is
    never copied whole and a low-precision tensor (bfloat16, float8, int4, ...) is widened to
    float32 a piece at a time. Fed in C order, it holds at most one row of blocks (sy rows; a
    column block of a vector) back between pieces: the one a piece ended inside (pieces of
    a multiple of ``unit`` elements are reduced without being copied).

    ``finite_only``: whether the plane holds NaN or Inf (then their blocks get codes), or None
    when that is not known yet (a tensor read in chunks, counted as it is read): a piece is
    then reduced again, with codes, when a cell came out NaN or infinite (which any NaN or Inf
    in its block makes it)."""

    def __init__(self, rows: int, cols: int, steps: tuple[int, int], how: str = MEAN,
                 finite_only: bool | None = None):
        self.rows, self.cols, (self.sy, self.sx) = rows, cols, steps
        self.how, self.finite_only = how, finite_only
        self.out = np.empty((-(-rows // self.sy), -(-cols // self.sx)), dtype=np.float32)
        self.special = np.zeros(self.out.shape, np.uint8) if finite_only else None
        # what ``feed`` completes before reducing: a row of blocks, or one block of a vector
        self.unit = self.sx if rows == 1 else self.sy * cols
        self._fed = 0                         # elements of the plane reduced so far
        self._carry: np.ndarray | None = None  # the start of an unfinished unit

    def reduce(self, plane: np.ndarray, row0: int = 0, col0: int = 0) -> None:
        """Reduce ``plane``, whose top left element is (row0, col0) of the whole (multiples of
        the block sides); only the plane's last row and column of blocks may be short."""
        sy, sx = self.sy, self.sx
        rows, cols = plane.shape
        band = max(sy, PIECE // max(cols, 1) // sy * sy)
        for r0, r1, by in _spans(rows, sy):
            for b0 in range(r0, r1, band):
                b1 = min(b0 + band, r1)
                col_band = max(sx, PIECE // (b1 - b0) // sx * sx)
                for c0, c1, bx in _spans(cols, sx):
                    for k0 in range(c0, c1, col_band):
                        piece = dtypes.as_float32(plane[b0:b1, k0:min(k0 + col_band, c1)])
                        cells, codes = _reduce_cells(piece, by, bx, self.how,
                                                     bool(self.finite_only))
                        if self.finite_only is None and not np.isfinite(cells).all():
                            # NaN or Inf (or an overflowing sum) reached a cell: again,
                            # with the codes
                            cells, codes = _reduce_cells(piece, by, bx, self.how, True)
                            if self.special is None:
                                self.special = np.zeros(self.out.shape, np.uint8)
                        top, left = (row0 + b0) // sy, (col0 + k0) // sx
                        where = (slice(top, top + cells.shape[0]),
                                 slice(left, left + cells.shape[1]))
                        self.out[where] = cells
                        if codes is not None:
                            self.special[where] = codes

    def feed(self, flat: np.ndarray) -> None:
        """The plane's next elements (C order, any count): reduced as soon as they complete
        whole units; the rest is kept (copied) for the next piece."""
        flat = flat.reshape(-1)
        if self._carry is not None:
            need = self.unit - self._carry.size
            head = np.concatenate([self._carry, flat[:need]])
            flat = flat[need:]
            if head.size < self.unit:
                self._carry = head
                return
            self._carry = None
            self._reduce_flat(head)
        whole = flat.size // self.unit * self.unit
        if whole:
            self._reduce_flat(flat[:whole])
        if whole < flat.size:
            self._carry = flat[whole:].copy()

    def _reduce_flat(self, flat: np.ndarray) -> None:
        if self.rows == 1:
            self.reduce(flat.reshape(1, -1), 0, self._fed)
        else:
            self.reduce(flat.reshape(-1, self.cols), self._fed // self.cols, 0)
        self._fed += flat.size

    def result(self) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
        """(display, special codes or None when every cell is finite, (sy, sx)); the last
        short row (or column) of blocks of a fed plane is reduced now."""
        if self._carry is not None:
            carry, self._carry = self._carry, None
            self._reduce_flat(carry)
        special = self.special if self.special is not None and self.special.any() else None
        return self.out, special, (self.sy, self.sx)


def reduce_blocks(plane: np.ndarray, max_rows: int, max_cols: int, how: str = MEAN,
                  finite_only: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """A 2-D plane reduced so that it has at most max_rows x max_cols cells: (display,
    special codes or None, (sy, sx)); see BlockReducer."""
    rows, cols = plane.shape
    steps = block_steps(rows, cols, max_rows, max_cols)
    if steps == (1, 1) and not finite_only:
        return _as_float(plane), None, (1, 1)
    reducer = BlockReducer(rows, cols, steps, how, finite_only)
    reducer.reduce(plane)
    return reducer.result()


def text_of(array: np.ndarray) -> str:
    """Scalars and strings as text; any JSON string (Keras OBJECT_CONFIG_JSON) pretty-printed."""
    if array.dtype == object or array.dtype.kind in "SU":
        items = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                 for x in array.reshape(-1)[:100]]
        out = []
        for s in items:
            try:
                out.append(json.dumps(json.loads(s), indent=2, sort_keys=False))
            except (ValueError, TypeError):
                out.append(s if s.isprintable() or "\n" in s else repr(s[:2000]))
        return "\n\n".join(out)
    return str(array.reshape(-1)[0] if array.size == 1 else array)  # numpy's shortest repr


def _node_row(node: ObjectNode) -> TreeRow:
    row = TreeRow(node.name or "(root)", f"node {node.node_id}")
    if node.aliases:
        row.detail += "; also " + ", ".join(node.aliases)
    row.children = [_node_row(child) for child in node.children]
    row.children += [TreeRow(key.rsplit("/.ATTRIBUTES/", 1)[-1], key) for key in node.variables]
    row.children += [TreeRow(f"slot {name}", key) for name, key in node.slots]
    return row


def object_tree(data: bytes) -> TreeRow:
    """The checkpoint's own tree of objects: children by local name, each object's saved
    attributes (checkpoint keys) and its optimizer slots."""
    return _node_row(objgraph.decode(data).root)


def _graph_preview(checkpoint, variable, array, stats) -> TensorPreview:
    raw = array.reshape(-1)[0] if array.size == 1 else b""
    try:
        tree = object_tree(raw if isinstance(raw, bytes) else bytes(raw))
    except (protowire.WireError, TypeError, ValueError) as e:
        return TensorPreview(checkpoint, variable, array, stats, TEXT, None,
                             text=f"The object graph cannot be decoded: {e}")
    return TensorPreview(checkpoint, variable, array, stats, TREE, None, tree=tree)


def _finite_range(display: np.ndarray, special: np.ndarray | None):
    values = display if special is None else display[special == FINITE]
    if not values.size:
        return None, None
    lo, hi = float(values.min()), float(values.max())
    return (lo, hi), tuple(float(v) for v in np.percentile(values, PERCENTILES))


def plane_of(shape: tuple[int, ...], index: tuple[int, ...] | None = None
             ) -> tuple[str, tuple[int, ...], tuple[int, int], tuple[int, int]]:
    """How a numeric tensor of ``shape`` (more than one element) is drawn: (VECTOR or IMAGE,
    the fixed leading indices (clamped), the drawn plane's (rows, cols), its cells' most
    (rows, cols)). A vector (1-D, 1xN, Nx1) is drawn as the 1 x N plane of all its elements;
    a higher rank as the last two axes at ``index``."""
    if sum(n > 1 for n in shape) == 1:
        return VECTOR, (), (1, math.prod(shape)), (1, MAX_VECTOR)
    lead = len(shape) - 2
    index = tuple(index or ())[:lead]
    index = index + (0,) * (lead - len(index))
    index = tuple(min(max(i, 0), shape[k] - 1) for k, i in enumerate(index))
    return IMAGE, index, tuple(shape[-2:]), (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE)


def drawn(checkpoint: str, variable: VariableInfo, array: np.ndarray | None,
          stats: TensorStats, kind: str, index: tuple[int, ...], reduced, blocks: str
          ) -> TensorPreview:
    """The preview of a plane reduced (BlockReducer.result) for ``kind``: a vector's one row
    becomes its display; the painted cells' range and percentiles are measured."""
    display, special, step = reduced
    if kind == VECTOR:
        display = display[0]
        special = None if special is None else special[0]
        step = (step[1],)
    display_range, percentiles = _finite_range(display, special)
    return TensorPreview(checkpoint, variable, array, stats, kind, display, step, index,
                         special=special, blocks=blocks, display_range=display_range,
                         percentiles=percentiles, streamed=array is None)


def make_preview(checkpoint: str, variable: VariableInfo, array: np.ndarray,
                 index: tuple[int, ...] | None = None, stats: TensorStats | None = None,
                 bins: int = 64, blocks: str = MEAN) -> TensorPreview:
    array = np.asarray(array)
    if stats is None:
        stats = tensor_stats(array, bins=bins)
    if variable.name == OBJECT_GRAPH_KEY and array.dtype == object:
        return _graph_preview(checkpoint, variable, array, stats)
    if (array.dtype == object or array.dtype.kind in "SUV") \
            and not dtypes.is_low_precision(array.dtype):
        return TensorPreview(checkpoint, variable, array, stats, TEXT, None, text=text_of(array))
    if array.size == 1 or array.ndim == 0:
        return TensorPreview(checkpoint, variable, array, stats, SCALAR, None, text=text_of(array))
    kind, index, (rows, cols), most = plane_of(array.shape, index)
    plane = array.reshape(rows, cols) if kind == VECTOR else array[index] if index else array
    reduced = reduce_blocks(plane, *most, blocks, finite_only=bool(stats.nan or stats.inf))
    return drawn(checkpoint, variable, array, stats, kind, index, reduced, blocks)
