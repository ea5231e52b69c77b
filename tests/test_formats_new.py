"""The formats of issue 12 wired into the registry: Keras 3 sharded weights, unzipped .keras
directories and Orbax steps, written by their own writers and seen only through the public
paths (scan_directory, ``ckpt-inspect scan --json``, ``show``, ``--verify``, ``prune``)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ckpt_gui.cli import main
from ckpt_gui.core import keras_sharded
from ckpt_gui.core.model import BROKEN, OK, PARTIAL
from ckpt_gui.core.scan import scan_directory

from test_keras_files import (SHARD_GB, _h5_name, _model, keras,  # noqa: F401  (fixtures:
                              unzipped)                           # keras, unzipped)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def run_cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().out


def scan_json(capsys, folder, *flags) -> tuple[int, dict]:
    code, out = run_cli(capsys, "scan", "--json", *flags, folder)
    return code, json.loads(out)


def show_values(capsys, folder, checkpoint: str, variable: str) -> np.ndarray:
    code, out = run_cli(capsys, "show", "--json", "--values", 1_000_000, folder, checkpoint,
                        variable)
    assert code == 0, out
    shown = json.loads(out)
    return np.asarray(shown["values"], dtype=np.float32).reshape(shown["variable"]["shape"])


# --- Keras 3 sharded weights ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sharded(tmp_path_factory, keras):
    """Two sharded saves (``m`` and ``m_1``, whose names overlap) written by Keras."""
    folder = tmp_path_factory.mktemp("sharded")
    models = {"m": _model(keras, 64, 1), "m_1": _model(keras, 48, 2)}
    for name, model in models.items():
        model.save_weights(str(folder / f"{name}.weights.json"), max_shard_size=SHARD_GB)
    return folder, models


def test_two_sharded_saves_are_two_checkpoints(sharded, capsys, keras):
    folder, models = sharded
    scan = scan_directory(str(folder))
    assert [c.name for c in scan.checkpoints] == ["m.weights.json", "m_1.weights.json"]
    assert scan.orphans == []
    code, doc = scan_json(capsys, folder, "--verify")
    assert code == 0
    by_name = {c["name"]: c for c in doc["checkpoints"]}
    for name in ("m", "m_1"):
        c = by_name[f"{name}.weights.json"]
        shards = keras_sharded.read_map(str(folder / f"{name}.weights.json")).shards
        assert len(shards) >= 3
        assert c["format"] == "keras3-sharded" and c["status"] == OK
        assert c["files"] == [f"{name}.weights.json"] + shards
        assert c["n_readable"] == c["n_variables"] == len(c["variables"])
        weights = [w for layer in models[name].layers for w in layer.weights]
        assert c["n_variables"] == len(weights) + len(models[name].optimizer.variables)
    model = models["m"]
    for i, layer in enumerate(model.layers):
        for j, weight in enumerate(layer.weights):
            np.testing.assert_array_equal(
                show_values(capsys, folder, "m.weights.json", f"layers/{_h5_name(i)}/vars/{j}"),
                keras.ops.convert_to_numpy(weight))


def test_a_missing_shard_is_partial_and_named(sharded, tmp_path, capsys):
    folder = tmp_path / "damaged"
    shutil.copytree(sharded[0], folder)
    weight_map = keras_sharded.read_map(str(folder / "m.weights.json"))
    gone = weight_map.shards[1]
    os.remove(folder / gone)
    lost = [g.strip("/") for g, files in weight_map.groups.items() if gone in files]

    c = next(c for c in scan_directory(str(folder)).checkpoints if c.name == "m.weights.json")
    assert c.status == PARTIAL
    assert c.problems == [f"shard {gone} is missing: the variables of {', '.join(lost)} "
                          "cannot be read"]
    assert gone not in [f.name for f in c.files]
    code, doc = scan_json(capsys, folder, "--verify")
    assert code == 1
    verified = next(c for c in doc["checkpoints"] if c["name"] == "m.weights.json")
    assert verified["status"] == PARTIAL and gone in verified["problems"][0]


def test_prune_removes_a_sharded_save_json_first(sharded, tmp_path, capsys):
    folder = tmp_path / "pruned"
    shutil.copytree(sharded[0], folder)
    shards = {name: keras_sharded.read_map(str(folder / f"{name}.weights.json")).shards
              for name in ("m", "m_1")}
    # (by name: m.weights.json has no number, so no --keep-last policy chooses it)
    code, out = run_cli(capsys, "prune", "--delete", "m.weights.json", "--permanent", "--json",
                        folder)
    assert code == 0, out
    result = json.loads(out)
    assert result["deleted"] == ["m.weights.json"] and result["kept"] == ["m_1.weights.json"]
    assert result["files"] == ["m.weights.json"] + shards["m"]   # the json first
    assert sorted(os.listdir(folder)) == ["m_1.weights.json"] + shards["m_1"]


# --- unzipped .keras folders ------------------------------------------------------------------

def test_an_unzipped_keras_folder_is_its_zipped_twin(unzipped, capsys, keras):
    folder, model = unzipped
    scan = scan_directory(str(folder))
    assert [(c.name, c.format) for c in scan.checkpoints] == [("model_dir", "keras-dir"),
                                                              ("twin.keras", "keras")]
    assert scan.subdirectories == [] and scan.orphans == []
    code, doc = scan_json(capsys, folder, "--verify")
    assert code == 0
    unzipped_ckpt, twin = doc["checkpoints"]
    assert unzipped_ckpt["status"] == twin["status"] == OK
    assert unzipped_ckpt["files"][:2] == ["model_dir/config.json", "model_dir/model.weights.h5"]
    assert unzipped_ckpt["files"][-1] == "model_dir"
    assert unzipped_ckpt["bytes"] == sum(os.path.getsize(folder / f)   # folders weigh nothing
                                         for f in unzipped_ckpt["files"]
                                         if os.path.isfile(folder / f))
    assert unzipped_ckpt["variables"] == twin["variables"]   # names, shapes, display names
    assert unzipped_ckpt["counters"] == twin["counters"]
    first, last = model.layers[0].name, model.layers[-1].name   # the layers' own names
    assert {v["path"] for v in twin["variables"]} >= {f"{first}/kernel", f"{last}/bias"}
    for v in twin["variables"]:
        np.testing.assert_array_equal(show_values(capsys, folder, "model_dir", v["name"]),
                                      show_values(capsys, folder, "twin.keras", v["name"]))
    loaded = keras.saving.load_model(str(folder / "model_dir"))   # Keras' own reader
    np.testing.assert_array_equal(show_values(capsys, folder, "model_dir",
                                              f"{model.layers[1].name}/kernel"),
                                  keras.ops.convert_to_numpy(loaded.layers[1].kernel))


def test_prune_removes_an_unzipped_keras_folder_config_first(unzipped, tmp_path, capsys):
    folder = tmp_path / "pruned"
    shutil.copytree(unzipped[0], folder)
    (folder / "model_dir" / "assets" / "vocab").mkdir(parents=True)
    (folder / "model_dir" / "assets" / "vocab" / "words.txt").write_text("a\nb\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me")
    os.symlink(outside, folder / "model_dir" / "assets" / "link")
    code, out = run_cli(capsys, "prune", "--delete", "model_dir", "--permanent", "--json",
                        folder)
    assert code == 0, out
    result = json.loads(out)
    assert result["deleted"] == ["model_dir"]
    assert result["files"] == [
        "model_dir/config.json", "model_dir/model.weights.h5", "model_dir/assets/link",
        "model_dir/assets/vocab/words.txt", "model_dir/assets/vocab", "model_dir/assets",
        "model_dir/metadata.json", "model_dir"]
    assert os.listdir(folder) == ["twin.keras"]
    assert (outside / "keep.txt").read_text() == "keep me"   # a link's target is never touched


def test_a_linked_folder_is_not_an_unzipped_keras_model(unzipped, tmp_path):
    folder = tmp_path / "links"
    folder.mkdir()
    os.symlink(unzipped[0] / "model_dir", folder / "model_dir")
    assert scan_directory(str(folder)).checkpoints == []


def test_prune_paths_go_through_real_folders_only(tmp_path):
    from ckpt_gui.core import prune

    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    (tmp_path / "file").write_text("x")
    assert prune.safe_path(str(tmp_path), "real/a.h5") == str(tmp_path / "real" / "a.h5")
    for bad in ("link/a.h5", "file/a.h5", "missing/a.h5", "real/../file", "real//a.h5"):
        with pytest.raises(ValueError):
            prune.safe_path(str(tmp_path), bad)


# --- Orbax steps ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def orbax_keras(tmp_path_factory):
    """keras.callbacks.OrbaxCheckpoint's folder of steps 0, 1, 2 (tests/_orbax_writers.py)."""
    from test_orbax import _write

    out = tmp_path_factory.mktemp("orbax_keras")
    _write("keras", out)
    return out / "full"


def test_an_orbax_folder_lists_its_steps_latest_the_highest_committed(orbax_keras, tmp_path,
                                                                     capsys):
    from test_orbax import orbax_restore, orbax_steps

    folder = Path(shutil.copytree(orbax_keras, tmp_path / "full"))
    shutil.copytree(folder / "2", folder / "3.orbax-checkpoint-tmp")   # a save in progress
    scan = scan_directory(str(folder))
    assert [(c.name, c.number, c.format, c.status) for c in scan.checkpoints] == [
        ("0", 0, "orbax", OK), ("1", 1, "orbax", OK), ("2", 2, "orbax", OK),
        ("3.orbax-checkpoint-tmp", 3, "orbax", BROKEN)]
    assert scan.latest == "2" and orbax_steps(folder) == [0, 1, 2]
    assert scan.subdirectories == []
    code, doc = scan_json(capsys, folder, "--verify")
    assert code == 1   # the uncommitted step
    assert doc["latest"] == "2"
    step = next(c for c in doc["checkpoints"] if c["name"] == "2")
    assert step["status"] == OK and step["n_readable"] == step["n_variables"] > 20
    assert step["files"] == ["2"] and step["bytes"] > 0
    restored = orbax_restore(folder / "2" / "pytree")
    kernel = next(v["name"] for v in step["variables"] if v["name"].endswith("hidden/kernel")
                  and v["name"].startswith("trainable_variables/"))
    np.testing.assert_array_equal(show_values(capsys, folder, "2", kernel), restored[kernel])


def test_prune_keep_last_leaves_the_newest_orbax_step(orbax_keras, tmp_path, capsys):
    from test_orbax import orbax_steps

    folder = Path(shutil.copytree(orbax_keras, tmp_path / "full"))
    code, out = run_cli(capsys, "prune", "--keep-last", 1, "--permanent", "--json", folder)
    assert code == 0, out
    result = json.loads(out)
    assert result["deleted"] == ["0", "1"] and result["files"] == ["0", "1"]
    assert result["bytes"] == sum(c.bytes for c in scan_directory(str(orbax_keras)).checkpoints
                                  if c.name in ("0", "1"))
    assert os.listdir(folder) == ["2"]
    assert orbax_steps(folder) == [2]
