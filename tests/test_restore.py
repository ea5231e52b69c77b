"""Restore into a model template (issue 5): the TF guide's flows end to end, Keras 2 era corpus
checkpoints into Keras 3 templates written from their shapes, legacy .h5 and Keras 3 .weights.h5,
mismatches, template errors, the CLI's JSON and exit codes, saving, packaging of the built-ins.

Everything is written under tmp_path; corpus folders are copied first (corpus_copy).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from ckpt_gui import cli
from ckpt_gui.core import scan_directory
from ckpt_gui.core.restore import (LAYER_ORDER, MAPPED, NATIVE, OBJECT_PATH, ORDER_SHAPE,
                                   SUGGESTED, RestoreError, RestoreSession, RootError,
                                   restore_checkpoint)
from ckpt_gui.core.templates import TemplateError, builtin_templates, resolve

REPO = Path(__file__).resolve().parents[1]
JSON_KEYS = {"checkpoint", "template", "root", "mode", "restored", "missing_in_checkpoint",
             "unused_in_checkpoint", "shape_mismatch", "optimizer_restored", "verified", "saved"}


# --- helpers ---------------------------------------------------------------------------------

def template(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / "templates" / f"{name}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text("import keras\n" + textwrap.dedent(body))
    return str(path)


def dense_stack(tmp_path, name, n_in, units, acts=None, optimizer=None, input_rank=1):
    acts = acts or ["relu"] * (len(units) - 1) + [None]
    layers = ", ".join(f"keras.layers.Dense({u}, activation={a!r})" for u, a in zip(units, acts))
    shape = f"({n_in},)" if input_rank == 1 else f"(None, {n_in})"
    body = f"""
    def build_model():
        return keras.Sequential([keras.Input({shape}), {layers}])
    """
    if optimizer:
        body += f"""
    def build_optimizer():
        return keras.optimizers.{optimizer}
    """
    return template(tmp_path, name, body)


def checkpoint(directory, name=None):
    scan = scan_directory(str(directory))
    return scan.checkpoint(name or scan.latest)


def restore(ckpt, template_spec, **kwargs):
    """restore_checkpoint, keeping the session so tests can look at the restored model."""
    session = RestoreSession(ckpt, template_spec)
    report = session.run(**kwargs)
    report._session = session
    return report


def assert_values_equal_reader(ckpt, report, session=None):
    """Every restored variable (model and optimizer) equals, exactly, what TF's own reader
    (tf.train.load_checkpoint) or h5py returns for its key."""
    from ckpt_gui.core.tfrt import tf

    session = session or report._session
    variables = {v.path: v for v in session.loaded.model.weights}
    if session.loaded.optimizer is not None:
        variables.update({v.path: v for v in session.loaded.optimizer.variables})
    rows = report.restored + report.optimizer.entries
    assert rows and all(r.verified for r in rows)
    if ckpt.format in ("keras-h5", "keras3-h5"):
        with h5py.File(ckpt.path, "r") as f:
            values = {r.key: np.asarray(f[r.key][()]) for r in rows}
    else:
        reader = tf().train.load_checkpoint(ckpt.path)
        values = {r.key: reader.get_tensor(r.key) for r in rows}
    for r in rows:
        v = np.asarray(variables[r.variable].numpy())
        np.testing.assert_array_equal(v, values[r.key].astype(v.dtype), err_msg=r.variable)
    return len(rows)


def model_values(model):
    return [np.asarray(v.numpy()) for v in model.weights]


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- templates -------------------------------------------------------------------------------

def test_builtin_templates_are_found_with_the_tf_guide_mlp():
    refs = {r.name: r for r in builtin_templates()}
    assert "tf_guide_mlp" in refs
    ref = refs["tf_guide_mlp"]
    assert ref.builtin and ref.kind == "python" and Path(ref.path).is_file()
    assert Path(ref.path).parent == REPO / "resources" / "templates"
    assert "784" in ref.description and "Adam" in ref.description
    assert resolve("tf_guide_mlp").path == ref.path
    with pytest.raises(TemplateError, match="no such file and no built-in template"):
        resolve("no_such_template")


def test_builtin_mlp_builds_dense_128_relu_on_784_then_10_with_adam(tf):
    from ckpt_gui.core.templates import load

    loaded = load(resolve("tf_guide_mlp"))
    shapes = [tuple(w.shape) for w in loaded.model.weights]
    assert shapes == [(784, 128), (128,), (128, 10), (10,)]
    assert loaded.model.layers[0].activation.__name__ == "relu"
    assert type(loaded.optimizer).__name__ == "Adam"


def test_packaging_installs_resources_templates_and_lists_every_package(tmp_path):
    """pyproject lists packages explicitly and maps the top-level resources/ into the wheel as
    ckpt_gui/resources, where ckpt_gui/paths.py looks in an installed copy."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    on_disk = {".".join(p.relative_to(REPO).parts[:-1]) for p in (REPO / "ckpt_gui").rglob(
        "__init__.py") if "__pycache__" not in p.parts}
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages"
    assert conf["package-dir"]["ckpt_gui.resources"] == "resources"
    # build a wheel from a copy (nothing is written into the repository)
    import shutil

    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
        "tests", "benchmarks"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ckpt_gui/resources/templates/tf_guide_mlp.py" in names
    assert "ckpt_gui/paths.py" in names and "ckpt_gui/core/restore/session.py" in names
    assert "ckpt_gui/resources/__init__.py" not in names   # data only, not a package


# --- the guide's flows -----------------------------------------------------------------------

@pytest.fixture
def trained_mlp(tf):
    import keras

    model = keras.Sequential([keras.layers.Dense(128, activation="relu", input_shape=(784,)),
                              keras.layers.Dense(10)])
    optimizer = keras.optimizers.Adam()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 784)).astype("float32")
    y = rng.standard_normal((16, 10)).astype("float32")
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    return model, optimizer, x, y


def test_guide_example1_checkpoint_of_the_model_restores_natively(tmp_path, trained_mlp, tf,
                                                                  capsys):
    model, _, x, _ = trained_mlp
    ckpt = tf.train.Checkpoint(model=model)
    ckpt.save(str(tmp_path / "ex1" / "my_checkpoint"))
    c = checkpoint(tmp_path / "ex1")
    session = RestoreSession(c, "tf_guide_mlp")
    report = session.run()
    assert report.complete and report.verified and report.root == "model"
    assert report.mode == NATIVE
    assert {r.how for r in report.restored} == {OBJECT_PATH}
    np.testing.assert_array_equal(session.loaded.model(x).numpy(), model(x).numpy())
    assert report.sample.output_shape == [2, 10] and report.sample.finite
    # the CLI: JSON exactly per the issue, exit 0
    code, out, _ = run_cli(capsys, "restore", tmp_path / "ex1", "latest", "--template",
                           "tf_guide_mlp", "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == JSON_KEYS
    assert data["mode"] == "native" and data["root"] == "model" and data["verified"] is True
    assert [r["shape"] for r in data["restored"]] == [[784, 128], [128], [128, 10], [10]]
    assert data["missing_in_checkpoint"] == [] and data["shape_mismatch"] == []
    assert data["saved"] is None and data["template"] == "tf_guide_mlp"


def test_guide_example2_optimizer_and_model_resume_training_identically(tmp_path, trained_mlp,
                                                                        tf):
    model, optimizer, x, y = trained_mlp
    ckpt = tf.train.Checkpoint(optimizer=optimizer, model=model)
    # the article's slip: '{epoch}' is never formatted; the prefix keeps it literally
    path = ckpt.save(str(tmp_path / "ex2" / "my_checkpoint") + "-{epoch}")
    assert path.endswith("my_checkpoint-{epoch}-1")
    c = checkpoint(tmp_path / "ex2")
    assert c.name == "my_checkpoint-{epoch}-1"
    session = RestoreSession(c, "tf_guide_mlp")
    report = session.run()
    assert report.complete and report.mode == NATIVE
    assert report.optimizer_restored and report.optimizer.iterations == int(
        optimizer.iterations.numpy()) == 6
    assert report.optimizer.slots_restored == report.optimizer.slots_expected == 8
    new_model, new_opt = session.loaded.model, session.loaded.optimizer
    for a, b in zip(optimizer.variables, new_opt.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))
    np.testing.assert_array_equal(new_model(x).numpy(), model(x).numpy())
    # resuming: one identical step on both gives identical weights (slots + iterations matter)
    new_model.compile(optimizer=new_opt, loss="mse")
    model.train_on_batch(x, y)
    new_model.train_on_batch(x, y)
    for a, b in zip(model_values(model), model_values(new_model)):
        np.testing.assert_array_equal(a, b)


def test_guide_checkpoint_manager_latest(tmp_path, trained_mlp, tf, capsys):
    model, optimizer, x, y = trained_mlp
    ckpt = tf.train.Checkpoint(optimizer=optimizer, model=model, epoch=tf.Variable(0))
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "mgr"), max_to_keep=2)
    for epoch in range(3):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        ckpt.epoch.assign(epoch + 1)
        manager.save()
    assert os.path.basename(manager.latest_checkpoint) == "ckpt-3"
    c = checkpoint(tmp_path / "mgr")
    assert c.name == "ckpt-3"
    session = RestoreSession(c, "tf_guide_mlp")
    report = session.run()
    assert report.complete and report.optimizer.iterations == 12
    np.testing.assert_array_equal(session.loaded.model(x).numpy(), model(x).numpy())
    assert "epoch/.ATTRIBUTES/VARIABLE_VALUE" in report.unused_in_checkpoint
    assert_values_equal_reader(c, report, session)
    code, out, _ = run_cli(capsys, "restore", tmp_path / "mgr", "latest", "--template",
                           "tf_guide_mlp")
    assert code == 0
    assert "Optimizer: restored (iterations 12, 8 of 8 slots)" in out
    assert "Verified: yes" in out and "Sample run: input [2, 784] -> output [2, 10]" in out


def test_keras3_modelcheckpoint_weights_h5_and_keras_files(tmp_path, tf):
    """The guide's Keras 3 note: ModelCheckpoint needs .weights.h5 (weights only) or .keras."""
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 784)).astype("float32"), rng.standard_normal(
        (8, 10)).astype("float32")
    cbs = [keras.callbacks.ModelCheckpoint(str(tmp_path / "w" / "ckpt_{epoch}.weights.h5"),
                                           save_weights_only=True),
           keras.callbacks.ModelCheckpoint(str(tmp_path / "k" / "ckpt_{epoch}.keras"))]
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=cbs)
    for d, name in (("w", "ckpt_2.weights.h5"), ("k", "ckpt_2.keras")):
        c = checkpoint(tmp_path / d, name)
        session = RestoreSession(c, "tf_guide_mlp")
        report = session.run()
        assert report.complete and report.mode == NATIVE, report
        assert report.optimizer_restored and report.optimizer.iterations == 4
        np.testing.assert_array_equal(session.loaded.model(x).numpy(), model(x).numpy())
    # a .keras file is also a template (its architecture and compiled optimizer)
    c = checkpoint(tmp_path / "w", "ckpt_2.weights.h5")
    report = restore_checkpoint(c, str(tmp_path / "k" / "ckpt_1.keras"))
    assert report.complete and report.optimizer_restored


def test_legacy_h5_weights_and_whole_model_restore_by_layer_order(tmp_path, trained_mlp, tf):
    from keras.src.legacy.saving import legacy_h5_format

    model, _, x, _ = trained_mlp
    (tmp_path / "h5").mkdir()
    with h5py.File(tmp_path / "h5" / "weights.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    model.save(str(tmp_path / "h5" / "whole.h5"))
    for name, with_optimizer in (("weights.h5", False), ("whole.h5", True)):
        c = checkpoint(tmp_path / "h5", name)
        assert c.format == "keras-h5"
        session = RestoreSession(c, "tf_guide_mlp")
        report = session.run()
        assert report.complete and report.mode == MAPPED
        assert {r.how for r in report.restored} == {LAYER_ORDER}
        np.testing.assert_array_equal(session.loaded.model(x).numpy(), model(x).numpy())
        assert report.optimizer_restored is with_optimizer
        assert_values_equal_reader(c, report, session)
    # the whole-model .h5 carries its config: the "checkpoint" template builds from it
    report = restore(checkpoint(tmp_path / "h5", "whole.h5"), "checkpoint")
    assert report.complete


# --- Keras 2 era corpus checkpoints into Keras 3 templates written from their shapes ---------

def test_charity_keras2_dense_stack_into_keras3(tmp_path, corpus_copy, tf, capsys):
    d = corpus_copy("charity-hd5f-keras-tf")
    t = dense_stack(tmp_path, "charity", 43, [80, 30, 1], ["relu", "relu", "sigmoid"],
                    optimizer="Adam()")
    c = checkpoint(d)
    assert c.name == "weights.100.hd5f"
    report = restore(c, t)
    assert report.complete and report.root == "" and report.mode == MAPPED
    assert [r.key.split("/.ATTRIBUTES")[0] for r in report.restored] == [
        "layer_with_weights-0/kernel", "layer_with_weights-0/bias",
        "layer_with_weights-1/kernel", "layer_with_weights-1/bias",
        "layer_with_weights-2/kernel", "layer_with_weights-2/bias"]
    assert report.optimizer_restored and report.optimizer.iterations == 80400
    assert report.optimizer.slots_restored == 12
    assert_values_equal_reader(c, report)
    # through the CLI, saving the result; the saved file restores back, natively
    out_path = tmp_path / "out" / "charity.weights.h5"
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template", t, "--save", out_path,
                           "--json")
    data = json.loads(out)
    assert code == 0 and data["saved"] == str(out_path) and out_path.is_file()
    again = restore_checkpoint(checkpoint(out_path.parent), t)
    assert again.complete and again.mode == NATIVE and again.optimizer.iterations == 80400


def test_charity_via_session_values_equal_tf_reader(tmp_path, corpus_copy, tf):
    d = corpus_copy("charity-hd5f-keras-tf")
    c = checkpoint(d, "weights.05.hd5f")
    t = dense_stack(tmp_path, "charity", 43, [80, 30, 1], ["relu", "relu", "sigmoid"])
    session = RestoreSession(c, t)
    report = session.run()
    reader = tf.train.load_checkpoint(c.path)
    for r, v in zip(report.restored, session.loaded.model.weights):
        np.testing.assert_array_equal(np.asarray(v.numpy()), reader.get_tensor(r.key))
    assert not report.optimizer.in_template and "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE" in \
        report.unused_in_checkpoint


def test_tictactoe_net_root_and_new_style_optimizer(tmp_path, corpus_copy, tf, capsys):
    d = corpus_copy("tictactoe-tf2mgr-keras3opt")
    t = dense_stack(tmp_path, "ttt", 9, [9, 9], optimizer="Adam()")
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template", t, "--json")
    data = json.loads(out)
    assert code == 0 and data["root"] == "net" and data["optimizer_restored"] is True
    assert [r["key"].split("/.ATTRIBUTES")[0] for r in data["restored"]] == [
        "net/layer_with_weights-0/kernel", "net/layer_with_weights-0/bias",
        "net/layer_with_weights-1/kernel", "net/layer_with_weights-1/bias"]
    assert "step/.ATTRIBUTES/VARIABLE_VALUE" in data["unused_in_checkpoint"]
    session = RestoreSession(checkpoint(d), t)
    report = session.run(root="net")
    assert report.optimizer.iterations == 316 and report.optimizer.slots_restored == 8
    reader = tf.train.load_checkpoint(checkpoint(d).path)
    slot_keys = {r.key for r in report.optimizer.entries}
    assert {f"net/optimizer/_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE" for i in range(1, 9)} \
        <= slot_keys
    for r in report.optimizer.entries:
        v = next(v for v in session.loaded.optimizer.variables if (v.path) == r.variable)
        np.testing.assert_array_equal(np.asarray(v.numpy()),
                                      reader.get_tensor(r.key).astype(v.dtype))


def test_foodprep_rmsprop_two_shards(tmp_path, corpus_copy, tf):
    d = corpus_copy("foodprep-sharded2-keras-tf")
    t = dense_stack(tmp_path, "food", 20, [64, 64, 30, 20, 10, 1], optimizer="RMSprop()")
    c = checkpoint(d)
    report = restore(c, t)
    assert report.complete and len(report.restored) == 12
    assert report.optimizer_restored and report.optimizer.slots_restored == 12
    assert report.optimizer.iterations == 64000
    assert_values_equal_reader(c, report)
    # with momentum the template has slots this checkpoint never had: said, not hidden
    t2 = dense_stack(tmp_path, "food_m", 20, [64, 64, 30, 20, 10, 1],
                     optimizer="RMSprop(momentum=0.9)")
    r2 = restore_checkpoint(c, t2)
    assert r2.complete and not r2.optimizer_restored
    assert "12 of 24 optimizer slots were not found" in r2.optimizer.reason


@pytest.mark.parametrize("name,units", [("30LSTM_Neurons5Epochs.ckpt", 30),
                                        ("16LSTM_Neurons10Epochs.ckpt", 16)])
def test_dynrnn_lstm(tmp_path, corpus_copy, tf, name, units):
    d = corpus_copy("dynrnn-mixed-shards-keras-tf")
    t = template(tmp_path, f"lstm{units}", f"""
    def build_model():
        return keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM({units}),
                                 keras.layers.Dense(3)])
    def build_optimizer():
        return keras.optimizers.Adam()
    """)
    c = checkpoint(d, name)
    report = restore(c, t)
    assert report.complete and report.optimizer_restored
    keys = [r.key.split("/.ATTRIBUTES")[0] for r in report.restored]
    assert keys == ["layer_with_weights-0/cell/kernel",
                    "layer_with_weights-0/cell/recurrent_kernel",
                    "layer_with_weights-0/cell/bias", "layer_with_weights-1/kernel",
                    "layer_with_weights-1/bias"]
    assert_values_equal_reader(c, report)
    assert report.sample.output_shape == [2, 3] and report.sample.finite


def test_churn_keras3_weights_h5(tmp_path, corpus_copy, tf):
    d = corpus_copy("churn-keras3-weights-h5")
    t = dense_stack(tmp_path, "churn", 12, [64, 32, 1], ["relu", "relu", "sigmoid"],
                    optimizer="Adam()")
    c = checkpoint(d)
    session = RestoreSession(c, t)
    report = session.run()
    assert report.complete and report.mode == NATIVE
    assert report.optimizer_restored and report.optimizer.iterations == 4500
    with h5py.File(c.path, "r") as f:
        for r, v in zip(report.restored, session.loaded.model.weights):
            np.testing.assert_array_equal(np.asarray(v.numpy()), f[r.key][()])
        for i, v in enumerate(session.loaded.optimizer.variables):
            np.testing.assert_array_equal(np.asarray(v.numpy()),
                                          f[f"optimizer/vars/{i}"][()].astype(v.dtype))


def test_gan_root_chosen_by_the_template_or_asked_for(tmp_path, corpus_copy, tf, capsys):
    d = corpus_copy("supercon-gan-tf2")
    gen = template(tmp_path, "gen", """
    def build_model():
        return keras.Sequential([
            keras.Input((147,)), keras.layers.Dense(256, use_bias=False),
            keras.layers.BatchNormalization(), keras.layers.LeakyReLU(),
            keras.layers.Dense(128), keras.layers.Dense(64), keras.layers.Dense(64),
            keras.layers.Dense(147, use_bias=False)])
    """)
    c = checkpoint(d, "ckpt-2")
    report = restore(c, gen)
    assert report.root == "generator" and report.complete
    assert report.restored[1].key.startswith("generator/layer_with_weights-1/gamma")
    assert_values_equal_reader(c, report)
    # a template that fits neither part: the user must choose
    code, _, err = run_cli(capsys, "restore", d, "ckpt-2", "--template", "tf_guide_mlp")
    assert code == 2
    assert "several parts of ckpt-2 could hold the model" in err and "--root" in err
    assert "discriminator" in err and "generator" in err and "Traceback" not in err
    with pytest.raises(RootError):
        restore_checkpoint(c, "tf_guide_mlp")
    # --root names it; the wrong part is reported precisely
    code, out, _ = run_cli(capsys, "restore", d, "ckpt-2", "--template", gen, "--root",
                           "discriminator", "--json")
    data = json.loads(out)
    assert code == 1 and data["root"] == "discriminator"
    assert data["shape_mismatch"] and data["missing_in_checkpoint"]
    code, _, err = run_cli(capsys, "restore", d, "ckpt-2", "--template", gen, "--root", "nope")
    assert code == 2 and "has no object 'nope'" in err


def test_tf1_name_based_checkpoints_by_order_and_shape(tmp_path, corpus_copy, tf):
    d = corpus_copy("daviesx-partial-data-tf1")
    t = dense_stack(tmp_path, "fc2", 784, [100, 25, 10], optimizer="Adam()")
    c = checkpoint(d, "fc2.ckpt")
    report = restore(c, t)
    assert report.complete and {r.how for r in report.restored} == {ORDER_SHAPE}
    assert [r.key for r in report.restored] == ["h1/w", "h1/b", "h2/w", "h2/b", "output/w",
                                                "output/b"]
    assert report.optimizer_restored and report.optimizer.iterations == 20000
    assert_values_equal_reader(c, report)
    # the broken one (its data file is missing) is said plainly, exit 1
    with pytest.raises(RestoreError, match="data-00000-of-00001 is missing"):
        restore_checkpoint(checkpoint(d, "cnn.ckpt"), t)
    d2 = corpus_copy("tdgammon-v1-v2-tf1")
    t2 = dense_stack(tmp_path, "tdg", 294, [50, 1], ["sigmoid", "sigmoid"])
    for name in ("checkpoint-447880", "checkpoint-462746"):   # V1 and V2
        c = checkpoint(d2, name)
        report = restore(c, t2)
        assert report.complete and [r.key for r in report.restored] == [
            "layer1/weight", "layer1/bias", "layer2/weight", "layer2/bias"]
        assert_values_equal_reader(c, report)


# --- mismatches ------------------------------------------------------------------------------

SUBCLASSED = """
class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense({hidden}, activation="relu")
        {extra}
        self.{out} = keras.layers.Dense(3)
    def call(self, x):
        return self.{out}({call})

INPUT_SHAPE = (8,)

def build_model():
    return Net()
"""


def subclassed(tmp_path, name, hidden=16, out="out", extra=False):
    return template(tmp_path, name, SUBCLASSED.format(
        hidden=hidden, out=out,
        extra="self.hidden2 = keras.layers.Dense(16)" if extra else "",
        call="self.hidden2(self.hidden(x))" if extra else "self.hidden(x)"))


@pytest.fixture
def subclassed_ckpt(tmp_path, tf):
    import importlib.util

    path = subclassed(tmp_path, "source")
    spec = importlib.util.spec_from_file_location("source_net", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.Net()
    net(np.ones((1, 8), "float32"))
    tf.train.Checkpoint(model=net).save(str(tmp_path / "sub" / "ckpt"))
    return tmp_path / "sub", net


def test_subclassed_kernel_vs__kernel_and_exact_template(tmp_path, subclassed_ckpt, capsys):
    d, net = subclassed_ckpt
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template",
                           subclassed(tmp_path, "same"), "--json")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "native" and data["root"] == "model"
    assert [r["key"] for r in data["restored"]] == [
        "model/hidden/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
        "model/hidden/bias/.ATTRIBUTES/VARIABLE_VALUE",
        "model/out/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
        "model/out/bias/.ATTRIBUTES/VARIABLE_VALUE"]


def test_renamed_layer_is_reported_not_guessed(tmp_path, subclassed_ckpt, capsys):
    d, _ = subclassed_ckpt
    t = subclassed(tmp_path, "renamed", out="logits")
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template", t, "--json")
    data = json.loads(out)
    assert code == 1 and data["verified"] is True
    assert len(data["restored"]) == 2 and len(data["missing_in_checkpoint"]) == 2
    assert all(n.endswith(("kernel", "bias")) for n in data["missing_in_checkpoint"])
    assert {"model/out/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
            "model/out/bias/.ATTRIBUTES/VARIABLE_VALUE"} <= set(data["unused_in_checkpoint"])
    # the pairing by order and shape is offered for review, not applied
    report = restore(checkpoint(d), t)
    assert [k for _, k in report.suggestions] == [
        "model/out/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
        "model/out/bias/.ATTRIBUTES/VARIABLE_VALUE"]
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template", t)
    assert code == 1 and "missing in checkpoint" in out and "could take model/out/_kernel" in out
    # a person accepting the suggestion (the dialog's edit) completes it
    session = RestoreSession(checkpoint(d), t)
    plan = session.propose()
    for e in plan.model_entries():
        if e.how == SUGGESTED:
            plan.set_key(e, e.key)
    assert session.restore(plan).complete


def test_extra_layer_and_wrong_shape_precise_report_no_crash(tmp_path, subclassed_ckpt, capsys):
    d, _ = subclassed_ckpt
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template",
                           subclassed(tmp_path, "extra", extra=True), "--json")
    data = json.loads(out)
    assert code == 1 and len(data["restored"]) == 4 and data["shape_mismatch"] == []
    assert len(data["missing_in_checkpoint"]) == 2   # hidden2's kernel and bias
    session = RestoreSession(checkpoint(d), subclassed(tmp_path, "wrong", hidden=12))
    plan = session.propose()
    before = {e.variable: np.asarray(session.template_side.vars[e.index].var.numpy())
              for e in plan.model_entries()}
    report = session.restore(plan)
    mism = {m.variable: (m.key, m.variable_shape, m.checkpoint_shape)
            for m in report.shape_mismatch}
    assert sorted(v[1:] for v in mism.values()) == [([8, 12], [8, 16]), ([12], [16]),
                                                     ([12, 3], [16, 3])]
    assert [r.key for r in report.restored] == ["model/out/bias/.ATTRIBUTES/VARIABLE_VALUE"]
    assert not report.complete
    for e in plan.model_entries():   # a tensor of another shape was never assigned
        if e.variable in mism:
            np.testing.assert_array_equal(
                before[e.variable], np.asarray(session.template_side.vars[e.index].var.numpy()))
    with pytest.raises(RestoreError, match="never assigned"):
        plan.set_key(plan.model_entries()[0], "model/hidden/_kernel/.ATTRIBUTES/VARIABLE_VALUE")
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template",
                           subclassed(tmp_path, "wrong2", hidden=12), "--json")
    data = json.loads(out)
    assert code == 1 and len(data["shape_mismatch"]) == 3
    assert {"variable", "key", "variable_shape", "checkpoint_shape"} == set(
        data["shape_mismatch"][0])


def test_keras2_sequential_with_extra_and_resized_layer(tmp_path, corpus_copy, capsys):
    d = corpus_copy("charity-hd5f-keras-tf")
    t = dense_stack(tmp_path, "extra", 43, [80, 30, 1, 1])
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template", t, "--json")
    data = json.loads(out)
    assert code == 1 and len(data["restored"]) == 6 and len(data["missing_in_checkpoint"]) == 2
    t = dense_stack(tmp_path, "resized", 43, [64, 30, 1])
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template", t, "--json",
                           "--save", tmp_path / "never.keras")
    data = json.loads(out)
    assert code == 1 and data["saved"] is None and not (tmp_path / "never.keras").exists()
    assert [(m["variable_shape"], m["checkpoint_shape"]) for m in data["shape_mismatch"]] == [
        ([43, 64], [43, 80]), ([64], [80]), ([64, 30], [80, 30])]


# --- template errors and bad usage -----------------------------------------------------------

def test_template_errors_are_the_templates_own_text(tmp_path, corpus_copy, capsys):
    d = corpus_copy("tictactoe-tf2mgr-keras3opt")
    cases = {
        "import": ("def build_model():\n    return None\nx = undefined_name + 1\n",
                   "import failed: NameError: name 'undefined_name' is not defined (line 4"),
        "build": ("def build_model():\n    raise RuntimeError('needs a GPU')\n",
                  "build_model() failed: RuntimeError: needs a GPU (line 3"),
        "notmodel": ("def build_model():\n    return 42\n", "returned int, not a Keras model"),
        "nobuild": ("X = 1\n", "defines no build_model() function"),
        "syntax": ("def build_model(:\n", "import failed: SyntaxError: invalid syntax "
                                          "(line 2: def build_model(:)"),
    }
    for name, (body, expected) in cases.items():
        t = template(tmp_path, name, body)
        code, out, err = run_cli(capsys, "restore", d, "latest", "--template", t, "--json")
        assert code == 2 and out == "", name
        assert expected in err, (name, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert len(re.findall(r"line \d", err)) <= 1, err   # issue 11: "(line 1) (line 1)"
    # as a process: no traceback of ours either
    t = template(tmp_path, "import", cases["import"][0])
    p = subprocess.run([sys.executable, "-m", "ckpt_gui.cli", "restore", str(d), "latest",
                        "--template", t], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "NameError" in p.stderr and "Traceback" not in p.stderr


def test_bad_usage_exits_2(tmp_path, corpus_copy, capsys):
    d = corpus_copy("tictactoe-tf2mgr-keras3opt")
    for argv, expected in (
            (["--template", "tf_guide_mlp", "--save", tmp_path / "x.h5"], ".weights.h5 or .keras"),
            (["--template", "nosuch"], "no built-in template"),
            (["--template", str(tmp_path / "missing.py")], "no such file")):
        code, _, err = run_cli(capsys, "restore", d, "latest", *argv)
        assert code == 2 and expected in err
    code, _, err = run_cli(capsys, "restore", d, "ckpt-99", "--template", "tf_guide_mlp")
    assert code == 2 and "no checkpoint 'ckpt-99'" in err
    code, _, err = run_cli(capsys, "restore", tmp_path / "nowhere", "x", "--template", "t")
    assert code == 2


# --- the checkpoint's own config ---------------------------------------------------------------

def _keras2_style_checkpoint(tf, prefix, with_model_config=True):
    """A checkpoint as TF 2.0-era Keras wrote it: OBJECT_CONFIG_JSON on the model and layers."""
    def dense(name, units, act):
        return {"class_name": "Dense", "config": {
            "name": name, "trainable": True, "dtype": "float32", "units": units,
            "activation": act, "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}}
    layers = [dense("dense", 16, "relu"), dense("dense_1", 4, "linear")]
    layers[0]["config"]["batch_input_shape"] = [None, 6]
    cfg = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers},
           "keras_version": "2.4.0", "backend": "tensorflow"}

    class ConfigNode(tf.__internal__.tracking.AutoTrackable):
        def __init__(self, text):
            self._text = text

        def _serialize_to_tensors(self):
            return {"OBJECT_CONFIG_JSON": tf.constant(self._text)} if self._text else {}

        def _restore_from_tensors(self, restored):
            return tf.no_op()

    root = ConfigNode(json.dumps(cfg) if with_model_config else None)
    rng = np.random.default_rng(3)
    for i, (a, b) in enumerate([(6, 16), (16, 4)]):
        node = ConfigNode(json.dumps(layers[i]))
        node.kernel = tf.Variable(rng.standard_normal((a, b)).astype("float32"))
        node.bias = tf.Variable(rng.standard_normal((b,)).astype("float32"))
        setattr(root, f"layer_with_weights-{i}", node)
        setattr(root, f"layer-{i}", node)
    tf.train.Checkpoint(root=root).write(str(prefix))


@pytest.mark.parametrize("with_model_config", [True, False])
def test_checkpoint_template_builds_from_object_config_json(tmp_path, tf, with_model_config,
                                                           capsys):
    _keras2_style_checkpoint(tf, tmp_path / "k2" / "weights", with_model_config)
    c = checkpoint(tmp_path / "k2")
    assert any(v.name.endswith("OBJECT_CONFIG_JSON") for v in c.variables)
    code, out, _ = run_cli(capsys, "restore", tmp_path / "k2", "latest", "--template",
                           "checkpoint", "--json")
    data = json.loads(out)
    assert code == 0 and data["template"] == "checkpoint"
    assert [r["shape"] for r in data["restored"]] == [[6, 16], [16], [16, 4], [4]]
    assert all(k.endswith("OBJECT_CONFIG_JSON") is False for k in data["unused_in_checkpoint"])


def test_checkpoint_template_without_config_says_so(tmp_path, corpus_copy, capsys):
    d = corpus_copy("charity-hd5f-keras-tf")
    code, _, err = run_cli(capsys, "restore", d, "latest", "--template", "checkpoint")
    assert code == 2 and "carries no Keras model config" in err


# --- saving ------------------------------------------------------------------------------------

def test_save_keras_round_trip_and_sample_run(tmp_path, corpus_copy, tf, capsys):
    import keras

    d = corpus_copy("tictactoe-tf2mgr-keras3opt")
    t = dense_stack(tmp_path, "ttt", 9, [9, 9], optimizer="Adam()")
    out_path = tmp_path / "saved" / "net.keras"
    code, out, _ = run_cli(capsys, "restore", d, "latest", "--template", t, "--save", out_path)
    assert code == 0 and f"Saved: {out_path}" in out
    loaded = keras.saving.load_model(str(out_path))
    reader = tf.train.load_checkpoint(checkpoint(d).path)
    np.testing.assert_array_equal(
        np.asarray(loaded.weights[0].numpy()),
        reader.get_tensor("net/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"))
    assert int(loaded.optimizer.iterations.numpy()) == 316
    x = np.eye(9, dtype="float32")[:2]
    np.testing.assert_allclose(loaded(x).numpy(), loaded.predict(x, verbose=0), rtol=1e-6)
    assert re.search(r"Sample run: input \[2, 9\] -> output \[2, 9\]: ", out)


# --- other layouts real checkpoints have (generalization) -----------------------------------

def _object_checkpoint(tf, prefix, tensors):
    """An object-based checkpoint with exactly this layout (children in this order)."""
    root = tf.Module()
    for path, value in tensors:
        node, segs = root, path.split("/")
        for s in segs[:-1]:
            if s not in vars(node):
                setattr(node, s, tf.Module())
            node = getattr(node, s)
        setattr(node, segs[-1], tf.Variable(value))
    tf.train.Checkpoint(root=root).write(str(prefix))


def _name_based_checkpoint(tf, prefix, tensors):
    """A name-based checkpoint as the TF1 Saver writes it (no object graph)."""
    names = [p for p, _ in tensors]
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(v) for _, v in tensors])


def _t(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


def test_keras2_subclassed_save_weights_layout_into_a_sequential(tmp_path, tf):
    rng = np.random.default_rng(5)
    (tmp_path / "a").mkdir()
    _object_checkpoint(tf, tmp_path / "a" / "ckpt", [
        ("dense1/kernel", _t(rng, 5, 7)), ("dense1/bias", _t(rng, 7)),
        ("dense2/kernel", _t(rng, 7, 2)), ("dense2/bias", _t(rng, 2)),
        ("optimizer/iter", np.int64(3))])
    c = checkpoint(tmp_path / "a")
    report = restore(c, dense_stack(tmp_path, "a", 5, [7, 2]))
    assert report.root == "" and report.complete
    assert [r.key.split("/.ATTRIBUTES")[0] for r in report.restored] == [
        "dense1/kernel", "dense1/bias", "dense2/kernel", "dense2/bias"]
    assert_values_equal_reader(c, report)


def test_tf1_two_models_in_one_checkpoint_root_by_shapes(tmp_path, tf, capsys):
    rng = np.random.default_rng(6)
    (tmp_path / "b").mkdir()
    _name_based_checkpoint(tf, tmp_path / "b" / "model.ckpt", [
        ("discriminator/d1/w", _t(rng, 5, 7)), ("discriminator/d1/b", _t(rng, 7)),
        ("discriminator/d2/w", _t(rng, 7, 1)), ("discriminator/d2/b", _t(rng, 1)),
        ("generator/g1/w", _t(rng, 3, 7)), ("generator/g1/b", _t(rng, 7)),
        ("generator/g2/w", _t(rng, 7, 5)), ("generator/g2/b", _t(rng, 5)),
        ("global_step", np.int64(10))])
    c = checkpoint(tmp_path / "b")
    report = restore(c, dense_stack(tmp_path, "g", 3, [7, 5]))
    assert report.root == "generator" and report.complete
    assert [r.key for r in report.restored] == ["generator/g1/w", "generator/g1/b",
                                                "generator/g2/w", "generator/g2/b"]
    assert_values_equal_reader(c, report)
    code, out, _ = run_cli(capsys, "restore", tmp_path / "b", "model.ckpt", "--template",
                           dense_stack(tmp_path, "d", 5, [7, 1]), "--root", "discriminator",
                           "--json")
    assert code == 0 and json.loads(out)["restored"][0]["key"] == "discriminator/d1/w"


def test_keras2_bidirectional_lstm_forward_and_backward_not_swapped(tmp_path, tf):
    rng = np.random.default_rng(7)
    u = 4
    cell = lambda side: [  # noqa: E731
        (f"layer_with_weights-0/{side}_layer/cell/kernel", _t(rng, 3, 4 * u)),
        (f"layer_with_weights-0/{side}_layer/cell/recurrent_kernel", _t(rng, u, 4 * u)),
        (f"layer_with_weights-0/{side}_layer/cell/bias", _t(rng, 4 * u))]
    (tmp_path / "c").mkdir()
    _object_checkpoint(tf, tmp_path / "c" / "ckpt", cell("backward") + cell("forward") + [
        ("layer_with_weights-1/kernel", _t(rng, 2 * u, 1)),
        ("layer_with_weights-1/bias", _t(rng, 1))])
    t = template(tmp_path, "bi", f"""
    def build_model():
        return keras.Sequential([keras.Input((None, 3)),
                                 keras.layers.Bidirectional(keras.layers.LSTM({u})),
                                 keras.layers.Dense(1)])
    """)
    c = checkpoint(tmp_path / "c")
    report = restore(c, t)
    assert report.complete
    for r in report.restored[:6]:
        side = "forward" if "forward" in r.variable else "backward"
        assert f"/{side}_layer/" in r.key
    assert_values_equal_reader(c, report)


def test_damaged_checkpoints_say_what_could_not_be_read(tmp_path, corpus_copy, capsys):
    t = dense_stack(tmp_path, "food", 20, [64, 64, 30, 20, 10, 1], optimizer="RMSprop()")
    d = corpus_copy("foodprep-sharded2-keras-tf")
    data = d / "cp.ckpt.data-00001-of-00002"
    data.write_bytes(data.read_bytes()[:1000])   # truncated: 29 of 30 tensors unreadable
    code, out, _ = run_cli(capsys, "restore", d, "cp.ckpt", "--template", t)
    assert code == 1 and "Model variables restored: 0 of 12" in out
    assert "could not be read (cp.ckpt.data-00001-of-00002 is truncated)" in out
    assert "Traceback" not in out


def test_missing_graph_shard_restores_by_the_keys_layer_order(tmp_path, corpus_copy):
    d = corpus_copy("foodprep-sharded2-keras-tf")
    (d / "cp.ckpt.data-00000-of-00002").unlink()   # it holds only the object graph
    t = dense_stack(tmp_path, "food", 20, [64, 64, 30, 20, 10, 1], optimizer="RMSprop()")
    c = checkpoint(d)
    report = restore(c, t)
    assert report.complete and {r.how for r in report.restored} == {LAYER_ORDER}
    assert report.optimizer.slots_restored == 12
    assert any("object graph cannot be read" in n for n in report.notes)
    assert_values_equal_reader(c, report)


def test_keras2_written_legacy_h5_with_optimizer_weights(tmp_path, tf):
    """The layout Keras 2 wrote with model.save('x.h5'): weight names with ':0', layer_names in
    order, optimizer_weights named Adam/<layer>/<weight>/m:0 (all m's, then all v's)."""
    rng = np.random.default_rng(9)
    layers = [("dense", [("kernel", _t(rng, 6, 5)), ("bias", _t(rng, 5))]),
              ("dropout", []),
              ("dense_1", [("kernel", _t(rng, 5, 2)), ("bias", _t(rng, 2))])]
    path = tmp_path / "k2" / "model.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.4.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {
            "name": "sequential", "layers": []}}).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [n.encode() for n, _ in layers]
        for name, weights in layers:
            lg = g.create_group(name)
            lg.attrs["weight_names"] = [f"{name}/{w}:0".encode() for w, _ in weights]
            for w, value in weights:
                lg.create_dataset(f"{name}/{w}:0", data=value)
        og = f.create_group("optimizer_weights")
        names, values = ["Adam/iter:0"], [np.int64(42)]
        for slot in ("m", "v"):
            for name, weights in layers:
                for w, value in weights:
                    names.append(f"Adam/{name}/{w}/{slot}:0")
                    values.append(rng.standard_normal(value.shape).astype("float32"))
        og.attrs["weight_names"] = [n.encode() for n in names]
        for n, v in zip(names, values):
            og.create_dataset(n, data=v)
    c = checkpoint(path.parent)
    assert c.format == "keras-h5"
    t = dense_stack(tmp_path, "k2", 6, [5, 2], optimizer="Adam()")
    session = RestoreSession(c, t)
    report = session.run()
    assert report.complete and [r.key for r in report.restored] == [
        "model_weights/dense/dense/kernel:0", "model_weights/dense/dense/bias:0",
        "model_weights/dense_1/dense_1/kernel:0", "model_weights/dense_1/dense_1/bias:0"]
    assert report.optimizer_restored and report.optimizer.iterations == 42
    slots = {r.variable.rsplit("_", 1)[-1] + ":" + r.key for r in report.optimizer.entries}
    assert "momentum:optimizer_weights/Adam/dense/kernel/m:0" in slots
    assert "velocity:optimizer_weights/Adam/dense_1/bias/v:0" in slots
    with h5py.File(path, "r") as f:
        for r in report.restored + report.optimizer.entries:
            v = next(v for v in session.loaded.model.weights + session.loaded.optimizer.variables
                     if v.path == r.variable)
            np.testing.assert_array_equal(np.asarray(v.numpy()), f[r.key][()].astype(v.dtype))


def test_unbuilt_templates_are_built_from_the_checkpoints_shapes(tmp_path, corpus_copy):
    d = corpus_copy("dynrnn-mixed-shards-keras-tf")
    t = template(tmp_path, "unbuilt_lstm", """
    def build_model():
        return keras.Sequential([keras.layers.LSTM(30), keras.layers.Dense(3)])
    """)
    report = restore(checkpoint(d, "30LSTM_Neurons5Epochs.ckpt"), t)
    assert report.complete and report.sample.input_shape == [2, 1, 3]
    assert any("built by calling it on an input of shape (1, 1, 3)" in n for n in report.notes)
    d2 = corpus_copy("charity-hd5f-keras-tf")
    t2 = template(tmp_path, "unbuilt_dense", """
    def build_model():
        return keras.Sequential([keras.layers.Dense(80), keras.layers.Dense(30),
                                 keras.layers.Dense(1)])
    """)
    report = restore(checkpoint(d2), t2)
    assert report.complete and report.sample.output_shape == [2, 1]


def test_unbuilt_compiled_template_keeps_its_optimizer(tmp_path, corpus_copy):
    """A wrong INPUT_SHAPE fails first; the model is rebuilt (with its compiled optimizer) for the
    next shape the checkpoint suggests."""
    d = corpus_copy("dynrnn-mixed-shards-keras-tf")
    t = template(tmp_path, "compiled", """
    INPUT_SHAPE = (3,)

    def build_model():
        m = keras.Sequential([keras.layers.LSTM(30), keras.layers.Dense(3)])
        m.compile(optimizer=keras.optimizers.Adam(), loss="mse")
        return m
    """)
    report = restore(checkpoint(d, "30LSTM_Neurons5Epochs.ckpt"), t)
    assert report.complete and report.optimizer_restored
    assert report.optimizer.iterations == 8 and report.optimizer.slots_restored == 10


def test_keras2_subclassed_checkpoint_kernel_becomes__kernel(tmp_path, tf):
    """Keras 2 named it model/hidden/kernel, Keras 3 tracks model/hidden/_kernel: natively only
    the biases would bind; the rename binds the kernels too."""
    rng = np.random.default_rng(11)
    (tmp_path / "k2sub").mkdir()
    _object_checkpoint(tf, tmp_path / "k2sub" / "ckpt", [
        ("model/hidden/kernel", _t(rng, 8, 16)), ("model/hidden/bias", _t(rng, 16)),
        ("model/out/kernel", _t(rng, 16, 3)), ("model/out/bias", _t(rng, 3)),
        ("save_counter", np.int64(1))])
    c = checkpoint(tmp_path / "k2sub")
    report = restore(c, subclassed(tmp_path, "k3sub"))
    assert report.complete and report.root == "model" and report.mode == MAPPED
    how = {r.key.split("/.ATTRIBUTES")[0]: r.how for r in report.restored}
    assert how == {"model/hidden/kernel": "renamed", "model/hidden/bias": OBJECT_PATH,
                   "model/out/kernel": "renamed", "model/out/bias": OBJECT_PATH}
    assert_values_equal_reader(c, report)
