"""Keras 3 sharded weights (``NAME.weights.json`` + shards) and unzipped ``.keras`` directories,
written by Keras itself, read through core/keras_sharded.py and core/keras_dir.py (issue 12)."""
from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from ckpt_gui.core import hdf5, keras_dir, keras_sharded

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SHARD_GB = 0.00002  # Keras 3.15 takes max_shard_size in GB (a float): 20 kB shards


def _model(keras, width: int, seed: int):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(width),
                              keras.layers.Dense(width), keras.layers.Dense(3)])
    model.compile("adam", "mse")
    rng = np.random.default_rng(seed)
    model.fit(rng.random((16, width)), rng.random((16, 3)), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def keras(tf):
    import keras

    return keras


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, keras):
    """Two sharded saves in one folder (``m`` and ``m_1``, whose names overlap) and a plain
    .weights.h5 beside them."""
    folder = tmp_path_factory.mktemp("sharded")
    models = {"m": _model(keras, 64, 1), "m_1": _model(keras, 48, 2)}
    for name, model in models.items():
        model.save_weights(str(folder / f"{name}.weights.json"), max_shard_size=SHARD_GB)
    models["m"].save_weights(str(folder / "plain.weights.h5"))
    return folder, models


def _h5_name(i: int) -> str:
    """Keras 3's name for the i-th Dense layer of a Sequential in a weights file."""
    return "dense" if i == 0 else f"dense_{i}"


def _h5py_datasets(folder, shards) -> dict[str, tuple[str, np.ndarray]]:
    """Every dataset of the shards read the plain way: name -> (shard, values)."""
    out = {}
    for shard in shards:
        with h5py.File(folder / shard) as f:
            f.visititems(lambda name, obj: out.__setitem__(name, (shard, obj[()]))
                         if isinstance(obj, h5py.Dataset) else None)
    return out


def test_sharded_saves_are_claimed_by_their_json(sharded):
    folder, _ = sharded
    claimed = keras_sharded.claims(os.listdir(folder))
    assert set(claimed) == {"m.weights.json", "m_1.weights.json"}
    for name, files in claimed.items():
        weight_map = keras_sharded.read_map(str(folder / name))
        assert len(weight_map.shards) >= 3  # several shards, as max_shard_size asked
        assert files == [name] + weight_map.shards  # prune order: the json, then its shards
    assert claimed["m.weights.json"][1] == "m_00000.weights.h5"
    assert claimed["m_1.weights.json"][1] == "m_1_00000.weights.h5"
    assert "plain.weights.h5" not in {f for files in claimed.values() for f in files}


def test_sharded_variables_and_values_are_keras_own(sharded, keras):
    folder, models = sharded
    json_path = str(folder / "m.weights.json")
    listing = keras_sharded.list_variables(json_path)
    assert listing.problems == [] and not listing.health.partial
    truth = _h5py_datasets(folder, keras_sharded.read_map(json_path).shards)
    assert {v.name: (v.shard, v.shape, v.dtype) for v in listing.variables} == {
        name: (shard, value.shape, value.dtype.name) for name, (shard, value) in truth.items()}
    spanning = [g for g, files in keras_sharded.read_map(json_path).groups.items()
                if len(files) > 1]
    assert spanning  # a group spread over two shards is read from both

    loaded = _model(keras, 64, 9)  # other values, then Keras' own reader
    loaded.load_weights(json_path)
    for i, layer in enumerate(loaded.layers):
        for j, weight in enumerate(layer.weights):
            name = f"layers/{_h5_name(i)}/vars/{j}"
            got = keras_sharded.read_variable(json_path, name)
            np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(weight), err_msg=name)
            np.testing.assert_array_equal(got, truth[name][1])
    # each layer's own name, though Keras may store it in a shard holding none of its weights
    assert keras_sharded.vars_names(json_path) == {
        f"layers/{_h5_name(i)}/vars": layer.name for i, layer in enumerate(models["m"].layers)
    } | {"vars": models["m"].name, "optimizer/vars": models["m"].optimizer.name}
    iterations = keras_sharded.read_variable(json_path, "optimizer/vars/0")
    assert iterations == keras.ops.convert_to_numpy(models["m"].optimizer.iterations)
    with pytest.raises(KeyError):
        keras_sharded.read_variable(json_path, "layers/dense/vars/7")


def test_a_missing_shard_makes_it_partial_and_names_what_is_lost(sharded, tmp_path):
    src, _ = sharded
    folder = tmp_path / "damaged"
    shutil.copytree(src, folder)
    json_path = str(folder / "m.weights.json")
    weight_map = keras_sharded.read_map(json_path)
    gone = weight_map.shards[1]
    os.remove(folder / gone)
    lost_groups = [g for g, files in weight_map.groups.items() if gone in files]

    state = keras_sharded.health(json_path)
    assert state.partial and state.missing == {gone: lost_groups}
    assert state.problems == [f"shard {gone} is missing: the variables of "
                              f"{', '.join(g.strip('/') for g in lost_groups)} cannot be read"]
    listing = keras_sharded.list_variables(json_path)
    assert listing.problems == state.problems
    kept = _h5py_datasets(folder, [s for s in weight_map.shards if s != gone])
    assert {v.name for v in listing.variables} == set(kept)
    lost = f"{lost_groups[0].strip('/')}/0"
    with pytest.raises(keras_sharded.MissingShard, match=gone):
        keras_sharded.read_variable(json_path, lost)
    name, (_, value) = next(iter(kept.items()))
    np.testing.assert_array_equal(keras_sharded.read_variable(json_path, name), value)
    assert keras_sharded.claims(os.listdir(folder))["m.weights.json"] == \
        ["m.weights.json"] + [s for s in weight_map.shards if s != gone]


@pytest.mark.parametrize("shard", ["../outside.weights.h5", "/etc/passwd", "", 7])
def test_a_weight_map_pointing_outside_its_folder_is_refused(tmp_path, shard):
    path = tmp_path / "evil.weights.json"
    path.write_text(json.dumps({"weight_map": {"/layers/dense/vars": [shard]}}))
    with pytest.raises(keras_sharded.ShardedError, match="not a list of shard file names"):
        keras_sharded.list_variables(str(path))


def test_a_json_without_a_weight_map_is_refused(tmp_path):
    path = tmp_path / "x.weights.json"
    path.write_text("[1, 2]")
    with pytest.raises(keras_sharded.ShardedError, match="no weight_map"):
        keras_sharded.read_map(str(path))
    path.write_text("{")
    with pytest.raises(keras_sharded.ShardedError, match="not JSON"):
        keras_sharded.read_map(str(path))


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory, keras):
    """One model saved twice by Keras: unzipped (``model_dir/``) and zipped (``twin.keras``)."""
    folder = tmp_path_factory.mktemp("unzipped")
    model = _model(keras, 12, 4)
    model.save(str(folder / "model_dir"), zipped=False)
    model.save(str(folder / "twin.keras"))
    return folder, model


def test_unzipped_keras_is_its_zipped_twin(unzipped, keras):
    folder, model = unzipped
    directory = str(folder / "model_dir")
    assert keras_dir.recognise(os.listdir(directory))
    assert not keras_dir.recognise(os.listdir(folder))
    twin = str(folder / "twin.keras")
    with hdf5.open_weights(twin, archive=True) as f:
        twin_variables = hdf5.list_datasets(f)
    variables = keras_dir.list_variables(directory)
    assert variables == twin_variables and len(variables) > 6
    assert keras_dir.config(directory) == hdf5.archive_config(twin)
    assert keras_dir.config(directory)["class_name"] == "Sequential"
    assert keras_dir.metadata(directory)["keras_version"] == keras.__version__

    loaded = keras.saving.load_model(directory)  # Keras' own reader
    for i, layer in enumerate(loaded.layers):
        for j, weight in enumerate(layer.weights):
            name = f"layers/{_h5_name(i)}/vars/{j}"
            np.testing.assert_array_equal(keras_dir.read_variable(directory, name),
                                          keras.ops.convert_to_numpy(weight), err_msg=name)
    with h5py.File(os.path.join(directory, "model.weights.h5")) as f:
        np.testing.assert_array_equal(keras_dir.read_variable(directory, "optimizer/vars/0"),
                                      f["optimizer/vars/0"][()])


def test_unzipped_keras_files_in_prune_order(unzipped, tmp_path):
    src, _ = unzipped
    directory = tmp_path / "model_dir"
    shutil.copytree(src / "model_dir", directory)
    (directory / "assets" / "vocab").mkdir(parents=True)
    (directory / "assets" / "vocab" / "words.txt").write_text("a\nb\n")
    os.symlink("/etc", directory / "assets" / "link")
    assert keras_dir.files(str(directory)) == [
        "model_dir/config.json", "model_dir/model.weights.h5", "model_dir/assets/link",
        "model_dir/assets/vocab/words.txt", "model_dir/assets/vocab", "model_dir/assets",
        "model_dir/metadata.json", "model_dir"]
