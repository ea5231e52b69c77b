"""Keras HDF5 weights (Keras 1/2 ``.h5``, Keras 3 ``.weights.h5``) and ``.keras`` archives."""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .model import KERAS3_H5, KERAS_ARCHIVE, KERAS_H5
from .naming import natural_key

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
ARCHIVE_WEIGHTS = "model.weights.h5"


class HDF5Error(ValueError):
    pass


def has_hdf5_signature(path: str) -> bool:
    """HDF5 puts its signature at byte 0, 512, 1024, 2048, ... (after a user block)."""
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048):
                f.seek(offset)
                if f.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def is_zip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ZIP_SIGNATURE
    except OSError:
        return False


class _MemberView(io.RawIOBase):
    """A read-only, seekable window onto an uncompressed member of a zip file."""

    def __init__(self, path: str, start: int, length: int):
        super().__init__()
        self._f = open(path, "rb")
        self._start, self._length, self._pos = start, length, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b):
        n = max(0, min(len(b), self._length - self._pos))
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self):
        self._f.close()
        super().close()


@contextmanager
def open_weights(path: str, fmt: str):
    """Open the HDF5 weights of ``path`` (an .h5 file or the weights inside a .keras archive)."""
    import h5py

    if fmt != KERAS_ARCHIVE:
        with h5py.File(path, "r") as f:
            yield f
        return
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(ARCHIVE_WEIGHTS)
        except KeyError:
            raise HDF5Error(f"the archive has no {ARCHIVE_WEIGHTS}") from None
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as raw:
                raw.seek(info.header_offset)
                header = raw.read(30)
            if header[:4] != ZIP_SIGNATURE:
                raise HDF5Error("corrupt zip local header")
            name_len, extra_len = struct.unpack_from("<HH", header, 26)
            fileobj = _MemberView(path, info.header_offset + 30 + name_len + extra_len,
                                  info.file_size)
        else:
            fileobj = io.BytesIO(zf.read(info))
    try:
        with h5py.File(fileobj, "r") as f:
            yield f
    finally:
        fileobj.close()


def archive_config(path: str) -> dict | None:
    """The model config a .keras archive carries (config.json), or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("config.json"))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None


@dataclass
class H5Dataset:
    name: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int


def _dtype_name(dt: np.dtype) -> str:
    if dt.kind in "SUO":
        return "string"
    return np.dtype(dt).name


def list_datasets(f) -> list[H5Dataset]:
    """Every dataset in the file, in natural order of its path."""
    out: list[H5Dataset] = []

    def visit(name, obj):
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            dt = obj.dtype
            n = int(np.prod(obj.shape)) if obj.shape else 1
            out.append(H5Dataset(name, tuple(int(d) for d in obj.shape), _dtype_name(dt),
                                 n * dt.itemsize))

    f.visititems(visit)
    out.sort(key=lambda d: natural_key(d.name))
    return out


def detect_layout(f) -> tuple[str, str]:
    """(format, writer) from the file's structure."""
    attrs = f.attrs
    version = attrs.get("keras_version")
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    if "layers" in f and "layer_names" not in attrs and version is None:
        return KERAS3_H5, "Keras 3 save_weights / ModelCheckpoint (.weights.h5)"
    if "model_weights" in f or "model_config" in attrs:
        return KERAS_H5, f"Keras {version or '2'} model.save (whole model, HDF5)"
    if version and str(version).startswith("1"):
        return KERAS_H5, f"Keras {version} save_weights (HDF5)"
    if "layer_names" in attrs:
        return KERAS_H5, f"Keras {version or '2'} save_weights (HDF5)"
    return KERAS_H5, "HDF5 file"


def read_dataset(f, name: str) -> np.ndarray:
    ds = f[name]
    value = ds[()]
    if isinstance(value, bytes):
        return np.array(value, dtype=object)
    return np.asarray(value)


def optimizer_name(f) -> str | None:
    """Keras 3 stores the optimizer's name as an attribute of optimizer/vars."""
    try:
        name = f["optimizer/vars"].attrs.get("name")
    except KeyError:
        return None
    return name.decode() if isinstance(name, bytes) else name


def file_size(path: str) -> int:
    return os.path.getsize(path)
