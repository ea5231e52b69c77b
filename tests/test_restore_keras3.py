"""Restore from what Keras 3.10+ writes (issue 12): sharded weights (``NAME.weights.json`` +
shards), unzipped ``.keras`` folders, Orbax steps (keras.callbacks.OrbaxCheckpoint, and plain
orbax.checkpoint pytrees). Each is written by its real writer, restored into a Python template
and into ``--template checkpoint``, and the restored weights compared with what the writer's own
reader (Keras load_weights / load_model, the writer's values after fit) holds."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckpt_gui.core import formats, scan_directory
from ckpt_gui.core.restore import OBJECT_PATH, RestoreSession, SUGGESTED

sys.path.insert(0, str(Path(__file__).parent))
from test_restore import checkpoint, run_cli, template  # noqa: E402

WRITERS = Path(__file__).with_name("_orbax_writers.py")

TINY = """
def build_model():
    return keras.Sequential([keras.Input((4,)),
                             keras.layers.Dense(8, activation="relu", name="hidden"),
                             keras.layers.BatchNormalization(name="bn"),
                             keras.layers.Dense(3, name="logits")], name="tiny")

def build_optimizer():
    return keras.optimizers.Adam(1e-2)
"""


def tiny_model(keras, width=8, name="tiny"):
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(width, activation="relu", name="hidden"),
                              keras.layers.BatchNormalization(name="bn"),
                              keras.layers.Dense(3, name="logits")], name=name)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(32, 4)).astype("float32"),
              rng.normal(size=(32, 3)).astype("float32"), epochs=2, batch_size=8, verbose=0)
    return model


def restored(report):
    """{model variable path: restored value} of the restore's template model."""
    return {v.path: np.asarray(v.numpy()) for v in report._session.loaded.model.weights}


def restore(ckpt, spec, **kwargs):
    session = RestoreSession(ckpt, spec)
    report = session.run(**kwargs)
    report._session = session
    return report


def assert_same_weights(report, reference_model):
    """The restored model's weights equal the reference model's, variable by variable (the
    template's variable paths may carry the model's name: ``tiny/hidden/kernel``)."""
    ours = restored(report)
    theirs = {v.path: np.asarray(v.numpy()) for v in reference_model.weights}
    strip = {p.split("/", 1)[1] if p.startswith("tiny/") else p: a for p, a in ours.items()}
    assert set(strip) == {p.split("/", 1)[1] if p.startswith("tiny/") else p for p in theirs}
    for path, value in theirs.items():
        key = path.split("/", 1)[1] if path.startswith("tiny/") else path
        np.testing.assert_array_equal(strip[key], value, err_msg=path)


# --- Keras sharded weights ----------------------------------------------------------------------

@pytest.fixture
def sharded(tmp_path, tf):
    """A model saved with save_weights(max_shard_size=...) in several shards, each layer's
    variables in a shard of its own (the hidden layer is wide enough to fill one)."""
    import keras

    model = tiny_model(keras, width=2000)
    folder = tmp_path / "sharded"
    folder.mkdir()
    model.save_weights(str(folder / "model.weights.json"), max_shard_size=0.00004)
    return folder, model


def test_sharded_restores_each_key_from_its_shard(sharded, tmp_path, capsys):
    import keras

    folder, model = sharded
    weight_map = json.loads((folder / "model.weights.json").read_text())["weight_map"]
    assert len({s for shards in weight_map.values() for s in shards}) >= 3
    ckpt = checkpoint(folder)
    spec = template(tmp_path, "wide", TINY.replace("Dense(8", "Dense(2000"))
    report = restore(ckpt, spec)
    assert report.complete and report.mode == "native" and not report.notes, report.notes
    assert {r.how for r in report.restored} == {OBJECT_PATH} and len(report.restored) == 8
    assert report.optimizer_restored and report.optimizer.iterations == 8
    # Keras' own reader of the same files
    reference = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2000, name="hidden"),
                                  keras.layers.BatchNormalization(name="bn"),
                                  keras.layers.Dense(3, name="logits")], name="tiny")
    reference.load_weights(str(folder / "model.weights.json"))
    assert_same_weights(report, reference)
    assert_same_weights(report, model)
    code, out, _ = run_cli(capsys, "restore", folder, "latest", "--template", spec)
    assert code == 0 and "Model variables restored: 8 of 8" in out
    assert "layers/dense/vars/0" in out


def test_sharded_with_a_lost_shard_says_which_variables_were_not_restored(sharded, tmp_path,
                                                                          capsys):
    folder, _ = sharded
    weight_map = json.loads((folder / "model.weights.json").read_text())["weight_map"]
    lost = weight_map["/layers/dense/vars"][0]   # the hidden layer's shard
    (folder / lost).unlink()
    spec = template(tmp_path, "wide", TINY.replace("Dense(8", "Dense(2000"))
    report = restore(checkpoint(folder), spec)
    assert not report.complete
    assert "tiny/hidden/kernel" in report.missing_in_checkpoint
    assert all(not r.variable.startswith("tiny/hidden/") for r in report.restored)
    assert any(lost in n and "missing" in n for n in report.notes), report.notes
    code, out, _ = run_cli(capsys, "restore", folder, "latest", "--template", spec)
    assert code == 1
    assert "tiny/hidden/kernel" in out and "missing in checkpoint" in out
    assert f"shard {lost} is missing" in out


# --- unzipped .keras folders ------------------------------------------------------------------

@pytest.fixture
def unzipped(tmp_path, tf):
    import keras

    model = tiny_model(keras)
    model.save(str(tmp_path / "models" / "mdir"), zipped=False)
    return tmp_path / "models", model


def test_unzipped_keras_with_its_own_config_and_with_a_template(unzipped, tmp_path, capsys):
    import keras

    folder, model = unzipped
    ckpt = checkpoint(folder, "mdir")
    assert formats.for_name(ckpt.format).carries_config(ckpt)
    report = restore(ckpt, "checkpoint")
    assert report.complete and report.optimizer_restored and report.optimizer.iterations == 8
    assert {r.variable for r in report.restored} == {
        "hidden/kernel", "hidden/bias", "bn/gamma", "bn/beta", "bn/moving_mean",
        "bn/moving_variance", "logits/kernel", "logits/bias"}   # rebuilt: no model name
    reference = keras.saving.load_model(str(folder / "mdir"))   # Keras' own reader
    assert_same_weights(report, reference)
    report = restore(ckpt, template(tmp_path, "tiny", TINY))
    assert report.complete and report.optimizer_restored
    assert_same_weights(report, model)
    code, out, _ = run_cli(capsys, "restore", folder, "mdir", "--template", "checkpoint")
    assert code == 0 and "Model variables restored: 8 of 8" in out
    assert "Optimizer: restored (iterations 8, 12 of 12 slots)" in out


def test_unzipped_keras_config_naming_a_file_outside_is_refused(unzipped, capsys):
    folder, _ = unzipped
    config_path = folder / "mdir" / "config.json"
    config = json.loads(config_path.read_text())
    config["config"]["layers"][1]["config"]["vocab_file"] = "../../secret.txt"
    config_path.write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "restore", folder, "mdir", "--template", "checkpoint")
    assert code == 2 and "outside the checkpoint (../../secret.txt); refused" in err


def test_an_unzipped_keras_folder_opened_itself_is_one_checkpoint(unzipped, capsys):
    folder, _ = unzipped
    scan = scan_directory(str(folder / "mdir"))
    assert scan.directory == str(folder)
    assert [(c.name, c.format) for c in scan.checkpoints] == [("mdir", "keras-dir")]
    assert scan.latest == "mdir" and scan.subdirectories == [] and scan.orphans == []
    code, out, _ = run_cli(capsys, "scan", folder / "mdir")
    assert code == 0 and "keras-dir" in out and "model.weights.h5" not in out
    code, out, _ = run_cli(capsys, "restore", folder / "mdir", "latest", "--template",
                           "checkpoint")
    assert code == 0 and "Model variables restored: 8 of 8" in out


def test_gui_opening_an_unzipped_keras_folder_selects_it_in_its_parent(qtbot, unzipped, tmp_path):
    from PySide6.QtCore import QSettings
    from test_gui import open_dir

    from ckpt_gui.ui.main_window import MainWindow

    folder, _ = unzipped
    (folder / "other.weights.h5").write_bytes((folder / "mdir" / "model.weights.h5")
                                              .read_bytes())
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(w)
    w.show()
    w.after_first_paint()
    scan = open_dir(qtbot, w, folder / "mdir")
    assert w.directory == str(folder)
    assert sorted(c.name for c in scan.checkpoints) == ["mdir", "other.weights.h5"]
    assert w.checkpoints.current().name == "mdir"
    w.close()


# --- Orbax ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def orbax_dirs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("orbax")
    subprocess.run([sys.executable, str(WRITERS), "keras", str(out)], check=True,
                   capture_output=True, timeout=600)
    subprocess.run([sys.executable, str(WRITERS), "manager", str(out / "plain"), "1"],
                   check=True, capture_output=True, timeout=600)
    return out


def assert_equals_writer(report, reference: dict):
    """Each restored variable equals the writer's own value of its key (the model's variables
    after fit, by tree path, saved by the writer)."""
    ours = restored(report)
    for r in report.restored:
        np.testing.assert_array_equal(ours[r.variable], reference[r.key], err_msg=r.key)
    variables = {v.path: v for v in report._session.loaded.optimizer.variables}
    for r in report.optimizer.entries:
        np.testing.assert_array_equal(np.asarray(variables[r.variable].numpy()),
                                      reference[r.key], err_msg=r.key)


def test_orbax_keras_step_into_a_template_and_its_own_config(orbax_dirs, tmp_path, tf, capsys):
    reference = np.load(orbax_dirs / "full.npz")
    ckpt = checkpoint(orbax_dirs / "full")
    assert ckpt.name == "2" and formats.for_name(ckpt.format).carries_config(ckpt)
    for spec in (template(tmp_path, "tiny", TINY), "checkpoint"):
        report = restore(ckpt, spec)
        assert report.complete and report.mode == "native", report.notes
        keys = {r.variable.removeprefix("tiny/"): r.key for r in report.restored}
        assert keys == {"hidden/kernel": "trainable_variables/tiny/hidden/kernel",
                        "hidden/bias": "trainable_variables/tiny/hidden/bias",
                        "bn/gamma": "trainable_variables/tiny/bn/gamma",
                        "bn/beta": "trainable_variables/tiny/bn/beta",
                        "bn/moving_mean": "non_trainable_variables/tiny/bn/moving_mean",
                        "bn/moving_variance": "non_trainable_variables/tiny/bn/moving_variance",
                        "logits/kernel": "trainable_variables/tiny/logits/kernel",
                        "logits/bias": "trainable_variables/tiny/logits/bias"}
        assert report.optimizer_restored and report.optimizer.iterations == 12
        assert report.optimizer.slots_restored == 12
        assert_equals_writer(report, reference)
        assert not any(k.startswith(("trainable", "non_trainable", "optimizer"))
                       for k in report.unused_in_checkpoint)
    code, out, _ = run_cli(capsys, "restore", orbax_dirs / "full", "latest", "--template",
                           "checkpoint", "--json")
    data = json.loads(out)
    assert code == 0 and data["verified"] and data["optimizer_restored"]
    assert {r["variable"] for r in data["restored"]} == set(keys)


def test_orbax_weights_only_step_has_no_config_but_restores_into_a_template(orbax_dirs, tmp_path,
                                                                           tf, capsys):
    reference = np.load(orbax_dirs / "weights_only.npz")
    ckpt = checkpoint(orbax_dirs / "weights_only")
    assert not formats.for_name(ckpt.format).carries_config(ckpt)
    report = restore(ckpt, template(tmp_path, "tiny", TINY))
    assert report.complete and len(report.restored) == 8
    assert_equals_writer(report, reference)
    assert not report.optimizer_restored   # weights only: no optimizer state
    code, _, err = run_cli(capsys, "restore", orbax_dirs / "weights_only", "latest",
                           "--template", "checkpoint")
    assert code == 2 and "carries no Keras model config" in err


def test_orbax_renamed_layer_is_reported_unmatched_not_guessed(orbax_dirs, tmp_path, tf):
    spec = template(tmp_path, "renamed", TINY.replace('name="logits"', 'name="head"'))
    report = restore(checkpoint(orbax_dirs / "full"), spec)
    assert not report.complete
    assert sorted(report.missing_in_checkpoint) == ["tiny/head/bias", "tiny/head/kernel"]
    assert {"trainable_variables/tiny/logits/kernel", "trainable_variables/tiny/logits/bias"} \
        <= set(report.unused_in_checkpoint)
    assert len(report.restored) == 6 and all(r.how == OBJECT_PATH for r in report.restored)
    # a pairing by shape alone is never applied to a pytree's (name-sorted) leaves
    assert {v for v, _ in report.suggestions} <= {"tiny/head/bias", "tiny/head/kernel"}


def test_plain_orbax_pytree_does_not_restore_into_a_keras_model_and_says_why(orbax_dirs,
                                                                              tmp_path, tf,
                                                                              capsys):
    spec = template(tmp_path, "dense", """
    def build_model():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="dense")])
    """)
    ckpt = checkpoint(orbax_dirs / "plain")
    report = restore(ckpt, spec)
    assert report.restored == [] and not report.complete
    plan = report._session.plan
    assert all(not e.apply for e in plan.model_entries())
    assert {e.how for e in plan.model_entries() if e.key} <= {SUGGESTED}
    code, out, _ = run_cli(capsys, "restore", orbax_dirs / "plain", "latest", "--template", spec)
    assert code == 1 and "Model variables restored: 0 of 2" in out
    assert "written by Orbax without Keras" in out and "nothing binds by name" in out


@pytest.mark.parametrize("folder", ["full", "plain"])
def test_orbax_verify_stops_when_cancelled(orbax_dirs, folder):
    ckpt = checkpoint(orbax_dirs / folder)
    seen = []
    fmt = formats.for_name(ckpt.format)
    out = fmt.verify(ckpt, lambda i, n, name: seen.append(name), lambda: len(seen) >= 2)
    assert len(seen) == 2 and not out.verified
    assert all(v.readable is None for v in out.variables)
    out = fmt.verify(ckpt, None, None)
    assert out.verified and all(v.readable for v in out.variables if v.dtype != "string")


def test_restore_dialog_offers_an_orbax_steps_own_config_and_restores_it(qtbot, orbax_dirs,
                                                                         tmp_path, tf):
    from PySide6.QtCore import QSettings
    from test_restore_dialog import TIMEOUT, click_restore, table_rows

    from ckpt_gui.ui.restore_dialog import RestoreDialog

    reference = np.load(orbax_dirs / "full.npz")
    scan = scan_directory(str(orbax_dirs / "full"))
    dlg = RestoreDialog(scan, "2", settings=QSettings(str(tmp_path / "s.ini"),
                                                      QSettings.IniFormat))
    qtbot.addWidget(dlg)
    with qtbot.waitSignal(dlg.planned, timeout=TIMEOUT) as blocker:
        dlg.show()
    plan = blocker.args[0]
    assert dlg.template_combo.currentData().path is None   # the step's own model config
    assert "its own variable paths bind every variable" in dlg.status_label.text()
    assert [(e.variable, e.key) for e in plan.model_entries()][0] == (
        "hidden/kernel", "trainable_variables/tiny/hidden/kernel")
    report = click_restore(qtbot, dlg)
    assert report.complete and report.optimizer_restored
    assert dlg.report_label.text().startswith("<b>Complete</b>: 8 of 8 model variables")
    assert [r[3] for r in table_rows(dlg.report_table)].count("restored, verified") == 8
    model = dlg.session.loaded.model
    np.testing.assert_array_equal(model.get_layer("hidden").kernel.numpy(),
                                  reference["trainable_variables/tiny/hidden/kernel"])


def test_unzipped_keras_assets_are_its_layers_files_and_links_are_not_followed(tmp_path, tf):
    import keras

    lookup = keras.layers.StringLookup(name="lookup")
    lookup.adapt(np.array(["cat", "dog", "bird", "dog"]))
    inputs = keras.Input((1,), dtype="string")
    model = keras.Model(inputs, keras.layers.Embedding(10, 4, name="emb")(lookup(inputs)))
    model.save(str(tmp_path / "run" / "sdir"), zipped=False)
    report = restore(checkpoint(tmp_path / "run", "sdir"), "checkpoint", sample=False)
    assert report.complete
    assert report._session.loaded.model.get_layer("lookup").get_vocabulary() == \
        ["[UNK]", "dog", "cat", "bird"]
    vocabulary = next((tmp_path / "run" / "sdir" / "assets").rglob("vocabulary.txt"))
    (tmp_path / "elsewhere.txt").write_text("secret\n")
    vocabulary.unlink()
    vocabulary.symlink_to(tmp_path / "elsewhere.txt")
    report = restore(checkpoint(tmp_path / "run", "sdir"), "checkpoint", sample=False)
    assert "secret" not in report._session.loaded.model.get_layer("lookup").get_vocabulary()
