"""The "Prune…" dialog: choose what goes (the selection, a policy, or the orphan files), read the
plan, confirm, watch the progress, undo from the trash.

The plan is computed in the GUI thread (it reads only the scan and the small state file); the
deletion and the undo run in a worker through a TaskSlot, with ckpt_gui.core.prune doing the work.
"""
from __future__ import annotations

import html
import threading

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog,
                               QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QPlainTextEdit, QProgressBar, QPushButton, QRadioButton,
                               QSpinBox, QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                               QWidget)

from ..core import prune, storage
from ..core.model import DirectoryScan
from ..textfmt import human_bytes, plural, safe_name
from .tasks import TaskSlot


def prune_job(plan: prune.Plan, permanent: bool, stop: threading.Event, *, state):
    return prune.execute_prune(plan, permanent=permanent, progress=state.progress,
                               cancelled=lambda: stop.is_set() or state.cancelled(), rescan=True)


def undo_job(result: prune.PruneResult, *, state):
    return prune.undo_prune(result, progress=state.progress, cancelled=state.cancelled,
                            rescan=True)


class PruneDialog(QDialog):
    """Delete checkpoints safely. ``pruned(PruneResult)`` after a deletion, ``restored(
    RestoreResult)`` after an undo (refresh on both); ``about_to_delete(names)`` just before the
    worker starts, so whoever holds a reader on those files can close it."""

    pruned = Signal(object)
    restored = Signal(object)
    about_to_delete = Signal(list)

    SELECTED, POLICY, ORPHANS = range(3)

    def __init__(self, scan: DirectoryScan, selected: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Delete checkpoints")
        self.setObjectName("pruneDialog")
        self.resize(860, 680)
        self.scan = scan
        self.selected = self._present(selected)
        self.plan: prune.Plan | None = None
        self.last_result: prune.PruneResult | None = None
        self.last_restore: prune.RestoreResult | None = None
        self._stop = threading.Event()
        self._undoing = False
        self.task = TaskSlot(self)
        self.task.progress.connect(self._on_progress)
        self.task.finished.connect(self._on_finished)
        self.task.failed.connect(self._on_failed)
        self._build()
        self._rebuild_pins()
        self._update_counts()
        (self.mode_selected if self.selected else self.mode_policy).setChecked(True)
        self.replan()

    def _present(self, names: list[str]) -> list[str]:
        """Those of ``names`` the scan holds (one set, not a search per name: a selection may
        be a whole folder of thousands)."""
        have = {c.name for c in self.scan.checkpoints}
        return [n for n in names if n in have]

    # --- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.folder_label = QLabel()
        self.folder_label.setTextFormat(Qt.PlainText)
        self.folder_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.mode_selected = QRadioButton()
        self.mode_policy = QRadioButton("Apply a policy")
        self.mode_orphans = QRadioButton()
        self.modes = QButtonGroup(self)
        for i, b in enumerate((self.mode_selected, self.mode_policy, self.mode_orphans)):
            self.modes.addButton(b, i)
        self.modes.idToggled.connect(lambda _id, on: on and self.replan())
        modes = QHBoxLayout()
        for b in (self.mode_selected, self.mode_policy, self.mode_orphans):
            modes.addWidget(b)
        modes.addStretch(1)

        self.keep_last_check = QCheckBox("Keep the last")
        self.keep_last_check.setChecked(True)
        self.keep_last_spin = QSpinBox()
        self.keep_last_spin.setRange(0, 100000)
        self.keep_last_spin.setValue(3)
        self.order_combo = QComboBox()
        self.order_combo.addItem("by the number in their name", "number")
        self.order_combo.addItem("by training counter", "counter")
        self.keep_every_check = QCheckBox("Keep every")
        self.keep_every_spin = QSpinBox()
        self.keep_every_spin.setRange(1, 10000000)
        self.keep_every_spin.setValue(10)
        self.keep_every_spin.setSuffix("-th (number is a multiple)")
        self.include_latest_check = QCheckBox("Include the latest checkpoint (delete it too)")
        self.run_combo = QComboBox()
        self.run_combo.setObjectName("runCombo")
        last_row = QHBoxLayout()
        for w in (self.keep_last_check, self.keep_last_spin, self.order_combo):
            last_row.addWidget(w)
        last_row.addStretch(1)
        every_row = QHBoxLayout()
        every_row.addWidget(self.keep_every_check)
        every_row.addWidget(self.keep_every_spin)
        every_row.addStretch(1)
        run_row = QHBoxLayout()
        run_row.addWidget(QLabel("In"))
        run_row.addWidget(self.run_combo)
        run_row.addWidget(QLabel("(the rules apply within each run; unnumbered files are "
                                 "never chosen)"))
        run_row.addStretch(1)
        self.policy_box = QGroupBox("Policy")
        pol = QVBoxLayout(self.policy_box)
        pol.addLayout(run_row)
        pol.addLayout(last_row)
        pol.addLayout(every_row)
        pol.addWidget(self.include_latest_check)

        self.pin_list = QListWidget()
        self.pin_list.setObjectName("pinList")
        self.pin_list.setMaximumHeight(140)
        pin_box = QGroupBox("Pinned (never deleted)")
        QVBoxLayout(pin_box).addWidget(self.pin_list)

        for w in (self.keep_last_check, self.keep_every_check, self.include_latest_check):
            w.toggled.connect(self.replan)
        for w in (self.keep_last_spin, self.keep_every_spin):
            w.valueChanged.connect(self.replan)
        self.order_combo.currentIndexChanged.connect(self.replan)
        self.run_combo.currentIndexChanged.connect(self.replan)
        self.pin_list.itemChanged.connect(self.replan)

        choose = QHBoxLayout()
        choose.addWidget(self.policy_box, 2)
        choose.addWidget(pin_box, 1)

        self.plan_tree = QTreeWidget()
        self.plan_tree.setObjectName("planTree")
        self.plan_tree.setHeaderLabels(["Checkpoint", "Action", "Size", "Why", "Run"])
        self.plan_tree.header().moveSection(4, 1)       # shown next to the checkpoint
        self.plan_tree.setRootIsDecorated(True)
        self.files_text = QPlainTextEdit()
        self.files_text.setObjectName("planFiles")
        self.files_text.setReadOnly(True)
        self.state_text = QPlainTextEdit()
        self.state_text.setObjectName("stateAfter")
        self.state_text.setReadOnly(True)
        files_box, state_box = QGroupBox("Files that go, in this order"), QGroupBox(
            "The checkpoint state file afterwards")
        QVBoxLayout(files_box).addWidget(self.files_text)
        QVBoxLayout(state_box).addWidget(self.state_text)
        lower = QSplitter(Qt.Horizontal)
        lower.addWidget(files_box)
        lower.addWidget(state_box)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.plan_tree)
        split.addWidget(lower)

        self.summary_label = QLabel()
        self.summary_label.setObjectName("planSummary")
        self.summary_label.setTextFormat(Qt.PlainText)
        self.summary_label.setWordWrap(True)
        self.warnings_label = QLabel()
        self.warnings_label.setTextFormat(Qt.PlainText)   # names from disk, never markup
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setStyleSheet("QLabel { color: #7a3e00; }")

        self.trash_radio = QRadioButton("Move to the trash")
        self.permanent_radio = QRadioButton("Delete permanently")
        self.where = QButtonGroup(self)
        self.where.addButton(self.trash_radio)
        self.where.addButton(self.permanent_radio)
        self._choose_default_where()
        self.trash_radio.toggled.connect(self.replan)

        self.confirm_label = QLabel()
        self.confirm_label.setWordWrap(True)
        self.confirm_button = QPushButton("Yes, delete")
        self.confirm_button.clicked.connect(self.start)
        self.back_button = QPushButton("Back")
        self.back_button.clicked.connect(self._leave_confirmation)
        self.confirm_panel = QWidget()
        conf = QHBoxLayout(self.confirm_panel)
        conf.setContentsMargins(0, 0, 0, 0)
        conf.addWidget(self.confirm_label, 1)
        conf.addWidget(self.back_button)
        conf.addWidget(self.confirm_button)
        self.confirm_panel.hide()

        self.progress_bar = QProgressBar()
        self.progress_bar.hide()
        self.progress_label = QLabel()
        self.progress_label.setTextFormat(Qt.PlainText)
        self.progress_label.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.result_label = QLabel()
        self.result_label.setObjectName("pruneResult")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.PlainText)
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.delete_button = QPushButton("Delete…")
        self.delete_button.setDefault(True)
        self.delete_button.clicked.connect(self.ask_confirmation)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setEnabled(False)
        self.undo_button.clicked.connect(self.undo)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.trash_radio)
        buttons.addWidget(self.permanent_radio)
        buttons.addStretch(1)
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.close_button)
        running = QHBoxLayout()
        running.addWidget(self.progress_bar, 1)
        running.addWidget(self.progress_label, 1)
        running.addWidget(self.cancel_button)

        self.inputs = [self.mode_selected, self.mode_policy, self.mode_orphans, self.policy_box,
                       pin_box, self.trash_radio, self.permanent_radio]
        layout = QVBoxLayout(self)
        layout.addWidget(self.folder_label)
        layout.addLayout(modes)
        layout.addLayout(choose)
        layout.addWidget(split, 1)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.warnings_label)
        layout.addWidget(self.confirm_panel)
        layout.addLayout(running)
        layout.addWidget(self.result_label)
        layout.addLayout(buttons)

    def _update_counts(self) -> None:
        self.folder_label.setText(f"Folder: {safe_name(self.scan.directory)}")
        self.mode_selected.setText(f"Selected checkpoints ({len(self.selected)})")
        self.mode_selected.setEnabled(bool(self.selected))
        self.mode_orphans.setText(f"Orphan files ({len(self.scan.orphans)})")
        self.mode_orphans.setEnabled(bool(self.scan.orphans))

    # --- the plan -----------------------------------------------------------------------------
    def mode(self) -> int:
        return max(self.modes.checkedId(), 0)

    def policy(self) -> prune.Policy:
        pinned = [self.pin_list.item(i).data(Qt.UserRole) for i in range(self.pin_list.count())
                  if self.pin_list.item(i).checkState() == Qt.Checked]
        return prune.Policy(
            keep_last=self.keep_last_spin.value() if self.keep_last_check.isChecked() else None,
            keep_every=self.keep_every_spin.value() if self.keep_every_check.isChecked() else None,
            order=self.order_combo.currentData(), pinned=pinned,
            include_latest=self.include_latest_check.isChecked(),
            run=self.run_combo.currentData())

    def replan(self, *_):
        mode = self.mode()
        self.policy_box.setEnabled(mode == self.POLICY)
        self.keep_last_spin.setEnabled(self.keep_last_check.isChecked())
        self.order_combo.setEnabled(self.keep_last_check.isChecked())
        self.keep_every_spin.setEnabled(self.keep_every_check.isChecked())
        to_trash = not self.permanent_radio.isChecked()
        try:
            if mode == self.ORPHANS:
                self.plan = prune.plan_orphans(self.scan, to_trash=to_trash)
            elif mode == self.SELECTED:
                self.plan = prune.plan_prune(self.scan, delete=self.selected,
                                             policy=prune.Policy(pinned=self.policy().pinned),
                                             to_trash=to_trash)
            else:
                self.plan = prune.plan_prune(self.scan, policy=self.policy(), to_trash=to_trash)
        except prune.PlanError as e:
            self.plan = None
            self._show_plan(None, str(e))
            return self.plan
        self._show_plan(self.plan)
        return self.plan

    def _show_plan(self, plan: prune.Plan | None, error: str = "") -> None:
        self.plan_tree.clear()
        self.files_text.clear()
        self.state_text.clear()
        if plan is None:
            self.summary_label.setText(error)
            self.warnings_label.clear()
            self._update_buttons()
            return
        gone = set(plan.deleted)
        if plan.kind == prune.ORPHANS:
            names = plan.deleted + list(plan.skipped)
        else:
            names = [c.name for c in self.scan.checkpoints]
        run_of = {c.name: c.run for c in self.scan.checkpoints}
        for name in names:
            files = plan.files_of(name)
            action = "delete" if name in gone else "keep"
            if name in plan.skipped:
                action = "skip"
            size = human_bytes(sum(f.bytes for f in files)) if files else ""
            label = safe_name(name) + ("  (latest)" if name == self.scan.latest else "")
            item = QTreeWidgetItem([label, action, size, safe_name(plan.reasons.get(name, "")),
                                    safe_name(run_of.get(name) or "")])
            item.setData(0, Qt.UserRole, name)
            if action == "delete":
                for f in files:
                    item.addChild(QTreeWidgetItem([
                        safe_name(f.name), "", human_bytes(f.bytes),
                        f"link to {safe_name(f.link_target)}" if f.link_target else ""]))
            self.plan_tree.addTopLevelItem(item)
        for i in range(5):
            self.plan_tree.resizeColumnToContents(i)
        self.files_text.setPlainText("\n".join(safe_name(f.name) for f in plan.files))
        self.state_text.setPlainText(self._state_description(plan))
        if plan.empty:
            text = "Nothing to delete."
        else:
            what = "orphan file" if plan.kind == prune.ORPHANS else "checkpoint"
            text = (f"Deletes {plural(len(plan.deleted), what)}: {plural(len(plan.files), 'file')}, "
                    f"{human_bytes(plan.bytes)} freed. Latest afterwards: "
                    f"{safe_name(plan.latest_after or '(none)')}.")
        self.summary_label.setText(text)
        notes = plan.warnings + [f"{n}: {why}" for n, why in plan.skipped.items()]
        self.warnings_label.setText("\n".join(safe_name(n) for n in notes))
        self._update_buttons()

    @staticmethod
    def _state_description(plan: prune.Plan) -> str:
        if plan.state_action == prune.STATE_NONE:
            return "(there is no state file; none is written)"
        if plan.state_action == prune.STATE_REMOVE:
            return "(removed: no checkpoint is left for it to name)"
        prefix = "(unchanged)\n" if plan.state_action == prune.STATE_KEEP else ""
        return prefix + safe_name(plan.state_after or "", keep="\n")

    # --- confirmation, execution --------------------------------------------------------------
    def running(self) -> bool:
        return self.task.is_running()

    def _update_buttons(self) -> None:
        busy = self.running()
        self.delete_button.setEnabled(not busy and self.plan is not None and not self.plan.empty
                                      and self.confirm_panel.isHidden())
        self.undo_button.setEnabled(not busy and self.last_result is not None
                                    and self.last_result.can_undo)

    def ask_confirmation(self) -> None:
        if self.plan is None or self.plan.empty:
            return
        p = self.plan
        bucket = " (a bucket has no trash)" if self._in_bucket() else ""
        where = ("move them to the trash (Undo can bring them back)" if p.to_trash
                 else f"delete them permanently{bucket} — this cannot be undone")
        what = "orphan file" if p.kind == prune.ORPHANS else "checkpoint"
        latest = ""
        if p.kind == prune.CHECKPOINTS and p.latest_before in p.deleted:
            latest = (f" This includes the latest, {html.escape(safe_name(p.latest_before))}; "
                      "the state file will name "
                      f"{html.escape(safe_name(p.latest_after or 'nothing (it is removed)'))}.")
        self.confirm_label.setText(
            f"<b>{plural(len(p.deleted), what)}, {plural(len(p.files), 'file')}, "
            f"{human_bytes(p.bytes)}</b>: "
            f"{where}?{latest}")
        self.confirm_panel.show()
        self._set_inputs_enabled(False)
        self.delete_button.setEnabled(False)
        self.confirm_button.setFocus()

    def _leave_confirmation(self) -> None:
        self.confirm_panel.hide()
        self._set_inputs_enabled(True)
        self._update_buttons()

    def _set_inputs_enabled(self, on: bool) -> None:
        for w in self.inputs:
            w.setEnabled(on)
        self.trash_radio.setEnabled(on and not self._in_bucket())
        if on:
            self._update_counts()
            self.policy_box.setEnabled(self.mode() == self.POLICY)

    def start(self) -> None:
        """Run the confirmed plan in the worker."""
        if self.plan is None or self.plan.empty or self.running():
            return
        self.confirm_panel.hide()
        self._stop.clear()
        self._undoing = False
        self.about_to_delete.emit(list(self.plan.deleted))
        self._show_running(len(self.plan.files) + 1, "Deleting…")
        self.task.submit(prune_job, self.plan, not self.plan.to_trash, self._stop)
        self._update_buttons()

    def cancel(self) -> None:
        """Stop after the checkpoint being deleted (never half way through one)."""
        self._stop.set()
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")

    def undo(self) -> None:
        if self.last_result is None or not self.last_result.can_undo or self.running():
            return
        self._undoing = True
        self._show_running(sum(len(v) for v in self.last_result.undo.trashed.values()),
                           "Restoring from the trash…")
        self.task.submit(undo_job, self.last_result)
        self._update_buttons()

    def _show_running(self, total: int, text: str) -> None:
        self._set_inputs_enabled(False)
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        self.progress_label.setText(text)
        self.progress_label.show()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setVisible(not self._undoing)
        self.close_button.setEnabled(False)
        self.result_label.clear()

    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        if what:
            self.progress_label.setText(safe_name(what))

    def _done_running(self) -> None:
        self.progress_bar.hide()
        self.progress_label.hide()
        self.cancel_button.hide()
        self.close_button.setEnabled(True)
        self._set_inputs_enabled(True)

    def _on_finished(self, result) -> None:
        self._done_running()
        if result.scan_after is not None:
            self.scan = result.scan_after
            self.selected = self._present(self.selected)
            self._rebuild_pins()
            self._update_counts()
        if isinstance(result, prune.RestoreResult):
            self.last_restore = result
            self.last_result = None
            text = f"Restored {len(result.restored)} from the trash ({len(result.files)} files)."
            if result.errors:
                text += " Problems: " + "; ".join(result.errors)
            self.result_label.setText(safe_name(text))
            self._nothing_marked()
            self.replan()
            self.restored.emit(result)
            return
        self.last_result = result
        self.result_label.setText(self._describe(result))
        self._nothing_marked()
        self.replan()
        self.pruned.emit(result)

    def _nothing_marked(self) -> None:
        """After a deletion the dialog marks nothing for the next one: no checkpoint selected
        (the "Selected checkpoints (0)" choice, whose plan is empty), the latest not included,
        the trash chosen again. Another deletion is a new, deliberate choice."""
        self.selected = []
        self._update_counts()
        self.mode_selected.setChecked(True)
        self.include_latest_check.setChecked(False)
        self._choose_default_where()

    def _in_bucket(self) -> bool:
        return storage.is_url(self.scan.directory)

    def _choose_default_where(self) -> None:
        """The trash, except in a bucket: it has none, so deletion there is permanent (and the
        confirmation says so)."""
        bucket = self._in_bucket()
        (self.permanent_radio if bucket else self.trash_radio).setChecked(True)
        self.trash_radio.setEnabled(not bucket)
        self.trash_radio.setToolTip("A bucket has no trash: its objects can only be deleted "
                                    "permanently" if bucket else "")

    def _describe(self, r: prune.PruneResult) -> str:
        where = "to the trash" if r.to_trash else "permanently"
        if r.stopped:
            return safe_name(f"Stopped: {r.stopped}")
        parts = [f"Deleted {len(r.deleted)} ({len(r.files)} files, {human_bytes(r.bytes)}) {where}."]
        if r.cancelled:
            parts.append(f"Cancelled: {', '.join(r.not_started)} not deleted.")
        if r.latest is not None or r.state_action != prune.STATE_KEEP:
            parts.append(f"The state file names {r.latest or 'nothing (removed)'}.")
        parts += [f"Failed: {e}" for e in r.errors]
        parts += [f"Note: {w}" for w in r.warnings]
        if r.to_trash and r.undo_problem and r.deleted:
            parts.append(f"Undo is not available: {r.undo_problem}.")
        return safe_name(" ".join(parts))

    def _on_failed(self, message: str, details: str) -> None:
        self._done_running()
        self.result_label.setText(f"Failed: {safe_name(message)}")
        self.result_label.setToolTip(details)
        self.replan()

    def _rebuild_runs(self) -> None:
        """The run chooser: every run, or one (kept when a rescan still has it)."""
        chosen = self.run_combo.currentData()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        self.run_combo.addItem(f"every run ({len(self.scan.runs)})", None)
        for r in self.scan.runs:
            self.run_combo.addItem(f"{safe_name(r.id)} ({plural(len(r.checkpoints), 'checkpoint')})",
                                   r.id)
        self.run_combo.setCurrentIndex(max(self.run_combo.findData(chosen), 0))
        self.run_combo.blockSignals(False)

    def _rebuild_pins(self) -> None:
        self._rebuild_runs()
        pinned = set(self.policy().pinned)
        self.pin_list.blockSignals(True)
        self.pin_list.clear()
        for c in self.scan.checkpoints:
            item = QListWidgetItem(safe_name(c.name) + ("  (latest)" if c.name == self.scan.latest
                                                        else ""))
            item.setData(Qt.UserRole, c.name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if c.name in pinned else Qt.Unchecked)
            self.pin_list.addItem(item)
        self.pin_list.blockSignals(False)

    # --- closing ------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if self.running():     # never leave a worker without its dialog: stop it, stay open
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:
        if self.running():
            self.cancel()
            return
        super().reject()
