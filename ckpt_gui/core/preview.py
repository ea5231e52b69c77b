"""What the preview panel draws, computed away from the GUI: a tensor, its statistics, and a
display array small enough to paint (a 2-D slice downsampled by block means, or a 1-D vector)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .model import TensorStats, VariableInfo
from .stats import tensor_stats

MAX_IMAGE_SIDE = 1024
MAX_VECTOR = 4096
IMAGE, VECTOR, SCALAR, TEXT = "image", "vector", "scalar", "text"


@dataclass
class TensorPreview:
    checkpoint: str
    variable: VariableInfo
    array: np.ndarray                 # the whole tensor (export, hover, slicing)
    stats: TensorStats
    kind: str                         # image | vector | scalar | text
    display: np.ndarray | None        # what is painted (float32), None for scalar/text
    step: tuple[int, ...] = (1, 1)    # display pixel -> tensor index factor per axis
    index: tuple[int, ...] = ()       # fixed leading indices of a >2-D tensor
    text: str = ""


def _as_float(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "c":
        a = np.abs(a)
    return a.astype(np.float32, copy=False)


def _block_mean(a: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Average sy x sx blocks so no side exceeds ``max_side``. Sums run in float32 (numpy's
    pairwise summation keeps the error near 1e-7 of the values: plenty for a colour), row bands
    at a time so a trimmed, non-contiguous view is never copied whole."""
    rows, cols = a.shape
    sy, sx = -(-rows // max_side), -(-cols // max_side)
    if sy == 1 and sx == 1:
        return _as_float(a), (1, 1)
    if a.dtype.kind == "c":
        a = np.abs(a)
    r, c = rows // sy * sy, cols // sx * sx
    out = np.empty((r // sy, c // sx), dtype=np.float32)
    band = max(sy, (1 << 22) // max(c, 1) // sy * sy)  # about 4M elements a band
    for i in range(0, r, band):
        block = a[i:min(i + band, r), :c]
        n = block.shape[0]
        out[i // sy:(i + n) // sy] = block.reshape(n // sy, sy, c // sx, sx).mean(
            axis=(1, 3), dtype=np.float32)
    return out, (sy, sx)


def text_of(array: np.ndarray) -> str:
    """Scalars and strings as text; JSON (Keras OBJECT_CONFIG_JSON) pretty-printed."""
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
    return str(array.reshape(-1)[0].item() if array.size == 1 else array)


def make_preview(checkpoint: str, variable: VariableInfo, array: np.ndarray,
                 index: tuple[int, ...] | None = None, stats: TensorStats | None = None,
                 bins: int = 64) -> TensorPreview:
    array = np.asarray(array)
    if stats is None:
        stats = tensor_stats(array, bins=bins)
    if array.dtype == object or array.dtype.kind in "SUV":
        return TensorPreview(checkpoint, variable, array, stats, TEXT, None, text=text_of(array))
    if array.size == 1 and array.ndim <= 1 or array.ndim == 0:
        return TensorPreview(checkpoint, variable, array, stats, SCALAR, None, text=text_of(array))
    if array.ndim == 1:
        step = -(-array.size // MAX_VECTOR)
        display = _as_float(array[::step]) if step > 1 else _as_float(array)
        return TensorPreview(checkpoint, variable, array, stats, VECTOR, display, (step,))
    lead = array.ndim - 2
    index = tuple(index or ())[:lead]
    index = index + (0,) * (lead - len(index))
    index = tuple(min(max(i, 0), array.shape[k] - 1) for k, i in enumerate(index))
    plane = array[index] if lead else array
    display, step = _block_mean(plane, MAX_IMAGE_SIDE)
    return TensorPreview(checkpoint, variable, array, stats, IMAGE, display, step, index)
