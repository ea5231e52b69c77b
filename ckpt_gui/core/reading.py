"""Read one tensor on demand, and verify a checkpoint by reading all of them: each checkpoint's
format reads it (core/formats/, with the readers of core/readers.py)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import formats
from .model import CheckpointInfo
from .readers import ReadError

__all__ = ["ReadError", "read_tensor", "verify_checkpoint"]


def read_tensor(ckpt: CheckpointInfo, name: str) -> np.ndarray:
    """The value of variable ``name`` (its key or its object path) of ``ckpt`` as a numpy array
    (strings as bytes objects). A numeric TF tensor comes back read-only: it shares
    TensorFlow's buffer instead of being copied. Nothing is read that does not fit the memory
    budget or does not lie in a regular file of the checkpoint; ReadError says why not."""
    var = ckpt.variable(name)
    if var is None:
        raise ReadError(f"{ckpt.name} has no variable {name}")
    return formats.for_name(ckpt.format).read(ckpt, var)


def verify_checkpoint(ckpt: CheckpointInfo,
                      progress: Callable[[int, int, str], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> CheckpointInfo:
    """Read every tensor; mark each readable or not; set n_readable, status and problems."""
    return formats.for_name(ckpt.format).verify(ckpt, progress, cancelled)
