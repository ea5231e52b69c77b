"""Health flags of a variable: what a person training a model wants pointed out.

Two kinds of checks, both cheap next to reading the tensor:

- of one tensor, wherever it is read anyway (verification, the trajectory): NaN/Inf present,
  dead units (all-zero rows or columns of a 2-D kernel);
- along a training run (the trajectory, which reads each checkpoint's tensor in run order):
  a norm that jumped more than ``JUMP_FACTOR`` times since the previous checkpoint of the run,
  and a variable that never changed along the run.

A flag is plain data (kind, count, message) that the JSON, the CLI and the panels show as is.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .model import WEIGHT, TensorStats
from ..textfmt import plural

NONFINITE = "nonfinite"    # NaN or Inf values
DEAD_UNITS = "dead-units"  # all-zero rows or columns of a kernel
NORM_JUMP = "norm-jump"    # the L2 norm grew more than JUMP_FACTOR times in one save
FROZEN = "frozen"          # the same values in every checkpoint of a run
KINDS = (NONFINITE, DEAD_UNITS, NORM_JUMP, FROZEN)

JUMP_FACTOR = 10.0
_ROWS = 1 << 14  # kernel rows per step of the dead-unit scan: its masks stay small


@dataclass(frozen=True)
class Flag:
    kind: str      # one of KINDS
    count: int     # NaN+Inf values, dead units, the jump's factor (rounded), checkpoints
    message: str   # one line, e.g. "3 NaN, 1 Inf" or "2 of 64 columns all zero"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "count": self.count, "message": self.message}


def tensor_flags(array: np.ndarray, role: str,
                 stats: TensorStats | None = None) -> tuple[Flag, ...]:
    """NaN/Inf and dead units of one tensor. ``stats`` (tensor_stats of it), when already
    computed, saves counting NaN, Inf and zeros again."""
    a = np.asarray(array)
    if a.dtype.kind not in "fciub" or a.size == 0:
        return ()
    if stats is not None:
        nan, inf, zeros = stats.nan, stats.inf, stats.zeros
    else:
        nan, inf = _nonfinite(a)
        zeros = None
    flags = []
    if nan or inf:
        flags.append(Flag(NONFINITE, nan + inf, _nonfinite_text(nan, inf)))
    dead = dead_units(a, role, zeros)
    if dead is not None:
        flags.append(dead)
    return tuple(flags)


def _nonfinite(a: np.ndarray) -> tuple[int, int]:
    """(NaN, Inf) counts; one sum decides that there are none (NaN and Inf survive a sum; an
    overflowing sum of finite values only costs the exact count)."""
    if a.dtype.kind not in "fc":
        return 0, 0
    with np.errstate(all="ignore"):
        if np.isfinite(a.sum()):
            return 0, 0
    nan = int(np.count_nonzero(np.isnan(a)))
    return nan, int(np.count_nonzero(np.isinf(a)))


def _nonfinite_text(nan: int, inf: int) -> str:
    return ", ".join(t for t in (f"{nan:,} NaN" if nan else "", f"{inf:,} Inf" if inf else "") if t)


def dead_units(a: np.ndarray, role: str, zeros: int | None = None) -> Flag | None:
    """All-zero rows (inputs nothing reads) or columns (units that output nothing) of a 2-D
    kernel. ``zeros``: how many elements are zero, when known; fewer than a row or a column
    means there is none, with no scan."""
    if role != WEIGHT or a.ndim != 2 or min(a.shape) < 2:
        return None
    rows, cols = a.shape
    if zeros is None:
        zeros = a.size - int(np.count_nonzero(a))
    if zeros < min(rows, cols):
        return None
    live_cols = np.zeros(cols, bool)
    dead_rows = 0
    for start in range(0, rows, _ROWS):
        nonzero = a[start:start + _ROWS] != 0
        dead_rows += int(np.count_nonzero(~nonzero.any(axis=1)))
        live_cols |= nonzero.any(axis=0)
    dead_cols = cols - int(np.count_nonzero(live_cols))
    if not dead_rows and not dead_cols:
        return None
    parts = [f"{dead_cols:,} of {plural(cols, 'column')} (units)" if dead_cols else "",
             f"{dead_rows:,} of {plural(rows, 'row')} (inputs)" if dead_rows else ""]
    text = " and ".join(p for p in parts if p) + " all zero"
    return Flag(DEAD_UNITS, dead_rows + dead_cols, text)


def jump_flag(l2: float | None, previous_l2: float | None, previous: str) -> Flag | None:
    """The norm grew more than JUMP_FACTOR times since the run's previous checkpoint. A norm
    leaving zero is an initialisation (biases start at zero), not a jump."""
    if l2 is None or not previous_l2 or previous_l2 <= 0 or l2 <= JUMP_FACTOR * previous_l2:
        return None
    factor = l2 / previous_l2
    return Flag(NORM_JUMP, round(factor), f"L2 norm ×{factor:.3g} since {previous}")


def frozen_flag(n_checkpoints: int, run: str | None) -> Flag:
    where = f"run {run}" if run is not None else "its run"
    return Flag(FROZEN, n_checkpoints,
                f"unchanged in all {n_checkpoints} checkpoints of {where}")


def summary(flag_lists) -> dict[str, int]:
    """How many variables carry each kind of flag (a checkpoint's summary), kinds in order."""
    counts = Counter(kind for flags in flag_lists for kind in {f.kind for f in flags})
    return {k: counts[k] for k in KINDS if counts[k]}


def summary_text(counts: dict[str, int]) -> str:
    """'2 variables with NaN/Inf; 1 with dead units'."""
    words = {NONFINITE: "NaN/Inf", DEAD_UNITS: "dead units", NORM_JUMP: "a norm jump",
             FROZEN: "no change along the run"}
    return "; ".join(f"{plural(n, 'variable')} with {words[k]}" for k, n in counts.items())
