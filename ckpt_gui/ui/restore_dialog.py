"""The "Restore into a model…" dialog: choose a template and where the model sits, review (and
edit) the proposed mapping, restore, read the report, save, see one sample run.

Every TensorFlow/Keras call (building the template, planning, restoring, saving, the sample run)
runs in a worker through a TaskSlot, in a ckpt_gui.core.restore.RestoreSession; the GUI thread only
reads and edits the plain plan and report it gets back.
"""
from __future__ import annotations

import html
import os
import threading
from dataclasses import dataclass, field

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QProgressBar, QPushButton, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core import formats
from ..core.model import DirectoryScan
from ..core.templates import (CHECKPOINT_TEMPLATE, TemplateError, TemplateRef, builtin_templates,
                              checkpoint_template_ref, describe)
from .savedir import remember as remember_save
from .savedir import save_path
from .tasks import TaskSlot, work_thread

SETTINGS_KEY = "restore/templates"
NOT_RESTORED = "— not restored —"
AUTO_ROOT = "Automatic"


# --- worker functions (run in a thread; TensorFlow is allowed here) ----------------------------

# One restore step at a time, whichever dialog asks: a superseded step still running finishes
# before the next one starts building models.
_WORK_LOCK = threading.Lock()

@dataclass
class ProposeResult:
    session: object
    plan: object | None = None
    error: str | None = None
    candidates: list = field(default_factory=list)


def _bound_by_paths(plan) -> bool:
    """Every model variable bound by the checkpoint's own variable paths (Keras 3 layouts)."""
    from ..core.restore import OBJECT_PATH

    entries = plan.model_entries()
    return bool(entries) and all(e.apply and e.how == OBJECT_PATH for e in entries)


def propose_job(session, root, *, state):
    with _WORK_LOCK:
        state.check()
        state.progress(0, 0, "building the template and reading the checkpoint")
        return _propose(session, root)


def _propose(session, root):
    from ..core.restore import RestoreError, RootError

    try:
        plan = session.propose(root)
    except RootError as e:
        return ProposeResult(session, None, str(e), list(e.candidates))
    except (TemplateError, RestoreError) as e:
        return ProposeResult(session, None, str(e))
    return ProposeResult(session, plan, None, list(plan.root_candidates))


def restore_job(session, plan, *, state):
    with _WORK_LOCK:
        state.check()
        report = session.restore(plan, progress=state.progress, cancelled=state.cancelled)
        state.check()
        state.progress(0, 0, "running the model once on a sample input")
        report.sample = session.sample_run()
        return report


def save_job(session, path, *, state):
    with _WORK_LOCK:
        state.progress(0, 0, f"saving {os.path.basename(path)}")
        return session.save(path)




class RestoreDialog(QDialog):
    """Restore ``checkpoint_name`` of ``scan`` into a model template.

    Signals: ``planned(RestorePlan)`` when a mapping is proposed, ``restored(RestoreReport)``
    after a restore, ``saved(str)`` after a save, ``failed(str)`` when a step fails."""

    planned = Signal(object)
    restored = Signal(object)
    saved = Signal(str)
    failed = Signal(str)

    def __init__(self, scan: DirectoryScan, checkpoint_name: str, parent=None, *,
                 settings: QSettings | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Restore {checkpoint_name} into a model")
        self.setObjectName("restoreDialog")
        self.resize(1000, 760)
        self.scan = scan
        self.ckpt = scan.checkpoint(checkpoint_name)
        self._display_names: dict[str, str] | None = None  # key -> display name, see _shown
        if self.ckpt is None:
            raise ValueError(f"{scan.directory} has no checkpoint {checkpoint_name!r}")
        self.settings = settings or QSettings("ckpt_gui", "ckpt_gui")
        self.session = None
        self.plan = None
        self.report = None
        self._filling = False
        self._job = None
        self.task = TaskSlot(self, executor=work_thread())  # (TensorFlow's thread of work)
        self.task.progress.connect(self._on_progress)
        self.task.finished.connect(self._on_finished)
        self.task.failed.connect(self._on_failed)
        self.task.busy.connect(self._on_busy)
        self._build()
        self._fill_templates()
        self.template_combo.currentIndexChanged.connect(self._on_template_changed)
        self.root_combo.currentIndexChanged.connect(self._on_root_changed)
        self._on_template_changed()

    # --- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        c = self.ckpt
        header = QLabel(f"<b>{c.name}</b> ({c.format}, {c.n_variables} tensors) in "
                        f"{self.scan.directory}")
        header.setTextInteractionFlags(Qt.TextSelectableByMouse)
        header.setWordWrap(True)

        self.template_combo = QComboBox()
        self.template_combo.setObjectName("templateCombo")
        self.template_combo.setMinimumWidth(320)
        self.add_template_button = QPushButton("Add template…")
        self.add_template_button.clicked.connect(self._choose_template_file)
        self.root_combo = QComboBox()
        self.root_combo.setObjectName("rootCombo")
        self.root_combo.addItem(AUTO_ROOT, None)
        self.root_combo.setToolTip("Where the model sits in the checkpoint: at the top level "
                                   "(Keras save_weights) or under a child such as model, net, "
                                   "generator")
        top = QHBoxLayout()
        top.addWidget(QLabel("Template:"))
        top.addWidget(self.template_combo, 1)
        top.addWidget(self.add_template_button)
        top.addSpacing(16)
        top.addWidget(QLabel("Model in checkpoint at:"))
        top.addWidget(self.root_combo)

        self.template_label = QLabel()
        self.template_label.setWordWrap(True)
        self.status_label = QLabel()
        self.status_label.setObjectName("statusLabel")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.mapping_table = QTableWidget(0, 6)
        self.mapping_table.setObjectName("mappingTable")
        self.mapping_table.setHorizontalHeaderLabels(
            ["Apply", "Part", "Variable", "Shape", "Checkpoint tensor", "How"])
        self.mapping_table.verticalHeader().setVisible(False)
        self.mapping_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        hh = self.mapping_table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeToContents)
        hh.setSectionResizeMode(4, QHeaderView.Stretch)
        self.mapping_table.itemChanged.connect(self._on_item_changed)
        self.mapping_label = QLabel()
        self.mapping_label.setWordWrap(True)

        self.restore_button = QPushButton("Restore")
        self.restore_button.setObjectName("restoreButton")
        self.restore_button.setEnabled(False)
        self.restore_button.clicked.connect(self.start_restore)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress.setTextVisible(True)
        mid = QHBoxLayout()
        mid.addWidget(self.mapping_label, 1)
        mid.addWidget(self.progress)
        mid.addWidget(self.restore_button)

        self.report_label = QLabel()
        self.report_label.setObjectName("reportLabel")
        self.report_label.setWordWrap(True)
        self.report_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.report_table = QTableWidget(0, 5)
        self.report_table.setObjectName("reportTable")
        self.report_table.setHorizontalHeaderLabels(
            ["Variable / tensor", "Checkpoint tensor", "Shape", "Result", "How"])
        self.report_table.verticalHeader().setVisible(False)
        self.report_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        rh = self.report_table.horizontalHeader()
        rh.setSectionResizeMode(QHeaderView.ResizeToContents)
        rh.setSectionResizeMode(1, QHeaderView.Stretch)
        self.sample_label = QLabel()
        self.sample_label.setObjectName("sampleLabel")
        self.sample_label.setWordWrap(True)
        self.sample_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.save_weights_button = QPushButton("Save as .weights.h5…")
        self.save_keras_button = QPushButton("Save as .keras…")
        for b in (self.save_weights_button, self.save_keras_button):
            b.setEnabled(False)
        self.save_weights_button.clicked.connect(lambda: self._choose_save(".weights.h5"))
        self.save_keras_button.clicked.connect(lambda: self._choose_save(".keras"))
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.save_weights_button)
        bottom.addWidget(self.save_keras_button)
        bottom.addStretch(1)
        bottom.addWidget(close)

        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(QLabel("<b>Proposed mapping</b> — review before restoring: untick a row to "
                            "leave that variable alone, or pick another tensor of the same "
                            "shape."))
        ul.addWidget(self.mapping_table)
        ul.addLayout(mid)
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("<b>Report</b>"))
        ll.addWidget(self.report_label)
        ll.addWidget(self.report_table)
        ll.addWidget(self.sample_label)
        split = QSplitter(Qt.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)

        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addLayout(top)
        layout.addWidget(self.template_label)
        layout.addWidget(self.status_label)
        layout.addWidget(split, 1)
        layout.addLayout(bottom)

    # --- templates ----------------------------------------------------------------------------
    def _remembered(self) -> list[str]:
        value = self.settings.value(SETTINGS_KEY, [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _carries_config(self) -> bool:
        return formats.for_name(self.ckpt.format).carries_config(self.ckpt)

    def _fill_templates(self) -> None:
        self.template_combo.blockSignals(True)
        self.template_combo.clear()
        if self._carries_config():
            self.template_combo.addItem("The checkpoint's own model config",
                                        checkpoint_template_ref())
        for ref in builtin_templates():
            self.template_combo.addItem(f"{ref.name} (built-in)", ref)
        for path in self._remembered():
            if os.path.isfile(path):
                try:
                    self.template_combo.addItem(os.path.basename(path), describe(path))
                except TemplateError:
                    continue
        self.template_combo.blockSignals(False)

    def template_refs(self) -> list[TemplateRef]:
        return [self.template_combo.itemData(i) for i in range(self.template_combo.count())]

    def add_template(self, path: str) -> TemplateRef:
        """Add a template file (remembered for next time) and select it."""
        ref = describe(path)
        paths = [p for p in self._remembered() if os.path.abspath(p) != ref.path] + [ref.path]
        self.settings.setValue(SETTINGS_KEY, paths)
        self.settings.sync()
        for i, r in enumerate(self.template_refs()):
            if r.path == ref.path:
                self.template_combo.setCurrentIndex(i)
                return r
        self.template_combo.addItem(os.path.basename(ref.path), ref)
        self.template_combo.setCurrentIndex(self.template_combo.count() - 1)
        return ref

    def select_template(self, name: str) -> None:
        """Select a template by name (built-in name, 'checkpoint', or path)."""
        for i, r in enumerate(self.template_refs()):
            if name in (r.name, r.path) or (name == CHECKPOINT_TEMPLATE and r.path is None):
                if i == self.template_combo.currentIndex():
                    self._on_template_changed()
                else:
                    self.template_combo.setCurrentIndex(i)
                return
        self.add_template(name)

    def _choose_template_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Add a model template", os.path.expanduser("~"),
            "Templates (*.py *.keras *.h5);;Python (*.py);;Keras model (*.keras *.h5)")
        if path:
            try:
                self.add_template(path)
            except TemplateError as e:
                self._show_error(str(e))

    # --- planning ------------------------------------------------------------------------------
    def current_root(self) -> str | None:
        return self.root_combo.currentData()

    def _on_template_changed(self, *_):
        from ..core.restore import RestoreSession

        ref = self.template_combo.currentData()
        if ref is None:
            self.status_label.setText("No template: add one from a file.")
            return
        self.template_label.setText(f"<i>{ref.description or ref.path or ref.name}</i>")
        self.session = RestoreSession(self.ckpt, ref)
        self._propose()

    def _on_root_changed(self, *_):
        if self._filling or self.session is None:
            return
        self._propose()

    def _propose(self) -> None:
        self.plan = None
        self._clear_mapping()
        self._clear_report()
        self.restore_button.setEnabled(False)
        self.status_label.setText("Building the template and matching it to the checkpoint…")
        self._job = "propose"
        self.task.submit(propose_job, self.session, self.current_root())

    def _fill_roots(self, candidates, chosen: str | None) -> None:
        self._filling = True
        keep = self.current_root()
        self.root_combo.clear()
        self.root_combo.addItem(AUTO_ROOT, None)
        for c in candidates:
            self.root_combo.addItem(f"{c.label} — {c.n_tensors} tensors", c.name)
        want = keep if keep is not None else None
        idx = self.root_combo.findData(want) if want is not None else 0
        self.root_combo.setCurrentIndex(max(idx, 0))
        self._filling = False
        del chosen

    def _on_planned(self, result: ProposeResult) -> None:
        if result.session is not self.session:
            return
        self._fill_roots(result.candidates, result.plan.root if result.plan else None)
        if result.plan is None:
            self.status_label.setText(result.error or "No mapping.")
            self.failed.emit(result.error or "")
            return
        plan = self.plan = result.plan
        root = plan.root or "the top level"
        native = "tf.train.Checkpoint binds it natively" if plan.native_possible else \
            "its own variable paths bind every variable" if _bound_by_paths(plan) else \
            "restored through a mapping"
        notes = "".join(f"<br>! {html.escape(n)}" for n in plan.notes)
        self.status_label.setText(f"The model sits at <b>{root}</b>; {native}.{notes}")
        self._fill_mapping(plan)
        self.restore_button.setEnabled(True)
        self.planned.emit(plan)

    # --- the mapping table ---------------------------------------------------------------------
    def _clear_mapping(self) -> None:
        self._filling = True
        self.mapping_table.setRowCount(0)
        self._filling = False
        self.mapping_label.clear()

    def _fill_mapping(self, plan) -> None:
        self._filling = True
        t = self.mapping_table
        t.setRowCount(len(plan.entries))
        for row, e in enumerate(plan.entries):
            check = QTableWidgetItem()
            check.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            check.setCheckState(Qt.Checked if e.apply and e.key else Qt.Unchecked)
            t.setItem(row, 0, check)
            for col, text in ((1, e.group), (2, e.variable), (3, str(list(e.shape)))):
                item = QTableWidgetItem(text)
                item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                t.setItem(row, col, item)
            combo = QComboBox()
            combo.addItem(NOT_RESTORED, None)
            keys = plan.keys_of_shape(e.shape)
            if e.key and e.key not in keys:
                keys.insert(0, e.key)
            for k in keys:
                combo.addItem(self._shown(k), k)
            combo.setCurrentIndex(max(combo.findData(e.key), 0) if e.key else 0)
            combo.currentIndexChanged.connect(lambda _i, r=row: self._on_key_chosen(r))
            t.setCellWidget(row, 4, combo)
            how = QTableWidgetItem(self._how_text(e))
            how.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            t.setItem(row, 5, how)
        self._filling = False
        self._update_mapping_label()

    def _shown(self, key: str | None) -> str:
        """A checkpoint tensor as every face names it (its display name), by its key."""
        if self._display_names is None:
            self._display_names = {v.name: v.display_name for v in self.ckpt.variables}
        return self._display_names.get(key, key or "")

    def _how_text(self, e) -> str:
        if e.key and e.apply:
            return e.how
        if e.key:
            return e.how + " — tick to apply"
        if e.mismatch_key:
            return (f"shape mismatch: {self._shown(e.mismatch_key)} is {list(e.mismatch_shape)}")
        return "missing in checkpoint" if e.group == "model" else "not in checkpoint"

    def key_combo(self, row: int) -> QComboBox:
        return self.mapping_table.cellWidget(row, 4)

    def _on_key_chosen(self, row: int) -> None:
        if self._filling or self.plan is None:
            return
        e = self.plan.entries[row]
        key = self.key_combo(row).currentData()
        self.plan.set_key(e, key)   # only same-shape keys are offered
        self._filling = True
        self.mapping_table.item(row, 0).setCheckState(Qt.Checked if key else Qt.Unchecked)
        self.mapping_table.item(row, 5).setText(self._how_text(e))
        self._filling = False
        self._update_mapping_label()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or self.plan is None or item.column() != 0:
            return
        e = self.plan.entries[item.row()]
        want = item.checkState() == Qt.Checked
        if want and not e.key:
            self._filling = True
            item.setCheckState(Qt.Unchecked)
            self._filling = False
            return
        if want != e.apply:
            e.apply = want
            e.native = e.native and want
            self.plan.edited = True
            self.mapping_table.item(item.row(), 5).setText(self._how_text(e))
            self._update_mapping_label()

    def _update_mapping_label(self) -> None:
        if self.plan is None:
            return
        model = self.plan.model_entries()
        bound = sum(1 for e in model if e.apply and e.key)
        opt = self.plan.optimizer_entries()
        text = f"{bound} of {len(model)} model variables will be restored"
        if opt:
            text += f"; optimizer: {sum(1 for e in opt if e.apply and e.key)} of {len(opt)}"
        if self.plan.edited:
            text += " (edited)"
        self.mapping_label.setText(text + ".")

    # --- restoring -----------------------------------------------------------------------------
    def start_restore(self) -> None:
        if self.plan is None or self.session is None:
            return
        self._clear_report()
        self.mapping_table.setEnabled(False)
        self.status_label.setText("Restoring…")
        self._job = "restore"
        self.task.submit(restore_job, self.session, self.plan)

    def _clear_report(self) -> None:
        self.report = None
        self.report_table.setRowCount(0)
        self.report_label.clear()
        self.sample_label.clear()
        for b in (self.save_weights_button, self.save_keras_button):
            b.setEnabled(False)

    def _on_restored(self, report) -> None:
        self.report = report
        self.mapping_table.setEnabled(True)
        rows = []
        for r in report.restored:
            rows.append((r.variable, self._shown(r.key), str(r.shape),
                         "restored, verified" if r.verified else "restored, NOT equal", r.how))
        for name in report.missing_in_checkpoint:
            rows.append((name, "", "", "missing in checkpoint", ""))
        for m in report.shape_mismatch:
            rows.append((m.variable, self._shown(m.key), str(m.variable_shape),
                         f"shape mismatch (checkpoint {m.checkpoint_shape})", ""))
        for r in report.optimizer.entries:
            rows.append((r.variable, self._shown(r.key), str(r.shape),
                         "optimizer, verified" if r.verified else "optimizer, NOT equal", r.how))
        for name in report.optimizer.missing:
            rows.append((name, "", "", "optimizer state not restored", ""))
        for key in report.unused_in_checkpoint:
            rows.append(("", self._shown(key), "", "unused in checkpoint", ""))
        t = self.report_table
        t.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                t.setItem(i, j, QTableWidgetItem(text))
        n = report.n_model_variables
        o = report.optimizer
        if not o.in_template:
            opt = "the template has no optimizer"
        elif o.restored:
            opt = f"restored (iterations {o.iterations}, {o.slots_restored} of " \
                  f"{o.slots_expected} slots)"
        else:
            opt = f"not restored: {o.reason}"
        verdict = "Complete" if report.complete else "INCOMPLETE"
        text = (f"<b>{verdict}</b>: {len(report.restored)} of {n} model variables restored "
                f"({report.mode}); "
                + ("every restored variable equals its checkpoint tensor exactly."
                   if report.verified else "NOT verified.")
                + f"<br>Missing in checkpoint: {len(report.missing_in_checkpoint)}; shape "
                  f"mismatches: {len(report.shape_mismatch)}; unused checkpoint tensors: "
                  f"{len(report.unused_in_checkpoint)}.<br>Optimizer: {opt}.")
        text += "".join(f"<br>! {html.escape(n_)}" for n_ in report.notes)
        self.report_label.setText(text)
        s = report.sample
        if s is not None:
            if s.skipped:
                self.sample_label.setText(f"Sample run: not run: {s.skipped}")
            elif s.error:
                self.sample_label.setText(f"Sample run failed: {s.error}")
            else:
                values = ", ".join(f"{v:.5g}" for v in s.first_values)
                self.sample_label.setText(
                    f"Sample run: input {s.input_shape} → output {s.output_shape}"
                    f"{'' if s.finite else ' (NOT all finite)'}: {values}")
        self.status_label.setText("Restored." if report.complete else
                                  "Restored in part: see the report.")
        for b in (self.save_weights_button, self.save_keras_button):
            b.setEnabled(report.complete)
            b.setToolTip("" if report.complete else
                         "Saving is for complete restores: the file would hold variables that "
                         "were never restored")
        self.restored.emit(report)

    # --- saving --------------------------------------------------------------------------------
    def _choose_save(self, suffix: str) -> None:
        base = os.path.splitext(self.ckpt.name)[0].replace(os.sep, "_") or "model"
        start = save_path(f"{base}-restored{suffix}", self.settings)
        path, _ = QFileDialog.getSaveFileName(self, "Save the restored model", start,
                                              f"Keras (*{suffix})")
        if path:
            if not path.endswith(suffix):
                path += suffix
            remember_save(path, self.settings)
            self.save_to(path)

    def save_to(self, path: str) -> None:
        """Save the restored model (in the worker) as .weights.h5 or .keras."""
        if self.report is None or self.session is None:
            return
        self._job = "save"
        self.status_label.setText(f"Saving {path}…")
        self.task.submit(save_job, self.session, path)

    # --- task plumbing -------------------------------------------------------------------------
    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, total if total > 0 else 0)
        if total > 0:
            self.progress.setValue(done)
        self.progress.setFormat(what[:60] if what else "%p%")

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.restore_button.setEnabled(not busy and self.plan is not None)
        self.template_combo.setEnabled(not busy)
        self.root_combo.setEnabled(not busy)
        self.add_template_button.setEnabled(not busy)
        if busy:
            for b in (self.save_weights_button, self.save_keras_button):
                b.setEnabled(False)
        elif self.report is not None:
            for b in (self.save_weights_button, self.save_keras_button):
                b.setEnabled(self.report.complete)

    def _on_finished(self, result) -> None:
        job, self._job = self._job, None
        if job == "propose":
            self._on_planned(result)
        elif job == "restore":
            self._on_restored(result)
        elif job == "save":
            self.status_label.setText(f"Saved {result}")
            self.report.saved = result
            self.saved.emit(result)

    def _on_failed(self, message: str, details: str) -> None:
        job, self._job = self._job, None
        self.mapping_table.setEnabled(True)
        what = {"restore": "Restoring", "save": "Saving"}.get(job, "Planning")
        self._show_error(f"{what} failed: {message}")
        self.status_label.setToolTip(details)

    def _show_error(self, text: str) -> None:
        self.status_label.setText(text)
        self.failed.emit(text)

    def done(self, result: int) -> None:
        self.task.cancel()
        super().done(result)
