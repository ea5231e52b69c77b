"""The checkpoint formats, one module each, and their registry.

``recognise`` hands a directory's entries to each format in ``REGISTRY`` order; a format claims
what it recognises, so the ones after it never see those entries: bundles claim their ``.index``
and ``.data-*`` files first, then V1 SSTables (by magic bytes), then SavedModel folders, then the
Keras files by suffix (a legacy HDF5 file named ``.keras`` before the Keras 3 archives).
Everything outside this package asks ``for_name(ckpt.format)`` and the format's capabilities.
"""
from __future__ import annotations

from .base import Candidate, CheckpointFormat, DirectoryListing
from .keras3_h5 import Keras3H5
from .keras_archive import KerasArchive
from .keras_h5 import KerasH5
from .savedmodel import SavedModel
from .tf_v1 import TfV1
from .tf_v2 import TfV2

REGISTRY: tuple[CheckpointFormat, ...] = (TfV2(), TfV1(), SavedModel(), KerasH5(), Keras3H5(),
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


def owner_of_orphan(directory: str, rel: str) -> str | None:
    """The file that now makes orphan ``rel`` part of a checkpoint (its index written since the
    scan), or None."""
    return next((owner for fmt in REGISTRY if (owner := fmt.owner_of_orphan(directory, rel))),
                None)
