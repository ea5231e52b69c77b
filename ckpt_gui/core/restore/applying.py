"""Applying a plan: natively through tf.train.Checkpoint where the object graph binds, else
by assignment; then every restored variable compared with its checkpoint tensor, exactly."""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .. import formats
from ..formats.base import Binding
from ..model import METADATA, CheckpointInfo
from .checkpoint import CheckpointSide
from .report import (ATTR_SUFFIX, GRAPH_KEY, MAPPED, MODEL, NATIVE, OBJECT_PATH, OptimizerReport,
                     Progress, RestoreError, RestorePlan, RestoreReport, RestoredVariable,
                     ShapeMismatch)

if TYPE_CHECKING:
    from .session import RestoreSession


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
    from ..tfrt import tf

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
