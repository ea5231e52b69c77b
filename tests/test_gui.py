"""The desktop app as a user drives it (offscreen): open, browse, preview, react to the disk."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolBar

from ckpt_gui.core import scan_directory
from ckpt_gui.core.preview import IMAGE, TREE, VECTOR
from ckpt_gui.core.reading import read_tensor
from ckpt_gui.ui.main_window import MainWindow
from ckpt_gui.ui.models import OBJECT_ROLE

from conftest import REPO, corpus_names

LOAD_TIMEOUT = 60_000


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    w.after_first_paint()
    yield w
    w.close()


def open_dir(qtbot, window, path):
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT) as blocker:
        window.open_path(str(path))
    return blocker.args[0]


def table_rows(window):
    proxy = window.checkpoints.proxy
    return [proxy.data(proxy.index(r, 0), OBJECT_ROLE) for r in range(proxy.rowCount())]


def tree_variables(window):
    return {n.variable.name for n in window.variables.model.tree.root.walk()
            if n.variable is not None}


@pytest.mark.parametrize("name", corpus_names())
def test_panels_show_what_the_engine_says(qtbot, window, corpus_copy, name):
    path = corpus_copy(name)
    expected = scan_directory(str(path))
    scan = open_dir(qtbot, window, path)
    rows = table_rows(window)
    assert [c.name for c in rows] == [c.name for c in expected.checkpoints]  # natural order
    assert [(c.number, c.status, c.n_variables) for c in rows] == \
        [(c.number, c.status, c.n_variables) for c in expected.checkpoints]
    assert window.windowTitle().startswith(path.name)
    # the latest is selected and marked
    assert window.checkpoints.current().name == expected.latest
    latest_row = window.checkpoints.model.row_of(expected.latest)
    assert "latest" in window.checkpoints.model.index(latest_row, 0).data()
    # every variable of every checkpoint appears in the tree
    for c in scan.checkpoints:
        window.checkpoints.select(c.name)
        assert tree_variables(window) == {v.name for v in c.variables}
        for problem in c.problems:
            assert problem in window.checkpoints.details.text().replace("&lt;", "<").replace(
                "&gt;", ">").replace("&amp;", "&")
    for problem in expected.state_file.problems:
        assert problem in window.checkpoints.problems.text()


def test_broken_checkpoint_shows_why(qtbot, window, corpus_copy):
    path = corpus_copy("daviesx-partial-data-tf1")
    open_dir(qtbot, window, path)
    window.checkpoints.select("cnn.ckpt")
    assert "cnn.ckpt.data-00000-of-00001 is missing: 27 of 27 variables cannot be read" in \
        window.checkpoints.details.text()
    row = window.checkpoints.model.row_of("cnn.ckpt")
    tip = window.checkpoints.model.index(row, 0).data(Qt.ToolTipRole)
    assert "cnn.ckpt.data-00000-of-00001 is missing" in tip
    # selecting one of its variables shows the reason instead of a plot
    with qtbot.waitSignal(window.preview.preview_failed, timeout=LOAD_TIMEOUT) as blocker:
        window.variables.select("c1/w")
    assert "missing" in blocker.args[0]
    assert "cannot be read" in window.preview.text.toPlainText()


def _select_and_wait(qtbot, window, name):
    with qtbot.waitSignal(window.preview.preview_ready, timeout=LOAD_TIMEOUT,
                          check_params_cb=lambda p: p.variable.name == name) as blocker:
        assert window.variables.select(name)
    return blocker.args[0]


def test_plotted_data_equals_the_tensor(qtbot, window, corpus_copy, tf):
    path = corpus_copy("charity-hd5f-keras-tf")
    scan = open_dir(qtbot, window, path)
    window.checkpoints.select("weights.100.hd5f")
    reader = tf.train.load_checkpoint(str(path / "weights.100.hd5f"))
    kernel = "layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    preview = _select_and_wait(qtbot, window, kernel)
    truth = reader.get_tensor(kernel)
    assert preview.kind == IMAGE
    np.testing.assert_array_equal(window.preview.image.image, truth)  # what the heatmap holds
    assert window.preview.stat_labels["max"].text() == f"{truth.max():.6g}"
    assert sum(preview.stats.histogram) == truth.size
    # hovering reads the whole tensor: the cell centred on row 3, column 7
    assert window.preview.value_at(7.2, 2.8) == f"[3, 7] = {truth[3, 7]:.6g}"

    bias = "layer_with_weights-0/bias/.ATTRIBUTES/VARIABLE_VALUE"
    preview = _select_and_wait(qtbot, window, bias)
    assert preview.kind == VECTOR
    bars = [i for i in window.preview.plot.getPlotItem().items if hasattr(i, "opts")
            and "height" in i.opts]
    np.testing.assert_array_equal(bars[0].opts["height"], reader.get_tensor(bias))

    graph = _select_and_wait(qtbot, window, "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert graph.kind == TREE
    assert scan.checkpoint("weights.100.hd5f") is not None


def test_higher_rank_tensor_slices_and_exports(qtbot, window, tmp_path, tf):
    path = tmp_path / "conv"
    path.mkdir()
    kernel = tf.Variable(tf.random.normal([5, 5, 1, 32]))  # a Conv2D kernel
    tf.train.Checkpoint(conv=kernel).write(str(path / "cnn"))
    open_dir(qtbot, window, path)
    key = "conv/.ATTRIBUTES/VARIABLE_VALUE"
    truth = tf.train.load_checkpoint(str(path / "cnn")).get_tensor(key)
    preview = _select_and_wait(qtbot, window, key)
    assert preview.kind == IMAGE and len(window.preview.spins) == 2
    np.testing.assert_array_equal(preview.display, truth[0, 0])
    with qtbot.waitSignal(window.preview.preview_ready, timeout=LOAD_TIMEOUT) as blocker:
        window.preview.spins[0].setValue(3)
    np.testing.assert_array_equal(blocker.args[0].display, truth[3, 0])
    npy = window.preview.export_tensor("npy", str(tmp_path / "w.npy"))
    np.testing.assert_array_equal(np.load(npy), truth)
    csv_path = window.preview.export_tensor("csv", str(tmp_path / "w.csv"))
    rows = np.loadtxt(csv_path, delimiter=",")
    np.testing.assert_allclose(rows, truth.reshape(-1, 32), rtol=1e-6)
    png = window.preview.export_plot(str(tmp_path / "w.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_keras_config_json_is_pretty_text(qtbot, window, tmp_path, tf):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    keras.models.save_model(model, str(tmp_path / "m.keras"))
    open_dir(qtbot, window, tmp_path)
    names = tree_variables(window)
    assert "layers/dense/vars/0" in names


def _write_big_checkpoint(tf, directory, n):
    big = tf.Variable(tf.random.uniform([n // 1000, 1000]))
    small = tf.Variable(tf.constant([1.0, 2.0, 3.0]))
    ckpt = tf.train.Checkpoint(big=big, small=small)
    ckpt.write(os.path.join(directory, "big"))
    del big


def test_event_loop_keeps_turning_while_a_large_tensor_loads(qtbot, window, tmp_path, tf):
    """The GUI thread does no long work while 50M floats load and land: between two ticks of
    a 5 ms timer it spends under 100 ms of its own CPU time. (CPU time, not the wall clock: on
    a busy shared machine the thread also waits to be scheduled, which says nothing of the
    app.)"""
    _write_big_checkpoint(tf, str(tmp_path), 50_000_000)
    open_dir(qtbot, window, tmp_path)
    gaps = []   # (wall seconds, GUI-thread CPU seconds) between two ticks
    last = [time.perf_counter(), time.thread_time()]

    def tick():
        now, cpu = time.perf_counter(), time.thread_time()
        gaps.append((now - last[0], cpu - last[1]))
        last[:] = now, cpu

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    preview = _select_and_wait(qtbot, window, "big/.ATTRIBUTES/VARIABLE_VALUE")
    timer.stop()
    assert preview.array.size == 50_000_000
    assert max(preview.display.shape) <= 1024  # downsampled for painting
    wall, cpu = (max((g[i] for g in gaps[1:]), default=0) for i in (0, 1))
    print(f"loading 50M floats: longest GUI-thread work between ticks {1000 * cpu:.0f} ms, "
          f"longest gap {1000 * wall:.0f} ms, over {len(gaps)} ticks")
    assert cpu < 0.1


def test_new_selection_supersedes_the_old(qtbot, window, tmp_path, tf):
    _write_big_checkpoint(tf, str(tmp_path), 20_000_000)
    open_dir(qtbot, window, tmp_path)
    landed = []
    window.preview.preview_ready.connect(lambda p: landed.append(p.variable.name))
    window.variables.select("big/.ATTRIBUTES/VARIABLE_VALUE")
    qtbot.waitUntil(lambda: window.preview.task.is_running(), timeout=5000)
    small = "small/.ATTRIBUTES/VARIABLE_VALUE"
    with qtbot.waitSignal(window.preview.preview_ready, timeout=LOAD_TIMEOUT):
        window.variables.select(small)
    # the engine thread runs jobs in order: the superseded read finished (and its result was
    # dropped) before the newest request ran, so by now a stale result would have landed
    assert landed == [small]
    np.testing.assert_array_equal(window.preview.preview.array, [1.0, 2.0, 3.0])


def test_training_run_writing_and_deleting_checkpoints(qtbot, window, tmp_path, tf):
    v = tf.Variable(1.0)
    ckpt = tf.train.Checkpoint(v=v)
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path), max_to_keep=2)
    manager.save()
    open_dir(qtbot, window, tmp_path)
    assert [c.name for c in table_rows(window)] == ["ckpt-1"]
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT,
                          check_params_cb=lambda s: len(s.checkpoints) == 2):
        manager.save()
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT,
                          check_params_cb=lambda s: [c.name for c in s.checkpoints]
                          == ["ckpt-2", "ckpt-3"]):
        manager.save()  # CheckpointManager deletes ckpt-1: it disappears, no error
    assert [c.name for c in table_rows(window)] == ["ckpt-2", "ckpt-3"]
    assert window.scan.latest == "ckpt-3"


def test_directory_deleted_while_open(qtbot, window, tmp_path, tf):
    d = tmp_path / "run"
    d.mkdir()
    tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(d / "w"))
    open_dir(qtbot, window, d)
    with qtbot.waitSignal(window.error_shown, timeout=LOAD_TIMEOUT) as blocker:
        shutil.rmtree(d)
    assert "no such directory" in blocker.args[0]
    assert table_rows(window) == []


def test_unreadable_files_do_not_crash(qtbot, window, tmp_path):
    (tmp_path / "junk.index").write_bytes(os.urandom(300))
    (tmp_path / "junk.h5").write_bytes(os.urandom(300))
    (tmp_path / "empty.keras").write_bytes(b"")
    scan = open_dir(qtbot, window, tmp_path)
    assert {c.name: c.status for c in scan.checkpoints} == \
        {"junk": "broken", "junk.h5": "broken", "empty.keras": "broken"}
    assert [c.status for c in table_rows(window)] == ["broken"] * 3


def test_open_a_checkpoint_file_selects_it_and_drop_opens(qtbot, window, corpus_copy):
    path = corpus_copy("tictactoe-tf2mgr-keras3opt")
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        window.open_path(str(path / "ckpt-18.index"))
    assert window.checkpoints.current().name == "ckpt-18"
    other = corpus_copy("supercon-gan-tf2")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        window.dropEvent(event)
    assert window.scan.directory == str(other)
    assert window.recent()[:2] == [str(other), str(path)]
    assert [a.text() for a in window.recent_menu.actions()][:2] == [str(other), str(path)]


def test_window_and_engine_start_without_tensorflow_or_pyqtgraph():
    code = ("import sys; import ckpt_gui.app, ckpt_gui.ui.main_window, ckpt_gui.core.scan; "
            "print('tensorflow' in sys.modules, 'pyqtgraph' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_tensorflow_loads_in_a_worker_after_first_paint(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.tensorflow_ready, timeout=LOAD_TIMEOUT) as blocker:
        w.after_first_paint()
        assert w.tf_status.text() == "Loading TensorFlow…"
    assert blocker.args[0].startswith("2.")
    assert w.tf_status.text() == f"TensorFlow {blocker.args[0]}"


def test_a_variable_across_checkpoints(qtbot, window, corpus_copy, tf):
    path = corpus_copy("charity-hd5f-keras-tf")
    open_dir(qtbot, window, path)
    key = "layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    _select_and_wait(qtbot, window, key)
    for c in window.scan.checkpoints:  # one run (set by hand until the scan fills runs)
        c.run = "weights.{N}.hd5f"
    with qtbot.waitSignal(window.trend.trend_ready, timeout=LOAD_TIMEOUT) as blocker:
        window.tabs.setCurrentWidget(window.trend)  # computed only once the tab is shown
    trend = blocker.args[0]
    epochs = list(range(5, 101, 5))
    assert [p.checkpoint for p in trend.points] == [f"weights.{e:02d}.hd5f" for e in epochs]
    assert trend.x_label == "training step"
    assert [p.x for p in trend.points] == [804.0 * e for e in epochs]  # optimizer iterations
    values = [tf.train.load_checkpoint(str(path / p.checkpoint)).get_tensor(key)
              for p in trend.points]
    for p, v in zip(trend.points, values):
        assert p.stats.mean == pytest.approx(float(v.astype(np.float64).mean()), rel=1e-9, abs=1e-12)
    expected = np.linalg.norm(values[1].astype(np.float64) - values[0]) / np.linalg.norm(values[0])
    assert trend.points[1].rel_change == pytest.approx(100 * expected, rel=1e-9)  # percent
    assert window.trend.table.rowCount() == 20
    assert window.trend.table.item(1, 7).text() == f"{100 * expected:.6g}"  # as plotted
    assert " in 20 checkpoints of 1 run. " in window.trend.title.text()
    # double-clicking a row opens that checkpoint on the tensor tab
    window.trend.table.cellDoubleClicked.emit(3, 0)
    assert window.checkpoints.current().name == "weights.20.hd5f"
    assert window.tabs.currentWidget() is window.preview


def test_variable_filter(qtbot, window, corpus_copy):
    open_dir(qtbot, window, corpus_copy("supercon-gan-tf2"))
    window.variables.filter.setText("moving_mean")
    proxy = window.variables.proxy

    def leaves(parent=None):
        from PySide6.QtCore import QModelIndex

        parent = parent or QModelIndex()
        out = []
        for r in range(proxy.rowCount(parent)):
            i = proxy.index(r, 0, parent)
            node = proxy.data(i, OBJECT_ROLE)
            out += [node.variable.name] if node.variable is not None else leaves(i)
        return out

    qtbot.waitUntil(lambda: len(leaves()) == 2, timeout=5000)
    assert sorted(leaves()) == ["discriminator/layer_with_weights-1/moving_mean/.ATTRIBUTES/VARIABLE_VALUE",
                                "generator/layer_with_weights-1/moving_mean/.ATTRIBUTES/VARIABLE_VALUE"]
    assert "193,921 model parameters" in window.variables.totals.text()


def test_verify_reads_every_tensor_and_updates_the_table(qtbot, window, corpus_copy):
    path = corpus_copy("foodprep-sharded2-keras-tf")
    (path / "cp.ckpt.data-00001-of-00002").unlink()  # the shard holding every variable
    open_dir(qtbot, window, path)
    row = window.checkpoints.model.row_of("cp.ckpt")
    assert window.checkpoints.model.index(row, 6).data() == "30"
    with qtbot.waitSignal(window.verify_task.finished, timeout=LOAD_TIMEOUT):
        window.verify("cp.ckpt")
    ckpt = window.scan.checkpoint("cp.ckpt")
    assert ckpt.verified and ckpt.n_readable == 1 and ckpt.status == "partial"
    assert window.checkpoints.model.index(row, 6).data() == "1/30"
    assert window.checkpoints.model.index(row, 7).data() == "partial"
    assert any("cp.ckpt.data-00001-of-00002" in p and "29 of 30" in p for p in ckpt.problems)


def test_a_big_checkpoints_tree_is_built_in_the_background(qtbot, window, tmp_path, tf):
    from ckpt_gui.ui.variables_panel import BACKGROUND_FROM

    layers = [{"kernel": tf.Variable(np.full((2, 2), i, np.float32)),
               "bias": tf.Variable(np.zeros(2, np.float32))}
              for i in range(BACKGROUND_FROM // 2 + 10)]
    tf.train.Checkpoint(layers=layers).write(str(tmp_path / "big" / "wide"))
    scan = open_dir(qtbot, window, tmp_path / "big")
    ckpt = scan.checkpoints[0]
    expected = {v.name for v in ckpt.variables}
    assert len(expected) > BACKGROUND_FROM

    panel = window.variables
    panel.set_checkpoint(ckpt)  # returns at once: the tree is being built elsewhere
    assert panel.model.tree is None
    assert panel.totals.text() == f"Listing {len(expected):,} variables…"
    with qtbot.waitSignal(window.preview.preview_ready, timeout=LOAD_TIMEOUT) as blocker:
        pass  # the landed tree selects the first weight, which is then previewed
    assert tree_variables(window) == expected
    assert blocker.args[0].variable.name == "layers/0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert panel.current().name == "layers/0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert "model parameters" in panel.totals.text()
    group = panel.model.tree.root.children[0].children[0]
    assert [c.name for c in group.children[:12]] == [str(i) for i in range(12)]


def test_the_model_branch_opens_only_as_far_as_a_few_thousand_rows():
    from ckpt_gui.core.vartree import TreeNode
    from ckpt_gui.ui.variables_panel import _depth_to_show

    def group(name, children):
        node = TreeNode(name)
        for c in children:
            node.add(c)
        return node

    small = group("Model", [group(f"dense_{i}", [TreeNode("kernel"), TreeNode("bias")])
                            for i in range(3)])
    assert _depth_to_show(small, 2000) == 2              # 3 layers, 6 variables: all open
    wide = group("Model", [group("layers", [group(str(i), [TreeNode("kernel"), TreeNode("b")])
                                            for i in range(5000)])])
    assert _depth_to_show(wide, 2000) == 0               # 5,000 layers: "layers" stays folded
    mid = group("Model", [group(f"l{i}", [TreeNode("kernel"), TreeNode("bias")])
                          for i in range(1500)])
    assert _depth_to_show(mid, 2000) == 0                # 1,500 layers, not their 3,000 leaves
    assert _depth_to_show(mid, 5000) == 2


# --- the checkpoints table and its folder (issue 11) ------------------------------------------

LONG_PREFIX = "experiment_2024_resnet50_lr0.001_batch64_dropout0.3_augmented_"


@pytest.mark.parametrize("size", [None, (1024, 680)], ids=["default", "1024x680"])
def test_status_stays_in_view_and_long_names_are_elided(qtbot, window, corpus_copy, size):
    from ckpt_gui.ui.checkpoints_panel import NAME, STATUS

    path = corpus_copy("charity-hd5f-keras-tf")
    (path / "checkpoint").unlink()  # (it names the files by their old names)
    for f in list(path.iterdir()):
        f.rename(path / (LONG_PREFIX + f.name))
    if size:
        window.resize(*size)
    open_dir(qtbot, window, path)
    table = window.checkpoints.table
    qtbot.waitUntil(lambda: table.columnWidth(STATUS) > 0)
    right = table.columnViewportPosition(STATUS) + table.columnWidth(STATUS)
    assert 0 <= table.columnViewportPosition(STATUS) and right <= table.viewport().width()
    assert table.columnWidth(STATUS) >= table.sizeHintForColumn(STATUS)  # "ok" whole
    assert table.columnWidth(NAME) < table.sizeHintForColumn(NAME)       # the name gives way
    assert table.textElideMode() == Qt.ElideMiddle
    index = table.model().index(0, NAME)
    assert index.data(Qt.ToolTipRole).startswith(LONG_PREFIX + "weights.05.hd5f")


def test_subfolder_links_wrap_and_the_parent_is_one_step_away(qtbot, window, tmp_path):
    names = [f"run-{i:02d}-{LONG_PREFIX}" for i in range(9)]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.weights.h5").write_bytes(b"")
    window.resize(1024, 680)
    qtbot.waitUntil(lambda: window.width() == 1024)
    sizes = window.splitter.sizes()
    open_dir(qtbot, window, tmp_path)
    label = window.checkpoints.subfolders
    assert label.isVisible() and label.wordWrap()
    assert all(f'href="{n}"' in label.text() for n in names)
    assert label.width() <= window.checkpoints.width()
    assert label.height() > 3 * label.fontMetrics().lineSpacing()    # wrapped
    assert window.splitter.sizes() == sizes   # long names do not widen the panel
    # a link opens the subfolder; Alt+Up and the ".." link open its parent
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        label.linkActivated.emit(names[4])
    assert window.directory == str(tmp_path / names[4])
    assert 'href=".."' in label.text()
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        QTest.keyClick(window, Qt.Key_Up, Qt.AltModifier)
    assert window.directory == str(tmp_path)
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        label.linkActivated.emit("..")
    assert window.directory == str(tmp_path.parent)
    assert "Up" in [a.iconText() for a in window.findChild(QToolBar, "mainToolBar").actions()]


def test_recent_folders_that_no_longer_exist_are_dropped(qtbot, tmp_path):
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    kept.mkdir()
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    settings.setValue("recent", [str(gone), str(kept)])
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    assert w.recent() == [str(kept)]
    assert [a.text() for a in w.recent_menu.actions()] == [str(kept)]
    assert settings.value("recent") == [str(kept)]
    kept.rmdir()
    w.recent_menu.aboutToShow.emit()
    assert w.recent_menu.actions() == [] and not w.recent_menu.isEnabled()


def test_save_dialogs_open_in_the_last_folder_saved_into(qtbot, window, corpus_copy, tmp_path,
                                                          monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    # the preview's exports use the app's own settings: kept in this test's folder
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "config"))
    QSettings.setPath(QSettings.NativeFormat, QSettings.UserScope, str(tmp_path / "config"))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(REPO)  # a bare file name would open the dialog here
    path = corpus_copy("charity-hd5f-keras-tf")
    open_dir(qtbot, window, path)
    _select_and_wait(qtbot, window, "layer_with_weights-1/bias/.ATTRIBUTES/VARIABLE_VALUE")
    exports = tmp_path / "exports"
    exports.mkdir()
    starts, answers = [], [exports / "bias.npy", path / "bias.csv", exports / "plot.png"]

    def dialog(parent, caption, start, filters):
        starts.append(start)
        return str(answers[len(starts) - 1]), filters
    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    window.preview.export_tensor("npy")   # first: home (no Documents folder here)
    window.preview.export_tensor("csv")   # then where the person saved last
    window.preview.export_plot()          # last saved into the checkpoint folder: not there
    assert [os.path.dirname(s) for s in starts] == [str(home), str(exports), str(home)]
    assert os.path.basename(starts[0]) == "dense_1_bias.npy"  # its display name
    assert np.load(exports / "bias.npy").shape == (30,)


def test_plurals_in_the_details(qtbot, window, corpus_copy):
    open_dir(qtbot, window, corpus_copy("churn-keras3-weights-h5"))
    assert "; 1 file, " in window.checkpoints.details.text()
    open_dir(qtbot, window, corpus_copy("tictactoe-tf2mgr-keras3opt"))
    assert "; 2 files, " in window.checkpoints.details.text()
