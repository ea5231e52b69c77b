"""The checkpoint formats, one module each, and their registry.

``recognise`` hands a directory's entries to each format in ``REGISTRY`` order; a format claims
what it recognises, so the ones after it never see those entries: bundles claim their ``.index``
and ``.data-*`` files first, then V1 SSTables (by magic bytes), then SavedModel folders,
unzipped .keras folders and Orbax step folders, then Keras sharded saves (a json and its shards, before the shards could pass for single files), then the
Keras files by suffix (a legacy HDF5 file named ``.keras`` before the Keras 3 archives).
Everything outside this package asks ``for_name(ckpt.format)`` and the format's capabilities.
"""
from __future__ import annotations

import os
import stat

from .. import storage
from ..model import BROKEN, OK, Candidate, CheckpointInfo, FileInfo
from ..naming import checkpoint_number
from .base import CheckpointFormat, DirectoryListing
from .keras3_h5 import Keras3H5
from .keras_archive import KerasArchive
from .keras_dir import KerasDir
from .keras_h5 import KerasH5
from .keras_sharded import KerasSharded
from .orbax import Orbax
from .savedmodel import SavedModel
from .tf_v1 import TfV1
from .tf_v2 import TfV2

REGISTRY: tuple[CheckpointFormat, ...] = (TfV2(), TfV1(), SavedModel(), KerasSharded(),
                                          KerasDir(), Orbax(), KerasH5(), Keras3H5(),
                                          KerasArchive())
_BY_NAME = {f.name: f for f in REGISTRY}


def for_name(name: str) -> CheckpointFormat:
    """The format of a checkpoint (``CheckpointInfo.format``); KeyError for an unknown name."""
    return _BY_NAME[name]


def names() -> list[str]:
    return [f.name for f in REGISTRY]


def recognise(listing: DirectoryListing) -> list[Candidate]:
    """Every checkpoint of the listing, each entry claimed by at most one format."""
    return [cand for fmt in REGISTRY for cand in fmt.recognise(listing)]


def hints_at_checkpoints(file_name: str) -> bool:
    """Whether a file of this name suggests a folder of checkpoints."""
    return any(fmt.hints_at(file_name) for fmt in REGISTRY)


def is_checkpoint_folder(path: str) -> bool:
    """Whether folder ``path`` is itself one checkpoint (an unzipped .keras model), not a
    folder of checkpoints."""
    return any(fmt.is_checkpoint_folder(path) for fmt in REGISTRY)


def owner_of_orphan(directory: str, rel: str) -> str | None:
    """The file that now makes orphan ``rel`` part of a checkpoint (its index written since the
    scan), or None."""
    return next((owner for fmt in REGISTRY if (owner := fmt.owner_of_orphan(directory, rel))),
                None)


def inspect(directory: str, cand: Candidate,
            stale_shards: list[str] | None = None) -> CheckpointInfo:
    """What candidate ``cand`` holds, as its format reads it; an unreadable file is a problem of
    the checkpoint, never an exception. ``stale_shards``: gets the data files found to belong to
    an earlier save of the same prefix."""
    info = CheckpointInfo(name=cand.name, path=cand.path, format=cand.format, writer="",
                          files=[], bytes=0, mtime=0.0, number=checkpoint_number(cand.name))
    fmt = for_name(cand.format)
    opened: dict[str, os.stat_result] = {}   # files the inspector opened: their stats
    stale: list[str] = []                    # data files of an earlier save of this prefix
    if fmt.lists_files_first:  # these inspectors read info.files
        info.files, info.mtime = _files(directory, cand, fmt)
    try:
        fmt.inspect(info, cand, directory, opened, stale)
    except Exception as e:  # any unreadable input is a problem of the checkpoint, not a crash
        info.status = BROKEN
        info.problems.append(str(e) if isinstance(e, storage.UnreadableFile) else
                             f"{cand.files[0] if cand.files else cand.name} cannot be read: "
                             f"{str(e) or type(e).__name__}")
    if not fmt.lists_files_first:
        info.files, info.mtime = _files(directory, cand, fmt, opened, stale)
        if stale_shards is not None:
            stale_shards.extend(stale)
    info.bytes = sum(f.bytes for f in info.files)
    if not info.n_variables and info.status == OK:
        info.status = BROKEN
        info.problems.append("it holds no variables")
    return info


def _size(st: os.stat_result) -> int:
    """A file's size; a folder a format claims whole weighs nothing itself (its files count)."""
    return 0 if stat.S_ISDIR(st.st_mode) else st.st_size


def _files(directory: str, cand: Candidate, fmt: CheckpointFormat,
           known: dict[str, os.stat_result] | None = None,
           leave_out: list[str] | None = None) -> tuple[list[FileInfo], float]:
    """The candidate's files that exist, with sizes, and their latest modification time;
    ``known``: stats already taken (of files an inspector opened); ``leave_out``: not its own."""
    infos, mtime = [], 0.0
    for rel in cand.files:
        st = known.get(rel) if known else None
        if st is None:
            if leave_out and rel in leave_out:
                continue
            try:
                st = storage.stat_of(os.path.join(directory, rel))
            except OSError:
                continue
        infos.append(FileInfo(rel, _size(st), fmt.file_kind(rel)))
        mtime = max(mtime, st.st_mtime)
    return infos, mtime
