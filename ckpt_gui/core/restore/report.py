"""What a restore hands out, as plain data: the plan, the report and the words they use;
its errors."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field


Progress = Callable[[int, int, str], None]

# How a variable got its key.
OBJECT_PATH = "object path"
RENAMED = "renamed"
LAYER_ORDER = "layer order"
ORDER_SHAPE = "order and shape"
SUGGESTED = "suggested (order and shape)"
EDITED = "edited"
TIERS = (OBJECT_PATH, RENAMED, LAYER_ORDER, ORDER_SHAPE, SUGGESTED, EDITED)

MODEL, OPTIMIZER = "model", "optimizer"
NATIVE, MAPPED = "native", "mapped"

ATTR_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
CONFIG_SUFFIX = ".ATTRIBUTES/OBJECT_CONFIG_JSON"
GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
PATH_CAP = 8   # object paths remembered per node (a node reached many ways keeps the first few)


class RestoreError(Exception):
    """The restore cannot go on; the text says why in plain words."""


class RootError(RestoreError):
    """Where the model sits in the checkpoint is not clear (or the named root does not exist)."""

    def __init__(self, message: str, candidates: list["RootCandidate"] | None = None):
        super().__init__(message)
        self.candidates = candidates or []


@dataclass
class RootCandidate:
    name: str            # "" for the checkpoint's top level
    n_tensors: int       # model-like tensors under it
    n_values: int
    note: str = ""

    @property
    def label(self) -> str:
        return self.name or "(top level)"


@dataclass
class MappingEntry:
    """One template variable and the checkpoint tensor planned for it."""
    group: str                       # "model" or "optimizer"
    index: int                       # position in the template's weights / optimizer.variables
    variable: str                    # the variable's path in the template
    shape: tuple[int, ...]
    dtype: str
    key: str | None = None           # checkpoint key (None: nothing to restore it from)
    key_shape: tuple[int, ...] | None = None
    how: str = ""                    # one of TIERS, or "" when unbound
    apply: bool = False              # False: a suggestion or nothing; only applied rows are used
    native: bool = False             # tf.train.Checkpoint binds this key to this variable
    role: str = ""                   # for optimizer rows: iterations, learning_rate, slot name
    mismatch_key: str | None = None  # a key the names pointed at, of another shape
    mismatch_shape: tuple[int, ...] | None = None


@dataclass
class KeyInfo:
    key: str
    shape: tuple[int, ...]
    dtype: str
    role: str
    path: str


@dataclass
class RestorePlan:
    checkpoint: str
    template: str
    root: str
    root_candidates: list[RootCandidate]
    entries: list[MappingEntry]
    keys: list[KeyInfo]                      # every checkpoint tensor that could be assigned
    native_possible: bool = False            # the object graph binds; tf.train.Checkpoint runs
    native_optimizer: bool = False           # ... and it binds the optimizer the same way
    optimizer_prefix: str | None = None      # where the checkpoint's optimizer state sits
    edited: bool = False
    notes: list[str] = field(default_factory=list)

    def model_entries(self) -> list[MappingEntry]:
        return [e for e in self.entries if e.group == MODEL]

    def optimizer_entries(self) -> list[MappingEntry]:
        return [e for e in self.entries if e.group == OPTIMIZER]

    def keys_of_shape(self, shape: tuple[int, ...]) -> list[str]:
        return [k.key for k in self.keys if tuple(k.shape) == tuple(shape)]

    def set_key(self, entry: MappingEntry, key: str | None) -> None:
        """Edit one row: bind ``key`` (which must have the variable's shape) or nothing."""
        if key is None:
            entry.key, entry.key_shape, entry.apply, entry.how = None, None, False, ""
        else:
            info = next((k for k in self.keys if k.key == key), None)
            if info is None:
                raise RestoreError(f"the checkpoint has no tensor {key}")
            if tuple(info.shape) != tuple(entry.shape):
                raise RestoreError(f"{key} has shape {list(info.shape)}; {entry.variable} has "
                                   f"{list(entry.shape)}: a tensor of another shape is never "
                                   f"assigned")
            entry.key, entry.key_shape = key, tuple(info.shape)
            entry.apply, entry.how = True, EDITED
        entry.native = False
        self.edited = True


@dataclass
class RestoredVariable:
    variable: str
    key: str
    shape: list[int]
    how: str
    verified: bool


@dataclass
class ShapeMismatch:
    variable: str
    key: str
    variable_shape: list[int]
    checkpoint_shape: list[int]


@dataclass
class OptimizerReport:
    in_template: bool
    in_checkpoint: bool
    restored: bool
    iterations: int | None = None
    slots_restored: int = 0
    slots_expected: int = 0
    learning_rate: float | None = None
    entries: list[RestoredVariable] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class SampleRun:
    input_shape: list[int] | None
    output_shape: list[int] | None
    first_values: list[float]
    finite: bool
    error: str | None = None
    skipped: str | None = None   # why the model was not run at all


@dataclass
class RestoreReport:
    checkpoint: str
    template: str
    root: str
    mode: str
    restored: list[RestoredVariable]
    missing_in_checkpoint: list[str]
    unused_in_checkpoint: list[str]
    shape_mismatch: list[ShapeMismatch]
    optimizer_restored: bool
    optimizer: OptimizerReport
    verified: bool
    saved: str | None = None
    sample: SampleRun | None = None
    suggestions: list[tuple[str, str]] = field(default_factory=list)   # (variable, key)
    notes: list[str] = field(default_factory=list)
    n_model_variables: int = 0

    @property
    def complete(self) -> bool:
        """Every model variable restored and verified."""
        return (len(self.restored) == self.n_model_variables and not self.missing_in_checkpoint
                and not self.shape_mismatch and self.verified)

    def to_dict(self) -> dict:
        """The documented JSON (``ckpt-inspect restore --json``)."""
        return {
            "checkpoint": self.checkpoint, "template": self.template, "root": self.root,
            "mode": self.mode,
            "restored": [{"variable": r.variable, "key": r.key, "shape": list(r.shape)}
                         for r in self.restored],
            "missing_in_checkpoint": list(self.missing_in_checkpoint),
            "unused_in_checkpoint": list(self.unused_in_checkpoint),
            "shape_mismatch": [asdict(m) for m in self.shape_mismatch],
            "optimizer_restored": self.optimizer_restored,
            "verified": self.verified,
            "saved": self.saved,
        }
