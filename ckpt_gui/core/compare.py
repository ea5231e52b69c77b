"""One variable across the checkpoints of a training run: how its statistics move, and how much
it changed since the checkpoint before."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .model import BROKEN, CheckpointInfo, DirectoryScan, TensorStats
from .naming import natural_key
from .stats import tensor_stats


@dataclass
class TrendPoint:
    checkpoint: str
    x: float                      # training counter when there is one, else the number
    stats: TensorStats
    change_l2: float | None       # ||this - previous||, None for the first point
    relative_change: float | None  # change_l2 / ||previous||


@dataclass
class Trend:
    variable: str
    x_label: str                  # what x is: a counter's name, "number" or "order"
    points: list[TrendPoint]
    skipped: list[str]            # checkpoints without this variable (or of another shape)


def _x_of(c: CheckpointInfo, index: int) -> tuple[str, float]:
    progress = c.training_progress()
    if progress is not None:
        return "training step", float(progress)
    if c.number is not None:
        return "number", float(c.number)
    return "order", float(index)


def peers(scan: DirectoryScan, name: str, shape: tuple[int, ...]) -> tuple[list[CheckpointInfo], list[str]]:
    """Readable checkpoints holding ``name`` with this shape, in training order."""
    holding, skipped = [], []
    for c in scan.checkpoints:
        v = c.variable(name)
        if v is not None and v.shape == tuple(shape) and c.status != BROKEN and v.readable is not False:
            holding.append(c)
        else:
            skipped.append(c.name)
    holding.sort(key=lambda c: (c.training_progress() if c.training_progress() is not None else -1,
                                c.number if c.number is not None else -1, natural_key(c.name)))
    return holding, skipped


def variable_trend(scan: DirectoryScan, name: str, shape: tuple[int, ...],
                   read: Callable[[CheckpointInfo, str], np.ndarray],
                   progress: Callable[[int, int, str], None] | None = None,
                   cancelled: Callable[[], bool] | None = None, bins: int = 32) -> Trend:
    """Read ``name`` from every checkpoint that has it (one tensor in memory at a time, plus the
    previous one for the change)."""
    holding, skipped = peers(scan, name, shape)
    labels = {_x_of(c, i)[0] for i, c in enumerate(holding)}
    x_label = labels.pop() if len(labels) == 1 else "order"
    points: list[TrendPoint] = []
    previous = None
    for i, c in enumerate(holding):
        if cancelled is not None and cancelled():
            break
        if progress is not None:
            progress(i, len(holding), f"{name} in {c.name}")
        try:
            value = np.asarray(read(c, name))
        except Exception:
            skipped.append(c.name)
            continue
        change = relative = None
        if previous is not None and value.dtype.kind in "fiuc":
            diff = value.astype(np.float64) - previous
            change = float(np.sqrt(np.vdot(diff, diff).real))
            base = float(np.sqrt(np.vdot(previous, previous).real))
            relative = change / base if base > 0 else (0.0 if change == 0 else math.inf)
        x = _x_of(c, i)[1] if x_label != "order" else float(i)
        points.append(TrendPoint(c.name, x, tensor_stats(value, bins=bins), change, relative))
        previous = value.astype(np.float64) if value.dtype.kind in "fiuc" else None
    if progress is not None:
        progress(len(holding), len(holding), "")
    return Trend(name, x_label, points, skipped)
