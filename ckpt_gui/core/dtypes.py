"""The low-precision numeric dtypes numpy lacks (bfloat16, float8, int4, ...) and their numpy
dtypes from ml_dtypes, the library TensorFlow and Keras themselves store and read them with.

Why a module: TF bundles name them by DataType enum, Keras ``.weights.h5`` files keep them as
opaque bytes with a ``dtype`` attribute, and statistics and previews must compute them in
float32; all three ask here. ml_dtypes is imported only when such a tensor is decoded (its
import takes a noticeable fraction of a second, and most checkpoints hold none)."""
from __future__ import annotations

import numpy as np

# name (as tf.DType.name and ml_dtypes spell it) -> bytes per element as TensorFlow and Keras
# store it: one byte for the 8-, 4- and 2-bit types (not packed), two for bfloat16
ITEMSIZE: dict[str, int] = {
    "bfloat16": 2,
    "float8_e5m2": 1, "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e4m3b11fnuz": 1,
    "float8_e5m2fnuz": 1, "int4": 1, "uint4": 1, "int2": 1, "uint2": 1, "float4_e2m1fn": 1,
}


def numpy_dtype(name: str) -> np.dtype | None:
    """The ml_dtypes dtype named ``name``, None for a name that is not one of ITEMSIZE's."""
    if name not in ITEMSIZE:
        return None
    import ml_dtypes

    return np.dtype(getattr(ml_dtypes, name))


def is_low_precision(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is one of ml_dtypes' (numpy reports most of them as kind 'V', like
    opaque bytes, so the kind alone cannot tell); checked without importing ml_dtypes."""
    return dtype.name in ITEMSIZE and dtype.type.__module__ == "ml_dtypes"


def as_float32(a: np.ndarray) -> np.ndarray:
    """``a`` in float32 when it is low-precision (exact: every value of these types is a
    float32), else ``a`` itself. Callers convert bounded pieces, never a huge tensor at once."""
    return a.astype(np.float32) if is_low_precision(a.dtype) else a


def widened(a: np.ndarray) -> np.ndarray:
    """``a`` in the numpy type that holds its values exactly and prints them as numbers
    (int64 for int4/int2/..., float32 for the floats) when it is low-precision, else ``a``."""
    if not is_low_precision(a.dtype):
        return a
    return a.astype(np.int64 if "int" in a.dtype.name else np.float32)
