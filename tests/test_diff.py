"""Diff of two checkpoints (core/diff.py, core/pairing.py, ``ckpt-inspect diff``, the Diff tab):
checkpoints written by TF and Keras themselves, every number checked against numpy on the
tensors TensorFlow's reader and h5py read."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import h5py
import ml_dtypes
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from ckpt_gui.core import scan_directory
from ckpt_gui.core.diff import (CHANGED, ONLY_A, ONLY_B, SAME, SHAPE_CHANGED, compare_arrays,
                                diff_checkpoints, result_dict)
from ckpt_gui.ui.compare_dialog import CompareDialog

from conftest import REPO
from test_gui import LOAD_TIMEOUT, open_dir, table_rows, window  # noqa: F401 (the fixture)


def _small_model(seed: int):
    """A Keras model (Dense hidden 4->3, Dense out 3->2) compiled with Adam, and data to fit."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                              keras.layers.Dense(2, name="out")])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(seed)
    return model, *(rng.random((16, n), np.float32) for n in (4, 2))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tf):
    """A Keras model trained with Adam: ckpt-1 (CheckpointManager) and weights.01.weights.h5
    saved after the first epoch, ckpt-2 after the second."""
    d = tmp_path_factory.mktemp("trained")
    model, x, y = _small_model(seed=0)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer), str(d), max_to_keep=5)
    model.fit(x, y, epochs=1, verbose=0)
    manager.save()
    model.save_weights(str(d / "weights.01.weights.h5"))
    model.fit(x, y, epochs=1, verbose=0)
    manager.save()
    return d


def _numpy_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    d = a.astype(np.float64) - b.astype(np.float64)
    l2 = float(np.linalg.norm(d))
    return float(np.abs(d).max()), l2, l2 / float(np.linalg.norm(a.astype(np.float64)))


def test_two_saves_of_a_training_run_differ_as_numpy_says(trained, tf):
    scan = scan_directory(str(trained))
    result = diff_checkpoints(scan.checkpoint("ckpt-1"), scan.checkpoint("ckpt-2"))
    ra, rb = (tf.train.load_checkpoint(str(trained / n)) for n in ("ckpt-1", "ckpt-2"))
    statuses = {v.name: v.status for v in result.variables}
    assert statuses["optimizer/learning_rate"] == SAME
    changed = [v for v in result.variables if v.status == CHANGED]
    assert len(changed) == 12   # 4 weights, their 8 Adam slots
    for v in changed:
        assert v.how == "identity" and v.key_a == v.key_b
        max_abs, l2, rel = _numpy_diff(ra.get_tensor(v.key_a), rb.get_tensor(v.key_b))
        assert v.max_abs_diff == pytest.approx(max_abs, rel=1e-12)
        assert v.l2_diff == pytest.approx(l2, rel=1e-12)
        assert v.rel_change == pytest.approx(rel, rel=1e-12)
    # sorted by change, most first
    rels = [v.rel_change for v in changed]
    assert rels == sorted(rels, reverse=True) and result.variables[-1].status == SAME
    # counters apart: they change with every save and are not counted
    counters = {v.name: v.status for v in result.counters}
    assert counters["save_counter"] == CHANGED and counters["optimizer/iterations"] == CHANGED
    assert counters["_CHECKPOINTABLE_OBJECT_GRAPH"] == SAME
    assert not result.identical


def test_identical_checkpoints_are_all_same(trained, tmp_path):
    other = tmp_path / "copy"
    other.mkdir()
    for f in os.listdir(trained):
        if f.startswith("ckpt-1."):
            shutil.copy(trained / f, other / f)
    a = scan_directory(str(trained)).checkpoint("ckpt-1")
    b = scan_directory(str(other)).checkpoint("ckpt-1")
    result = diff_checkpoints(a, b)
    assert result.identical and result.b_directory == str(other)
    assert all(v.status == SAME and v.max_abs_diff in (0.0, None)
               for v in result.variables + result.counters)
    assert len(result.variables) + len(result.counters) == a.n_variables


def test_one_epoch_saved_in_two_formats_is_all_same(trained, tf):
    """ckpt-1 and weights.01.weights.h5 hold the same epoch under other names: paired by
    identity where the formats give canonical paths, else by restore's fallback."""
    scan = scan_directory(str(trained))
    result = diff_checkpoints(scan.checkpoint("ckpt-1"), scan.checkpoint("weights.01.weights.h5"))
    assert result.identical
    assert [v.status for v in result.variables] == [SAME] * 13   # 4 weights, 8 slots, the lr
    reader = tf.train.load_checkpoint(str(trained / "ckpt-1"))
    with h5py.File(trained / "weights.01.weights.h5", "r") as f:
        for v in result.variables:
            a, b = reader.get_tensor(v.key_a), f[v.key_b][()]
            assert a.shape == b.shape and np.array_equal(a, b), v.name
    paired = {v.key_b for v in result.variables}
    assert "layers/dense/vars/0" in paired and "optimizer/vars/2" in paired


def _write(tf, directory, **values) -> str:
    ckpt = tf.train.Checkpoint(**{k: tf.Variable(v) for k, v in values.items()})
    return ckpt.write(os.path.join(directory, "ckpt"))


@pytest.fixture
def reshaped(tmp_path, tf):
    """Two folders: A with w (4x3), gone and kept; B with w (5x3), new and kept changed."""
    rng = np.random.default_rng(1)
    kept = rng.standard_normal(6).astype(np.float32)
    a, b = tmp_path / "a", tmp_path / "b"
    _write(tf, str(a), w=np.ones((4, 3), np.float32), gone=np.zeros(2, np.float32), kept=kept)
    _write(tf, str(b), w=np.ones((5, 3), np.float32), new=np.zeros(2, np.float32),
           kept=kept * 2)
    return a, b


def test_shape_change_and_variables_of_one_side(reshaped):
    a, b = reshaped
    result = diff_checkpoints(scan_directory(str(a)).checkpoint("ckpt"),
                              scan_directory(str(b)).checkpoint("ckpt"))
    statuses = {v.name: v.status for v in result.variables}
    assert statuses == {"w": SHAPE_CHANGED, "gone": ONLY_A, "new": ONLY_B, "kept": CHANGED}
    w = next(v for v in result.variables if v.name == "w")
    assert (w.shape_a, w.shape_b, w.max_abs_diff) == ((4, 3), (5, 3), None)
    kept = next(v for v in result.variables if v.name == "kept")
    assert kept.rel_change == pytest.approx(1.0, rel=1e-12)   # ‖x - 2x‖ / ‖x‖
    assert [v.status for v in result.variables] == [SHAPE_CHANGED, ONLY_A, ONLY_B, CHANGED]


def test_values_bitwise_nan_and_dtypes():
    x = np.array([1.0, np.nan, 0.0, np.inf], np.float32)
    assert compare_arrays(x, x.copy()).same                      # NaN equals NaN in place
    y = x.copy()
    y[2] = -0.0
    c = compare_arrays(x, y)                                      # equal values, other bits
    assert not c.same and c.max_abs_diff == 0.0
    y = x.copy()
    y[0] = np.nan
    c = compare_arrays(x, y)
    assert not c.same and c.nan_mismatch == 1 and c.max_abs_diff == 0.0
    bf = np.array([1.5, -2.25, 3.0], ml_dtypes.bfloat16)
    other = np.array([1.5, -2.0, 3.0], ml_dtypes.bfloat16)
    c = compare_arrays(bf, other)
    assert (c.max_abs_diff, c.l2_diff) == (0.25, 0.25)
    assert c.rel_change == pytest.approx(0.25 / math.sqrt(1.5**2 + 2.25**2 + 9))
    ints = np.arange(5, dtype=np.int64)
    assert compare_arrays(ints, ints.copy()).same
    assert compare_arrays(ints, ints + 1).max_abs_diff == 1.0
    strings = np.array([b"a", b"b"], dtype=object)
    assert compare_arrays(strings, strings.copy()).same
    c = compare_arrays(strings, np.array([b"a", b"c"], dtype=object))
    assert not c.same and c.l2_diff is None


def test_a_corpus_run_diffs_as_tensorflow_reads_it(corpus_copy, tf):
    """A GAN whose second run auto-named its layers anew (dense_3, then dense_295): paired by
    their checkpoint keys, every number as numpy computes it from TF's reader."""
    d = corpus_copy("supercon-gan-tf2")
    scan = scan_directory(str(d))
    a, b = scan.checkpoint("ckpt-2"), scan.checkpoint("ckpt-3")
    result = diff_checkpoints(a, b)
    assert not any(v.status in (ONLY_A, ONLY_B) for v in result.variables)
    assert any(v.how == "key" and v.name_b for v in result.variables)
    ra, rb = tf.train.load_checkpoint(a.path), tf.train.load_checkpoint(b.path)
    numeric = [v for v in result.variables if v.status in (SAME, CHANGED)
               and v.l2_diff is not None]
    assert numeric and any(v.status == CHANGED for v in numeric)
    for v in numeric:
        x, y = ra.get_tensor(v.key_a), rb.get_tensor(v.key_b)
        assert (v.status == SAME) == (x.dtype == y.dtype and x.tobytes() == y.tobytes())
        if v.status == CHANGED and x.size and np.any(x):
            max_abs, l2, rel = _numpy_diff(x, y)
            assert (v.max_abs_diff, v.l2_diff) == pytest.approx((max_abs, l2), rel=1e-12)
            assert v.rel_change == pytest.approx(rel, rel=1e-12)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ckpt_gui.cli", "diff", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_cli_exit_codes_and_json(trained, reshaped):
    run = _cli(trained, "ckpt-1", "ckpt-2", "--json")
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    assert (out["a"], out["b"]) == ("ckpt-1", "ckpt-2")
    first = out["variables"][0]
    assert {"name", "path", "status", "max_abs_diff", "l2_diff", "rel_change"} <= first.keys()
    changed = [v["rel_change"] for v in out["variables"] if v["status"] == CHANGED]
    assert first["status"] == CHANGED and first["rel_change"] == max(changed)
    assert first["name"].startswith("optimizer/_trainable_variables/")   # the key, as scan
    assert {c["path"]: c["status"] for c in out["counters"]}["save_counter"] == CHANGED

    run = _cli(trained, "ckpt-1", "weights.01.weights.h5")
    assert run.returncode == 0, run.stderr
    assert "13 same" in run.stdout

    a, b = reshaped
    run = _cli(a, "ckpt", "ckpt", "--other-dir", b, "--json")
    assert run.returncode == 1
    assert {v["path"]: v["status"] for v in json.loads(run.stdout)["variables"]} == {
        "w": SHAPE_CHANGED, "gone": ONLY_A, "new": ONLY_B, "kept": CHANGED}
    run = _cli(a, "ckpt", "ckpt", "--other-dir", a)
    assert run.returncode == 0 and "same" in run.stdout

    run = _cli(trained, "ckpt-1", "ckpt-9")
    assert run.returncode == 2 and "no checkpoint 'ckpt-9'" in run.stderr
    run = _cli(trained, "ckpt-1")
    assert run.returncode == 2
    run = _cli(trained, "ckpt-1", "ckpt", "--other-dir", trained / "missing")
    assert run.returncode == 2


def test_ctrl_click_on_two_checkpoints_shows_the_diff(qtbot, window, trained):  # noqa: F811
    open_dir(qtbot, window, trained)
    table = window.checkpoints.table
    rows = {c.name: r for r, c in enumerate(table_rows(window))}

    def click(name, modifier=Qt.NoModifier):
        rect = table.visualRect(table.model().index(rows[name], 0))
        QTest.mouseClick(table.viewport(), Qt.LeftButton, modifier, rect.center())

    click("ckpt-1")
    with qtbot.waitSignal(window.diff.diff_ready, timeout=LOAD_TIMEOUT) as blocker:
        click("weights.01.weights.h5", Qt.ControlModifier)
    assert window.tabs.currentWidget() is window.diff
    result = blocker.args[0]
    assert (result.a, result.b) == ("ckpt-1", "weights.01.weights.h5") and result.identical
    diff_table = window.diff.table
    shown = [diff_table.item(r, 0).text() for r in range(diff_table.rowCount())]
    assert shown[:13] == ["same"] * 13 and len(shown) == 13 + len(result.counters)
    assert "the same" in window.diff.title.text()

    with qtbot.waitSignal(window.diff.diff_ready, timeout=LOAD_TIMEOUT) as blocker:
        click("ckpt-2", Qt.ControlModifier)   # three selected: no diff; then two again
        click("weights.01.weights.h5", Qt.ControlModifier)
    result = blocker.args[0]
    assert (result.a, result.b) == ("ckpt-1", "ckpt-2")
    shown = {diff_table.item(r, 1).text(): diff_table.item(r, 0).text()
             for r in range(diff_table.rowCount())}
    kernel = next(n for n in shown if n.split("/")[-2:] == ["hidden", "kernel"])   # (model auto-named)
    assert shown[kernel] == "changed"
    assert shown["optimizer/learning_rate"] == "same"
    # the selected variable: A, B and A − B drawn, A − B on the diverging map about zero
    with qtbot.waitSignal(window.diff.pair_ready, timeout=LOAD_TIMEOUT) as blocker:
        row = next(r for r in range(diff_table.rowCount())
                   if diff_table.item(r, 1).text() == kernel)
        diff_table.selectRow(row)
    view = blocker.args[0]
    np.testing.assert_array_equal(view.delta.array, view.a.array.astype(np.float64)
                                  - view.b.array.astype(np.float64))
    delta_plot = window.diff.plots["delta"]
    assert delta_plot.cmap_name == "CET-D1" and delta_plot.levels[0] == -delta_plot.levels[1]
    edges, counts_a, counts_b = view.histograms
    assert counts_a.sum() == counts_b.sum() == 12


@pytest.fixture(scope="module")
def continued(tmp_path_factory, tf):
    """One Keras model trained in two folders: run1/ckpt-1 after the first epoch; then trained
    further, run2/ckpt-2 and run2/ckpt-3 (the latest) after the second and third (the save
    counter goes on)."""
    runs = tmp_path_factory.mktemp("runs")
    model, x, y = _small_model(seed=1)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    for folder, epochs in (("run1", 1), ("run2", 2)):
        manager = tf.train.CheckpointManager(checkpoint, str(runs / folder), max_to_keep=5)
        for _ in range(epochs):
            model.fit(x, y, epochs=1, verbose=0)
            manager.save()
    return runs / "run1", runs / "run2"


def _compare_dialog(qtbot, window, name):
    """The dialog of the table's context menu's Compare with… on ``name``."""
    window.checkpoints.compare_requested.emit(name)
    dialogs = window.findChildren(CompareDialog)
    assert len(dialogs) == 1 and dialogs[0].isVisible() and dialogs[0].a.name == name
    return dialogs[0]


def _listed(dialog):
    return [dialog.list.item(r).data(Qt.UserRole) for r in range(dialog.list.count())]


def _open_folder(qtbot, dialog, path):
    with qtbot.waitSignal(dialog.folder_listed, timeout=LOAD_TIMEOUT) as blocker:
        dialog.open_folder(str(path))
    return blocker.args[0]


def test_compare_with_a_checkpoint_of_another_folder(qtbot, window, continued,  # noqa: F811
                                                     monkeypatch):
    """Compare with… → Another Folder…: that folder scanned off the GUI thread, its latest
    preselected; the Diff tab names both folders and says what `ckpt-inspect diff
    --other-dir` says about the same pair."""
    run1, run2 = continued
    open_dir(qtbot, window, run1)
    dialog = _compare_dialog(qtbot, window, "ckpt-1")
    assert _listed(dialog) == [] and "No other checkpoint in this folder" in dialog.message.text()

    starts = []

    def choose(parent, caption, start):
        starts.append(start)
        return str(run2)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", choose)
    with qtbot.waitSignal(dialog.folder_listed, timeout=LOAD_TIMEOUT) as blocker:
        dialog.choose_folder()
        assert dialog.task.is_running() and "Reading" in dialog.message.text()
    assert starts == [str(run1.parent)]   # nothing remembered yet: next to the open folder
    assert blocker.args[0].directory == str(run2)
    assert _listed(dialog) == ["ckpt-2", "ckpt-3"]
    assert dialog.choice().name == "ckpt-3" and dialog.choice().path == str(run2 / "ckpt-3")
    assert window.settings.value("compare/lastDirectory") == str(run2)

    with qtbot.waitSignal(window.diff.diff_ready, timeout=LOAD_TIMEOUT) as blocker:
        dialog.accept()
    assert window.tabs.currentWidget() is window.diff
    result = blocker.args[0]
    assert (result.a_directory, result.b_directory) == (str(run1), str(run2))
    title = window.diff.title.text()
    assert "ckpt-1 <i>in run1</i>" in title and "ckpt-3 <i>in run2</i>" in title
    assert window.checkpoints.selected_names() == ["ckpt-1"]   # A stays the open folder's

    run = _cli(run1, "ckpt-1", "ckpt-3", "--other-dir", run2, "--json")
    assert run.returncode == 1, run.stderr
    cli = json.loads(run.stdout)
    assert result_dict(result) == cli   # every status and number, exactly
    statuses = {v["path"]: v["status"] for v in cli["variables"]}
    assert statuses["optimizer/learning_rate"] == SAME
    assert sum(s == CHANGED for s in statuses.values()) == 12   # 4 weights, 8 Adam slots
    shown = {window.diff.table.item(r, 1).text(): window.diff.table.item(r, 0).text()
             for r in range(window.diff.table.rowCount())}
    assert shown == {v.name: v.status.replace("_", " ")
                     for v in result.variables + result.counters}

    # Ctrl+D: the current checkpoint; its "Another Folder…" opens where the last one was chosen
    qtbot.waitUntil(lambda: window.findChildren(CompareDialog) == [])   # closed, deleted
    action = window.findChild(QAction, "actionCompare")
    assert action.shortcut().toString() == "Ctrl+D"
    action.trigger()
    dialog = window.findChild(CompareDialog)
    assert dialog.a.name == "ckpt-1"
    with qtbot.waitSignal(dialog.folder_listed, timeout=LOAD_TIMEOUT):
        dialog.choose_folder()
    assert starts == [str(run1.parent), str(run2)]


def test_compare_dialog_says_why_a_folder_has_nothing_to_pick(qtbot, window, continued,  # noqa: F811
                                                               tmp_path):
    run1, run2 = continued
    open_dir(qtbot, window, run2)
    dialog = _compare_dialog(qtbot, window, "ckpt-3")
    # this folder: the others listed at once, the checkpoint saved before A preselected
    assert _listed(dialog) == ["ckpt-2"] and dialog.choice().name == "ckpt-2"
    assert "This folder" in dialog.folder.text() and not dialog.this_folder_button.isVisible()

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    assert _open_folder(qtbot, dialog, empty).checkpoints == []
    assert _listed(dialog) == [] and dialog.choice() is None
    assert dialog.message.text() == f"No checkpoints in {empty}."
    assert not dialog.compare_button.isEnabled()

    assert _open_folder(qtbot, dialog, tmp_path / "missing") is None
    assert dialog.message.text() == f"Cannot read that folder: {tmp_path / 'missing'}: no such directory"
    assert _listed(dialog) == []

    # the same folder, reached by another path: listed as it is, nothing scanned
    listed = []
    dialog.folder_listed.connect(listed.append)
    dialog.open_folder(str(run2 / "sub" / ".."))
    assert listed == [window.scan] and not dialog.task.is_running()
    assert _listed(dialog) == ["ckpt-2"]

    # two folders asked for in a row: only the last one's checkpoints land
    with qtbot.waitSignal(dialog.folder_listed, timeout=LOAD_TIMEOUT):
        dialog.open_folder(str(run1))
        dialog.open_folder(str(empty))
    with qtbot.waitSignal(dialog.folder_listed, timeout=LOAD_TIMEOUT):
        dialog.open_folder(str(run1))   # queued behind the superseded scans on the engine thread
    assert [s.directory if s else None for s in listed[1:]] == [str(empty), str(run1)]
    assert _listed(dialog) == ["ckpt-1"] and dialog.choice().path == str(run1 / "ckpt-1")

    # this folder's pick: both rows selected, the diff follows with A the earlier one
    dialog.this_folder_button.click()
    assert _listed(dialog) == ["ckpt-2"]
    with qtbot.waitSignal(window.diff.diff_ready, timeout=LOAD_TIMEOUT) as blocker:
        dialog.accept()
    assert (blocker.args[0].a, blocker.args[0].b) == ("ckpt-2", "ckpt-3")
    assert window.checkpoints.selected_names() == ["ckpt-2", "ckpt-3"]
    assert "<i>" not in window.diff.title.text()


def test_another_folder_leaves_nothing_of_the_last_comparison_or_history(
        qtbot, window, trained, reshaped):  # noqa: F811
    """Opening another folder clears the Diff and Across-checkpoints tabs: no stale table,
    picture or line of the folder before."""
    from ckpt_gui.ui.diff_panel import PROMPT as DIFF_PROMPT
    from ckpt_gui.ui.trend_panel import PROMPT as TREND_PROMPT

    scan = open_dir(qtbot, window, trained)
    with qtbot.waitSignal(window.diff.diff_ready, timeout=LOAD_TIMEOUT):
        window.compare(scan.checkpoint("ckpt-1"), scan.checkpoint("ckpt-2"))
    assert window.diff.table.rowCount() > 0
    window.checkpoints.select("ckpt-2")
    kernel = next(v for v in scan.checkpoint("ckpt-2").variables
                  if v.identity == "hidden/kernel")
    assert window.variables.select(kernel.name)
    with qtbot.waitSignal(window.trend.trend_ready, timeout=LOAD_TIMEOUT):
        window.tabs.setCurrentWidget(window.trend)
    assert window.trend.table.rowCount() == 3 and window.trend.stats_plot.listDataItems()

    window.tabs.setCurrentWidget(window.preview)   # the two tabs hidden: nothing redraws them
    open_dir(qtbot, window, reshaped[0])
    assert (window.diff.table.rowCount(), window.diff.title.text()) == (0, DIFF_PROMPT)
    assert window.diff.pair is None and window.diff.result is None
    assert window.trend.trend is None and window.trend.title.text() == TREND_PROMPT
    assert window.trend.table.rowCount() == 0 and not window.trend.stats_plot.listDataItems()
