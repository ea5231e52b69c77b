"""The checkpoint side of a restore: its variables, object graph or Keras layout, its roots
and the object paths of its tensors."""
from __future__ import annotations

import os
import re
from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from .. import formats, objgraph, protowire as pw
from ..formats.base import Binding, CarriedConfig
from ..model import COUNTER, METADATA, CheckpointInfo
from ..templates import CheckpointConfig, TemplateError
from .report import ATTR_SUFFIX, GRAPH_KEY, PATH_CAP, RootCandidate


_STRUCTURAL_ROOT_CHILD = re.compile(
    r"^(layer_with_weights-\d+|layer-\d+|_functional|_operations|_layers|layers|"
    r"_self_tracked_trackables|_layer_checkpoint_dependencies|keras_api)$")
_INDEXED_CONTAINERS = ("_operations", "layers", "_layers", "_self_tracked_trackables",
                       "_layer_checkpoint_dependencies")


_LOCAL_ALIASES = {"w": "kernel", "b": "bias", "u": "recurrent_kernel", "weights": "kernel",
                  "biases": "bias", "running_mean": "moving_mean", "running_std":
                  "moving_variance", "embedding": "embeddings"}


@dataclass
class _GNode:
    children: list[tuple[str, int]]
    attrs: dict[str, str]
    slots: list[tuple[int, str, int]]


def _decode_graph(data: bytes) -> list[_GNode]:
    """The object graph with every edge (the engine's tree keeps one parent per node)."""
    return [_GNode([(name, cid) for cid, name in children], dict(attributes), slots)
            for children, attributes, slots in objgraph.raw_nodes(data)]


def is_optimizer_name(name: str) -> bool:
    n = name.lower()
    return "optimizer" in n or n in {"opt", "optim"}


def _norm_segment(s: str) -> str:
    s = s.lstrip("_")
    return s[:-2] if s.endswith(":0") else s


def norm_path(path: str) -> str:
    if path.endswith(ATTR_SUFFIX):
        path = path[: -len(ATTR_SUFFIX)]
    return "/".join(_norm_segment(s) for s in path.split("/") if s)


def local_name(name: str) -> str:
    last = _norm_segment(name.rsplit("/", 1)[-1]).lower()
    if last not in _LOCAL_ALIASES and "_" in last:   # Keras 1: dense_1_W
        token = last.rsplit("_", 1)[-1]
        if token in ("w", "b", "u"):
            last = token
    return _LOCAL_ALIASES.get(last, last)


def float_kind(dtype: str) -> str:
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
        self._carried: CarriedConfig | None | bool = None   # False: it carries none
        self.model_paths = self.fmt.model_paths(ckpt)   # VARIABLE_PATHS: key -> variable path
        if self.fmt.binding == Binding.LAYER_ORDER:
            self._read_legacy_layout()
        elif GRAPH_KEY in self.vars:
            self._read_graph()

    # -- reading --
    def _read_graph(self) -> None:
        from ..reading import ReadError, read_tensor

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

    def _read_legacy_layout(self) -> None:
        """A legacy Keras HDF5 file's layers in order, each with its weights, and its
        optimizer's weights (a LAYER_ORDER format is an HDF5 file its ``open_weights`` opens)."""
        def text(x):
            return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)

        try:
            with self.fmt.open_weights(self.ckpt.path) as f:
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
        except Exception as e:  # the engine reports damaged files; here we restore nothing
            self.graph_problem = f"the file cannot be read: {e}"
        if self.legacy_optimizer:
            self._legacy_slots()

    def _carried_config(self) -> CarriedConfig | None:
        """The config the format says the checkpoint carries (not read before it is asked)."""
        if self._carried is None:
            try:
                self._carried = self.fmt.carried_config(self.ckpt) or False
            except RecursionError:
                self.config_problem = ("the checkpoint's model config is nested too deeply to "
                                       "read; refused")
                self._carried = False
            except Exception as e:  # a damaged file: no config, and the restore says why
                self.config_problem = f"the checkpoint's model config cannot be read: {e}"
                self._carried = False
        return self._carried or None

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
                if not 0 <= cid < len(self.nodes) or (skip_optimizer and is_optimizer_name(name)):
                    continue
                p = f"{path}/{name}" if path else name
                got = paths.setdefault(cid, [])
                if len(got) < PATH_CAP and p not in got:
                    first = not got
                    got.append(p)
                    if first:
                        queue.append((cid, p, depth + 1))
        return paths

    def _dfs_keys(self, start: int, skip=is_optimizer_name) -> list[str]:
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
            if any(is_optimizer_name(s) for s in segs[:-1]) or segs[0] == "optimizer":
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
            elif k in self.model_paths:
                out[k] = [self.model_paths[k]]
            else:
                out[k] = [p[len(prefix):] if p.startswith(prefix) else p]
        return out

    def structural(self, root: str) -> dict[str, tuple]:
        """key -> (layer indices..., local name): ``layer_with_weights-N``, ``_operations/N``
        (ranked among the layers that hold tensors), or a legacy .h5's layer list."""
        if self.fmt.binding == Binding.LAYER_ORDER:
            return {k: (i, local_name(k)) for i, (_, keys) in enumerate(self.legacy_layers)
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
                    raw[key] = idx + [("", local_name(segs[-1]))]
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
            if is_optimizer_name(name) or name == "save_counter":
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
        if self.fmt.binding != Binding.OBJECT_GRAPH:   # optimizer/vars/N, optimizer_variables/
            return [c for c in self.root_children() if is_optimizer_name(c)]
        names = []
        if root:
            names += [f"{root}_optimizer", f"{root}/optimizer"]
        names += ["optimizer"]
        names += [c for c in self.root_children() if is_optimizer_name(c) and c not in names]
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
        text = self.config_for(root)
        if self.config_problem:
            raise TemplateError(self.config_problem)
        if text is None:
            return None
        carried = self._carried_config()
        return CheckpointConfig(
            text, folder=carried.folder if carried else os.path.dirname(self.ckpt.path),
            tensor_shapes={tuple(int(d) for d in self.vars[k].shape) for k in self.vars
                           if self._assignable(k)},
            checkpoint_bytes=int(self.ckpt.bytes or 0),
            assets=carried.assets if carried else None)

    def config_for(self, root: str) -> str | None:
        """The Keras model config the checkpoint carries for the model under ``root``."""
        if root in self.config_json:
            return self.config_json[root]
        if self.fmt.binding != Binding.OBJECT_GRAPH:
            carried = self._carried_config()
            return carried.text if carried else None
        from ..reading import ReadError, read_tensor

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
