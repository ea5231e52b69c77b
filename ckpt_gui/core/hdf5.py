"""Keras HDF5 weights (Keras 1/2 ``.h5``, Keras 3 ``.weights.h5``) and ``.keras`` archives."""
from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..textfmt import human_bytes
from . import dtypes, limits, storage
from .naming import natural_key

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
ARCHIVE_WEIGHTS = "model.weights.h5"


class HDF5Error(ValueError):
    pass


SIGNATURE_OFFSETS = (0, 512, 1024, 2048)  # after a user block of 0, 512, 1024, 2048 bytes
SNIFF_BYTES = SIGNATURE_OFFSETS[-1] + len(HDF5_SIGNATURE)


def has_hdf5_signature(path: str) -> bool:
    try:
        return starts_like_hdf5(storage.read_ends(path, SNIFF_BYTES, 0)[0])
    except OSError:
        return False


def starts_like_hdf5(head: bytes) -> bool:
    """Whether a file's first SNIFF_BYTES hold HDF5's signature where HDF5 puts it."""
    return any(head[at:at + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for at in SIGNATURE_OFFSETS)


class _MemberView(io.RawIOBase):
    """A read-only, seekable window onto an uncompressed member of a zip file (``fd``: the
    archive, open; read with pread, so the window keeps no shared file position)."""

    def __init__(self, fd: int, start: int, length: int):
        super().__init__()
        self._fd, self._start, self._length, self._pos = fd, start, length, 0

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
        data = storage.read_fd(self._fd, n, self._start + self._pos)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


# A member that expands more than this is a zip bomb, not weights: deflate's own limit is
# about 1030x (a run of one byte), weights compress a few times at most.
MAX_EXPANSION = 200
_EXPANSION_FLOOR = 64 << 20  # small members may be all zeros


@contextmanager
def open_weights(path: str, archive: bool):
    """Open the HDF5 weights of ``path`` (an .h5 file, or the weights inside a .keras
    ``archive``).

    The file is opened once, as a regular file (storage), and HDF5 opens that very file. A
    compressed member of an archive is decompressed into memory only when its declared size
    fits the memory budget and it does not expand like a zip bomb; zipfile never gives more
    than the declared size (a lying header fails its CRC)."""
    import h5py

    fd, st = storage.open_regular(path)
    try:
        if not archive:
            with h5py.File(storage.fd_path(fd, path), "r") as f:
                yield f
            return
        with storage.file_object(fd) as archive, zipfile.ZipFile(archive) as zf:
            fileobj = _archive_member(fd, st.st_size, zf)
        try:
            with h5py.File(fileobj, "r") as f:
                yield f
        finally:
            fileobj.close()
    finally:
        storage.close(fd)


def _archive_member(fd: int, archive_size: int, zf: zipfile.ZipFile):
    """The weights member of an open .keras archive as a seekable file object."""
    try:
        info = zf.getinfo(ARCHIVE_WEIGHTS)
    except KeyError:
        raise HDF5Error(f"the archive has no {ARCHIVE_WEIGHTS}") from None
    if info.compress_type == zipfile.ZIP_STORED:
        header = storage.read_fd(fd, 30, info.header_offset)
        if header[:4] != ZIP_SIGNATURE:
            raise HDF5Error("corrupt zip local header")
        name_len, extra_len = struct.unpack_from("<HH", header, 26)
        start = info.header_offset + 30 + name_len + extra_len
        if start + info.file_size > archive_size:
            raise HDF5Error(f"{ARCHIVE_WEIGHTS} is cut short in the archive")
        return _MemberView(fd, start, info.file_size)
    declared = info.file_size
    if declared > _EXPANSION_FLOOR and declared > MAX_EXPANSION * max(info.compress_size, 1):
        raise HDF5Error(
            f"refused: {ARCHIVE_WEIGHTS} would expand from {human_bytes(info.compress_size)} to "
            f"{human_bytes(declared)} (a zip bomb)")
    limits.check_fits(f"{ARCHIVE_WEIGHTS} (decompressed)", declared)
    out = io.BytesIO()
    with zf.open(info) as member:
        while chunk := member.read(1 << 20):
            out.write(chunk)
    out.seek(0)
    return out


CONFIG_LIMIT = 64 << 20  # a model's config.json is kilobytes


def archive_config(path: str) -> dict | None:
    """The model config a .keras archive carries (config.json), or None."""
    try:
        with storage.open_file(path) as archive, zipfile.ZipFile(archive) as zf:
            info = zf.getinfo("config.json")
            if info.file_size > CONFIG_LIMIT:
                return None
            return config_from_bytes(zf.read(info))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None


def config_from_bytes(raw: bytes) -> dict | None:
    """A Keras json file's contents (config.json, metadata.json) as a dict, or None."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


@dataclass
class H5Dataset:
    name: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int
    problem: str | None = None  # why its data is not read (it lives outside the file)


def _dtype_name(ds) -> str:
    dt = ds.dtype
    if dt.kind in "SUO":
        return "string"
    return _low_precision_name(ds) or np.dtype(dt).name


def _low_precision_name(ds) -> str | None:
    """The low-precision dtype a dataset of opaque bytes holds, by its ``dtype`` attribute: Keras
    3 stores bfloat16 weights so (HDF5 has no such type), naming it there. Only a name of
    dtypes.ITEMSIZE whose size is the stored one counts, so an odd attribute changes nothing."""
    dt = ds.dtype
    if dt.kind != "V" or dt.names is not None:
        return None
    name = ds.attrs.get("dtype")
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name if isinstance(name, str) and dtypes.ITEMSIZE.get(name) == dt.itemsize else None


def _nbytes(ds) -> int:
    return math.prod(ds.shape or ()) * ds.dtype.itemsize


def outside_data(ds) -> str | None:
    """Why the data of dataset ``ds`` must not be read, None if it lies in the file itself.
    HDF5 follows a dataset's external storage and a virtual dataset's mappings to other files
    by name: a downloaded checkpoint could make us read any file (Keras refuses both too)."""
    import h5py

    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        sources = sorted({dcpl.get_virtual_filename(i) for i in range(dcpl.get_virtual_count())})
        return (f"refused: its data maps onto another file ({', '.join(sources)}), "
                "outside the checkpoint (a virtual dataset)")
    if dcpl.get_external_count():
        name = dcpl.get_external(0)[0]
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"refused: its data lives in an external file {name}, outside the checkpoint"
    return None


def _link_problem(link) -> str | None:
    import h5py

    if isinstance(link, h5py.ExternalLink):
        return (f"refused: it links to {link.path} in another file, {link.filename}, outside "
                "the checkpoint")
    if isinstance(link, h5py.SoftLink):
        return f"refused: it is a soft link to {link.path}"
    return None


def list_datasets(f) -> list[H5Dataset]:
    """Every dataset in the file, in natural order of its path, found through its links
    without following soft or external ones (those are listed with their problem, as is a
    dataset whose data lives in other files; no other file is opened)."""
    import h5py

    out: list[H5Dataset] = []

    def visit(name, link):
        if not isinstance(link, h5py.HardLink):
            out.append(H5Dataset(name, (), "link", 0, _link_problem(link)))
            return
        obj = f[name]
        if isinstance(obj, h5py.Dataset):
            out.append(H5Dataset(name, tuple(int(d) for d in obj.shape), _dtype_name(obj),
                                 _nbytes(obj), outside_data(obj)))

    f.visititems_links(visit)
    out.sort(key=lambda d: natural_key(d.name))
    return out


def get(f, path: str):
    """The object at ``path`` reached through hard links only, None when there is none;
    HDF5Error refusing a soft or external link on the way (``path in f`` and ``f[path]``
    follow them, to other files too)."""
    node = f
    for part in path.strip("/").split("/"):
        if not hasattr(node, "get"):  # a dataset has no members
            return None
        link = node.get(part, getlink=True)
        if link is None:
            return None
        problem = _link_problem(link)
        if problem:
            raise HDF5Error(f"{path}: {problem}")
        node = node[part]
    return node


def detect_layout(f) -> tuple[bool, str]:
    """(whether it is a Keras 3 weights file, the writer) from the file's structure."""
    attrs = f.attrs
    version = attrs.get("keras_version")
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    has = {name: _has_hard(f, name) for name in ("layers", "model_weights")}
    if has["layers"] and "layer_names" not in attrs and version is None:
        return True, "Keras 3 save_weights / ModelCheckpoint (.weights.h5)"
    if has["model_weights"] or "model_config" in attrs:
        return False, f"Keras {version or '2'} model.save (whole model, HDF5)"
    if version and str(version).startswith("1"):
        return False, f"Keras {version} save_weights (HDF5)"
    if "layer_names" in attrs:
        return False, f"Keras {version or '2'} save_weights (HDF5)"
    return False, "HDF5 file"


def _has_hard(f, name: str) -> bool:
    import h5py

    return isinstance(f.get(name, getlink=True), h5py.HardLink)


def read_dataset(f, name: str) -> np.ndarray:
    """The dataset's values; KeyError when there is none, HDF5Error (or limits.OverBudget)
    saying why it is not read: a link, data outside the file, more than the memory budget."""
    ds = _readable_dataset(f, name)
    limits.check_fits(name, _nbytes(ds))
    value = ds[()]
    if isinstance(value, bytes):
        return np.array(value, dtype=object)
    return _as_stored(ds, np.asarray(value))


def iter_dataset(f, name: str, max_bytes: int):
    """The dataset's values in C order as pieces of at most ``max_bytes`` (h5py reads only the
    selected part: whole rows along the first axis, or parts of one row when a row is larger);
    the same refusals as read_dataset, but the memory budget bounds a piece, not the whole,
    and a dataset expanding like a bomb is refused (_check_expansion)."""
    ds = _readable_dataset(f, name)
    if not ds.shape:
        yield read_dataset(f, name)
        return
    _check_expansion(ds, name)
    for where in _c_order_pieces(tuple(ds.shape), ds.dtype.itemsize, max_bytes):
        yield _as_stored(ds, np.asarray(ds[where]))


def _check_expansion(ds, name: str) -> None:
    """HDF5Error unless the dataset's values come from about as many stored bytes: a dataset
    declaring a terabyte over a few kilobytes of compressed chunks (or none: its fill value)
    is a bomb, and reading it piece by piece would take hours (the zip bomb rule)."""
    declared, stored = _nbytes(ds), ds.id.get_storage_size()
    if declared > _EXPANSION_FLOOR and declared > MAX_EXPANSION * max(stored, 1):
        raise HDF5Error(f"refused: {name} would expand from {human_bytes(stored)} stored to "
                        f"{human_bytes(declared)}")


def _c_order_pieces(shape: tuple[int, ...], itemsize: int, max_bytes: int):
    """Index tuples selecting consecutive pieces of an array of ``shape`` in C order, each at
    most ``max_bytes`` when one element fits: as many whole sub-arrays along the first axis as
    fit, else each sub-array in pieces of its own."""
    inner = math.prod(shape[1:]) * itemsize
    if len(shape) == 1 or inner <= max_bytes:
        step = max(1, max_bytes // max(inner, 1))
        for start in range(0, shape[0], step):
            yield (slice(start, min(start + step, shape[0])),)
        return
    for i in range(shape[0]):
        for rest in _c_order_pieces(shape[1:], itemsize, max_bytes):
            yield (slice(i, i + 1),) + rest


def _readable_dataset(f, name: str):
    ds = get(f, name)
    if ds is None:
        raise KeyError(name)
    if not hasattr(ds, "dtype"):
        raise HDF5Error(f"{name} is not a dataset")
    problem = outside_data(ds)
    if problem:
        raise HDF5Error(problem)
    return ds


def _as_stored(ds, value: np.ndarray) -> np.ndarray:
    """Values of ``ds`` as Keras' reader gives them: opaque bytes seen as the low-precision
    type its ``dtype`` attribute names (bfloat16), else as h5py read them."""
    low_precision = _low_precision_name(ds)
    return value.view(dtypes.numpy_dtype(low_precision)) if low_precision else value


def vars_names(f) -> dict[str, str]:
    """Every ``.../vars`` group's stored ``name`` attribute (the layer's or optimizer's own
    name, which Keras 3 keeps there), by the group's path, found through hard links only."""
    import h5py

    out: dict[str, str] = {}

    def visit(path, link):
        if path.rpartition("/")[2] != "vars" or not isinstance(link, h5py.HardLink):
            return
        obj = f[path]
        name = obj.attrs.get("name") if isinstance(obj, h5py.Group) else None
        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        if isinstance(name, str) and name:
            out[path] = name

    f.visititems_links(visit)
    return out


def optimizer_name(f) -> str | None:
    """Keras 3 stores the optimizer's name as an attribute of optimizer/vars."""
    try:
        group = get(f, "optimizer/vars")
    except HDF5Error:
        return None
    if group is None:
        return None
    name = group.attrs.get("name")
    return name.decode() if isinstance(name, bytes) else name


def groups_in_creation_order(f) -> list[str] | None:
    """Every ``.../vars`` group (hard links only) in the order it was made, by where its
    header lies in the file (Keras writes a file once, layer after layer, in the model's
    order, and keeps no creation order of links); None when HDF5 does not say."""
    import h5py

    found: list[tuple[int, str]] = []

    def visit(path, link):
        if path.rpartition("/")[2] == "vars" and isinstance(link, h5py.HardLink):
            found.append((getattr(h5py.h5o.get_info(f[path].id), "addr", None), path))

    try:
        f.visititems_links(visit)
    except (KeyError, OSError, RuntimeError):
        return None
    if any(addr is None for addr, _ in found):
        return None
    return [path for _, path in sorted(found)]
