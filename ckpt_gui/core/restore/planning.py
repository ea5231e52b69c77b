"""Planning a restore: the root, and every model variable bound to a checkpoint tensor, tier
by tier (see the package's docstring)."""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from ..formats.base import Binding
from ..model import OK
from .checkpoint import CheckpointSide, float_kind, is_optimizer_name, norm_path
from .report import (LAYER_ORDER, MODEL, OBJECT_PATH, OPTIMIZER, ORDER_SHAPE, RENAMED, SUGGESTED,
                     KeyInfo, MappingEntry, RestorePlan, RootError)
from .template import TemplateSide, TemplateVar, template_children, var_dtype


_ITERATION_NAMES = {"iter", "iterations", "_iterations", "iteration"}
_LR_NAMES = {"learning_rate", "_learning_rate", "lr"}


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


def _walk(side: CheckpointSide, start: int, obj, through_optimizers: bool = False) -> dict[int, Any]:
    """Bind checkpoint nodes to template objects by local names from ``start``, as
    tf.train.Checkpoint does. A model walk does not enter optimizers; an optimizer's walk
    (``through_optimizers``) follows every child."""
    bound = {start: obj}
    bound_ids = {id(obj)}
    queue = deque([start])
    while queue:
        nid = queue.popleft()
        kids = template_children(bound[nid])
        for name, cid in side.nodes[nid].children:
            if not 0 <= cid < len(side.nodes) or cid in bound:
                continue
            if not through_optimizers and is_optimizer_name(name):
                continue
            child = kids.get(name)
            if child is None or id(child) in bound_ids:
                continue
            bound[cid] = child
            bound_ids.add(id(child))
            queue.append(cid)
    return bound


class _Binder:
    def __init__(self, side: CheckpointSide, tvars: list[TemplateVar], allowed: list[str]):
        self.side = side
        self.allowed = list(allowed)
        self.allowed_set = set(allowed)
        self.used: set[str] = set()
        self.entries = {t.index: MappingEntry(MODEL, t.index, t.name, t.shape, t.dtype)
                        for t in tvars}
        self.tvars = tvars

    def shape_of(self, key):
        return tuple(self.side.vars[key].shape)

    def compatible(self, t: TemplateVar, key: str) -> bool:
        v = self.side.vars[key]
        return tuple(v.shape) == t.shape and float_kind(v.dtype) == float_kind(t.dtype)

    def offer(self, t: TemplateVar, keys: list[str], how: str, apply: bool = True,
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

    def unbound(self) -> list[TemplateVar]:
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
    elif side.fmt.binding == Binding.VARIABLE_PATHS:
        by_path = {side.model_paths[k]: k for k in keys if k in side.model_paths}
        for t in tmpl.vars:
            key = by_path.get(tmpl.model_path(t))
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
            by_norm[norm_path(p)].append(key)
    if side.nodes is not None:
        tpaths = tmpl.paths()
        for t in b.unbound():
            cands = []
            for p in tpaths.get(id(t.var), []):
                cands += by_norm.get(norm_path(p), [])
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
                cands += by_norm.get(norm_path(form), [])
            b.offer(t, cands, RENAMED)
    # 2b. layer order: layer_with_weights-N, _operations/N, a legacy .h5's layer list
    _offer_layer_order(b, side, tmpl, keys, struct)
    # 3. order and shape: on its own only when names bound nothing, and the checkpoint keeps
    # the model's order
    alone = b.bound_count() == 0 and side.fmt.binding.keeps_model_order
    how, apply = (ORDER_SHAPE, True) if alone else (SUGGESTED, False)
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
    tgroups: dict[tuple, list[TemplateVar]] = defaultdict(list)
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
                            tuple(int(d) for d in v.shape), var_dtype(v))
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
        if tuple(v.shape) != e.shape or float_kind(v.dtype) != float_kind(e.dtype):
            if e.mismatch_key is None:
                e.mismatch_key, e.mismatch_shape = key, tuple(v.shape)
            return False
        e.key, e.key_shape, e.how, e.apply = key, tuple(v.shape), how, True
        used.add(key)
        return True

    if side.fmt.binding == Binding.LAYER_PATHS and len(okeys) == len(entries):
        for e in entries:   # Keras 3's own layout: <prefix>/vars/<i> is optimizer.variables[i]
            bind(e, f"{prefix}/vars/{e.index}", OBJECT_PATH)

    # iterations and learning rate
    def find(names, fallback_index, kind):
        for k in okeys:
            last = side.vars[k].path.rstrip("/").rsplit("/", 1)[-1] if k in side.vars else ""
            if (last[:-2] if last.endswith(":0") else last) in names:
                return k
        if side.fmt.binding == Binding.LAYER_PATHS:
            k = f"{prefix}/vars/{fallback_index}"
            if k in side.vars and side.vars[k].shape == () and \
                    float_kind(side.vars[k].dtype) == kind:
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
            if e is None or e.key:
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
    plan.notes += _binding_notes(side, entries)
    return plan


def _binding_notes(side: CheckpointSide, entries: list[MappingEntry]) -> list[str]:
    """What the user must know to trust the plan: the checkpoint's own damage (a lost shard's
    variables are missing from it), and why its names may bind nothing."""
    notes = [f"{side.ckpt.name} is {side.ckpt.status}: {p}" for p in side.ckpt.problems
             if side.ckpt.status != OK]
    if entries and not any(e.key and e.apply for e in entries) and \
            not side.fmt.binding.keeps_model_order:
        hint = side.fmt.unbound_hint(side.ckpt)
        notes.append((hint + "; " if hint else "") + "none of its paths is a variable path of "
                     "this model, and its tensors are not in the model's order: nothing binds "
                     "by name (pairings by shape are only suggestions)")
    return notes
