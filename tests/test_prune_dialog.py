"""The Prune… dialog (issue 6): plan, confirmation, worker, progress, cancel, undo.

Copies of ../shared/corpus in tmp_path, the trash pointed at tmp_path; waits on signals only.
"""
from __future__ import annotations

import os
import threading

import pytest
from PySide6.QtCore import Qt

from _prune_support import assert_tf_agrees, listing, snapshot, tmp_trash  # noqa: F401
from ckpt_gui.core import prune, scan_directory, statefile
from ckpt_gui.ui.prune_dialog import PruneDialog

pytestmark = pytest.mark.usefixtures("tmp_trash")
TIMEOUT = 60_000


def open_dialog(qtbot, directory, selected=()):
    dlg = PruneDialog(scan_directory(str(directory)), list(selected))
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def confirm_and_wait(qtbot, dlg):
    qtbot.mouseClick(dlg.delete_button, Qt.LeftButton)
    assert dlg.confirm_panel.isVisible() and not dlg.delete_button.isEnabled()
    with qtbot.waitSignal(dlg.pruned, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dlg.confirm_button, Qt.LeftButton)
    return blocker.args[0]


def assert_nothing_marked(dlg):
    """The safe state after a deletion: nothing selected nor planned, the trash chosen."""
    assert dlg.selected == [] and dlg.mode_selected.isChecked()
    assert not dlg.mode_selected.isEnabled() and dlg.mode_selected.text().endswith("(0)")
    assert dlg.plan.empty and not dlg.delete_button.isEnabled()
    assert dlg.trash_radio.isChecked() and not dlg.include_latest_check.isChecked()
    assert dlg.summary_label.text() == "Nothing to delete."


def tree_rows(dlg):
    t = dlg.plan_tree
    return {t.topLevelItem(i).data(0, Qt.UserRole): (t.topLevelItem(i).text(1),
                                                      t.topLevelItem(i).text(3))
            for i in range(t.topLevelItemCount())}


def test_selected_to_trash_then_undo(qtbot, corpus_copy, tmp_trash, tf):
    d = corpus_copy("tictactoe-tf2mgr-keras3opt")
    before, before_state = snapshot(d), open(d / "checkpoint").read()
    dlg = open_dialog(qtbot, d, ["ckpt-19", "ckpt-17"])
    assert dlg.mode_selected.isChecked() and not dlg.policy_box.isEnabled()
    assert tree_rows(dlg) == {"ckpt-17": ("delete", "selected"),
                              "ckpt-18": ("keep", "not selected"),
                              "ckpt-19": ("delete", "selected")}
    assert dlg.files_text.toPlainText().splitlines() == [
        "ckpt-17.index", "ckpt-17.data-00000-of-00001",
        "ckpt-19.index", "ckpt-19.data-00000-of-00001"]
    state_after = dlg.state_text.toPlainText()
    assert state_after.startswith('model_checkpoint_path: "ckpt-18"\n'
                                  'all_model_checkpoint_paths: "ckpt-18"\n')
    assert dlg.summary_label.text() == ("Deletes 2 checkpoints: 4 files, 11.1 KB freed. "
                                        "Latest afterwards: ckpt-18.")
    qtbot.mouseClick(dlg.delete_button, Qt.LeftButton)
    assert "move them to the trash" in dlg.confirm_label.text()
    assert "This includes the latest, ckpt-19; the state file will name ckpt-18." in \
        dlg.confirm_label.text()
    qtbot.mouseClick(dlg.back_button, Qt.LeftButton)            # changed my mind
    assert not dlg.confirm_panel.isVisible() and snapshot(d) == before

    with qtbot.waitSignal(dlg.about_to_delete) as closing:
        result = confirm_and_wait(qtbot, dlg)
    assert closing.args == [["ckpt-17", "ckpt-19"]]
    assert result.ok and result.deleted == ["ckpt-17", "ckpt-19"]
    assert listing(d) == ["checkpoint", "ckpt-18.data-00000-of-00001", "ckpt-18.index"]
    assert open(d / "checkpoint").read() == state_after
    assert sorted(os.listdir(tmp_trash / "files")) == [
        "ckpt-17.data-00000-of-00001", "ckpt-17.index",
        "ckpt-19.data-00000-of-00001", "ckpt-19.index"]
    assert "Deleted 2 (4 files, 11.1 KB) to the trash." in dlg.result_label.text()
    assert_tf_agrees(tf, d)
    # The dialog now shows the folder as it is, and marks nothing for another deletion.
    assert [c.name for c in dlg.scan.checkpoints] == ["ckpt-18"]
    assert_nothing_marked(dlg)

    assert dlg.undo_button.isEnabled()
    with qtbot.waitSignal(dlg.restored, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dlg.undo_button, Qt.LeftButton)
    assert blocker.args[0].restored == ["ckpt-17", "ckpt-19"]
    assert snapshot(d) == before
    assert open(d / "checkpoint").read() == before_state
    assert os.listdir(tmp_trash / "files") == []
    assert not dlg.undo_button.isEnabled()
    assert [c.name for c in dlg.scan.checkpoints] == ["ckpt-17", "ckpt-18", "ckpt-19"]
    assert_tf_agrees(tf, d)


def test_policy_controls_change_the_plan(qtbot, corpus_copy):
    d = corpus_copy("charity-hd5f-keras-tf")
    dlg = open_dialog(qtbot, d)
    assert dlg.mode_policy.isChecked() and not dlg.mode_selected.isEnabled()
    assert dlg.keep_last_check.isChecked() and dlg.keep_last_spin.value() == 3
    assert dlg.plan.kept == ["weights.90.hd5f", "weights.95.hd5f", "weights.100.hd5f"]
    dlg.keep_last_spin.setValue(1)
    assert dlg.plan.kept == ["weights.100.hd5f"]
    assert tree_rows(dlg)["weights.100.hd5f"] == ("keep", "the latest checkpoint")
    dlg.keep_every_check.setChecked(True)
    dlg.keep_every_spin.setValue(25)
    assert dlg.plan.kept == ["weights.25.hd5f", "weights.50.hd5f", "weights.75.hd5f",
                             "weights.100.hd5f"]
    pin = next(dlg.pin_list.item(i) for i in range(dlg.pin_list.count())
               if dlg.pin_list.item(i).data(Qt.UserRole) == "weights.05.hd5f")
    pin.setCheckState(Qt.Checked)
    assert "weights.05.hd5f" in dlg.plan.kept
    assert tree_rows(dlg)["weights.05.hd5f"] == ("keep", "pinned")
    dlg.keep_every_check.setChecked(False)
    dlg.keep_last_spin.setValue(0)
    dlg.include_latest_check.setChecked(True)
    assert dlg.plan.kept == ["weights.05.hd5f"]
    assert dlg.state_text.toPlainText() == ('model_checkpoint_path: "weights.05.hd5f"\n'
                                            'all_model_checkpoint_paths: "weights.05.hd5f"\n')
    assert "Latest afterwards: weights.05.hd5f" in dlg.summary_label.text()
    dlg.keep_last_check.setChecked(False)                      # no rule: nothing goes
    assert dlg.plan.empty and not dlg.delete_button.isEnabled()
    assert dlg.summary_label.text() == "Nothing to delete."


def test_permanent_deletion_has_no_undo(qtbot, corpus_copy, tmp_trash, tf):
    d = corpus_copy("supercon-gan-tf2")
    dlg = open_dialog(qtbot, d)
    dlg.keep_last_spin.setValue(1)       # of each run: ckpt-3..5, and the restart ckpt-1..2
    dlg.permanent_radio.setChecked(True)
    assert dlg.plan.to_trash is False and dlg.plan.deleted == ["ckpt-1", "ckpt-3", "ckpt-4"]
    assert dlg.state_text.toPlainText().startswith("(unchanged)\n")
    qtbot.mouseClick(dlg.delete_button, Qt.LeftButton)
    assert "cannot be undone" in dlg.confirm_label.text()
    with qtbot.waitSignal(dlg.pruned, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dlg.confirm_button, Qt.LeftButton)
    result = blocker.args[0]
    assert result.ok and not result.to_trash and not result.can_undo
    assert listing(d) == ["checkpoint"] + sorted(
        f"ckpt-{n}.{s}" for n in (2, 5) for s in ("index", "data-00000-of-00001"))
    assert not tmp_trash.exists()
    assert_nothing_marked(dlg)          # "Move to the trash" is chosen again
    assert not dlg.undo_button.isEnabled()
    assert "permanently" in dlg.result_label.text()
    assert_tf_agrees(tf, d)


def test_the_policy_applies_within_each_run_or_to_one(qtbot, corpus_copy):
    d = corpus_copy("supercon-gan-tf2")
    dlg = open_dialog(qtbot, d)
    combo = dlg.run_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "every run (2)", "ckpt-{N} (3 checkpoints)", "ckpt-{N}#2 (2 checkpoints)"]
    dlg.keep_last_spin.setValue(1)
    t = dlg.plan_tree
    assert {t.topLevelItem(i).text(0): t.topLevelItem(i).text(4)
            for i in range(t.topLevelItemCount())} == {
        "ckpt-1": "ckpt-{N}#2", "ckpt-2  (latest)": "ckpt-{N}#2",
        "ckpt-3": "ckpt-{N}", "ckpt-4": "ckpt-{N}", "ckpt-5": "ckpt-{N}"}
    assert dlg.plan.deleted == ["ckpt-1", "ckpt-3", "ckpt-4"]
    assert tree_rows(dlg)["ckpt-5"] == ("keep", "one of the last 1 of run ckpt-{N}")
    combo.setCurrentIndex(2)                                   # the restart only
    assert dlg.plan.deleted == ["ckpt-1"]
    assert tree_rows(dlg)["ckpt-3"] == ("keep", "in another run (ckpt-{N})")


def test_progress_and_cancel_and_close_while_running(qtbot, corpus_copy, monkeypatch):
    d = corpus_copy("charity-hd5f-keras-tf")
    dlg = open_dialog(qtbot, d)
    dlg.keep_last_spin.setValue(1)
    assert len(dlg.plan.deleted) == 19
    reached, go = threading.Event(), threading.Event()
    real = prune._remove_one

    def held(path, to_trash):
        if path.endswith("weights.10.hd5f.data-00000-of-00001"):
            reached.set()
            assert go.wait(TIMEOUT / 1000)
        return real(path, to_trash)

    monkeypatch.setattr(prune, "_remove_one", held)
    qtbot.mouseClick(dlg.delete_button, Qt.LeftButton)
    with qtbot.waitSignal(dlg.task.progress, timeout=TIMEOUT,
                          check_params_cb=lambda done, total, what:
                          what == "weights.10.hd5f.data-00000-of-00001"):
        qtbot.mouseClick(dlg.confirm_button, Qt.LeftButton)
    assert dlg.progress_bar.isVisible() and dlg.progress_bar.maximum() == 39
    assert dlg.progress_bar.value() == 4
    assert not dlg.close_button.isEnabled() and not dlg.delete_button.isEnabled()
    dlg.close()                                    # refused while running: it cancels instead
    assert dlg.isVisible() and dlg.cancel_button.text() == "Cancelling…"
    with qtbot.waitSignal(dlg.pruned, timeout=TIMEOUT) as blocker:
        go.set()
    result = blocker.args[0]
    assert reached.is_set()
    assert result.cancelled and result.deleted == ["weights.05.hd5f", "weights.10.hd5f"]
    assert len(result.not_started) == 17 and result.not_started[0] == "weights.15.hd5f"
    assert "Cancelled:" in dlg.result_label.text()
    assert sorted(f for f in listing(d) if f.startswith(("weights.05.", "weights.10."))) == []
    assert len([f for f in listing(d) if f.endswith(".index")]) == 18
    assert open(d / "checkpoint").read() == ('model_checkpoint_path: "weights.100.hd5f"\n'
                                             'all_model_checkpoint_paths: "weights.100.hd5f"\n')
    assert not dlg.progress_bar.isVisible() and dlg.close_button.isEnabled()


def test_a_failure_is_shown_and_the_state_file_stays_true(qtbot, corpus_copy, monkeypatch):
    d = corpus_copy("tictactoe-tf2mgr-keras3opt")
    dlg = open_dialog(qtbot, d, ["ckpt-17", "ckpt-18"])
    real = prune._remove_one

    def refuse(path, to_trash):
        if path.endswith("ckpt-18.index"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, to_trash)

    monkeypatch.setattr(prune, "_remove_one", refuse)
    result = confirm_and_wait(qtbot, dlg)
    assert result.deleted == ["ckpt-17"] and list(result.failed) == ["ckpt-18"]
    assert "Failed: ckpt-18.index: Permission denied" in dlg.result_label.text()
    raw = statefile.read_state_file(str(d))
    assert raw.all_model_checkpoint_paths == ["ckpt-18", "ckpt-19"]
    assert raw.model_checkpoint_path == "ckpt-19"
    assert_nothing_marked(dlg)          # trying again is a new choice


def test_orphan_files_are_a_separate_choice(qtbot, corpus_copy):
    d = corpus_copy("regr-contrib-abs-home-tf1")
    os.remove(d / "model.ckpt-0.index")
    for n in ("model.ckpt-0.data-00000-of-00001", "model.ckpt-0.meta"):
        os.utime(d / n, (1_600_000_000, 1_600_000_000))
    state = open(d / "checkpoint").read()
    dlg = open_dialog(qtbot, d)
    assert dlg.mode_orphans.isEnabled() and dlg.mode_orphans.text() == "Orphan files (2)"
    assert all(f.checkpoint is not None for f in dlg.plan.files)
    dlg.mode_orphans.setChecked(True)
    assert dlg.plan.kind == prune.ORPHANS
    assert dlg.files_text.toPlainText().splitlines() == [
        "model.ckpt-0.data-00000-of-00001", "model.ckpt-0.meta"]
    assert dlg.state_text.toPlainText().startswith("(unchanged)\n")
    result = confirm_and_wait(qtbot, dlg)
    assert result.ok and result.files == ["model.ckpt-0.data-00000-of-00001",
                                          "model.ckpt-0.meta"]
    assert not [f for f in listing(d) if f.startswith("model.ckpt-0")]
    assert open(d / "checkpoint").read() == state
    assert not dlg.mode_orphans.isEnabled() and dlg.mode_orphans.text() == "Orphan files (0)"
