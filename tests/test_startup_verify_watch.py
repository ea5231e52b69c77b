"""Issue 11: the folder is listed before TensorFlow loads; verify several checkpoints with a
result per row; the watcher sees files changed in place."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from ckpt_gui.core import scan_directory
from ckpt_gui.core import tfrt
from ckpt_gui.ui.checkpoints_panel import STATUS
from ckpt_gui.ui.main_window import MainWindow
from ckpt_gui.ui.tasks import tensorflow_thread
from ckpt_gui.ui.verification import Started

from conftest import REPO
from test_gui import open_dir, window  # noqa: F401 (fixture)

LOAD_TIMEOUT = 60_000


def shown_status(window, name: str) -> str:
    """The Status cell of a checkpoint as the table shows it."""
    panel = window.checkpoints
    row = panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(name), 0)).row()
    return panel.proxy.index(row, STATUS).data()


def damage(path, offset: int, length: int = 16) -> None:
    """Flip bytes in place (same size: only the stored checksums can tell)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(length)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def unreadable_by_tensorflow(tf, prefix: str) -> int:
    reader = tf.train.load_checkpoint(prefix)
    failures = 0
    for key in reader.get_variable_to_shape_map():
        try:
            reader.get_tensor(key)
        except Exception:
            failures += 1
    return failures


# --- the folder before TensorFlow ------------------------------------------------------------

def test_the_table_is_filled_while_tensorflow_is_not_yet_imported(corpus_copy):
    """The app, in a fresh process, reports the moment the first scan's rows are painted and
    which heavy modules were imported by then (CKPT_GUI_STARTUP_REPORT=table)."""
    path = corpus_copy("charity-hd5f-keras-tf")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CKPT_GUI_STARTUP_REPORT="table",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-m", "ckpt_gui", str(path)], capture_output=True,
                         text=True, env=env, timeout=120)
    lines = [line.split() for line in out.stdout.splitlines() if line.startswith("ckpt_gui-table")]
    assert len(lines) == 1, out.stdout + out.stderr[-2000:]
    _, _, rows, imported = lines[0]
    assert int(rows) == 20
    assert "tensorflow" not in imported.split(",")
    assert "pyqtgraph" not in imported.split(",")


def test_scans_do_not_queue_behind_tensorflow(qtbot, window, corpus_copy, tf):
    """While the TensorFlow thread is busy (as while it imports), a scan lands and an HDF5
    checkpoint is verified."""
    path = corpus_copy("churn-keras3-weights-h5")
    busy = threading.Event()
    release = threading.Event()
    tensorflow_thread().start(lambda: (busy.set(), release.wait(LOAD_TIMEOUT / 1000)))
    try:
        assert busy.wait(LOAD_TIMEOUT / 1000)  # (after the window's own load_tensorflow_job)
        scan = open_dir(qtbot, window, path)
        assert [c.name for c in scan.checkpoints] == ["model.weights.h5"]
        with qtbot.waitSignal(window.verify_task.finished, timeout=LOAD_TIMEOUT):
            window.verify_all()
        assert window.scan.checkpoints[0].verified
        assert window.scan.checkpoints[0].n_readable == 20
        assert not release.is_set()
    finally:
        release.set()


def test_work_that_needs_tensorflow_waits_for_it_and_says_so(qtbot, window, corpus_copy, tf,
                                                             monkeypatch):
    path = corpus_copy("tictactoe-tf2mgr-keras3opt")
    open_dir(qtbot, window, path)
    monkeypatch.setattr(tfrt, "_tf", None)  # as while another thread imports TensorFlow
    tfrt._lock.acquire()
    try:
        window.verify("ckpt-18")
        qtbot.waitUntil(lambda: "Waiting for TensorFlow to finish loading: verification needs it"
                        in window.statusBar().currentMessage(), timeout=LOAD_TIMEOUT)
        assert shown_status(window, "ckpt-18") == "verifying…"
        with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
            window.refresh()  # a scan meanwhile is not held up
        assert window.verify_task.is_running()
        tfrt._tf = tf
    finally:
        tfrt._lock.release()
    qtbot.waitUntil(lambda: not window.verify_task.is_running(), timeout=LOAD_TIMEOUT)
    assert window.scan.checkpoint("ckpt-18").n_readable == 19
    assert shown_status(window, "ckpt-18") == "ok · 19/19 read"


# --- verify several ---------------------------------------------------------------------------

def test_verify_all_shows_each_row_as_it_goes_and_a_summary(qtbot, window, corpus_copy, tf):
    path = corpus_copy("tictactoe-tf2mgr-keras3opt")
    damage(path / "ckpt-18.data-00000-of-00001", 2000)
    failures = unreadable_by_tensorflow(tf, str(path / "ckpt-18"))
    assert 0 < failures < 19
    open_dir(qtbot, window, path)
    assert [shown_status(window, n) for n in ("ckpt-17", "ckpt-18", "ckpt-19")] == ["ok"] * 3
    seen = []

    def on_step(step):
        if isinstance(step, Started):
            seen.append((step.name, [shown_status(window, n) for n in ("ckpt-17", "ckpt-18",
                                                                      "ckpt-19")]))
    window.verify_task.partial.connect(on_step)
    with qtbot.waitSignal(window.verify_task.finished, timeout=LOAD_TIMEOUT):
        QTest.keyClick(window, Qt.Key_V, Qt.ControlModifier | Qt.AltModifier)  # Verify All
        assert window.progress.isVisible() and window.cancel_button.isVisible()
    assert seen == [
        ("ckpt-17", ["verifying…", "waiting…", "waiting…"]),
        ("ckpt-18", ["ok · 19/19 read", "verifying…", "waiting…"]),
        ("ckpt-19", ["ok · 19/19 read", f"partial · {19 - failures}/19 read", "verifying…"]),
    ]
    assert shown_status(window, "ckpt-19") == "ok · 19/19 read"
    text = (f"Verified 3 checkpoints: 2 ok, 1 partial "
            f"(ckpt-18: {19 - failures} of 19 tensors read).")
    assert window.checkpoints.verify_summary.text() == text
    assert window.checkpoints.verify_summary.isVisible()
    assert window.statusBar().currentMessage() == text
    assert not window.progress.isVisible()
    # the summary stays until the next scan
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        window.refresh()
    assert not window.checkpoints.verify_summary.isVisible()
    assert shown_status(window, "ckpt-18") == "ok"


def test_verify_the_selected_rows(qtbot, window, corpus_copy):
    path = corpus_copy("tictactoe-tf2mgr-keras3opt")
    open_dir(qtbot, window, path)
    table = window.checkpoints.table
    QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.NoModifier,
                     table.visualRect(table.model().index(0, 0)).center())
    QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.ControlModifier,
                     table.visualRect(table.model().index(2, 0)).center())
    assert window.checkpoints.selected_names() == ["ckpt-17", "ckpt-19"]
    with qtbot.waitSignal(window.verify_task.finished, timeout=LOAD_TIMEOUT):
        QTest.keyClick(window, Qt.Key_V, Qt.ControlModifier | Qt.ShiftModifier)
    assert {c.name: c.verified for c in window.scan.checkpoints} == \
        {"ckpt-17": True, "ckpt-18": False, "ckpt-19": True}
    assert window.checkpoints.selected_names() == ["ckpt-17", "ckpt-19"]  # kept through updates
    assert window.checkpoints.verify_summary.text() == "Verified 2 checkpoints: 2 ok."


def test_cancel_a_verification(qtbot, window, corpus_copy):
    path = corpus_copy("charity-hd5f-keras-tf")
    open_dir(qtbot, window, path)
    landed = []

    def on_step(step):
        if not isinstance(step, Started):
            landed.append(step.name)
            if len(landed) == 1:
                QTest.keyClick(window, Qt.Key_Escape)
    window.verify_task.partial.connect(on_step)
    with qtbot.waitSignal(window.verify_task.busy, timeout=LOAD_TIMEOUT,
                          check_params_cb=lambda busy: not busy):
        window.verify_all()
    assert window.checkpoints.verify_summary.text() == \
        "Verification cancelled: 1 of 20 checkpoints verified: 1 ok."
    assert [c.name for c in window.scan.checkpoints if c.verified] == landed == ["weights.05.hd5f"]
    statuses = {shown_status(window, c.name) for c in window.scan.checkpoints}
    assert statuses == {"ok", "ok · 24/24 read"}  # no row left "waiting…" or "verifying…"
    assert not window.progress.isVisible() and not window.cancel_action.isEnabled()


def test_esc_in_the_filter_clears_it_first_then_cancels(qtbot, window, corpus_copy):
    """Esc is both "clear the filter" and "cancel": a filter holding text takes it, an empty
    one leaves it to the window."""
    open_dir(qtbot, window, corpus_copy("charity-hd5f-keras-tf"))
    window.variables.filter.setFocus()
    window.variables.filter.setText("kernel")
    landed = []

    def on_step(step):
        if not isinstance(step, Started):
            landed.append(step.name)
            if len(landed) == 1:
                QTest.keyClick(window.variables.filter, Qt.Key_Escape)  # clears the filter
                assert window.variables.filter.text() == ""
                QTest.keyClick(window.variables.filter, Qt.Key_Escape)  # cancels
    window.verify_task.partial.connect(on_step)
    with qtbot.waitSignal(window.verify_task.busy, timeout=LOAD_TIMEOUT,
                          check_params_cb=lambda busy: not busy):
        window.verify_all()
    assert landed == ["weights.05.hd5f"]
    assert window.checkpoints.verify_summary.text().startswith("Verification cancelled: 1 of 20")


# --- the watcher ----------------------------------------------------------------------------

def test_a_data_file_truncated_in_place_is_seen_without_refresh(qtbot, window, corpus_copy):
    path = corpus_copy("charity-hd5f-keras-tf")
    before = open_dir(qtbot, window, path)
    data = path / "weights.50.hd5f.data-00000-of-00001"
    size = data.stat().st_size
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT) as blocker:
        os.truncate(data, size // 2)   # in place: the folder's listing does not change
    after = blocker.args[0]
    expected = scan_directory(str(path)).checkpoint("weights.50.hd5f")
    changed = after.checkpoint("weights.50.hd5f")
    assert changed.status == expected.status != "ok"
    assert changed.problems == expected.problems
    assert shown_status(window, "weights.50.hd5f") == expected.status
    # the other rows were not inspected again: the very same objects
    assert all(a is b for a, b in zip(after.checkpoints, before.checkpoints)
               if a.name != "weights.50.hd5f")
    assert after.latest == before.latest == "weights.100.hd5f"


def test_reinspecting_named_checkpoints(corpus_copy):
    from ckpt_gui.core.scan import reinspect_checkpoints

    path = corpus_copy("tictactoe-tf2mgr-keras3opt")
    before = scan_directory(str(path))
    (path / "ckpt-19.data-00000-of-00001").write_bytes(b"")   # emptied in place
    after = reinspect_checkpoints(before, ["ckpt-19"])
    assert after.checkpoint("ckpt-19").status == "broken"
    assert after.checkpoint("ckpt-17") is before.checkpoint("ckpt-17")
    # the state file's latest is broken now: said, as a full scan says it
    assert after.state_file.problems == scan_directory(str(path)).state_file.problems
    assert any("ckpt-19, is broken" in p for p in after.state_file.problems)
    assert before.checkpoint("ckpt-19").status == "ok"   # the caller's scan is left alone
    # a checkpoint that appeared meanwhile: the listing differs, so everything is scanned
    for f in ("index", "data-00000-of-00001"):
        (path / f"ckpt-20.{f}").write_bytes((path / f"ckpt-18.{f}").read_bytes())
    again = reinspect_checkpoints(after, ["ckpt-19"])
    assert [c.name for c in again.checkpoints] == ["ckpt-17", "ckpt-18", "ckpt-19", "ckpt-20"]
    assert again.checkpoint("ckpt-17") is not before.checkpoint("ckpt-17")


def test_the_memory_budget_is_a_remembered_setting(qtbot, tmp_path, monkeypatch, corpus_copy):
    """View → Memory Budget…: refusals follow it at once, and the next session keeps it."""
    from PySide6.QtWidgets import QInputDialog

    from ckpt_gui.core import limits

    settings_file = str(tmp_path / "budget.ini")
    w = MainWindow(settings=QSettings(settings_file, QSettings.IniFormat))
    qtbot.addWidget(w)
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (1 / 1024, True))  # 1 MB
    try:
        w.ask_memory_budget()
        assert limits.memory_budget() == 1 << 20
        with pytest.raises(limits.OverBudget, match=r"x: 2\.0 MB does not fit the memory "
                                                    r"budget of 1\.0 MB"):
            limits.check_fits("x", 2 << 20)
        limits.set_memory_budget(None)
        again = MainWindow(settings=QSettings(settings_file, QSettings.IniFormat))
        qtbot.addWidget(again)
        assert limits.memory_budget() == 1 << 20          # remembered
        monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (0.0, True))
        again.ask_memory_budget()                          # 0: back to the default
        assert limits.memory_budget() == limits._default_budget()
    finally:
        limits.set_memory_budget(None)


def test_the_waiting_for_tensorflow_message_goes_when_it_has_loaded(qtbot, window):
    window._on_waiting_for_tensorflow("some reading thread")
    assert window.statusBar().currentMessage().startswith("Waiting for TensorFlow")
    window._on_tensorflow("2.21.0")
    assert window.statusBar().currentMessage() == ""
    assert window.tf_status.text() == "TensorFlow 2.21.0"
