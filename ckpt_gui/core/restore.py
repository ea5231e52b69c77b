"""Restore a checkpoint into a model template, and prove what was restored.

The commonest checkpoint pain is a restore that silently restores part of a model: the model code
changed, another API wrote the checkpoint, or Keras 2 wrote it and Keras 3 reads it (Keras 3 names
the variable of ``layer_with_weights-0/kernel`` ``_functional/_operations/1/_kernel``). Here:

1. Where the model sits in the checkpoint (the *root*): at the top (Keras save_weights /
   ModelCheckpoint layout) or under a child such as ``model``, ``net``, ``generator``; chosen
   automatically when it is clear, else the caller names it.
2. A *plan* binds every model variable to a checkpoint tensor, tier by tier:
   ``object path`` (exactly what tf.train.Checkpoint binds: the checkpoint's object graph walked
   against the template's, or Keras 3's own .weights.h5 layout), then ``renamed`` (the same path
   modulo ``kernel``/``_kernel``-style renames), then ``layer order`` (``layer_with_weights-N``,
   ``_operations/N``, a legacy .h5's layer list against the template's layers that have weights),
   then ``order and shape``. The last tier is applied on its own only when names bound nothing at
   all (a checkpoint whose names mean nothing to the template, e.g. TF1 ``h1/w``); otherwise its
   pairings are only *suggested*, for a person to review. A tensor of another shape is never
   assigned. The plan is plain data a user may edit before it is applied.
3. Applying: natively through ``tf.train.Checkpoint`` with the checkpoint's root names when the
   object graph binds, then explicit assignment for the rest; the optimizer's slots and iterations
   are restored by what they belong to (works across Keras 2 / 2.11+ / 3 optimizers). Then every
   restored variable is compared with its checkpoint tensor, exactly.

Everything returned is a plain dataclass; no Qt here. TensorFlow and Keras are imported lazily.
"""
from __future__ import annotations

import os
import re
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import formats, hdf5, objgraph, protowire as pw
from .formats.base import Binding
from .model import COUNTER, METADATA, CheckpointInfo
from ..textfmt import human_bytes
from .limits import memory_budget
from .templates import (CHECKPOINT_CONFIG, CheckpointConfig, LoadedTemplate, TemplateError,
                        TemplateRef, activation_bytes, load as load_template,
                        resolve as resolve_template, sample_input_for)

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

_STRUCTURAL_ROOT_CHILD = re.compile(
    r"^(layer_with_weights-\d+|layer-\d+|_functional|_operations|_layers|layers|"
    r"_self_tracked_trackables|_layer_checkpoint_dependencies|keras_api)$")
_INDEXED_CONTAINERS = ("_operations", "layers", "_layers", "_self_tracked_trackables",
                       "_layer_checkpoint_dependencies")
_ITERATION_NAMES = {"iter", "iterations", "_iterations", "iteration"}
_LR_NAMES = {"learning_rate", "_learning_rate", "lr"}
_LOCAL_ALIASES = {"w": "kernel", "b": "bias", "u": "recurrent_kernel", "weights": "kernel",
                  "biases": "bias", "running_mean": "moving_mean", "running_std":
                  "moving_variance", "embedding": "embeddings"}
# Checkpoint slot names (Keras 2 .OPTIMIZER_SLOT names, names the engine infers) -> Keras 3
# optimizer slot lists (attribute names without the leading underscore), in preference order.
_SLOT_ALIASES = {
    "m": ("momentums", "m"), "momentum": ("momentums", "m"), "momentums": ("momentums",),
    "v": ("velocities", "u"), "velocity": ("velocities", "u"), "velocities": ("velocities",),
    "rms": ("velocities",), "u": ("u", "velocities"),
    "vhat": ("velocity_hats",), "velocity_hat": ("velocity_hats",),
    "mg": ("average_gradients",), "average_gradient": ("average_gradients",),
    "accumulator": ("accumulators",), "linear": ("linears",),
    "accum_grad": ("accumulated_grads",), "accum_var": ("accumulated_delta_vars",),
}


class RestoreError(Exception):
    """The restore cannot go on; the text says why in plain words."""


class RootError(RestoreError):
    """Where the model sits in the checkpoint is not clear (or the named root does not exist)."""

    def __init__(self, message: str, candidates: list["RootCandidate"] | None = None):
        super().__init__(message)
        self.candidates = candidates or []


# --- plain data out ---------------------------------------------------------------------------

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


# --- the checkpoint side ---------------------------------------------------------------------

@dataclass
class _GNode:
    children: list[tuple[str, int]]
    attrs: dict[str, str]
    slots: list[tuple[int, str, int]]


def _decode_graph(data: bytes) -> list[_GNode]:
    """The object graph with every edge (the engine's tree keeps one parent per node)."""
    return [_GNode([(name, cid) for cid, name in children], dict(attributes), slots)
            for children, attributes, slots in objgraph.raw_nodes(data)]


def _is_optimizer_name(name: str) -> bool:
    n = name.lower()
    return "optimizer" in n or n in {"opt", "optim"}


def _norm_segment(s: str) -> str:
    s = s.lstrip("_")
    return s[:-2] if s.endswith(":0") else s


def _norm_path(path: str) -> str:
    if path.endswith(ATTR_SUFFIX):
        path = path[: -len(ATTR_SUFFIX)]
    return "/".join(_norm_segment(s) for s in path.split("/") if s)


def _local(name: str) -> str:
    last = _norm_segment(name.rsplit("/", 1)[-1]).lower()
    if last not in _LOCAL_ALIASES and "_" in last:   # Keras 1: dense_1_W
        token = last.rsplit("_", 1)[-1]
        if token in ("w", "b", "u"):
            last = token
    return _LOCAL_ALIASES.get(last, last)


def _float_kind(dtype: str) -> str:
    d = str(dtype)
    if "float" in d or "bfloat" in d:
        return "float"
    if "int" in d:
        return "int"
    return d


class CheckpointSide:
    """What the restore needs to know about one checkpoint: its tensors, its object graph (TF
    formats), its layer layout (HDF5), in the order its writer used."""

    def __init__(self, ckpt: CheckpointInfo):
        self.ckpt = ckpt
        self.fmt = formats.for_name(ckpt.format)
        self.vars = {v.name: v for v in ckpt.variables}
        self.nodes: list[_GNode] | None = None
        self.key_node: dict[str, int] = {}
        self.slot_of: dict[str, tuple[str, str]] = {}
        self.legacy_layers: list[tuple[str, list[str]]] = []   # (layer name, keys) for .h5
        self.legacy_optimizer: list[str] = []
        self.config_json: dict[str, str] = {}    # root -> config JSON text
        self.config_problem: str | None = None   # why the config cannot be read
        for v in ckpt.variables:
            if v.slot_of:
                self.slot_of[v.name] = (v.slot_of, v.slot_name or "")
            elif "/.OPTIMIZER_SLOT/" in v.name:   # readable even without the object graph
                owner, _, rest = v.name.partition("/.OPTIMIZER_SLOT/")
                parts = rest.split("/")
                if len(parts) >= 2 and owner + ATTR_SUFFIX in self.vars:
                    self.slot_of[v.name] = (owner + ATTR_SUFFIX, parts[1])
        if self.fmt.binding != Binding.OBJECT_GRAPH:
            self._read_hdf5_layout()
        elif GRAPH_KEY in self.vars:
            self._read_graph()

    # -- reading --
    def _read_graph(self) -> None:
        from .reading import ReadError, read_tensor

        try:
            raw = np.asarray(read_tensor(self.ckpt, GRAPH_KEY)).reshape(-1)[0]
            self.nodes = _decode_graph(raw)
        except (ReadError, pw.WireError, IndexError, ValueError) as e:
            self.nodes = None
            self.graph_problem = f"the object graph cannot be read: {e}"
            return
        for nid, node in enumerate(self.nodes):
            for name, key in node.attrs.items():
                if key:
                    self.key_node[key] = nid
        for nid, node in enumerate(self.nodes):   # TF's own slot references
            for orig, slot_name, slot_id in node.slots:
                if 0 <= orig < len(self.nodes) and 0 <= slot_id < len(self.nodes):
                    okey = self.nodes[orig].attrs.get("VARIABLE_VALUE")
                    skey = self.nodes[slot_id].attrs.get("VARIABLE_VALUE")
                    if okey and skey:
                        self.slot_of[skey] = (okey, slot_name)

    def _read_hdf5_layout(self) -> None:
        def text(x):
            return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)

        try:
            with hdf5.open_weights(self.ckpt.path, self.fmt.archive) as f:
                if self.fmt.binding == Binding.LAYER_ORDER:
                    group, prefix = (f["model_weights"], "model_weights/") \
                        if "model_weights" in f else (f, "")
                    for ln in [text(n) for n in group.attrs.get("layer_names", [])]:
                        if ln not in group:
                            continue
                        names = [text(n) for n in group[ln].attrs.get("weight_names", [])]
                        keys = [f"{prefix}{ln}/{n}" for n in names if f"{prefix}{ln}/{n}"
                                in self.vars]
                        if not keys:
                            keys = [k for k in self.vars if k.startswith(f"{prefix}{ln}/")]
                        if keys:
                            self.legacy_layers.append((ln, keys))
                    if "optimizer_weights" in f:
                        og = f["optimizer_weights"]
                        names = [text(n) for n in og.attrs.get("weight_names", [])]
                        self.legacy_optimizer = [f"optimizer_weights/{n}" for n in names
                                                 if f"optimizer_weights/{n}" in self.vars]
                    cfg = f.attrs.get("model_config")
                    if cfg is not None:
                        self.config_json[""] = text(cfg)
        except Exception as e:  # the engine reports damaged files; here we restore nothing
            self.graph_problem = f"the file cannot be read: {e}"
        if self.fmt.archive:
            import json

            try:
                cfg = hdf5.archive_config(self.ckpt.path)
                if cfg is not None:
                    self.config_json[""] = json.dumps(cfg)
            except RecursionError:
                self.config_problem = ("the checkpoint's model config is nested too deeply to "
                                       "read; refused")
        if self.legacy_optimizer:
            self._legacy_slots()

    def _legacy_slots(self) -> None:
        """Attach legacy .h5 optimizer weights to the model weights they belong to by name:
        Keras 2 ``Adam/dense/kernel/m:0``, Keras 3 ``adam/sequential_dense_kernel_momentum``."""
        owners = {}
        for _, keys in self.legacy_layers:
            for k in keys:
                rel = k.split("/", 2)[-1] if k.startswith("model_weights/") else \
                    k.split("/", 1)[-1]
                rel = rel[:-2] if rel.endswith(":0") else rel
                owners[k] = rel
        for okey in self.legacy_optimizer:
            name = okey.split("/", 1)[1]
            name = name[:-2] if name.endswith(":0") else name
            best = None
            for k, rel in owners.items():
                flat = rel.replace("/", "_")
                for form, sep in ((rel, "/"), (flat, "_")):
                    i = name.rfind(form + sep)
                    if i >= 0 and (i == 0 or name[i - 1] in "/_"):
                        slot = name[i + len(form) + 1:]
                        if slot and "/" not in slot and (best is None or len(form) > best[2]):
                            best = (k, slot, len(form))
            if best:
                self.slot_of[okey] = (best[0], best[1])

    # -- paths and order --
    def node_of_path(self, path: str) -> int | None:
        if self.nodes is None:
            return None
        nid = 0
        for seg in [s for s in path.split("/") if s]:
            nxt = next((c for n, c in self.nodes[nid].children if n == seg), None)
            if nxt is None or not 0 <= nxt < len(self.nodes):
                return None
            nid = nxt
        return nid

    def _paths_from(self, start: int, skip_optimizer: bool = True) -> dict[int, list[str]]:
        paths: dict[int, list[str]] = {start: [""]}
        queue = deque([(start, "", 0)])
        while queue:
            nid, path, depth = queue.popleft()
            if depth > 64:
                continue
            for name, cid in self.nodes[nid].children:
                if not 0 <= cid < len(self.nodes) or (skip_optimizer and _is_optimizer_name(name)):
                    continue
                p = f"{path}/{name}" if path else name
                got = paths.setdefault(cid, [])
                if len(got) < PATH_CAP and p not in got:
                    first = not got
                    got.append(p)
                    if first:
                        queue.append((cid, p, depth + 1))
        return paths

    def _dfs_keys(self, start: int, skip=_is_optimizer_name) -> list[str]:
        """Variable keys below node ``start`` in depth-first object order, not entering children
        whose local name ``skip`` rejects."""
        order, seen, stack = [], set(), [start]
        while stack:
            nid = stack.pop()
            if nid in seen:
                continue
            seen.add(nid)
            key = self.nodes[nid].attrs.get("VARIABLE_VALUE")
            if key:
                order.append(key)
            for name, cid in reversed(self.nodes[nid].children):
                if 0 <= cid < len(self.nodes) and not skip(name) and cid not in seen:
                    stack.append(cid)
        return order

    def _assignable(self, key: str) -> bool:
        v = self.vars.get(key)
        return v is not None and v.role not in (METADATA,) and v.dtype != "string" \
            and key != GRAPH_KEY

    def model_keys(self, root: str) -> list[str]:
        """Checkpoint tensors that belong to the model under ``root``, in the writer's order."""
        if self.nodes is not None:
            start = self.node_of_path(root)
            if start is None:
                return []
            return [k for k in self._dfs_keys(start) if self._assignable(k)
                    and k not in self.slot_of]
        prefix = f"{root}/" if root else ""
        if self.fmt.binding == Binding.LAYER_ORDER and self.legacy_layers:
            return [k for _, keys in self.legacy_layers for k in keys]
        out = []
        for v in self.ckpt.variables:   # natural order of names
            if not v.name.startswith(prefix) or not self._assignable(v.name):
                continue
            if v.slot_of or v.name in self.slot_of or v.role == COUNTER:
                continue
            segs = v.path.split("/")
            if any(_is_optimizer_name(s) for s in segs[:-1]) or segs[0] == "optimizer":
                continue
            if v.role == "optimizer state":
                continue
            out.append(v.name)
        return out

    def rel_paths(self, root: str) -> dict[str, list[str]]:
        """key -> object paths relative to ``root`` (not through optimizers)."""
        if self.nodes is not None:
            start = self.node_of_path(root)
            if start is None:
                return {}
            out = {}
            for nid, paths in self._paths_from(start).items():
                key = self.nodes[nid].attrs.get("VARIABLE_VALUE")
                if key:
                    out[key] = paths
            return out
        out = {}
        prefix = f"{root}/" if root else ""
        for k in self.model_keys(root):
            p = self.vars[k].path
            if self.fmt.binding == Binding.LAYER_ORDER:
                rel = k[len("model_weights/"):] if k.startswith("model_weights/") else k
                layer, _, rest = rel.partition("/")
                out[k] = [rest, f"{layer}/{rest.rsplit('/', 1)[-1]}"]
            else:
                out[k] = [p[len(prefix):] if p.startswith(prefix) else p]
        return out

    def structural(self, root: str) -> dict[str, tuple]:
        """key -> (layer indices..., local name): ``layer_with_weights-N``, ``_operations/N``
        (ranked among the layers that hold tensors), or a legacy .h5's layer list."""
        if self.fmt.binding == Binding.LAYER_ORDER:
            return {k: (i, _local(k)) for i, (_, keys) in enumerate(self.legacy_layers)
                    for k in keys}
        if self.fmt.binding != Binding.OBJECT_GRAPH:
            return {}
        raw: dict[str, list[tuple[str, int]]] = {}
        for key, paths in self.rel_paths(root).items():
            if key in self.slot_of or not self._assignable(key):
                continue
            for p in paths:
                segs = p.split("/")
                idx, i = [], 0
                while i < len(segs):
                    s = segs[i]
                    m = re.fullmatch(r"layer_with_weights-(\d+)", s)
                    if m:
                        idx.append(("/".join(segs[:i]) + "/lww", int(m.group(1))))
                    elif s in _INDEXED_CONTAINERS and i + 1 < len(segs) and segs[i + 1].isdigit():
                        idx.append(("/".join(segs[:i + 1]), int(segs[i + 1])))
                        i += 1
                    i += 1
                if idx:
                    raw[key] = idx + [("", _local(segs[-1]))]
                    break
        # rank the indices of each container among those that hold tensors
        seen: dict[str, set[int]] = defaultdict(set)
        for parts in raw.values():
            for container, n in parts[:-1]:
                seen[container].add(n)
        rank = {c: {n: r for r, n in enumerate(sorted(ns))} for c, ns in seen.items()}
        out = {}
        for key, parts in raw.items():
            out[key] = tuple(rank[c][n] for c, n in parts[:-1]) + (parts[-1][1],)
        return out

    # -- roots --
    def root_children(self) -> list[str]:
        if self.nodes is not None:
            return [n for n, _ in self.nodes[0].children]
        return sorted({v.path.split("/", 1)[0] for v in self.ckpt.variables if "/" in v.path})

    def root_candidates(self) -> list[RootCandidate]:
        """The top level, and every root child that holds model-like tensors."""
        def summary(name):
            keys = [k for k in self.model_keys(name)
                    if self.vars[k].role != COUNTER and len(self.vars[k].shape) >= 1]
            n_values = sum(int(np.prod(self.vars[k].shape)) for k in keys)
            return keys, n_values

        if self.fmt.binding != Binding.OBJECT_GRAPH:
            keys, n = summary("")
            return [RootCandidate("", len(keys), n)]
        out = []
        keys, n = summary("")
        children = self.root_children()
        structural = any(_STRUCTURAL_ROOT_CHILD.match(c) for c in children)
        out.append(RootCandidate("", len(keys), n,
                                 "a Keras model saved at the top level" if structural else ""))
        for name in children:
            if _is_optimizer_name(name) or name == "save_counter":
                continue
            if self.nodes is not None and self.node_of_path(name) == 0:
                continue   # the top level again (tf.train.Checkpoint(root=obj) links obj.root)
            keys, n = summary(name)
            if keys and not _STRUCTURAL_ROOT_CHILD.match(name):
                out.append(RootCandidate(name, len(keys), n))
        return out

    def structural_top(self) -> bool:
        return any(_STRUCTURAL_ROOT_CHILD.match(c) for c in self.root_children())

    # -- optimizer --
    def optimizer_prefixes(self, root: str) -> list[str]:
        if self.fmt.binding == Binding.LAYER_ORDER:
            return ["optimizer_weights"] if self.legacy_optimizer else []
        if self.fmt.binding != Binding.OBJECT_GRAPH:
            return ["optimizer"] if any(k.startswith("optimizer/") for k in self.vars) else []
        names = []
        if root:
            names += [f"{root}_optimizer", f"{root}/optimizer"]
        names += ["optimizer"]
        names += [c for c in self.root_children() if _is_optimizer_name(c) and c not in names]
        if self.nodes is not None:
            return [n for n in names if self.node_of_path(n) is not None]
        found = [n for n in names if any(v.path.startswith(n + "/") for v in self.ckpt.variables)]
        if not found and self.slot_of:   # TF1 Saver: w/Adam beside w, global_step at the top
            found = [""]
        return found

    def optimizer_keys(self, prefix: str) -> list[str]:
        if self.fmt.binding == Binding.LAYER_ORDER:
            return list(self.legacy_optimizer)
        if self.nodes is not None:
            start = self.node_of_path(prefix)
            if start is None:
                return []
            # the model's own variables seen from a Keras 3 optimizer are not its state
            return self._dfs_keys(start, skip=lambda name: name in (
                "_trainable_variables", "_trainable_variables_indices"))
        if prefix == "":
            return [v.name for v in self.ckpt.variables if v.name in self.slot_of
                    or (v.role in (COUNTER, "optimizer state") and "/" not in v.path)]
        return [v.name for v in self.ckpt.variables if v.path.startswith(prefix + "/")]

    def template_config(self, root: str) -> CheckpointConfig | None:
        """The config under ``root`` with the bounds a model built from it keeps: files only
        in the checkpoint's folder, variables the size of the checkpoint's tensors."""
        if self.config_problem:
            raise TemplateError(self.config_problem)
        text = self.config_for(root)
        if text is None:
            return None
        return CheckpointConfig(
            text, folder=os.path.dirname(self.ckpt.path),
            tensor_shapes={tuple(int(d) for d in self.vars[k].shape) for k in self.vars
                           if self._assignable(k)},
            checkpoint_bytes=int(self.ckpt.bytes or 0),
            archive=self.ckpt.path if self.fmt.archive else None)

    def config_for(self, root: str) -> str | None:
        """The Keras model config the checkpoint carries for the model under ``root``."""
        if root in self.config_json:
            return self.config_json[root]
        if self.fmt.binding != Binding.OBJECT_GRAPH:
            return self.config_json.get("")
        from .reading import ReadError, read_tensor

        key = None
        if self.nodes is not None:
            node = self.node_of_path(root)
            if node is not None:
                key = self.nodes[node].attrs.get("OBJECT_CONFIG_JSON")

        def read(k):
            try:
                raw = np.asarray(read_tensor(self.ckpt, k)).reshape(-1)[0]
            except (ReadError, IndexError):
                return None
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

        if key and key in self.vars:
            text = read(key)
            if text:
                self.config_json[root] = text
                return text
        # No model config, but layer configs (layer-N / layer_with_weights-N): a Sequential.
        layered = []
        start = self.node_of_path(root)
        if start is not None:
            for pattern in (r"layer-(\d+)", r"layer_with_weights-(\d+)"):
                found = []
                for name, cid in self.nodes[start].children:
                    m = re.fullmatch(pattern, name)
                    k = self.nodes[cid].attrs.get("OBJECT_CONFIG_JSON") if m and 0 <= cid < len(
                        self.nodes) else None
                    if m and k:
                        found.append((int(m.group(1)), k))
                if found:
                    layered = sorted(found)
                    break
        if layered:
            texts = [read(k) for _, k in layered]
            if not all(texts):
                return None
            text = "[" + ", ".join(texts) + "]"   # parsed (and judged) when a model is built
            self.config_json[root] = text
            return text
        return None


# --- the template side -----------------------------------------------------------------------

@dataclass
class _TVar:
    index: int
    var: Any
    name: str
    shape: tuple[int, ...]
    dtype: str
    local: str
    struct: tuple | None = None
    flat_struct: tuple | None = None
    layer_name: str | None = None
    auto_named: bool = False     # its layer's name is Keras's automatic one (dense_3): no identity


def _var_dtype(v) -> str:
    d = getattr(v, "dtype", "float32")
    return getattr(d, "name", None) or str(d)


def _template_vars(model) -> list[_TVar]:
    out, seen_names = [], defaultdict(int)
    for i, v in enumerate(model.weights):
        name = getattr(v, "path", None) or getattr(v, "name", f"variable_{i}")
        seen_names[name] += 1
        if seen_names[name] > 1:
            name = f"{name}#{seen_names[name]}"
        out.append(_TVar(i, v, name, tuple(int(d) for d in v.shape), _var_dtype(v),
                         _local(getattr(v, "name", name))))
    by_id = {id(t.var): t for t in out}

    def sublayers(layer):
        layers = getattr(layer, "layers", None)
        return layers if isinstance(layers, (list, tuple)) else None

    def visit(layer, prefix, top):
        weighted = [l for l in (sublayers(layer) or []) if getattr(l, "weights", None)]
        for i, l in enumerate(weighted):
            t_top = (i,) if top is None else top
            if sublayers(l) is not None and l is not layer:
                visit(l, prefix + (i,), t_top)
            else:
                auto = _is_auto_name(l)
                for v in l.weights:
                    t = by_id.get(id(v))
                    if t is not None and t.struct is None:
                        t.struct = prefix + (i, t.local)
                        t.layer_name, t.auto_named = l.name, auto
            for v in l.weights:
                t = by_id.get(id(v))
                if t is not None and t.flat_struct is None:
                    t.flat_struct = (t_top[0], t.local)

    visit(model, (), None)
    return out


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _is_auto_name(layer) -> bool:
    name = str(getattr(layer, "name", ""))
    return re.fullmatch(re.escape(_snake(type(layer).__name__)) + r"(_\d+)?", name) is not None


def _children(obj) -> dict:
    from .tfrt import tf

    try:
        return dict(tf().train.TrackableView.children(obj))
    except Exception:
        return {}


def _template_paths(model) -> dict[int, list[str]]:
    """id(object) -> object paths from the model (not through optimizers), as TF would see them."""
    paths: dict[int, list[str]] = {id(model): [""]}
    objs = {id(model): model}
    queue = deque([(model, "", 0)])
    while queue:
        obj, path, depth = queue.popleft()
        if depth > 64:
            continue
        for name, child in _children(obj).items():
            if _is_optimizer_name(name):
                continue
            p = f"{path}/{name}" if path else name
            got = paths.setdefault(id(child), [])
            objs[id(child)] = child
            if len(got) < PATH_CAP and p not in got:
                first = not got
                got.append(p)
                if first:
                    queue.append((child, p, depth + 1))
    return paths


def _keras3_paths(model) -> dict[int, str]:
    """id(variable) -> its key in a Keras 3 .weights.h5 of this model (layers/dense_1/vars/0),
    recorded by walking the model the way Keras saves it."""
    try:
        from keras.src.saving import saving_lib
    except ImportError:
        return {}
    recorded: dict[int, str] = {}

    class _Entry(dict):
        def __init__(self, path):
            super().__init__()
            self._path = path

        def __setitem__(self, k, v):
            super().__setitem__(k, v)
            key = f"{self._path}/vars/{k}" if self._path else f"vars/{k}"
            recorded.setdefault(id(v), key)

    class _Recorder(saving_lib.H5IOStore):
        def __init__(self):  # no file
            self.mode = "w"

        def __bool__(self):
            return True

        def make(self, path, metadata=None):
            return _Entry(path)

        def close(self):
            pass

    try:
        saving_lib._save_state(model, weights_store=_Recorder(), assets_store=None,
                               inner_path="", visited_saveables=set())
    except Exception:
        return {}
    return recorded


class TemplateSide:
    def __init__(self, loaded: LoadedTemplate):
        self.loaded = loaded
        self.model = loaded.model
        self.optimizer = loaded.optimizer
        self.vars = _template_vars(self.model)
        self.by_id = {id(t.var): t for t in self.vars}
        self._paths = None
        self._k3 = None

    def paths(self) -> dict[int, list[str]]:
        if self._paths is None:
            self._paths = _template_paths(self.model)
        return self._paths

    def keras3_paths(self) -> dict[int, str]:
        if self._k3 is None:
            self._k3 = _keras3_paths(self.model)
        return self._k3

    # optimizer
    def optimizer_variables(self) -> list:
        return list(self.optimizer.variables) if self.optimizer is not None else []

    def slot_lists(self) -> dict[str, list]:
        opt = self.optimizer
        if opt is None:
            return {}
        trainable = list(getattr(opt, "_trainable_variables", []) or [])
        out = {}
        for attr, value in vars(opt).items():
            if attr in ("_variables", "_trainable_variables") or not isinstance(value, (list,
                                                                                          tuple)):
                continue
            if value and len(value) == len(trainable) and all(
                    hasattr(x, "assign") or x is None for x in value):
                out[attr.lstrip("_")] = list(value)
        return out

    def trainable_index(self) -> dict[int, int]:
        opt = self.optimizer
        trainable = list(getattr(opt, "_trainable_variables", []) or []) if opt else []
        return {id(v): i for i, v in enumerate(trainable)}


# --- planning --------------------------------------------------------------------------------

def _walk(side: CheckpointSide, start: int, obj, through_optimizers: bool = False) -> dict[int, Any]:
    """Bind checkpoint nodes to template objects by local names from ``start``, as
    tf.train.Checkpoint does. A model walk does not enter optimizers; an optimizer's walk
    (``through_optimizers``) follows every child."""
    bound = {start: obj}
    bound_ids = {id(obj)}
    queue = deque([start])
    while queue:
        nid = queue.popleft()
        kids = _children(bound[nid])
        for name, cid in side.nodes[nid].children:
            if not 0 <= cid < len(side.nodes) or cid in bound:
                continue
            if not through_optimizers and _is_optimizer_name(name):
                continue
            child = kids.get(name)
            if child is None or id(child) in bound_ids:
                continue
            bound[cid] = child
            bound_ids.add(id(child))
            queue.append(cid)
    return bound


class _Binder:
    def __init__(self, side: CheckpointSide, tvars: list[_TVar], allowed: list[str]):
        self.side = side
        self.allowed = list(allowed)
        self.allowed_set = set(allowed)
        self.used: set[str] = set()
        self.entries = {t.index: MappingEntry(MODEL, t.index, t.name, t.shape, t.dtype)
                        for t in tvars}
        self.tvars = tvars

    def shape_of(self, key):
        return tuple(self.side.vars[key].shape)

    def compatible(self, t: _TVar, key: str) -> bool:
        v = self.side.vars[key]
        return tuple(v.shape) == t.shape and _float_kind(v.dtype) == _float_kind(t.dtype)

    def offer(self, t: _TVar, keys: list[str], how: str, apply: bool = True,
              record_mismatch: bool = True) -> bool:
        e = self.entries[t.index]
        if e.key is not None:
            return True
        for key in keys:
            if key not in self.allowed_set or key in self.used:
                continue
            if self.compatible(t, key):
                e.key, e.key_shape, e.how, e.apply = key, self.shape_of(key), how, apply
                self.used.add(key)
                e.mismatch_key = e.mismatch_shape = None
                return True
            if record_mismatch and e.mismatch_key is None and \
                    tuple(self.side.vars[key].shape) != t.shape:
                e.mismatch_key, e.mismatch_shape = key, self.shape_of(key)
        return False

    def bound_count(self) -> int:
        return sum(1 for e in self.entries.values() if e.key is not None)

    def unbound(self) -> list[_TVar]:
        return [t for t in self.tvars if self.entries[t.index].key is None]


def _plan_model(side: CheckpointSide, tmpl: TemplateSide, root: str) -> tuple[_Binder, dict]:
    keys = side.model_keys(root)
    b = _Binder(side, tmpl.vars, keys)
    native_bound: dict[int, str] = {}
    # 1. object path
    if side.nodes is not None:
        start = side.node_of_path(root)
        if start is not None:
            bound = _walk(side, start, tmpl.model)
            for nid, obj in bound.items():
                t = tmpl.by_id.get(id(obj))
                key = side.nodes[nid].attrs.get("VARIABLE_VALUE")
                if t is not None and key:
                    native_bound[t.index] = key
                    b.offer(t, [key], OBJECT_PATH)
    elif side.fmt.binding == Binding.LAYER_PATHS:
        k3 = tmpl.keras3_paths()
        for t in tmpl.vars:
            key = k3.get(id(t.var))
            if key:
                b.offer(t, [key], OBJECT_PATH)
    elif side.fmt.binding != Binding.LAYER_ORDER:
        names = set(keys)
        for t in tmpl.vars:
            if t.name in names:
                b.offer(t, [t.name], OBJECT_PATH)
    struct = side.structural(root)
    if side.fmt.binding == Binding.LAYER_ORDER:   # Keras's own default for a legacy .h5
        _offer_layer_order(b, side, tmpl, keys, struct)
    # 2a. the same path modulo renames (kernel/_kernel, a Keras 3 weight's own path)
    rel = side.rel_paths(root)
    by_norm: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        for p in rel.get(key, []):
            by_norm[_norm_path(p)].append(key)
    if side.nodes is not None:
        tpaths = tmpl.paths()
        for t in b.unbound():
            cands = []
            for p in tpaths.get(id(t.var), []):
                cands += by_norm.get(_norm_path(p), [])
            b.offer(t, cands, RENAMED)
    else:
        for t in b.unbound():
            if t.auto_named:
                continue   # dense_3 here and dense_3 there need not be the same layer
            layer = t.name.rsplit("/", 2)
            forms = [t.name, "/".join(t.name.split("/")[1:])]
            if len(layer) >= 2:
                forms.append(f"{layer[-2]}/{layer[-1]}")
            cands = []
            for form in forms:
                cands += by_norm.get(_norm_path(form), [])
            b.offer(t, cands, RENAMED)
    # 2b. layer order: layer_with_weights-N, _operations/N, a legacy .h5's layer list
    _offer_layer_order(b, side, tmpl, keys, struct)
    # 3. order and shape: on its own only when names bound nothing
    named = b.bound_count()
    how, apply = (ORDER_SHAPE, True) if named == 0 else (SUGGESTED, False)
    for t in b.unbound():
        if t.shape == ():
            continue   # scalars pair with anything; never by order alone
        b.offer(t, keys, how, apply, record_mismatch=False)
    return b, native_bound


def _direction(path: str) -> int:
    p = path.lower()
    return 0 if "forward" in p else 1 if "backward" in p else 0


def _offer_layer_order(b: _Binder, side: CheckpointSide, tmpl: TemplateSide, keys: list[str],
                       struct: dict[str, tuple]) -> None:
    if not struct:
        return
    groups: dict[tuple, list[str]] = defaultdict(list)
    for key in keys:
        if key in struct:
            groups[struct[key]].append(key)
    tgroups: dict[tuple, list[_TVar]] = defaultdict(list)
    use_flat = side.fmt.binding == Binding.LAYER_ORDER
    for t in tmpl.vars:
        s = t.flat_struct if use_flat else t.struct
        if s is not None:
            tgroups[s].append(t)
    for s, ts in tgroups.items():
        ks = groups.get(s, [])
        if len(ts) > 1 and len(ks) == len(ts):   # Bidirectional: forward before backward
            ks = sorted(ks, key=lambda k: _direction(side.vars[k].path))
            ts = sorted(ts, key=lambda t: _direction(t.name))
        for i, t in enumerate(ts):
            if i < len(ks):
                b.offer(t, [ks[i]], LAYER_ORDER)


def _plan_optimizer(side: CheckpointSide, tmpl: TemplateSide, root: str,
                    model_entries: list[MappingEntry]) -> tuple[list[MappingEntry], str | None,
                                                                bool, list[str]]:
    notes: list[str] = []
    opt = tmpl.optimizer
    if opt is None:
        return [], None, False, notes
    ovars = tmpl.optimizer_variables()
    entries = [MappingEntry(OPTIMIZER, i, getattr(v, "path", None) or v.name,
                            tuple(int(d) for d in v.shape), _var_dtype(v))
               for i, v in enumerate(ovars)]
    by_id = {id(v): e for v, e in zip(ovars, entries)}
    key_of_var = {e.index: e.key for e in model_entries if e.key and e.apply}
    # which template slot belongs to which model variable
    tindex = tmpl.trainable_index()
    trainable = list(getattr(opt, "_trainable_variables", []) or [])
    slot_lists = tmpl.slot_lists()
    it = getattr(opt, "iterations", None)
    if it is not None and id(it) in by_id:
        by_id[id(it)].role = "iterations"
    lr = getattr(opt, "_learning_rate", None)
    if lr is not None and id(lr) in by_id:
        by_id[id(lr)].role = "learning_rate"
    for attr, lst in slot_lists.items():
        for v in lst:
            if v is not None and id(v) in by_id:
                by_id[id(v)].role = f"slot {attr}"

    prefixes = side.optimizer_prefixes(root)
    if not prefixes:
        return entries, None, False, ["the checkpoint holds no optimizer state for this model"]
    # choose the optimizer whose slots belong to the model's keys
    mapped_keys = set(key_of_var.values())

    def owned(prefix):
        ks = side.optimizer_keys(prefix)
        slots = [k for k in side.slot_of if side.slot_of[k][0] in mapped_keys]
        if side.nodes is not None:   # slots live with their optimizer (or beside the variable)
            own = [k for k in ks if k in side.slot_of and side.slot_of[k][0] in mapped_keys]
            return len(own) or (len(slots) if prefix == prefixes[0] else 0), ks
        return len(slots), ks

    scored = [(owned(p), p) for p in prefixes]
    (score, okeys), prefix = max(scored, key=lambda x: x[0][0])
    if score == 0:
        prefix = prefixes[0]
        okeys = side.optimizer_keys(prefix)
    okey_set = set(okeys)
    used: set[str] = set()

    def bind(e: MappingEntry, key: str, how: str) -> bool:
        v = side.vars.get(key)
        if v is None or key in used:
            return False
        if tuple(v.shape) != e.shape or _float_kind(v.dtype) != _float_kind(e.dtype):
            if e.mismatch_key is None:
                e.mismatch_key, e.mismatch_shape = key, tuple(v.shape)
            return False
        e.key, e.key_shape, e.how, e.apply = key, tuple(v.shape), how, True
        used.add(key)
        return True

    # iterations and learning rate
    def find(names, fallback_index, kind):
        for k in okeys:
            last = side.vars[k].path.rstrip("/").rsplit("/", 1)[-1] if k in side.vars else ""
            if (last[:-2] if last.endswith(":0") else last) in names:
                return k
        if side.fmt.binding == Binding.LAYER_PATHS:
            k = f"{prefix}/vars/{fallback_index}"
            if k in side.vars and side.vars[k].shape == () and \
                    _float_kind(side.vars[k].dtype) == kind:
                return k
        return None

    for e in entries:
        if e.role == "iterations":
            k = find(_ITERATION_NAMES | ({"global_step"} if prefix == "" else set()), 0, "int")
            if k:
                bind(e, k, RENAMED)
        elif e.role == "learning_rate":
            k = find(_LR_NAMES, 1, "float")
            if k:
                bind(e, k, RENAMED)
    # slots by what they belong to
    slots_by_owner: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for skey, (owner, sname) in side.slot_of.items():
        if skey in side.vars and (side.nodes is None or skey in okey_set or
                                  ".OPTIMIZER_SLOT/" in skey
                                  or side.fmt.binding != Binding.OBJECT_GRAPH):
            slots_by_owner[owner].append((skey, sname))
    for tv in tmpl.vars:
        owner_key = key_of_var.get(tv.index)
        if owner_key is None or id(tv.var) not in tindex:
            continue
        j = tindex[id(tv.var)]
        tslots = [(attr, lst[j]) for attr, lst in slot_lists.items() if lst[j] is not None]
        cslots = slots_by_owner.get(owner_key, [])
        pending = []
        for attr, sv in tslots:
            e = by_id.get(id(sv))
            if e is None:
                continue
            hit = next((k for k, sname in cslots if attr in _SLOT_ALIASES.get(
                sname.lower(), (sname.lower(),)) and k not in used), None)
            if hit is None or not bind(e, hit, RENAMED):
                pending.append(e)
        left = [k for k, _ in cslots if k not in used]
        if pending and len(pending) == len(left):   # names unknown: same count, same order
            for e, k in zip(pending, left):
                bind(e, k, ORDER_SHAPE)
    # native: does the object graph bind the optimizer exactly like this?
    native = False
    if side.nodes is not None:
        start = side.node_of_path(prefix)
        if start is not None:
            bound = _walk(side, start, opt, through_optimizers=True)
            walked = {}
            for nid, obj in bound.items():
                key = side.nodes[nid].attrs.get("VARIABLE_VALUE")
                if key and id(obj) in by_id:
                    walked[by_id[id(obj)].index] = key
            planned = {e.index: e.key for e in entries if e.key}
            native = bool(planned) and walked == planned and all(
                tuple(side.vars[k].shape) == entries[i].shape for i, k in walked.items()
                if k in side.vars)
            if native:
                for e in entries:
                    if e.key:
                        e.native, e.how = True, OBJECT_PATH
    if not any(e.key for e in entries):
        notes.append(f"the checkpoint's optimizer ({prefix}) holds nothing this optimizer can "
                     f"take")
    del trainable
    return entries, prefix, native, notes


def choose_root(side: CheckpointSide, tmpl: TemplateSide | None, root: str | None) -> str:
    cands = side.root_candidates()
    if root is not None:
        root = root.strip("/")
        if root in (".",):
            root = ""
        if side.fmt.binding != Binding.OBJECT_GRAPH or side.nodes is None:
            if root and not any(v.path.startswith(root + "/") for v in side.ckpt.variables):
                raise RootError(f"{side.ckpt.name} has no {root!r}: its model sits at the top "
                                f"level", cands)
            return root
        if side.node_of_path(root) is None:
            names = ", ".join(c.label for c in cands)
            raise RootError(f"{side.ckpt.name} has no object {root!r} (candidates: {names})",
                            cands)
        return root
    if side.fmt.binding != Binding.OBJECT_GRAPH or side.structural_top():
        return ""
    children = [c for c in cands if c.name]
    if not children:
        return ""
    n_vars = len(tmpl.vars) if tmpl is not None else 0
    named, cover, held = {}, {}, {}
    for c in cands:
        if tmpl is None:
            named[c.name] = cover[c.name] = 0
            continue
        b, _ = _plan_model(side, tmpl, c.name)
        held[c.name] = frozenset(b.allowed)
        # the top level's layer order would mix its children's layers: names only there
        tiers = (OBJECT_PATH, RENAMED) if c.name == "" else (OBJECT_PATH, RENAMED, LAYER_ORDER)
        named[c.name] = sum(1 for e in b.entries.values() if e.key and e.how in tiers)
        cover[c.name] = sum(1 for e in b.entries.values() if e.key and e.apply)
    only_child = children[0].name if len(children) == 1 else None
    best = max(named.values())
    if best > 0:   # names decide
        if only_child is not None and named[""] <= named[only_child]:
            return only_child
        winners = [n for n, s in named.items() if s == best]
        others = [s for n, s in named.items() if n not in winners]
        if len(winners) == 1 and (best == n_vars or all(s == 0 for s in others)):
            return winners[0]
    elif n_vars:   # names mean nothing here: the part whose shapes, in order, hold the model
        full = [n for n, k in cover.items() if k == n_vars]
        kids = [n for n in full if n]
        if len(kids) == 1:
            return kids[0]
        if "" in full and all(held[k] == held[""] for k in kids):
            return ""   # lists of the same variables (a SavedModel's variables, _all_variables)
        if only_child is not None and not full:
            return only_child
    elif only_child is not None:
        return only_child
    listing = ", ".join(f"{c.label} ({c.n_tensors} tensors)" for c in children)
    raise RootError(f"several parts of {side.ckpt.name} could hold the model: {listing}; "
                    f"choose one with --root NAME", cands)


def make_plan(side: CheckpointSide, tmpl: TemplateSide, root: str, template_name: str
              ) -> RestorePlan:
    b, native_bound = _plan_model(side, tmpl, root)
    entries = [b.entries[t.index] for t in tmpl.vars]
    for e in entries:
        if e.key is not None and native_bound.get(e.index) == e.key:
            e.native = True
    native_possible = side.nodes is not None and any(e.native for e in entries) and not any(
        e.mismatch_key and native_bound.get(e.index) == e.mismatch_key for e in entries)
    opt_entries, prefix, native_opt, notes = _plan_optimizer(side, tmpl, root, entries)
    model_keys = set(side.model_keys(root))
    key_infos = [KeyInfo(k, tuple(v.shape), v.dtype, v.role, v.path) for k, v in side.vars.items()
                 if side._assignable(k)]
    key_infos.sort(key=lambda k: (k.key not in model_keys, ))
    plan = RestorePlan(side.ckpt.name, template_name, root, side.root_candidates(),
                       entries + opt_entries, key_infos, native_possible,
                       native_opt and native_possible, prefix, notes=notes)
    if getattr(side, "graph_problem", None):
        plan.notes.append(side.graph_problem)
    return plan


# --- applying --------------------------------------------------------------------------------

def _reader(ckpt: CheckpointInfo):
    return formats.for_name(ckpt.format).key_reader(ckpt)


def _read_error(exc: Exception) -> str:
    text = (str(exc) or type(exc).__name__).strip().splitlines()[0]
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:\w+\]$", "", text)[:200]


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _np_dtype(dtype: str):
    try:
        return np.dtype(dtype)
    except TypeError:
        import ml_dtypes  # bfloat16

        return np.dtype(getattr(ml_dtypes, dtype))


def _native_read(side: CheckpointSide, root: str, model, opt_prefix: str | None,
                 optimizer) -> tuple[bool, bool]:
    """tf.train.Checkpoint(<root>=model[, <optimizer child>=optimizer]).read(prefix).
    Returns (model restored natively, optimizer restored natively)."""
    from .tfrt import tf

    t = tf()
    if "/" in root:
        return False, False
    kwargs = {}
    if opt_prefix and optimizer is not None:
        # the optimizer must be a child of the checkpoint's root (or reached under the model)
        node = side.node_of_path(opt_prefix)
        top = next((n for n, c in side.nodes[0].children if c == node), None)
        if top is not None and top != root:
            kwargs[top] = optimizer
    if root == "":
        ck = t.train.Checkpoint(root=model, **kwargs)
    else:
        ck = t.train.Checkpoint(**{root: model}, **kwargs)
    status = ck.read(side.ckpt.path)
    status.expect_partial()
    return True, bool(kwargs)


def apply_plan(session: "RestoreSession", plan: RestorePlan, progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None) -> RestoreReport:
    ckpt, tmpl = session.ckpt, session.template_side
    model_vars = tmpl.vars
    ovars = tmpl.optimizer_variables()
    notes = list(plan.notes)
    rows = [e for e in plan.entries if e.apply and e.key]
    native_done = native_opt = False
    if plan.native_possible and not plan.edited:
        try:
            native_done, native_opt = _native_read(
                session.side, plan.root, tmpl.model,
                plan.optimizer_prefix if plan.native_optimizer else None, tmpl.optimizer)
        except Exception as e:
            notes.append(f"tf.train.Checkpoint could not restore natively ({_read_error(e)}); "
                         f"every variable was assigned from the mapping instead")
            native_done = native_opt = False
    unreadable: dict[str, str] = {}
    total = len(rows)
    with _reader(ckpt) as read:
        for i, e in enumerate(rows):
            if cancelled is not None and cancelled():
                raise RestoreError("cancelled")
            if progress is not None:
                progress(i, 2 * total, f"restoring {e.variable}")
            native_here = e.native and (native_done if e.group == MODEL else native_opt)
            if native_here:
                continue
            var = model_vars[e.index].var if e.group == MODEL else ovars[e.index]
            info = ckpt.variable(e.key)
            if info is not None and info.readable is False:   # the engine knows why already
                unreadable[e.key] = info.problem or "it cannot be read"
                continue
            try:
                value = read(e.key)
            except Exception as exc:
                unreadable[e.key] = _read_error(exc)
                continue
            if tuple(value.shape) != tuple(var.shape):   # never another shape
                unreadable[e.key] = f"shape {list(value.shape)} is not {list(var.shape)}"
                continue
            var.assign(value.astype(_np_dtype(e.dtype), copy=False))
        verified_rows: dict[int, bool] = {}
        for i, e in enumerate(rows):
            if progress is not None:
                progress(total + i, 2 * total, f"verifying {e.variable}")
            if e.key in unreadable:
                continue
            var = model_vars[e.index].var if e.group == MODEL else ovars[e.index]
            try:
                want = read(e.key)
            except Exception as exc:
                unreadable[e.key] = _read_error(exc)
                continue
            have = np.asarray(var.numpy())
            try:
                want = want.astype(have.dtype, copy=False)
            except (TypeError, ValueError):
                pass
            verified_rows[id(e)] = _equal(have, want)
    if progress is not None:
        progress(2 * total, 2 * total, "")
    by_reason: dict[str, list[str]] = defaultdict(list)
    for key, why in unreadable.items():
        by_reason[why].append(key)
    for why, keys in by_reason.items():
        shown = ", ".join(k.replace(ATTR_SUFFIX, "") for k in keys[:3])
        notes.append(f"{len(keys)} tensor(s) could not be read ({why}): {shown}"
                     + (" ..." if len(keys) > 3 else ""))

    restored, missing, mismatches, suggestions = [], [], [], []
    used_keys = set()
    for e in plan.model_entries():
        if e.apply and e.key and e.key not in unreadable:
            restored.append(RestoredVariable(e.variable, e.key, list(e.shape), e.how,
                                             verified_rows.get(id(e), False)))
            used_keys.add(e.key)
        elif e.mismatch_key and not (e.apply and e.key):
            mismatches.append(ShapeMismatch(e.variable, e.mismatch_key, list(e.shape),
                                            list(e.mismatch_shape or ())))
            if e.key and not e.apply:
                suggestions.append((e.variable, e.key))
        else:
            missing.append(e.variable)
            if e.key and not e.apply:
                suggestions.append((e.variable, e.key))
    opt_report = OptimizerReport(in_template=tmpl.optimizer is not None,
                                 in_checkpoint=plan.optimizer_prefix is not None, restored=False)
    if tmpl.optimizer is not None:
        restored_model = {e.index for e in plan.model_entries()
                          if e.apply and e.key and e.key not in unreadable}
        tindex = tmpl.trainable_index()
        needed_slots = set()
        for attr, lst in tmpl.slot_lists().items():
            for tv in model_vars:
                if tv.index in restored_model and id(tv.var) in tindex:
                    sv = lst[tindex[id(tv.var)]]
                    if sv is not None:
                        needed_slots.add(id(sv))
        ok_ids = set()
        for e in plan.optimizer_entries():
            v = ovars[e.index]
            if e.apply and e.key and e.key not in unreadable:
                ver = verified_rows.get(id(e), False)
                opt_report.entries.append(RestoredVariable(e.variable, e.key, list(e.shape),
                                                           e.how, ver))
                used_keys.add(e.key)
                if ver:
                    ok_ids.add(id(v))
                if e.role == "iterations":
                    opt_report.iterations = int(np.asarray(v.numpy()).reshape(-1)[0])
                elif e.role == "learning_rate":
                    opt_report.learning_rate = float(np.asarray(v.numpy()).reshape(-1)[0])
            elif e.role == "iterations" or id(v) in needed_slots:
                opt_report.missing.append(e.variable)
        opt_report.slots_expected = len(needed_slots)
        opt_report.slots_restored = len(needed_slots & ok_ids)
        it = getattr(tmpl.optimizer, "iterations", None)
        it_ok = it is not None and id(it) in ok_ids
        opt_report.restored = bool(it_ok and opt_report.slots_restored == len(needed_slots)
                                   and (needed_slots or it_ok))
        if not opt_report.in_checkpoint:
            opt_report.reason = "the checkpoint holds no optimizer state for this model"
        elif not it_ok:
            opt_report.reason = "the optimizer's iteration count was not found"
        elif opt_report.slots_restored < len(needed_slots):
            opt_report.reason = (f"{len(needed_slots) - opt_report.slots_restored} of "
                                 f"{len(needed_slots)} optimizer slots were not found")
    else:
        opt_report.reason = "the template has no optimizer"
    unused = [v.name for v in ckpt.variables
              if v.name not in used_keys and v.role != METADATA and v.dtype != "string"
              and v.name != GRAPH_KEY]
    model_rows = [e for e in rows if e.group == MODEL and e.key not in unreadable]
    mode = NATIVE if (native_done and model_rows and all(e.native for e in model_rows)) else MAPPED
    by_layers = formats.for_name(ckpt.format).binding != Binding.OBJECT_GRAPH
    if (by_layers and model_rows and all(e.how == OBJECT_PATH for e in model_rows)
            and not plan.edited):
        mode = NATIVE   # Keras's own .weights.h5 layout bound every variable
    verified = bool(restored) and all(r.verified for r in restored) and all(
        r.verified for r in opt_report.entries)
    report = RestoreReport(
        checkpoint=ckpt.name, template=plan.template, root=plan.root, mode=mode,
        restored=restored, missing_in_checkpoint=missing, unused_in_checkpoint=unused,
        shape_mismatch=mismatches, optimizer_restored=opt_report.restored,
        optimizer=opt_report, verified=verified, suggestions=suggestions, notes=notes,
        n_model_variables=len(model_vars))
    return report


# --- the session: one checkpoint, one template -----------------------------------------------

class RestoreSession:
    """One checkpoint restored into one template, step by step (the dialog's worker calls each
    step in turn; the CLI calls ``run``). Every step holds a lock, so two workers never touch
    the same model at once."""

    def __init__(self, ckpt: CheckpointInfo, template: str | TemplateRef):
        self.ckpt = ckpt
        self.template_ref = template if isinstance(template, TemplateRef) else \
            resolve_template(template)
        self.template_name = template if isinstance(template, str) else template.name
        self.side: CheckpointSide | None = None
        self.loaded: LoadedTemplate | None = None
        self.template_side: TemplateSide | None = None
        self.root: str | None = None
        self.plan: RestorePlan | None = None
        self.report: RestoreReport | None = None
        self._dirty = False
        self._lock = threading.RLock()

    # steps
    def analyse(self) -> CheckpointSide:
        with self._lock:
            if self.side is None:
                if self.ckpt.status == "broken":
                    raise RestoreError(f"{self.ckpt.name} cannot be read: "
                                       + "; ".join(self.ckpt.problems[:2]))
                self.side = CheckpointSide(self.ckpt)
            return self.side

    def _input_hints(self, root: str) -> list[tuple]:
        side = self.side
        for key in side.model_keys(root):
            shape = tuple(side.vars[key].shape)
            if len(shape) == 2:
                flat, seq = [(1, shape[0])], [(1, 1, shape[0]), (1, 4, shape[0])]
                rnn = "cell" in key or "recurrent" in key or "lstm" in key.lower()
                return (seq + flat if rnn else flat + seq) + [(1, 1, 1, shape[0])]
            if len(shape) == 3:
                return [(1, 16, shape[1]), (1, 100, shape[1])]
            if len(shape) == 4:
                return [(1, s, s, shape[2]) for s in (28, 32, 64, 224)]
        return []

    def load_template(self, root: str | None = None) -> LoadedTemplate:
        with self._lock:
            side = self.analyse()
            hint_root = root if root is not None else self._guess_root()
            config = None
            if self.template_ref.kind == CHECKPOINT_CONFIG:
                config = side.template_config(hint_root or "")
            self.loaded = load_template(self.template_ref, config=config,
                                        input_hints=self._input_hints(hint_root or ""))
            self.template_side = TemplateSide(self.loaded)
            self._dirty = False
            return self.loaded

    def _guess_root(self) -> str:
        try:
            return choose_root(self.side, None, None)
        except RootError as e:
            return e.candidates[1].name if len(e.candidates) > 1 else ""

    def propose(self, root: str | None = None) -> RestorePlan:
        with self._lock:
            side = self.analyse()
            if self.template_side is None or self._dirty:
                self.load_template(root)
            self.root = choose_root(side, self.template_side, root)
            self.plan = make_plan(side, self.template_side, self.root, self.template_name)
            self.plan.notes[:0] = self.loaded.notes
            return self.plan

    def restore(self, plan: RestorePlan | None = None, progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None) -> RestoreReport:
        with self._lock:
            plan = plan or self.plan or self.propose()
            if self._dirty:   # a fresh model, so nothing of an earlier restore lingers
                self.load_template(plan.root)
            self._dirty = True
            self.report = apply_plan(self, plan, progress, cancelled)
            return self.report

    def sample_run(self) -> SampleRun:
        with self._lock:
            return run_sample(self.loaded)

    def save(self, path: str) -> str:
        with self._lock:
            return save_model(self.loaded, path)

    def run(self, root: str | None = None, save: str | None = None, sample: bool = True,
            progress: Progress | None = None) -> RestoreReport:
        self.propose(root)
        report = self.restore(progress=progress)
        if sample:
            report.sample = self.sample_run()
        if save:
            if report.complete:
                report.saved = self.save(save)
            else:
                report.notes.append(f"not saved to {save}: the restore is incomplete, so the "
                                    f"file would hold variables that were never restored")
        return report


def restore_checkpoint(ckpt: CheckpointInfo, template: str | TemplateRef, root: str | None = None,
                       save: str | None = None, sample: bool = True,
                       progress: Progress | None = None) -> RestoreReport:
    """Restore ``ckpt`` into ``template`` (a built-in name, ``checkpoint`` or a path)."""
    return RestoreSession(ckpt, template).run(root=root, save=save, sample=sample,
                                              progress=progress)


# --- after the restore -----------------------------------------------------------------------

SAVE_SUFFIXES = (".weights.h5", ".keras")


def save_model(loaded: LoadedTemplate, path: str) -> str:
    """Save the restored model as ``.weights.h5`` (weights, and the optimizer's state when the
    template has one) or ``.keras`` (architecture too)."""
    path = os.path.abspath(os.path.expanduser(path))
    if not path.endswith(SAVE_SUFFIXES):
        raise RestoreError(f"{path}: save as .weights.h5 or .keras")
    model = loaded.model
    if loaded.optimizer is not None and getattr(model, "optimizer", None) is not \
            loaded.optimizer and hasattr(model, "compile"):
        model.compile(optimizer=loaded.optimizer)   # so the file carries the optimizer's state
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        if path.endswith(".weights.h5"):
            model.save_weights(path)
        else:
            model.save(path)
    except Exception as e:
        raise RestoreError(f"{path} could not be written: {type(e).__name__}: {e}") from None
    return path


def run_sample(loaded: LoadedTemplate | None, n_values: int = 8) -> SampleRun:
    if loaded is None:
        return SampleRun(None, None, [], False, "no template loaded")
    if loaded.ref.kind == CHECKPOINT_CONFIG:   # a few bytes of config can ask for terabytes
        need, budget = activation_bytes(loaded.model), memory_budget()
        if need is None or need > budget:
            return SampleRun(None, None, [], False, skipped=(
                "the size of its layers' outputs is not known before running it"
                if need is None else f"its layers' outputs would take {human_bytes(need)}, "
                f"over the memory budget of {human_bytes(budget)}"))
    try:
        x = sample_input_for(loaded)
        if x is None:
            return SampleRun(None, None, [], False, "the template gives no input shape; define "
                             "sample_input() in it")
        y = loaded.model(x, training=False)
        from .tfrt import tf

        flat = tf().nest.flatten(y)
        first = np.asarray(flat[0])
        values = np.concatenate([np.asarray(t, dtype="float64").reshape(-1) for t in flat]) \
            if flat else np.zeros(0)
        in_shape = list(np.shape(x)) if not isinstance(x, (list, tuple, dict)) else \
            list(np.shape(tf().nest.flatten(x)[0]))
        return SampleRun(in_shape, list(first.shape),
                         [float(v) for v in first.reshape(-1)[:n_values]],
                         bool(np.all(np.isfinite(values))))
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return SampleRun(None, None, [], False, f"{type(e).__name__}: {text}"[:300])
