"""One readable name per variable (core/varnames.py): the tree, export file names and
``ckpt-inspect show`` agree on it, and it leads back to the very tensor the writer saved."""
from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

from ckpt_gui import cli
from ckpt_gui.core import scan_directory
from ckpt_gui.core.model import VariableInfo
from ckpt_gui.core.varnames import assign, file_stem, plain_display_names
from ckpt_gui.core.vartree import build_tree

from conftest import corpus_names

LOAD_TIMEOUT = 60_000


def _keras3_run(tf, directory, saves: int = 2):
    """A Keras 3 Sequential trained with Adam, saved by CheckpointManager with the optimizer:
    its kernels' keys are optimizer/_trainable_variables/N, their model paths
    model/_functional/_operations/N/_kernel."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                              keras.layers.Dense(2, name="out")], name="net")
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    rng = np.random.default_rng(0)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer), str(directory), 3)
    for _ in range(saves):
        model.fit(rng.random((8, 4)), rng.random((8, 2)), epochs=1, verbose=0)
        manager.save()
    return model


def _tree_variable(ckpt, key: str) -> VariableInfo:
    """The variable as the tree holds it (its row, not the copy beside its owner's slots)."""
    return next(n.variable for n in build_tree(ckpt).root.walk()
                if n.variable is not None and n.variable.name == key
                and not n.name.startswith("["))


def _show(capsys, directory, checkpoint: str, variable: str, n: int) -> dict:
    assert cli.main(["show", str(directory), checkpoint, variable, "--json",
                     "--values", str(n)]) == 0
    return json.loads(capsys.readouterr().out)


def _round_trip(capsys, directory, checkpoint: str, key: str, truth: np.ndarray) -> str:
    """Display name from the tree -> export file name -> ``ckpt-inspect show`` by that name
    reads ``truth``; returns the display name."""
    ckpt = scan_directory(str(directory)).checkpoint(checkpoint)
    shown = _tree_variable(ckpt, key).display_name
    stem = file_stem(shown)
    assert stem and all(c.isalnum() or c in "._-" for c in stem) and stem.isascii()
    out = _show(capsys, directory, checkpoint, shown, truth.size)
    assert out["variable"]["name"] == key and out["variable"]["path"] == shown
    np.testing.assert_array_equal(np.array(out["values"], truth.dtype).reshape(truth.shape),
                                  truth)
    return shown


def test_keras3_kernel_has_one_name_everywhere(qtbot, tmp_path, tf, capsys):
    from PySide6.QtCore import QSettings

    from ckpt_gui.ui.main_window import MainWindow

    model = _keras3_run(tf, tmp_path / "run")
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "ckpt-2"))
    key = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"
    truth = reader.get_tensor(key)
    ckpt = scan_directory(str(tmp_path / "run")).checkpoint("ckpt-2")
    v = ckpt.variable(key)
    assert v.model_path == "model/_functional/_operations/1/_kernel"
    assert v.display_name == "model/net/hidden/kernel"
    assert _round_trip(capsys, tmp_path / "run", "ckpt-2", key, truth) == v.display_name
    # the raw key and the old object path still find it
    for old in (key, "model/_functional/_operations/1/_kernel"):
        assert _show(capsys, tmp_path / "run", "latest", old, 1)["variable"]["name"] == key
    # its Adam slots are named after it and the optimizer's own name (adam, adam_1, ...)
    slots = sorted(s.display_name for s in ckpt.variables if s.slot_of == key)
    assert slots == [f"model/net/hidden/kernel · {model.optimizer.name} momentum",
                     f"model/net/hidden/kernel · {model.optimizer.name} velocity"]
    # the same names in the run's other checkpoint
    first = scan_directory(str(tmp_path / "run")).checkpoint("ckpt-1")
    assert [x.display_name for x in first.variables] == [x.display_name for x in ckpt.variables]

    # the app: tree, preview title, export file name and status bar say the same name
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.show()
    window.after_first_paint()  # as the app does once the window is painted
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        window.open_path(str(tmp_path / "run"))
    with qtbot.waitSignal(window.preview.preview_ready, timeout=LOAD_TIMEOUT):
        window.variables.select(key)
    index = window.variables.tree.currentIndex()
    assert index.data() == "kernel"
    from PySide6.QtCore import Qt

    assert index.data(Qt.ToolTipRole).splitlines()[:2] == [v.display_name, f"key: {key}"]
    assert "model/net/hidden/kernel" in window.preview.title.text()
    name = window.preview._suggested_name("npy")
    assert name == "model_net_hidden_kernel.npy"
    written = window.preview.export_tensor("npy", str(tmp_path / name))
    np.testing.assert_array_equal(np.load(written), truth)
    assert window.statusBar().currentMessage().startswith(f"Exported {v.display_name} to ")
    window.close()


def test_a_weight_keeps_its_name_when_the_optimizer_starts_tracking_it(tmp_path, tf):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden")],
                             name="net")
    model.compile(optimizer="adam", loss="mse")
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer), str(tmp_path), 3)
    manager.save()  # before training: the kernel's key is the model's path
    model.fit(np.ones((4, 4)), np.zeros((4, 3)), verbose=0)
    manager.save()  # after: the optimizer's (optimizer/_trainable_variables/0)
    before, after = scan_directory(str(tmp_path)).checkpoints
    kernels = [next(v for v in c.variables if v.shape == (4, 3) and not v.slot_of)
               for c in (before, after)]
    assert [v.name for v in kernels] == [
        "model/_functional/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
        "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"]
    assert [v.display_name for v in kernels] == ["model/net/hidden/kernel"] * 2
    # so "across checkpoints" follows it through both
    from ckpt_gui.core.trajectory import trajectory

    assert [v.identity for v in kernels] == ["hidden/kernel"] * 2
    trend = trajectory(scan_directory(str(tmp_path)), "hidden/kernel")
    assert [p.checkpoint for p in trend.points] == ["ckpt-1", "ckpt-2"] and not trend.missing


def test_keras2_checkpoint_names_from_the_object_graph(corpus_copy, tf, capsys):
    d = corpus_copy("charity-hd5f-keras-tf")
    reader = tf.train.load_checkpoint(str(d / "weights.100.hd5f"))
    ckpt = scan_directory(str(d)).checkpoint("weights.100.hd5f")
    shown = {v.name: v.display_name for v in ckpt.variables}
    key = "layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert shown[key] == "dense_1/kernel"
    assert shown["layer_with_weights-1/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/"
                 "VARIABLE_VALUE"] == "dense_1/kernel · Adam m"
    assert shown["optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"] == "optimizer/iter"
    assert len(set(shown.values())) == len(shown)
    assert _round_trip(capsys, d, "weights.100.hd5f", key, reader.get_tensor(key)) == \
        "dense_1/kernel"
    # every checkpoint of the folder (one training run) names its weights alike
    names = {tuple(v.display_name for v in c.variables)
             for c in scan_directory(str(d)).checkpoints}
    assert len(names) == 1


def test_keras3_weights_h5_without_config_names_weights_by_the_group_class(corpus_copy, capsys):
    d = corpus_copy("churn-keras3-weights-h5")
    ckpt = scan_directory(str(d)).checkpoints[0]
    shown = {v.name: v.display_name for v in ckpt.variables}
    # no config: a group named dense_1 is a Dense, whose weights are kernel then bias; the
    # optimizer's slots follow Adam's layout over the layers in the order Keras wrote them
    assert shown["layers/dense/vars/0"] == "dense/kernel"
    assert shown["layers/dense_1/vars/1"] == "dense_1/bias"
    assert shown["optimizer/vars/2"] == "dense/kernel · adam momentum"
    assert shown["optimizer/vars/9"] == "dense_1/bias · adam velocity"
    canonical = {v.name: v.canonical for v in ckpt.variables}
    assert canonical["optimizer/vars/0"] == "optimizer/iterations"
    assert canonical["optimizer/vars/13"] == "optimizer/dense_2/bias/velocity"
    with h5py.File(d / "model.weights.h5", "r") as f:
        truth = f["layers/dense_1/vars/0"][()]
    assert _round_trip(capsys, d, "model.weights.h5", "layers/dense_1/vars/0", truth) == \
        "dense_1/kernel"


def test_keras_archive_names_weights_from_its_config(tmp_path, tf, capsys):
    import keras

    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    outputs = keras.layers.Dense(2, use_bias=False, name="logits")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 4)), np.zeros((4, 2)), verbose=0)
    (tmp_path / "arch").mkdir()
    model.save(tmp_path / "arch" / "model.keras")
    ckpt = scan_directory(str(tmp_path / "arch")).checkpoints[0]
    shown = {v.name: v.display_name for v in ckpt.variables}
    assert {k: s for k, s in shown.items() if k.startswith("layers/")} == {
        "layers/dense/vars/0": "hidden/kernel", "layers/dense/vars/1": "hidden/bias",
        "layers/batch_normalization/vars/0": "norm/gamma",
        "layers/batch_normalization/vars/1": "norm/beta",
        "layers/batch_normalization/vars/2": "norm/moving_mean",
        "layers/batch_normalization/vars/3": "norm/moving_variance",
        "layers/dense_1/vars/0": "logits/kernel"}  # no bias: use_bias=False in its config
    with zipfile.ZipFile(tmp_path / "arch" / "model.keras") as z, \
            h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
        truth = f["layers/dense_1/vars/0"][()]
    np.testing.assert_array_equal(truth, model.get_layer("logits").kernel.numpy())
    assert _round_trip(capsys, tmp_path / "arch", "model.keras", "layers/dense_1/vars/0",
                       truth) == "logits/kernel"


@pytest.mark.parametrize("name", corpus_names())
def test_every_corpus_variable_is_found_by_its_unique_display_name(corpus_copy, name):
    for ckpt in scan_directory(str(corpus_copy(name))).checkpoints:
        shown = [v.display_name for v in ckpt.variables]
        assert len(set(shown)) == len(shown), ckpt.name
        assert all(".ATTRIBUTES" not in s for s in shown)
        for v in ckpt.variables:
            assert ckpt.variable(v.display_name) is v
            assert ckpt.variable(v.name) is v


def test_unknown_names_fail_with_usage_error(tmp_path, tf, capsys):
    _keras3_run(tf, tmp_path / "run", saves=1)
    assert cli.main(["show", str(tmp_path / "run"), "latest", "model/net/nothing/kernel"]) == 2
    assert "has no variable 'model/net/nothing/kernel'" in capsys.readouterr().err


# --- the rules, on hand-made variables ------------------------------------------------------

def _var(key: str, shape=(2, 2), role="weight", **kw) -> VariableInfo:
    from ckpt_gui.core.roles import semantic_path

    return VariableInfo(key, shape, "float32", 16, role, semantic_path(key), **kw)


def test_clashing_names_fall_back_to_their_paths_then_keys():
    a = _var("a/_kernel/.ATTRIBUTES/VARIABLE_VALUE")
    b = _var("a/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    c = _var("c/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    assign([a, b, c])
    assert [v.display_name for v in (a, b, c)] == ["a/_kernel", "a/kernel", "c/kernel"]
    # two keys with one object path: the keys themselves
    d, e = _var("x/.ATTRIBUTES/VARIABLE_VALUE"), _var("x")
    assign([d, e])
    assert [d.display_name, e.display_name] == [d.name, e.name]


def test_plain_names_strip_the_attributes_underscore_only():
    keys = ["_CHECKPOINTABLE_OBJECT_GRAPH", "net/_operations/0/_kernel", "layers/0/bias"]
    paths = ["_CHECKPOINTABLE_OBJECT_GRAPH", "net/_operations/0/_kernel", "layers/0/bias"]
    assert plain_display_names(keys, paths) == [
        "_CHECKPOINTABLE_OBJECT_GRAPH", "net/_operations/0/kernel", "layers/0/bias"]


def test_tf1_slots_are_named_after_their_variable():
    w = _var("fc/w")
    m = _var("fc/w/Adam", role="optimizer state", slot_of="fc/w", slot_name="m")
    v = _var("fc/w/Adam_1", role="optimizer state", slot_of="fc/w", slot_name="v")
    assign([w, m, v])
    assert [x.display_name for x in (w, m, v)] == ["fc/w", "fc/w · Adam m", "fc/w · Adam v"]


@pytest.mark.parametrize("shown, stem", [
    ("model/dense/kernel · adam momentum", "model_dense_kernel-adam_momentum"),
    ("a:b\\c*?<>|d", "a_b_c_d"),
    ("../../etc/passwd", "etc_passwd"),
    ("ключ/вес", "ключ_вес"),
    ("", "tensor"),
])
def test_export_file_names_are_safe_everywhere(shown, stem):
    assert file_stem(shown) == stem


# --- the variables panel ---------------------------------------------------------------------

@pytest.fixture
def panel_window(qtbot, tmp_path, tf, corpus_copy):
    from PySide6.QtCore import QSettings

    from ckpt_gui.ui.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.resize(1024, 680)
    window.show()
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        window.open_path(str(corpus_copy("supercon-gan-tf2")))
    qtbot.waitUntil(lambda: window.variables.model.tree is not None, timeout=LOAD_TIMEOUT)
    yield window
    window.close()


def test_names_are_readable_in_a_small_window(qtbot, panel_window):
    tree = panel_window.variables.tree
    from PySide6.QtCore import Qt

    assert tree.textElideMode() == Qt.ElideMiddle
    header = tree.header()
    # the names keep (about) 40% of the width; dtype and shape still show whole
    assert header.sectionSize(0) >= 0.38 * tree.viewport().width()
    fm = tree.fontMetrics()
    for column, text in ((1, "147×256"), (2, "float32")):
        assert header.sectionSize(column) >= fm.horizontalAdvance(text)


def test_filter_says_when_nothing_matches_and_esc_clears_it(qtbot, panel_window):
    from PySide6.QtCore import Qt

    panel = panel_window.variables
    panel.filter.setFocus()
    qtbot.keyClicks(panel.filter, "no-such-variable")
    qtbot.waitUntil(lambda: panel.stack.currentWidget() is panel.no_match)
    assert panel.no_match.isVisible() and "no-such-variable" in panel.no_match.text()
    qtbot.keyClick(panel.filter, Qt.Key_Escape)
    assert panel.filter.text() == ""
    qtbot.waitUntil(lambda: panel.stack.currentWidget() is panel.tree)
    assert panel.tree.isVisible() and panel.proxy.rowCount() > 0
    # a display name finds its variable though the tree shows it in pieces
    panel.filter.setText("generator/dense_7/kernel")
    qtbot.waitUntil(lambda: panel.stack.currentWidget() is panel.tree
                    and panel.proxy.rowCount() > 0)
    shown = []

    def walk(parent):
        for r in range(panel.proxy.rowCount(parent)):
            index = panel.proxy.index(r, 0, parent)
            node = panel.proxy.data(index, OBJECT_ROLE)
            if node.variable is not None and not node.name.startswith("["):
                shown.append(node.variable.display_name)
            walk(index)

    from ckpt_gui.ui.models import OBJECT_ROLE

    walk(panel.proxy.index(-1, -1))
    assert "generator/dense_7/kernel" in shown


def test_keras_hdf5_weights_are_named_as_keras_names_them(tmp_path, tf, capsys):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="hidden")],
                             name="net")
    (tmp_path / "h5").mkdir()
    model.save(tmp_path / "h5" / "m.h5")  # legacy HDF5: model_weights/<layer>/<weight name>
    key = "model_weights/hidden/net/hidden/kernel"
    with h5py.File(tmp_path / "h5" / "m.h5", "r") as f:
        truth = f[key][()]
    np.testing.assert_array_equal(truth, model.get_layer("hidden").kernel.numpy())
    assert _round_trip(capsys, tmp_path / "h5", "m.h5", key, truth) == "net/hidden/kernel"


def test_a_strange_config_leaves_the_numbers():
    import h5py

    from ckpt_gui.core.varnames import keras3_h5_names

    f = h5py.File("strange.h5", "w", driver="core", backing_store=False)  # in memory
    f.create_group("layers/dense/vars").attrs["name"] = "dense"
    kernel, bias = _var("layers/dense/vars/0", (3, 2)), _var("layers/dense/vars/1", (2,))
    # no config (or none that is a JSON object): the class the group is named after (dense);
    # a config whose class is strange: the numbers stay
    for config, expected in (
            (None, ["dense/kernel", "dense/bias"]), ([], ["dense/kernel", "dense/bias"]),
            ({"config": {"layers": [{"class_name": ["Dense"], "config": {"name": "dense"}}]}},
             ["dense/vars/0", "dense/vars/1"]),
            ({"config": {"layers": [{"class_name": "Dense", "config": {"name": "dense"}}]}},
             ["dense/kernel", "dense/bias"])):
        names = keras3_h5_names(f, [kernel, bias], config).resolved
        assert [names[kernel.name], names[bias.name]] == expected
    # ranks that do not fit the class: the numbers stay
    swapped = [_var("layers/dense/vars/0", (2,)), _var("layers/dense/vars/1", (3, 2))]
    names = keras3_h5_names(f, swapped, {"config": {"layers": [
        {"class_name": "Dense", "config": {"name": "dense"}}]}}).resolved
    assert sorted(names.values()) == ["dense/vars/0", "dense/vars/1"]
