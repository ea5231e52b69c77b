"""One readable name per variable (its display name), made once here for every face.

The tree, the preview's title, export file names, the status bar, the Restore dialog and the
CLI (text, JSON ``path``, ``show``) all show ``VariableInfo.display_name``. It is made so:

1. From the model's own object path: ``model_path`` when the key reaches the variable through an
   optimizer (Keras 3 saves a kernel as ``optimizer/_trainable_variables/0`` when the optimizer
   is tracked before the model), else the key's path (no ``/.ATTRIBUTES/VARIABLE_VALUE``, ``:0``).
2. Keras's wrapper segments (``layer_with_weights-N``, ``layer-N``, Keras 3's ``_functional``,
   ``_operations/N``, ``_layers/N``) are replaced by the layer's own name where the checkpoint
   says it: the variable's full name in the object graph (Keras names a variable
   ``<layer>/<weight>``), the root attribute kept: ``model/_operations/1/_kernel`` is
   ``model/dense/kernel``. A Keras 3 ``.weights.h5`` names its layer groups after their class
   (``layers/dense_1``) and stores the layer's name beside them (``head``); its weights are
   numbered (``vars/0``) and get their names (``kernel``, ``bias``) from the layer's class only
   where the model's config is at hand (a ``.keras`` archive) and their count and ranks agree;
   else they stay numbered (a rank-2 then a rank-1 tensor is only a hint). A Keras HDF5 file
   (``model_weights/<layer>/<weight>``) names a weight as its layer group's ``weight_names``
   list it.
3. The attribute's leading underscore goes: ``_kernel`` is ``kernel``.
4. An optimizer slot is named after the variable it belongs to: ``model/dense/kernel · adam
   momentum`` (the optimizer's own name where Keras gave it, else its attribute).
5. Names are unique within a checkpoint: names that clash fall back to the key's object path,
   then to the key itself.

Everything comes from the index layout, the object graph and the config, never from values,
so the checkpoints of one training run name a weight alike, and names are made once per index
layout (and object graph), not per checkpoint.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import canonical as canonical_paths, hdf5
from .roles import SLOT_MARKER, is_optimizer_segment, tf1_slot

if TYPE_CHECKING:
    from .model import VariableInfo

SLOT_SEPARATOR = " · "
_WRAPPER = re.compile(r"layer_with_weights-\d+|layer-\d+|_functional|_operations|_layers"
                      r"|_self_tracked_trackables").fullmatch
_OUTPUT_INDEX = re.compile(r":\d+$")


def plain_display_names(names: list[str], paths: list[str]) -> list[str]:
    """Display names from the keys alone (no object graph, no slots known): each path with its
    attribute's leading underscore dropped, unique. A whole layout at once (10,000 keys)."""
    text = "\n" + "\n".join(paths)
    shown = [_tidy(p) for p in paths] if "/_" in text or "\n_" in text else list(paths)
    return _unique(shown, paths, names)


def has_wrappers(lines: str) -> bool:
    """Whether keys (joined, each after a newline) go through Keras wrapper segments that the
    object graph's full names can replace by layer names."""
    return any(w in lines for w in ("layer_with_weights-", "/_operations/", "/_functional/",
                                    "/_layers/", "\nlayer-", "/layer-"))


def assign(variables: list[VariableInfo], resolved: dict[str, str] | None = None,
           labels: dict[str, str] | None = None,
           canonical: dict[str, str] | None = None) -> None:
    """Give every variable its display name and canonical path (core/canonical.py), once its
    optimizer slots are attached. ``resolved``: key -> the path with the layer's own name
    (from the graph or a config); ``labels``: slot key -> the optimizer's own name;
    ``canonical``: key -> a model weight's (or an optimizer scalar's) canonical path."""
    resolved, labels = resolved or {}, labels or {}
    for v in variables:
        if canonical and v.name in canonical:
            v.canonical = canonical[v.name]
    canonical_paths.finish(variables, labels)
    by_key = {v.name: v for v in variables}
    owners = [v for v in variables if not _is_slot(v, by_key)]
    shown = _unique([_tidy(resolved.get(v.name) or v.model_path or v.path) for v in owners],
                    [v.path for v in owners], [v.name for v in owners])
    for v, name in zip(owners, shown):
        v.display = name
    slots = [v for v in variables if _is_slot(v, by_key)]
    for v in slots:
        label = labels.get(v.name) or _optimizer_label(v)
        what = v.slot_name if label in ("", v.slot_name) else f"{label} {v.slot_name}"
        v.display = f"{by_key[v.slot_of].display_name}{SLOT_SEPARATOR}{what}"
    if slots:
        final = _unique([v.display for v in variables], [v.path for v in variables],
                        [v.name for v in variables])
        for v, name in zip(variables, final):
            v.display = name


def assign_from_graph(variables: list[VariableInfo], graph) -> None:
    """assign() with the layer names and optimizer names the object graph's full names say."""
    resolved, labels, canonical = {}, {}, {}
    for v in variables:
        full = graph.full_names.get(v.name)
        if not full:
            continue
        full = _OUTPUT_INDEX.sub("", full)
        if v.slot_of:
            if "/" in full:  # Keras: Adam/dense/kernel/m, adam/dense_kernel_momentum
                labels[v.name] = full.split("/", 1)[0]
        else:
            merged = _with_layer_name(v.model_path or v.path, full)
            if merged:
                resolved[v.name] = merged
                canonical[v.name] = canonical_paths.from_object_path(
                    v.model_path or v.path, full)
    assign(variables, resolved, labels, canonical)


def _with_layer_name(path: str, full: str) -> str | None:
    """``path`` with its Keras wrapper segments replaced by the variable's full name, when
    the full name is a layer's (``dense/kernel``) and ends as the path does."""
    if "/" not in full:
        return None
    segments = path.split("/")
    if segments[-1].lstrip("_") != full.rsplit("/", 1)[-1].lstrip("_"):
        return None
    for i, segment in enumerate(segments[:-1]):
        if _WRAPPER(segment):
            return "/".join(segments[:i] + [full])
    return None


def _is_slot(v: VariableInfo, by_key: dict[str, VariableInfo]) -> bool:
    return bool(v.slot_of and v.slot_name and v.slot_of in by_key and v.slot_of != v.name)


def _tidy(path: str) -> str:
    """Without the attribute's leading underscore (``_kernel``: Keras 3's private name); a
    key that is no object's attribute (``_CHECKPOINTABLE_OBJECT_GRAPH``) stays as it is."""
    head, sep, last = path.rpartition("/")
    return f"{head}/{last.lstrip('_')}" if sep and last.startswith("_") and last.strip("_") \
        else path


def _unique(shown: list[str], paths: list[str], keys: list[str]) -> list[str]:
    """``shown``, each name that clashes replaced by its path, then by its key."""
    for fallback in (paths, keys, keys):
        counts = Counter(shown)
        if len(counts) == len(shown):
            break
        shown = [s if counts[s] == 1 else f for s, f in zip(shown, fallback)]
    return shown


def _optimizer_label(slot: VariableInfo) -> str:
    """The optimizer of a slot, from its key: ``.OPTIMIZER_SLOT/<optimizer>/m``, TF1's
    ``w/Adam_1``, else the optimizer's attribute (``net/optimizer/_variables/3``)."""
    if SLOT_MARKER in slot.name:
        return slot.name.split(SLOT_MARKER, 1)[1].split("/", 1)[0]
    if tf1_slot(slot.path):
        return re.sub(r"_\d+$", "", slot.path.rsplit("/", 1)[-1])
    return next((s for s in reversed(slot.path.split("/")[:-1]) if is_optimizer_segment(s)), "")


# --- Keras 3 .weights.h5 and .keras ------------------------------------------------------------

# The weights a Keras 3 layer creates, in the order it creates them (its build()).
_KERNEL_BIAS = ("kernel", "bias")
_WEIGHTS_OF_CLASS = {
    **dict.fromkeys(("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
                     "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv1D",
                     "DepthwiseConv2D"), _KERNEL_BIAS),
    "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "Embedding": ("embeddings",),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "LayerNormalization": ("gamma", "beta"),
    "GroupNormalization": ("gamma", "beta"),
    "PReLU": ("alpha",),
    **dict.fromkeys(("LSTMCell", "GRUCell", "SimpleRNNCell"),
                    ("kernel", "recurrent_kernel", "bias")),
}
_VARS = re.compile(r"(.*)/vars/(\d+)$")
_NOT_TRAINABLE = frozenset({"moving_mean", "moving_variance"})


def _snake_case(class_name: str) -> str:
    """Keras's to_snake_case: the name of a layer's group in a Keras 3 weights file."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# The built-in layer classes by the groups Keras 3 names after them (``dense``, ``dense_1``;
# an RNN's weights are its cell's: ``lstm/cell``).
_CLASS_OF_GROUP = {_snake_case(c): c for c in (*_WEIGHTS_OF_CLASS, "LSTM", "GRU", "SimpleRNN")
                   if not c.endswith("Cell")}


@dataclass
class KerasNames:
    """How a Keras weights file's variables sit in the model."""
    resolved: dict[str, str] = field(default_factory=dict)   # key -> display path
    canonical: dict[str, str] = field(default_factory=dict)  # key -> canonical path
    slots: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (weight, slot)
    optimizer: str | None = None   # the optimizer's name, when the layout says it


def keras3_h5_names(f, variables: list[VariableInfo], config: dict | None) -> KerasNames:
    """The names of ``layers/<group>/vars/<i>`` keys of a Keras 3 weights file ``f`` (h5py)
    and its optimizer's ``optimizer/vars/<i>``; ``config``: the model's config (config.json),
    or None."""
    return keras3_names(lambda path: _stored_name(f, path), variables, config,
                        hdf5.groups_in_creation_order(f), hdf5.optimizer_name(f))


def keras3_names(stored_name: Callable[[str], str | None], variables: list[VariableInfo],
                 config: dict | None, order: list[str] | None,
                 optimizer: str | None) -> KerasNames:
    """keras3_h5_names with each ``.../vars`` group's stored name given by ``stored_name(path)``
    (a sharded save keeps them spread over its shards); ``order``: the ``.../vars`` groups in
    the order Keras wrote them (the model's), or None; ``optimizer``: its stored name.

    A layer's weights are named by its class and config, or without a config by the class its
    group is named after (``dense_1`` is a Dense). The optimizer's slots are attached when
    every layer's weights are named and the optimizer's layout is known
    (canonical.keras3_optimizer)."""
    groups: dict[str, list[VariableInfo]] = {}
    for v in variables:
        m = _VARS.match(v.name)
        if m and (m.group(1) == "layers" or m.group(1).startswith("layers/")):
            groups.setdefault(m.group(1), []).append(v)
    found = KerasNames()
    trainable: dict[str, list[VariableInfo]] = {}
    for group, members in groups.items():
        names, layer = _layer_path(stored_name, group, config if isinstance(config, dict)
                                   else None)
        members.sort(key=lambda v: int(v.name.rsplit("/", 1)[1]))
        weights = _weight_names(layer, [v.shape for v in members])
        for i, v in enumerate(members):
            found.resolved[v.name] = "/".join(names + ([weights[i]] if weights else
                                                       ["vars", v.name.rsplit("/", 1)[1]]))
        if weights:
            found.canonical.update((v.name, found.resolved[v.name]) for v in members)
            if not isinstance(layer.get("config"), dict) or \
                    layer["config"].get("trainable") is not False:
                trainable[group] = [v for v, w in zip(members, weights)
                                    if w not in _NOT_TRAINABLE]
    _attach_keras3_optimizer(found, variables, groups, trainable, order,
                             _optimizer_class(config) or optimizer)
    return found


def _attach_keras3_optimizer(found: KerasNames, variables: list[VariableInfo],
                             groups: dict[str, list[VariableInfo]],
                             trainable: dict[str, list[VariableInfo]], order: list[str] | None,
                             optimizer: str | None) -> None:
    """``optimizer/vars/<i>``: scalars' canonical paths, slots' owners (found.slots)."""
    optimizer_vars = sorted((v for v in variables if _VARS.match(v.name)
                             and v.name.startswith("optimizer/vars/")),
                            key=lambda v: int(v.name.rsplit("/", 1)[1]))
    if not optimizer_vars:
        return
    ordered = None
    if order is not None and len(trainable) == len(groups):  # every layer's weights known
        position = {g.strip("/").removesuffix("/vars"): i for i, g in enumerate(order)}
        if all(g in position for g in groups):
            ordered = [v for g in sorted(trainable, key=position.get) for v in trainable[g]]
    scalars, slots = canonical_paths.keras3_optimizer(ordered or [], optimizer_vars, optimizer)
    found.canonical.update((key, f"{canonical_paths.OPTIMIZER}/{name}")
                           for key, name in scalars.items())
    if ordered:
        found.slots.update(slots)


def _optimizer_class(config: dict | None) -> str | None:
    """The optimizer's class, snake-cased (``adam``), from a .keras config's compile_config."""
    compiled = config.get("compile_config") if isinstance(config, dict) else None
    optimizer = compiled.get("optimizer") if isinstance(compiled, dict) else None
    name = optimizer.get("class_name") if isinstance(optimizer, dict) else None
    return _snake_case(name) if isinstance(name, str) else None


def _layer_path(stored_name, group: str, config: dict | None) -> tuple[list[str], dict | None]:
    """The layer names along ``group`` (``layers/functional/layers/dense_1``: each layer's
    own name, stored in its vars group) and that layer's config, when ``config`` has it."""
    segments, names, layer = group.split("/"), [], config
    for i, segment in enumerate(segments):
        if segment == "layers":
            continue
        name = stored_name("/".join(segments[:i + 1] + ["vars"]))
        names.append(name if isinstance(name, str) and name else segment)
        after_layers = segments[i - 1] == "layers"
        if config is None and after_layers:  # no config: the class the group is named after
            class_name = _CLASS_OF_GROUP.get(re.sub(r"_\d+$", "", segment))
            layer = {"class_name": class_name, "config": {}} if class_name else None
        else:
            layer = _child_config(layer, segment, name, after_layers)
    return names, layer


def _child_config(layer: dict | None, segment: str, name: str | None,
                  after_layers: bool) -> dict | None:
    """The config of a layer's child: a layer of a Functional/Sequential model by its name,
    or an RNN's cell (``cell``: the RNN's class + ``Cell``)."""
    if not isinstance(layer, dict):
        return None
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    if after_layers:
        return next((c for c in config.get("layers") or [] if isinstance(c, dict)
                     and isinstance(c.get("config"), dict) and c["config"].get("name") == name),
                    None)
    cell = f"{layer.get('class_name')}Cell"
    if segment == "cell" and cell in _WEIGHTS_OF_CLASS:
        return {"class_name": cell, "config": config}
    return None


def _weight_names(layer: dict | None, shapes: list[tuple[int, ...]]) -> list[str] | None:
    """The names of a layer's numbered weights from its class and config, when their count
    and ranks agree with ``shapes``; else None (the numbers stay)."""
    class_name = layer.get("class_name") if isinstance(layer, dict) else None
    if not isinstance(class_name, str) or class_name not in _WEIGHTS_OF_CLASS:
        return None  # (a config is a file's word: any JSON may stand there)
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    names = [n for n in _WEIGHTS_OF_CLASS[class_name]
             if not (n == "bias" and config.get("use_bias") is False
                     or n == "gamma" and config.get("scale") is False
                     or n == "beta" and config.get("center") is False)]
    if len(names) != len(shapes):
        return None
    for name, shape in zip(names, shapes):
        if ("kernel" in name or name == "embeddings") != (len(shape) >= 2):
            return None
    return names


def keras2_h5_names(f, variables: list[VariableInfo]) -> KerasNames:
    """The names of ``[model_weights/]<layer>/<weight>`` keys of a Keras HDF5 file ``f`` (h5py)
    whose layer group lists ``<weight>`` in its ``weight_names`` (``model_weights/hidden/
    sequential/hidden/kernel`` shows as ``sequential/hidden/kernel``, is ``hidden/kernel``),
    and of its optimizer's slots (``optimizer_weights/adam/sequential_hidden_kernel_momentum``,
    Keras 2's ``optimizer_weights/Adam/hidden/kernel/m``)."""
    listed: dict[str, set[str]] = {}
    found = KerasNames()
    weights = {}   # a weight's name as the file gives it -> its key
    for v in variables:
        root = "model_weights/" if v.name.startswith("model_weights/") else ""
        layer, _, weight = v.name[len(root):].partition("/")
        group = root + layer
        if group not in listed:
            stored = _hard_get(f, group)
            names = stored.attrs.get("weight_names") if stored is not None else None
            listed[group] = {n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                             for n in (names if names is not None else [])}
        if "/" in weight and weight in listed[group] and not is_optimizer_segment(layer):
            full = found.resolved[v.name] = _OUTPUT_INDEX.sub("", weight)
            found.canonical[v.name] = canonical_paths.under_layer(layer, full)
            weights[full] = v
    slots = [v for v in variables if v.name.startswith("optimizer_weights/")
             and v.name.count("/") >= 2]
    found.slots = canonical_paths.match_slots(
        weights, {v.name: _OUTPUT_INDEX.sub("", v.name.split("/", 2)[2]) for v in slots},
        {v.name: v.shape for v in slots})
    found.optimizer = slots[0].name.split("/")[1] if slots else None
    return found


def _stored_name(f, path: str) -> str | None:
    """The ``name`` attribute of the group at ``path`` (hard links only), or None."""
    stored = _hard_get(f, path)
    name = stored.attrs.get("name") if stored is not None else None
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


def _hard_get(f, path: str):
    """The HDF5 object at ``path`` through hard links only (a link out of the file is never
    followed for a name), else None."""
    try:
        return hdf5.get(f, path)
    except hdf5.HDF5Error:
        return None


def file_stem(display_name: str) -> str:
    """A file name for a variable's export, on any file system: ``model/dense/kernel ·
    adam momentum`` -> ``model_dense_kernel-adam_momentum``."""
    stem = display_name.replace(SLOT_SEPARATOR, "-")
    stem = re.sub(r"[^\w.\-]+", "_", stem).strip("._-")  # letters of any script stay
    return stem[:200] or "tensor"
