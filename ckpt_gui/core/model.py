"""Plain data returned by the engine: what the CLI prints and the GUI shows."""
from __future__ import annotations

import operator
import threading
from dataclasses import asdict, dataclass, field

# The roles a variable can play (VariableInfo.role), named where they are told apart.
from .roles import (BIAS, COUNTER, METADATA, NORMALIZATION, OPTIMIZER, OTHER,  # noqa: F401
                    ROLES, WEIGHT, semantic_paths)

# Health of a checkpoint.
OK = "ok"
PARTIAL = "partial"
BROKEN = "broken"


@dataclass
class Candidate:
    """A checkpoint a format recognised in a directory listing, before it is inspected."""
    name: str                 # prefix or file name relative to the directory
    path: str                 # absolute prefix or file path
    format: str
    files: list[str] = field(default_factory=list)   # relative names of its own files


@dataclass(slots=True)  # a checkpoint may hold tens of thousands
class VariableInfo:
    name: str                      # the key TensorFlow (or the HDF5 dataset path) uses
    shape: tuple[int, ...]
    dtype: str
    bytes: int
    role: str
    path: str                      # the key's object path, e.g. model/layer_with_weights-0/kernel
    display: str | None = None     # what every face shows: see display_name
    shard: int | None = None       # data file index for V2 bundles
    readable: bool | None = None   # None: not checked
    problem: str | None = None
    slot_of: str | None = None     # key of the variable this optimizer slot belongs to
    slot_name: str | None = None
    model_path: str | None = None  # where the model holds it, when the key goes through an
                                   # optimizer (Keras 3: optimizer/_trainable_variables/N)
    canonical: str | None = None   # the weight's path in the model, the same whatever format
                                   # wrote it (``hidden/kernel``; slots
                                   # ``optimizer/hidden/kernel/momentum``): see ``identity``
    flags: tuple = ()              # health.Flag of its tensor, found where it was read
                                   # (verification): NaN/Inf, dead units

    @property
    def display_name(self) -> str:
        """The one readable name of this variable in the tree, titles, file names, the status
        bar and the CLI, made by the engine (core/varnames.py: ``dense/kernel``,
        ``dense/kernel · adam momentum``); unique within its checkpoint."""
        return self.display or self.model_path or self.path

    @property
    def identity(self) -> str:
        """What names this weight across checkpoints and formats (diff, history): the
        canonical model path when the format gave one, else the display name."""
        return self.canonical or self.display_name

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(d, 0)
        return n


def _family(variables) -> frozenset:
    return frozenset((v.name, v.shape) for v in variables if v.role not in (COUNTER, METADATA))


class VariableRows:
    """The variables of every checkpoint with one index layout (a training run's checkpoints),
    as columns of VariableInfo's fields; each variable's path is made from its name when the
    VariableInfo objects are (display names too: a layout's, once for all its checkpoints).
    ``slots``: the slot_of, slot_name and model_path columns, when the object graph (or the
    TF1 naming) said which optimizer slot is whose; ``canonicals``: the canonical column (else
    made from the keys: see canonical.name_based)."""
    __slots__ = ("names", "shapes", "dtypes", "sizes", "roles", "shards", "slots", "_family",
                 "_paths", "_displays", "_canonicals")

    def __init__(self, names: list[str], shapes: list[tuple[int, ...]], dtypes: list[str],
                 sizes: list[int], roles: list[str], shards: list[int | None],
                 slots: tuple[list, list, list] | None = None, paths: list[str] | None = None,
                 displays: list[str] | None = None, canonicals: list[str | None] | None = None):
        self.names, self.shapes, self.dtypes = names, shapes, dtypes
        self.sizes, self.roles, self.shards, self.slots = sizes, roles, shards, slots
        self._family: frozenset | None = None
        self._paths, self._displays, self._canonicals = paths, displays, canonicals

    @classmethod
    def of(cls, variables: list[VariableInfo]) -> "VariableRows":
        """Columns of made variables (for others to copy: one training run's checkpoints)."""
        columns = [[getattr(v, f) for v in variables] for f in (
            "name", "shape", "dtype", "bytes", "role", "shard", "slot_of", "slot_name",
            "model_path", "path", "display", "canonical")]
        return cls(*columns[:6], slots=tuple(columns[6:9]), paths=columns[9],
                   displays=columns[10], canonicals=columns[11])

    def __len__(self) -> int:
        return len(self.names)

    def make(self) -> list[VariableInfo]:
        """New VariableInfo objects (each checkpoint gets its own: verification marks them)."""
        if self._paths is None:
            self._paths = semantic_paths(self.names)
        if self._displays is None:
            from .varnames import plain_display_names

            self._displays = plain_display_names(self.names, self._paths)
        if self._canonicals is None:
            from .canonical import name_based

            self._canonicals = name_based(self.names, self._paths, self.roles)
        n = len(self.names)
        columns = [self.names, self.shapes, self.dtypes, self.sizes, self.roles, self._paths,
                   self._displays, self.shards, [None] * n, [None] * n,  # readable, problem
                   *(self.slots or ([None] * n,) * 3), self._canonicals]
        return list(map(VariableInfo, *columns))

    def family(self) -> frozenset:
        if self._family is None:
            self._family = frozenset(
                (name, shape) for name, shape, role in zip(self.names, self.shapes, self.roles)
                if role not in (COUNTER, METADATA))
        return self._family


_MAKING = threading.Lock()
_KEY, _PATH, _MODEL_PATH, _CANONICAL = (operator.attrgetter(f) for f in (
    "name", "path", "model_path", "canonical"))
_DISPLAY_NAME = operator.attrgetter("display_name")


@dataclass
class FileInfo:
    name: str       # path relative to the scanned directory
    bytes: int
    kind: str       # index, data, meta, v1, hdf5, archive, savedmodel


@dataclass
class ObjectNode:
    """A node of the object graph (tf.train.Checkpoint's tree of trackables)."""
    node_id: int
    name: str                         # local name under its parent ("" for the root)
    path: str                         # slash-joined local names from the root
    children: list["ObjectNode"] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)   # checkpoint keys of its attributes
    slots: list[tuple[str, str]] = field(default_factory=list)  # (slot name, slot key)
    aliases: list[str] = field(default_factory=list)      # other paths reaching this node


@dataclass
class CheckpointInfo:
    name: str                     # prefix or file name relative to the directory
    path: str                     # absolute prefix (TF) or file path (HDF5)
    format: str
    writer: str                   # best guess at which API wrote it
    files: list[FileInfo]
    bytes: int
    mtime: float
    number: int | None
    counters: dict[str, int | float] = field(default_factory=dict)
    status: str = OK
    problems: list[str] = field(default_factory=list)
    n_readable: int | None = None  # set by verification
    verified: bool = False
    is_latest: bool = False
    run: str | None = None        # id of the training run it belongs to (DirectoryScan.runs);
                                  # None: an unnumbered entry of its own (best.keras)
    # The variables: either made (_variables) or still rows shared with the checkpoints of the
    # same index layout (_rows), made into VariableInfo objects on first access of .variables.
    _variables: list[VariableInfo] = field(default_factory=list, repr=False)
    _rows: "VariableRows | None" = field(default=None, repr=False, compare=False)

    @property
    def variables(self) -> list[VariableInfo]:
        if self._rows is not None:
            with _MAKING:  # once, even when two threads ask: both must get the same objects
                if self._rows is not None:
                    self._variables = self._rows.make()
                    self._rows = None
        return self._variables

    @variables.setter
    def variables(self, value: list[VariableInfo]) -> None:
        self._variables, self._rows = value, None

    def set_variable_rows(self, rows: "VariableRows") -> None:
        self._variables, self._rows = [], rows

    @property
    def n_variables(self) -> int:
        return len(self._rows) if self._rows is not None else len(self._variables)

    def family(self) -> frozenset:
        """What checkpoints of one model share: its variables' names and shapes (counters and
        metadata aside). Only checkpoints of one family compare by training progress."""
        if self._rows is not None:
            return self._rows.family()
        return _family(self._variables)

    def flagged(self) -> bool:
        """Whether a variable carries a health flag (variables still shared as rows were never
        read, so carry none: they are not made to say so)."""
        return self._rows is None and any(v.flags for v in self._variables)

    def variable(self, name: str) -> VariableInfo | None:
        """The variable with this key, or else this display name, or else this object path
        (the key's or the model's: what earlier versions showed), or else this canonical
        model path (``dense/kernel`` in every format)."""
        for field_of in (_KEY, _DISPLAY_NAME, _PATH, _MODEL_PATH, _CANONICAL):
            for v in self.variables:
                if field_of(v) == name:
                    return v
        return None

    def training_progress(self) -> int | float | None:
        """The largest training counter (iterations/steps/epochs), not save_counter."""
        values = [v for k, v in self.counters.items() if "save_counter" not in k]
        return max(values) if values else None


@dataclass
class StateFileInfo:
    present: bool
    path: str | None = None
    latest: str | None = None          # resolved to a checkpoint name in the directory
    latest_raw: str | None = None      # as written in the file
    listed: list[str] = field(default_factory=list)   # resolved names, in file order
    listed_raw: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    last_preserved_timestamp: float | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Run:
    """A training run: checkpoints of one writer, naming pattern and model, in training order,
    split where training restarted."""
    id: str                       # unique in its scan, stable across rescans ("ckpt-N", ...)
    pattern: str                  # the naming pattern, e.g. "ckpt-{N}", "weights.{N}.weights.h5"
    writer: str
    checkpoints: list[str]        # checkpoint names, oldest first
    restarted_from: str | None = None  # id of the run this one restarted


@dataclass
class DirectoryScan:
    directory: str
    checkpoints: list[CheckpointInfo]
    latest: str | None
    state_file: StateFileInfo
    orphans: list[str]
    subdirectories: list[str]
    problems: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def checkpoint(self, name: str) -> CheckpointInfo | None:
        for c in self.checkpoints:
            if c.name == name:
                return c
        return None


@dataclass
class TensorStats:
    count: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    l2: float | None
    nan: int
    inf: int
    zeros: int
    histogram: list[int]
    bin_edges: list[float]
    posinf: int = 0                   # of ``inf``: how many are +Inf (the rest are -Inf)

    @property
    def neginf(self) -> int:
        return self.inf - self.posinf

    @property
    def finite(self) -> int:
        """How many values are finite numbers (none in a string tensor)."""
        return 0 if self.min is None else self.count - self.nan - self.inf

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.count if self.count else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["zero_fraction"] = self.zero_fraction
        d["neginf"] = self.neginf
        return d
