"""The canonical model path of a variable (``VariableInfo.canonical``): the same weight of the
same model gets the same string whichever writer saved it, so diff and history match a
``.weights.h5`` against a ``tf.train.Checkpoint`` of one model.

- A model weight: its layers' own names from the model down, then the weight's name, without
  the checkpoint's root attribute (``model/``) or the model's own name (a Keras 3 Sequential
  names its variables ``tiny/hidden/kernel``): ``hidden/kernel``, ``bn/moving_mean``,
  ``encoder/inner/kernel``, ``lstm/lstm_cell/kernel``.
- An optimizer slot: ``optimizer/<its weight's canonical path>/<slot>`` with Keras 3's slot
  names. Keras 2 and TF1 call Adam's slots ``m`` and ``v``; they are Keras 3's ``momentum`` and
  ``velocity`` when the optimizer is of the Adam family (its name holds "adam": Adam, AdamW,
  Nadam, Adamax ... all keep m and v) and keep their own name otherwise.
- An optimizer's own scalars: ``optimizer/iterations`` (``iter``, ``iteration``),
  ``optimizer/learning_rate`` (``lr``), ``optimizer/<name>``.
- Counters and metadata outside an optimizer (save_counter, the object graph, a config):
  None, as is anything whose place in the model the checkpoint does not say (identity then
  falls back to the display name).

Each format gives the model weights' paths (core/varnames.py, core/orbax.py); ``finish`` derives
the slots' and the optimizer scalars' from them.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .roles import (COUNTER, METADATA, OBJECT_GRAPH_KEY, OPTIMIZER as OPTIMIZER_ROLE,
                    is_optimizer_segment)

if TYPE_CHECKING:
    from .model import VariableInfo

OPTIMIZER = "optimizer"
ATTRIBUTES = "/.ATTRIBUTES/"
_ADAM_SLOTS = {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"}
_SCALARS = {"iter": "iterations", "iteration": "iterations", "lr": "learning_rate"}
# Object-path segments that are no layer of their own: Keras's lists of layers (the index
# after them is the layer) and a Sequential's inner Functional.
_NOT_A_LAYER = frozenset({"_functional", "_operations", "_layers", "_self_tracked_trackables"})


def from_object_path(path: str, full: str) -> str:
    """A weight's canonical path from its object path in a tf.train.Checkpoint (``model/
    _functional/_operations/2/moving_mean``) and its full name, which names the layers but may
    start with the model's own name (``tiny/bn/moving_mean``): each layer the object path
    passes through keeps one segment of the full name, from its end."""
    layers = sum(1 for s in path.split("/")[1:-1] if s not in _NOT_A_LAYER)
    segments = full.split("/")
    return "/".join(segments[-(layers + 1):])


def under_layer(layer: str, full: str) -> str:
    """A Keras HDF5 weight's canonical path from its top layer's group (``hidden``) and the
    weight name the group lists (Keras 3: ``tiny/hidden/kernel``; Keras 2: ``hidden/kernel``,
    or ``inner/kernel`` under a nested model's group ``encoder``)."""
    segments = full.split("/")
    if layer in segments[:-1]:
        segments = segments[len(segments) - 1 - segments[::-1].index(layer):]
        return "/".join(segments)
    return f"{layer}/{full}"


def without_model_name(paths: list[str], model_name: str | None) -> list[str]:
    """Keras 3 variable paths (Orbax's tree paths) without the model's own name, which a
    Sequential puts first and a Functional does not: ``model_name`` when the model's config
    says it; else the first segment when every path starts with it and it holds layers of
    two names (a Sequential's layers), a guess that a one-layer Sequential defeats."""
    heads = {p.split("/", 1)[0] for p in paths}
    if model_name is None and len(heads) == 1 and all(p.count("/") >= 2 for p in paths):
        if len({p.split("/")[1] for p in paths}) >= 2:
            model_name = heads.pop()
    if not model_name:
        return paths
    return [p[len(model_name) + 1:] if p.startswith(model_name + "/") and p.count("/") >= 2
            else p for p in paths]


def name_based(names: list[str], paths: list[str], roles: list[str]) -> list[str | None]:
    """The canonical paths of a TF1 Saver's keys: a name-based key (no object graph's
    ``/.ATTRIBUTES/``) is the variable's name in the graph, its path in the model
    (``hidden/kernel``); its counters and optimizer state get theirs from ``finish``."""
    if any(OBJECT_GRAPH_KEY == n or ATTRIBUTES in n for n in names):
        return [None] * len(names)
    return [p if role not in (COUNTER, METADATA, OPTIMIZER_ROLE) else None
            for p, role in zip(paths, roles)]


def match_slots(weights: dict[str, VariableInfo], slots: dict[str, str],
                shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[str, str]]:
    """Slots named after their weight's Keras name (``weights``: name -> the weight): Keras 3
    joins its segments by ``_`` (``tiny_hidden_kernel_momentum``), Keras 2 keeps them
    (``hidden/kernel/m``). ``slots``: slot key -> its name under the optimizer; a slot
    attaches when its weight is there with its shape: slot key -> (weight key, slot name)."""
    flat = {name.replace("/", "_"): v for name, v in weights.items()}
    found = {}
    for key, name in slots.items():
        owner_name, _, slot = name.rpartition("/")
        owner = weights.get(owner_name)
        if owner is None:
            prefix = max((k for k in flat if name.startswith(k + "_")), key=len, default=None)
            owner, slot = (flat[prefix], name[len(prefix) + 1:]) if prefix else (None, "")
        if owner is not None and owner.shape == shapes[key] and slot:
            found[key] = (owner.name, slot)
    return found


def slot_name(name: str, optimizer: str | None) -> str:
    """Keras 3's name of a slot: ``m`` of an Adam-family optimizer is ``momentum``."""
    if optimizer and "adam" in optimizer.lower():
        return _ADAM_SLOTS.get(name, name)
    return name


def scalar_name(name: str) -> str:
    """Keras 3's name of an optimizer's own scalar (``iter`` is ``iterations``)."""
    name = name.lstrip("_")
    return _SCALARS.get(name, name)


def finish(variables: list[VariableInfo], labels: dict[str, str] | None = None) -> None:
    """The canonical paths that follow from the model weights' (set by the format): each slot
    under its weight's, each of an optimizer's own scalars as ``optimizer/<name>``.
    ``labels``: slot key -> the optimizer's name, when the format knows it."""
    labels = labels or {}
    by_key = {v.name: v for v in variables}
    for v in variables:
        if v.canonical is not None:
            continue
        owner = by_key.get(v.slot_of) if v.slot_of and v.slot_name else None
        if owner is not None and owner.canonical and not owner.slot_of:
            label = labels.get(v.name) or _optimizer_of(v.path)
            v.canonical = f"{OPTIMIZER}/{owner.canonical}/{slot_name(v.slot_name, label)}"
        elif v.role in (OPTIMIZER_ROLE, COUNTER) and not v.shape and v.role != METADATA \
                and not v.slot_of and _optimizer_of(v.path):
            v.canonical = f"{OPTIMIZER}/{scalar_name(v.path.rsplit('/', 1)[-1])}"
    _make_unique(variables)


def _make_unique(variables: list[VariableInfo]) -> None:
    """One canonical path names one variable of a checkpoint. A checkpoint of two models or two
    optimizers (a GAN's generator_optimizer and discriminator_optimizer both hold
    ``optimizer/learning_rate``) keeps each under its root attribute
    (``discriminator_optimizer/learning_rate``); what is still shared has no canonical path."""
    def shared(vs):
        seen: dict[str, int] = {}
        for v in vs:
            if v.canonical is not None:
                seen[v.canonical] = seen.get(v.canonical, 0) + 1
        return [v for v in vs if v.canonical is not None and seen[v.canonical] > 1]

    clashing = shared(variables)
    for v in clashing:
        root = v.name.split("/", 1)[0]
        rest = v.canonical.split("/", 1)[1] if v.canonical.startswith(OPTIMIZER + "/") \
            and root != OPTIMIZER and is_optimizer_segment(root) else v.canonical
        v.canonical = f"{root}/{rest}"
    for v in shared(clashing):
        v.canonical = None


def _optimizer_of(path: str) -> str:
    """The path's optimizer segment (``optimizer``, ``Adam`` in TF1's ``w/Adam_1``), or ""."""
    segments = path.split("/")
    found = next((s for s in segments[:-1] if is_optimizer_segment(s)), "")
    if not found and len(segments) > 1 and re.fullmatch(r"[A-Z]\w*?(_\d+)?", segments[-1]):
        found = re.sub(r"_\d+$", "", segments[-1])   # TF1: fc/w/Adam_1
    return found


# --- Keras 3 optimizers: optimizer/vars/N ---------------------------------------------------

# The slots a Keras 3 optimizer creates (its build()), by its default name (the snake-cased
# class): each layout a list of blocks, each block one variable per trainable variable in the
# model's order, several names in a block interleaved per variable (add_optimizer_variables
# with a list of names). Options that add blocks make more layouts; a layout is taken only
# when it alone fits the count and the shapes.
_EMA = ("average",)
_LAYOUTS = {
    "adam": [[("momentum", "velocity")], [("momentum", "velocity"), ("velocity_hat",)]],
    "adamw": [[("momentum", "velocity")], [("momentum", "velocity"), ("velocity_hat",)]],
    "sgd": [[], [("momentum",)]],
    "rmsprop": [[("velocity",)], [("velocity",), ("momentum",)],
                [("velocity",), ("average_gradient",)],
                [("velocity",), ("momentum",), ("average_gradient",)]],
}


def keras3_optimizer(trainable: list[VariableInfo], optimizer_vars: list[VariableInfo],
                     optimizer: str | None) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """A Keras 3 optimizer's ``vars/N`` (in N's order) given the model's ``trainable``
    variables in the model's order: (key -> its scalar's name, slot key -> (its weight's key,
    slot name)). Keras creates ``iterations`` and (unless a schedule) ``learning_rate``, then
    its slots per ``_LAYOUTS``, with or without an EMA block first. An optimizer not in the
    table, or more than one layout fitting, leaves the slots unattached."""
    head = 0
    while head < min(2, len(optimizer_vars)) and not optimizer_vars[head].shape:
        head += 1
    scalars = dict(zip((v.name for v in optimizer_vars[:head]),
                       ("iterations", "learning_rate")))
    slots = optimizer_vars[head:]
    fits = []
    # a process's second Adam is named "adam_1"
    kind = re.sub(r"_\d+$", "", (optimizer or "").lower())
    for layout in _LAYOUTS.get(kind, []):
        for blocks in (layout, [_EMA, *layout]):
            plan = _plan(trainable, slots, blocks)
            if plan is not None:
                fits.append(plan)
    return scalars, (fits[0] if len(fits) == 1 else {})


def _plan(trainable: list[VariableInfo], slots: list[VariableInfo],
          blocks: list[tuple[str, ...]]) -> dict[str, tuple[str, str]] | None:
    expected = [(owner, name) for block in blocks for owner in trainable for name in block]
    if len(expected) != len(slots) or not slots:
        return None
    if any(slot.shape != owner.shape for slot, (owner, _) in zip(slots, expected)):
        return None
    return {slot.name: (owner.name, name) for slot, (owner, name) in zip(slots, expected)}
