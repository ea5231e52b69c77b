"""One checkpoint, one template: the session that plans, applies and reports; saving the
restored model and running it on a sample input."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from ...textfmt import human_bytes
from ..limits import memory_budget
from ..model import CheckpointInfo
from ..templates import (CHECKPOINT_CONFIG, LoadedTemplate, TemplateRef, activation_bytes,
                         load as load_template, resolve as resolve_template, sample_input_for)
from .applying import apply_plan
from .checkpoint import CheckpointSide
from .planning import choose_root, make_plan
from .report import Progress, RestoreError, RestorePlan, RestoreReport, RootError, SampleRun
from .template import TemplateSide


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
        from ..tfrt import tf

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
