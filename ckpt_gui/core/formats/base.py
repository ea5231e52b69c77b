"""What every checkpoint format implements, and the directory listing the formats claim from.

One module per format (as Netron keeps one source file per format with a ``match``/``open``
pair): it recognises its checkpoints in a listing, inspects one, reads its tensors, says which
files are its own and in which order prune removes them, and how restore binds its variables.
Everything else in the engine, the CLI and the GUI asks the registry (``formats.for_name``) and
these capabilities; no other module knows a format by its name.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar

from .. import bundle, hdf5, readers, storage
from ..model import Candidate

if TYPE_CHECKING:
    import numpy as np

    from ..model import CheckpointInfo, VariableInfo

class Binding(Enum):
    """How restore binds a checkpoint's variables to a model's."""
    OBJECT_GRAPH = "object graph"   # TF bundles: the object graph's paths (or name-based keys)
    LAYER_ORDER = "layer order"     # legacy Keras HDF5: layers in order, each a flat weight list
    LAYER_PATHS = "layer paths"     # Keras 3: layers/<name>/vars/<i> paths
    VARIABLE_PATHS = "variable paths"  # Keras 3 variable paths (hidden/kernel) in a pytree

    @property
    def keeps_model_order(self) -> bool:
        """Whether the checkpoint lists its tensors in the model's order, so that order and
        shape alone may bind them (a pytree's leaves are sorted by name: they may not)."""
        return self is not Binding.VARIABLE_PATHS


@dataclass(frozen=True)
class CarriedConfig:
    """The Keras model config a checkpoint carries (restore's ``--template checkpoint``)."""
    text: str                  # the config's JSON text, as the writer saved it
    folder: str                # the only folder whose files the config may name
    assets: str | None = None  # where its layers' asset files are: a .keras zip or a folder


# What a file's magic bytes say it is (``DirectoryListing.sniff``).
SSTABLE = "sstable"
HDF5 = "hdf5"
HDF5_SUFFIXES = (".h5", ".hdf5", ".hd5", ".he5")
KERAS_SUFFIX = ".keras"
# Files of these endings are never opened to sniff their magic bytes.
_NOT_SNIFFED = (".index", ".meta", ".json", ".txt", ".py", ".pb", ".pbtxt", ".csv", ".md", ".log",
                ".png", ".jpg", ".npy", ".npz", ".pkl", ".yaml", ".yml", ".zip", ".gz", ".tar",
                KERAS_SUFFIX) + HDF5_SUFFIXES
# Files a checkpoint lists that say what they are by their name alone.
_FILE_KINDS = (("index", ".index"), ("meta", ".meta"), ("savedmodel", "saved_model.pb"))

Progress = Callable[[int, int, str], None]


class DirectoryListing:
    """One directory's entries while the formats claim them, in registry order: each format
    sees only what the formats before it left unclaimed, so every entry has one owner."""

    def __init__(self, directory: str, files: set[str], subdirectories: list[str],
                 ignored: set[str]):
        self.directory = directory
        self.names = files                  # every regular file's name
        self.subdirectories = subdirectories
        self.orphans: list[str] = []        # entries no reader can use (formats add theirs)
        self._free = files - ignored        # the state file and temporaries are nobody's
        self._claimed_dirs: set[str] = set()
        self._sniffed: dict[str, str | None] = {}

    def path(self, rel: str) -> str:
        return os.path.join(self.directory, rel)

    def unclaimed(self) -> set[str]:
        """The files no format has claimed yet (a copy: a format claims while it looks)."""
        return set(self._free)

    def claim(self, names) -> None:
        self._free.difference_update(names)

    def unclaimed_subdirectories(self) -> list[str]:
        return [d for d in self.subdirectories if d not in self._claimed_dirs]

    def claim_subdirectory(self, name: str) -> None:
        self._claimed_dirs.add(name)

    def sniff(self, name: str) -> str | None:
        """SSTABLE or HDF5 by a file's magic bytes (one open per file, shared by the formats
        that ask), else None."""
        if name.lower().endswith(_NOT_SNIFFED):
            return None
        if name not in self._sniffed:
            self._sniffed[name] = _sniff(self.path(name))
        return self._sniffed[name]


def _sniff(path: str) -> str | None:
    try:
        head, tail = storage.read_ends(path, hdf5.SNIFF_BYTES, 8)
    except OSError:
        return None
    if bundle.ends_with_table_magic(tail):
        return SSTABLE
    return HDF5 if hdf5.starts_like_hdf5(head) else None


class CheckpointFormat(ABC):
    """One checkpoint format. Subclasses set the class attributes (capabilities) and implement
    the abstract methods; the registry holds one instance of each."""

    name: ClassVar[str]                     # as scan prints it ("tf-v2", ...)
    needs_tensorflow: ClassVar[bool]        # reading and verifying its tensors needs TensorFlow
    named_by_state_file: ClassVar[bool] = False  # the ``checkpoint`` state file can name it
    prunable: ClassVar[bool] = True         # prune may delete its files one by one
    refusal: ClassVar[str] = ""             # why prune refuses it, when not prunable
    binding: ClassVar[Binding]              # how restore binds its variables
    archive: ClassVar[bool] = False         # a zip archive whose config.json is the model's
    carries_config_always: ClassVar[bool] = False  # its file always holds the model's config
    lists_files_first: ClassVar[bool] = True  # info.files is filled before ``inspect`` runs
    reads_in_chunks: ClassVar[bool] = False  # read_chunks bounds memory by its pieces
    reads_into: ClassVar[bool] = False       # read_chunks reads into a given array

    # -- recognising --
    @abstractmethod
    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        """Claim this format's checkpoints among the listing's unclaimed entries."""

    def hints_at(self, file_name: str) -> bool:
        """Whether a file of this name suggests a folder of checkpoints (subfolder discovery,
        by name only)."""
        return False

    # -- inspecting --
    @abstractmethod
    def inspect(self, info: CheckpointInfo, cand: Candidate, directory: str,
                opened: dict[str, os.stat_result], stale: list[str]) -> None:
        """Fill ``info``'s writer, variables (with their display names), counters and health.
        ``opened``: the stat of each own file opened here; ``stale``: data files found to belong
        to an earlier save. Raises on an unreadable file (the caller words it)."""

    def file_kind(self, rel: str) -> str:
        """What one of its files is, as scan shows it."""
        if ".data-" in rel:
            return "data"
        for kind, suffix in _FILE_KINDS:
            if rel.endswith(suffix):
                return kind
        return self.single_file_kind(rel)

    def single_file_kind(self, rel: str) -> str:
        """The kind of a file that holds a whole checkpoint."""
        return "archive" if rel.lower().endswith(KERAS_SUFFIX) else "hdf5"

    # -- reading --
    @abstractmethod
    def read(self, ckpt: CheckpointInfo, var: VariableInfo) -> np.ndarray:
        """The whole tensor; ReadError (readers.py) when it cannot be read."""

    def read_chunks(self, ckpt: CheckpointInfo, var: VariableInfo, max_bytes: int,
                    out: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The tensor's elements in C order as consecutive pieces of at most about
        ``max_bytes`` (rows along its first axis, or flat ranges: concatenated and reshaped,
        they are the tensor), for readers that bound memory (core/chunked.py). A piece may be
        overwritten once the next one is asked for: keep a copy of what must outlive it. A
        format that cannot read less than a tensor (``reads_in_chunks`` False) yields it
        whole; ReadError as ``read``; the data's checksums are checked as it is read. ``out`` (only
        where ``reads_into``): a flat array of the tensor's size and numeric type that the
        pieces are read straight into, then yielded as its slices (no copy)."""
        yield self.read(ckpt, var)

    @abstractmethod
    def verify(self, ckpt: CheckpointInfo, progress: Progress | None,
               cancelled: Callable[[], bool] | None) -> CheckpointInfo:
        """Read every tensor; mark each readable or not."""

    # -- pruning --
    def owns(self, file_name: str, ckpt: CheckpointInfo) -> bool:
        """Exact-prefix ownership: is ``file_name`` one of ``ckpt``'s own files?"""
        return file_name == ckpt.name

    def deletion_rank(self, file_name: str, ckpt: CheckpointInfo) -> tuple:
        """Deletion order inside a checkpoint: what makes it a checkpoint first, .meta last."""
        if file_name == ckpt.name + ".index" or file_name == ckpt.name:
            return (0, "")
        if file_name.endswith(".meta"):
            return (2, file_name)
        return (1, file_name)

    def owner_of_orphan(self, directory: str, rel: str) -> str | None:
        """The file of this format that now claims orphan ``rel`` (written since the scan)."""
        return None

    # -- restoring --
    @contextmanager
    def key_reader(self, ckpt: CheckpointInfo) -> Iterator[Callable[[str], np.ndarray]]:
        """key -> its tensor, for restore: through TensorFlow, which binds TF checkpoints."""
        import numpy as np

        dtypes = {v.name: v.dtype for v in ckpt.variables}
        yield lambda key: np.asarray(readers.read_tf_tensor(ckpt.path, key, dtypes[key]))

    def carries_config(self, ckpt: CheckpointInfo) -> bool:
        """Whether the checkpoint holds its model's config (a template of its own)."""
        return any(v.name.endswith("OBJECT_CONFIG_JSON") for v in ckpt.variables)

    def carried_config(self, ckpt: CheckpointInfo) -> CarriedConfig | None:
        """The model config the checkpoint carries for the model at its top level, or None (a
        TF bundle keeps one per object in its object graph: restore reads those itself)."""
        return None

    def model_paths(self, ckpt: CheckpointInfo) -> dict[str, str]:
        """VARIABLE_PATHS binding: each model tensor's key -> the path of its variable in the
        model (Keras ``variable.path`` without the model's name: ``hidden/kernel``)."""
        return {}

    def unbound_hint(self, ckpt: CheckpointInfo) -> str:
        """Why the checkpoint's names may mean nothing to a Keras model (said when they bind
        none of its variables), or ""."""
        return ""

    def is_checkpoint_folder(self, path: str) -> bool:
        """Whether folder ``path`` is itself one checkpoint of this format: opened, it is shown
        as its parent folder shows it (one checkpoint), not as a folder of checkpoints."""
        return False
