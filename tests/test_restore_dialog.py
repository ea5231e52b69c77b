"""The Restore dialog (issue 5): template chooser (built-ins, "Add template…" remembered in
QSettings), root chooser, the proposed mapping reviewed and edited, Restore in a worker, the report,
Save, the sample run. Waits on signals only; writes only under tmp_path (settings included).
"""
from __future__ import annotations

import textwrap
import threading

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from ckpt_gui.core import scan_directory
from ckpt_gui.core.restore import RestoreSession
from ckpt_gui.ui.restore_dialog import NOT_RESTORED, SETTINGS_KEY, RestoreDialog

TIMEOUT = 90_000


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def gui_thread_never_runs_tensorflow(monkeypatch):
    """Every step that touches TensorFlow/Keras must run in a worker thread."""
    calls = []
    for name in ("propose", "restore", "save", "sample_run", "load_template"):
        original = getattr(RestoreSession, name)

        def wrapper(self, *a, __original=original, __name=name, **k):
            calls.append((__name, threading.current_thread() is threading.main_thread()))
            return __original(self, *a, **k)
        monkeypatch.setattr(RestoreSession, name, wrapper)
    yield calls
    assert calls and not any(main for _, main in calls), calls


def write_template(tmp_path, name, body):
    path = tmp_path / "templates" / f"{name}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text("import keras\n" + textwrap.dedent(body))
    return str(path)


def wait_planned(qtbot, dlg, action):
    with qtbot.waitSignal(dlg.planned, timeout=TIMEOUT) as blocker:
        action()
    return blocker.args[0]


def click_restore(qtbot, dlg):
    assert dlg.restore_button.isEnabled()
    with qtbot.waitSignal(dlg.restored, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dlg.restore_button, Qt.LeftButton)
    return blocker.args[0]


def table_rows(table):
    return [[table.item(r, c).text() if table.item(r, c) else "" for c in
             range(table.columnCount())] for r in range(table.rowCount())]


def test_guide_checkpoint_restore_report_sample_and_save(qtbot, tmp_path, settings, tf,
                                                         gui_thread_never_runs_tensorflow):
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10)])
    opt = keras.optimizers.Adam()
    x = np.random.default_rng(0).standard_normal((4, 784)).astype("float32")
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, np.zeros((4, 10), "float32"), epochs=2, verbose=0)
    tf.train.CheckpointManager(tf.train.Checkpoint(optimizer=opt, model=model),
                               str(tmp_path / "ck"), max_to_keep=3).save()
    scan = scan_directory(str(tmp_path / "ck"))
    dlg = RestoreDialog(scan, "ckpt-1", settings=settings)
    qtbot.addWidget(dlg)
    with qtbot.waitSignal(dlg.planned, timeout=TIMEOUT) as blocker:
        dlg.show()
    plan = blocker.args[0]
    assert dlg.template_combo.currentData().name == "tf_guide_mlp"
    assert plan.root == "model" and plan.native_possible
    rows = table_rows(dlg.mapping_table)
    assert len(rows) == 4 + 10
    assert [r[1] for r in rows] == ["model"] * 4 + ["optimizer"] * 10
    assert all(dlg.mapping_table.item(i, 0).checkState() == Qt.Checked for i in range(14))
    assert {r[5] for r in rows[:4]} == {"object path"}
    # the tensor by its display name: the model attribute, then the weight's own path
    assert dlg.key_combo(0).currentText() == f"model/{model.layers[0].kernel.path}"
    assert "14" not in dlg.mapping_label.text() and "4 of 4 model variables" in \
        dlg.mapping_label.text()
    root_items = [dlg.root_combo.itemData(i) for i in range(dlg.root_combo.count())]
    assert root_items[0] is None and "model" in root_items

    report = click_restore(qtbot, dlg)
    assert report.complete and report.mode == "native" and report.optimizer_restored
    assert dlg.report_label.text().startswith("<b>Complete</b>: 4 of 4 model variables")
    results = [r[3] for r in table_rows(dlg.report_table)]
    assert results.count("restored, verified") == 4
    assert results.count("optimizer, verified") == 10
    assert dlg.sample_label.text().startswith("Sample run: input [2, 784] → output [2, 10]")
    assert dlg.save_weights_button.isEnabled() and dlg.save_keras_button.isEnabled()

    out = tmp_path / "out" / "restored.weights.h5"
    with qtbot.waitSignal(dlg.saved, timeout=TIMEOUT) as blocker:
        dlg.save_to(str(out))
    assert blocker.args[0] == str(out) and out.is_file()
    fresh = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10)])
    fresh.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(str(out))
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())
    assert int(fresh.optimizer.iterations.numpy()) == int(opt.iterations.numpy())


SUBCLASSED = """
class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.{out} = keras.layers.Dense(3)
    def call(self, x):
        return self.{out}(self.hidden(x))

INPUT_SHAPE = (8,)

def build_model():
    return Net()
"""


def test_add_template_remembered_review_and_edit_mapping(qtbot, tmp_path, settings, tf):
    import importlib.util

    source = write_template(tmp_path, "source", SUBCLASSED.format(out="out"))
    spec = importlib.util.spec_from_file_location("restore_dialog_source", source)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.Net()
    net(np.ones((1, 8), "float32"))
    tf.train.Checkpoint(model=net).save(str(tmp_path / "sub" / "ckpt"))
    renamed = write_template(tmp_path, "renamed", SUBCLASSED.format(out="logits"))

    dlg = RestoreDialog(scan_directory(str(tmp_path / "sub")), "ckpt-1", settings=settings)
    qtbot.addWidget(dlg)
    dlg.show()
    plan = wait_planned(qtbot, dlg, lambda: dlg.add_template(renamed))
    assert settings.value(SETTINGS_KEY) in ([renamed], renamed)
    assert dlg.template_combo.currentData().path == renamed
    rows = table_rows(dlg.mapping_table)
    checked = [dlg.mapping_table.item(i, 0).checkState() == Qt.Checked for i in range(len(rows))]
    assert checked == [True, True, False, False]
    assert rows[2][5] == "suggested (order and shape) — tick to apply"
    assert dlg.key_combo(2).currentText() == "model/out/kernel"  # its display name
    # only tensors of the variable's own shape are offered
    kernel_choices = [dlg.key_combo(0).itemData(i) for i in range(dlg.key_combo(0).count())]
    assert kernel_choices[0] is None and all(
        plan.keys[[k.key for k in plan.keys].index(k)].shape == (8, 16)
        for k in kernel_choices[1:])

    report = click_restore(qtbot, dlg)
    assert not report.complete and len(report.missing_in_checkpoint) == 2
    assert dlg.report_label.text().startswith("<b>INCOMPLETE</b>")
    assert not dlg.save_weights_button.isEnabled() and not dlg.save_keras_button.isEnabled()

    # accept the suggestions by ticking them, and leave the hidden bias alone on purpose
    for row in (2, 3):
        dlg.mapping_table.item(row, 0).setCheckState(Qt.Checked)
    dlg.key_combo(1).setCurrentIndex(dlg.key_combo(1).findText(NOT_RESTORED))
    assert dlg.mapping_table.item(1, 0).checkState() == Qt.Unchecked
    assert dlg.plan.edited and "(edited)" in dlg.mapping_label.text()
    report = click_restore(qtbot, dlg)
    assert [r.key.split("/.ATTRIBUTES")[0] for r in report.restored] == [
        "model/hidden/_kernel", "model/out/_kernel", "model/out/bias"]
    assert report.missing_in_checkpoint == [report.restored[0].variable.replace("kernel", "bias")]
    assert report.verified and report.mode == "mapped"
    # pick the bias back: complete
    dlg.key_combo(1).setCurrentIndex(dlg.key_combo(1).findText("model/hidden/bias"))
    report = click_restore(qtbot, dlg)
    assert report.complete and dlg.save_keras_button.isEnabled()

    # the added template is remembered by the next dialog
    dlg2 = RestoreDialog(scan_directory(str(tmp_path / "sub")), "ckpt-1", settings=settings)
    qtbot.addWidget(dlg2)
    assert renamed in [r.path for r in dlg2.template_refs()]
    with qtbot.waitSignal(dlg2.planned, timeout=TIMEOUT):
        dlg2.show()


def test_root_chooser_and_template_errors(qtbot, tmp_path, corpus_copy, settings, tf):
    d = corpus_copy("supercon-gan-tf2")
    dlg = RestoreDialog(scan_directory(str(d)), "ckpt-2", settings=settings)
    qtbot.addWidget(dlg)
    # the built-in MLP fits neither the generator nor the discriminator: the user must choose
    with qtbot.waitSignal(dlg.failed, timeout=TIMEOUT) as blocker:
        dlg.show()
    assert "several parts of ckpt-2 could hold the model" in blocker.args[0]
    assert "several parts" in dlg.status_label.text() and not dlg.restore_button.isEnabled()
    roots = [dlg.root_combo.itemData(i) for i in range(dlg.root_combo.count())]
    assert {"generator", "discriminator"} <= set(roots)

    gen = write_template(tmp_path, "gen", """
    def build_model():
        return keras.Sequential([
            keras.Input((147,)), keras.layers.Dense(256, use_bias=False),
            keras.layers.BatchNormalization(), keras.layers.LeakyReLU(),
            keras.layers.Dense(128), keras.layers.Dense(64), keras.layers.Dense(64),
            keras.layers.Dense(147, use_bias=False)])
    """)
    plan = wait_planned(qtbot, dlg, lambda: dlg.add_template(gen))
    assert plan.root == "generator" and dlg.root_combo.currentData() is None
    plan = wait_planned(qtbot, dlg, lambda: dlg.root_combo.setCurrentIndex(
        dlg.root_combo.findData("discriminator")))
    assert plan.root == "discriminator"
    report = click_restore(qtbot, dlg)
    assert report.root == "discriminator" and not report.complete and report.shape_mismatch
    plan = wait_planned(qtbot, dlg, lambda: dlg.root_combo.setCurrentIndex(
        dlg.root_combo.findData("generator")))
    report = click_restore(qtbot, dlg)
    assert report.complete and report.root == "generator"
    assert "LeakyReLU" not in dlg.sample_label.text() and "output [2, 147]" in \
        dlg.sample_label.text()

    broken = write_template(tmp_path, "broken", """
    def build_model():
        return keras.Sequential([keras.layers.Dense(3, activation="no_such_activation")])
    """)
    with qtbot.waitSignal(dlg.failed, timeout=TIMEOUT) as blocker:
        dlg.add_template(broken)
    assert "template" in blocker.args[0] and "build_model() failed" in blocker.args[0]
    assert "no_such_activation" in dlg.status_label.text()
    assert dlg.mapping_table.rowCount() == 0 and not dlg.restore_button.isEnabled()
