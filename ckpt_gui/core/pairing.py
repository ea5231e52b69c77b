"""Which variable of one checkpoint is which variable of another, whatever format wrote each.

First by ``VariableInfo.identity`` (the canonical model path a format gives, else the display
name): within one format, and across formats once both give canonical paths, that pairs
everything. Then by the same checkpoint key: the object path the writer's own restore binds
(``layer_with_weights-0/kernel``), which holds across runs whose Keras layers were auto-named
anew (``dense_3`` then ``dense_292``). What is still unpaired falls back on the restore's view of a checkpoint
(``restore.checkpoint.CheckpointSide``: its model's weights in the writer's order, their layer
structure and which optimizer slot is whose), tier by tier as restore binds a model:

1. ``layer order``: the same (layer rank, local name) in both (``layer_with_weights-N``,
   ``_operations/N``, a legacy .h5's layer list); shapes may differ (a resized layer).
2. ``order and shape``: the model's weights in the writer's order, each with the first unpaired
   one of the same shape and kind; only when names and layers paired no weight at all (two
   formats whose names mean nothing to each other), as restore's own rule.
3. ``slot``: an optimizer slot with the slot of the same name (else the same rank) of the
   weight its owner was paired with.
4. ``order``: when names paired no weight, the rest of one role (the optimizer's learning
   rate, ...) in order, when both sides hold as many and each pair agrees in shape and dtype.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .model import COUNTER, METADATA, CheckpointInfo, VariableInfo

IDENTITY, KEY, LAYER_ORDER, ORDER_SHAPE, SLOT, ORDER = (
    "identity", "key", "layer order", "order and shape", "slot", "order")


@dataclass
class Pair:
    a: VariableInfo | None
    b: VariableInfo | None
    how: str | None = None        # which tier paired them (None: one side only)


class _Side:
    """One checkpoint as the fallback tiers see it: restore's CheckpointSide at its model's
    root (the only child holding a model, else the top level)."""

    def __init__(self, ckpt: CheckpointInfo):
        from .restore.checkpoint import CheckpointSide
        from .restore.planning import choose_root
        from .restore.report import RootError

        self.side = CheckpointSide(ckpt)
        try:
            self.root = choose_root(self.side, None, None)
        except RootError:
            self.root = ""
        self.model_keys = self.side.model_keys(self.root)
        self.structure = self.side.structural(self.root)

    def slots_of(self, key: str) -> list[tuple[str, str]]:
        """(slot key, slot name) of the weight ``key``, in the checkpoint's order."""
        return [(s, name) for s, (owner, name) in self.side.slot_of.items() if owner == key]


class _Pairing:
    def __init__(self, a: CheckpointInfo, b: CheckpointInfo):
        self.va = {v.name: v for v in a.variables}
        self.vb = {v.name: v for v in b.variables}
        self.a_to_b: dict[str, str] = {}
        self.how: dict[str, str] = {}

    def free(self, keys, side_vars, taken) -> list[str]:
        return [k for k in keys if k in side_vars and k not in taken]

    def pair(self, ka: str, kb: str, how: str) -> None:
        self.a_to_b[ka], self.how[ka] = kb, how

    @property
    def b_taken(self) -> set[str]:
        return set(self.a_to_b.values())


def pair_variables(a: CheckpointInfo, b: CheckpointInfo) -> list[Pair]:
    """Every variable of ``a`` and of ``b``, paired where they are the same variable: a's in
    its order (each with its partner, if any), then b's unpaired ones."""
    p = _Pairing(a, b)
    by_identity = {v.identity: v.name for v in b.variables}
    for v in a.variables:
        kb = by_identity.get(v.identity)
        if kb is not None:
            p.pair(v.name, kb, IDENTITY)
    taken = p.b_taken
    for v in a.variables:
        if v.name not in p.a_to_b and v.name in p.vb and v.name not in taken:
            p.pair(v.name, v.name, KEY)
    if _unpaired(p, a, b):
        _fallback(p, _Side(a), _Side(b))
    taken = p.b_taken
    pairs = [Pair(v, p.vb[p.a_to_b[v.name]] if v.name in p.a_to_b else None,
                  p.how.get(v.name)) for v in a.variables]
    return pairs + [Pair(None, v) for v in b.variables if v.name not in taken]


def _unpaired(p: _Pairing, a: CheckpointInfo, b: CheckpointInfo) -> bool:
    """Whether each side holds an unpaired variable that is not a counter or metadata (only
    then can a fallback tier pair anything)."""
    taken = p.b_taken
    return (any(v.name not in p.a_to_b and v.role not in (COUNTER, METADATA) for v in a.variables)
            and any(v.name not in taken and v.role not in (COUNTER, METADATA)
                    for v in b.variables))


def _fallback(p: _Pairing, sa: _Side, sb: _Side) -> None:
    from .restore.checkpoint import float_kind

    named = any(k in p.a_to_b for k in sa.model_keys)
    # 1. layer order
    by_structure = defaultdict(list)
    for kb in p.free(sb.model_keys, p.vb, p.b_taken):
        if kb in sb.structure:
            by_structure[sb.structure[kb]].append(kb)
    for ka in p.free(sa.model_keys, p.va, p.a_to_b):
        candidates = by_structure.get(sa.structure.get(ka), [])
        if len(candidates) == 1:
            p.pair(ka, candidates.pop(), LAYER_ORDER)
    named = named or any(k in p.a_to_b for k in sa.model_keys)
    # 2. order and shape
    if not named:
        for ka in p.free(sa.model_keys, p.va, p.a_to_b):
            va = p.va[ka]
            kb = next((k for k in p.free(sb.model_keys, p.vb, p.b_taken)
                       if p.vb[k].shape == va.shape and va.shape != ()
                       and float_kind(p.vb[k].dtype) == float_kind(va.dtype)), None)
            if kb is not None:
                p.pair(ka, kb, ORDER_SHAPE)
    # 3. optimizer slots, by what they belong to
    for ka, kb in list(p.a_to_b.items()):
        slots_a = [(k, n) for k, n in sa.slots_of(ka) if k not in p.a_to_b]
        slots_b = [(k, n) for k, n in sb.slots_of(kb) if k not in p.b_taken]
        names_b = {n: k for k, n in slots_b}
        for k, n in slots_a:
            if n in names_b:
                p.pair(k, names_b.pop(n), SLOT)
        rest_a = [k for k, _ in slots_a if k not in p.a_to_b]
        rest_b = [k for k, n in slots_b if n in names_b]
        if len(rest_a) == len(rest_b):
            for k, kb2 in zip(rest_a, rest_b):
                p.pair(k, kb2, SLOT)
    # 4. the rest of each role, in order
    if not named:
        _pair_rest_by_role(p)


def _pair_rest_by_role(p: _Pairing) -> None:
    taken = p.b_taken
    rest_a, rest_b = defaultdict(list), defaultdict(list)
    for k, v in p.va.items():
        if k not in p.a_to_b and v.role != METADATA:
            rest_a[v.role].append(v)
    for k, v in p.vb.items():
        if k not in taken and v.role != METADATA:
            rest_b[v.role].append(v)
    for role, vs_a in rest_a.items():
        vs_b = rest_b.get(role, [])
        if len(vs_a) == len(vs_b) and all(x.shape == y.shape and x.dtype == y.dtype
                                          for x, y in zip(vs_a, vs_b)):
            for x, y in zip(vs_a, vs_b):
                p.pair(x.name, y.name, ORDER)
