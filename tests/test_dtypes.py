"""Every numeric dtype TF and Keras write (bfloat16, float16, float8, int4, ...): listed with its
true name, read as the writer's own reader reads it, its statistics, histogram and heatmap
computed in float32 (issue 12). Written with the real writers."""
from __future__ import annotations

import json
import math

import h5py
import ml_dtypes
import numpy as np
import pytest

from ckpt_gui import cli
from ckpt_gui.core import bundle, scan_directory
from ckpt_gui.core.preview import IMAGE, VECTOR, make_preview
from ckpt_gui.core.reading import read_tensor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# the low-precision dtypes TF 2.21 lets a tf.Variable hold (it has no kernel to assign the
# float8 *fnuz variants), as tf.DType.name
TF_LOW_PRECISION = ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "int4", "uint4",
                    "int2", "uint2", "float4_e2m1fn"]


def _values(name: str) -> np.ndarray:
    """A (23, 31) tensor of ``name`` with a spread of values it can hold."""
    dtype = np.dtype(getattr(ml_dtypes, name, name))
    info = ml_dtypes.iinfo(dtype) if "int" in name else ml_dtypes.finfo(dtype)
    values = np.random.default_rng(len(name)).normal(0, 2, (23, 31))
    return np.clip(np.round(values) if "int" in name else values, float(info.min),
                   float(info.max)).astype(dtype)


@pytest.fixture(scope="module")
def tf_vars(tmp_path_factory, tf):
    """A tf.train.Checkpoint of one tf.Variable per low-precision dtype."""
    directory = tmp_path_factory.mktemp("tfvars")
    made = {}
    for name in TF_LOW_PRECISION:
        dtype = getattr(tf.dtypes, name, None) or getattr(tf.dtypes.experimental, name)
        # through ml_dtypes: TF's Cast kernel has no 4/8-bit outputs
        made[name] = tf.Variable(_values(name), dtype=dtype)
    tf.train.Checkpoint(**made).write(str(directory / "lowp"))
    return directory


@pytest.fixture(scope="module", params=["bfloat16", "float16"])
def keras_policy(request, tmp_path_factory, tf):
    """A small Keras model trained one step under a dtype policy, saved with save_weights and
    with tf.train.Checkpoint (model and optimizer) in one folder."""
    import keras

    directory = tmp_path_factory.mktemp(request.param)
    keras.config.set_dtype_policy(request.param)
    try:
        keras.utils.set_random_seed(5)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, name="hidden"),
                                  keras.layers.Dense(3, name="logits")])
        model.compile("adam", "mse")
        rng = np.random.default_rng(0)
        model.fit(rng.random((32, 6)), rng.random((32, 3)), epochs=1, verbose=0)
        model.save_weights(str(directory / "model.weights.h5"))
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
            str(directory / "tf_ckpt"))
    finally:
        keras.config.set_dtype_policy("float32")
    return request.param, directory


def _show_json(capsys, directory, checkpoint, variable) -> dict:
    assert cli.main(["show", str(directory), checkpoint, variable, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _assert_stats_of(stats: dict, truth: np.ndarray):
    """``show --json``'s statistics are numpy's on the float32 view of the writer's values."""
    f = truth.astype(np.float32).reshape(-1)
    assert stats["count"] == f.size
    assert stats["min"] == float(f.min()) and stats["max"] == float(f.max())
    assert math.isclose(stats["mean"], float(f.astype(np.float64).mean()), rel_tol=1e-9,
                        abs_tol=1e-12)
    assert math.isclose(stats["std"], float(f.astype(np.float64).std()), rel_tol=1e-9)
    assert stats["zeros"] == int(np.count_nonzero(f == 0))
    counts, edges = np.histogram(f, bins=len(stats["histogram"]))
    if f.max() > f.min():
        assert stats["histogram"] == counts.tolist()
        # numpy's edges are float32 here; the engine's the float64 ones between the same ends
        np.testing.assert_allclose(stats["bin_edges"], edges, atol=1e-6 * float(np.ptp(f)))
        assert stats["bin_edges"][::50] == [float(f.min()), float(f.max())]
    else:
        assert sum(stats["histogram"]) == f.size


def test_bundle_names_every_dtype_tensorflow_defines(tf):
    from tensorflow.core.framework import types_pb2

    for enum in types_pb2.DataType.values():
        if 0 < enum < 100:  # (the _REF variants are graph-only)
            assert bundle.DTYPES[enum][0] == tf.dtypes.as_dtype(enum).name


def test_tf_low_precision_variables_list_and_read_as_tensorflow_does(tf_vars, tf):
    reader = tf.train.load_checkpoint(str(tf_vars / "lowp"))
    expected = {k: v.name for k, v in reader.get_variable_to_dtype_map().items()}
    ckpt = scan_directory(str(tf_vars)).checkpoint("lowp")
    assert ckpt.problems == []
    assert {v.name: v.dtype for v in ckpt.variables} == expected
    numeric = [v for v in ckpt.variables if v.dtype != "string"]  # (the object graph)
    assert sorted(v.dtype for v in numeric) == sorted(TF_LOW_PRECISION)
    for v in numeric:
        truth = reader.get_tensor(v.name)
        assert v.bytes == truth.nbytes  # one byte an element for the 8/4-bit types
        got = read_tensor(ckpt, v.name)
        assert got.dtype == truth.dtype
        np.testing.assert_array_equal(got.view(np.uint8), truth.view(np.uint8), err_msg=v.name)


def test_index_entries_hold_one_byte_per_element_of_int4(tf_vars):
    index = bundle.read_index(tf_vars / "lowp.index")
    sizes = {e.dtype: e.size for e in index.entries.values() if e.dtype != "string"}
    assert sizes["int4"] == sizes["float8_e4m3fn"] == 23 * 31
    assert sizes["bfloat16"] == 2 * 23 * 31
    entry = next(e for e in index.entries.values() if e.dtype == "int4")
    assert entry.numpy_dtype == np.dtype(ml_dtypes.int4)


@pytest.mark.parametrize("name", TF_LOW_PRECISION)
def test_show_gives_float32_statistics_of_tf_low_precision(tf_vars, tf, capsys, name):
    key = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
    truth = tf.train.load_checkpoint(str(tf_vars / "lowp")).get_tensor(key)
    out = _show_json(capsys, tf_vars, "lowp", key)
    assert out["variable"]["dtype"] == name
    _assert_stats_of(out["stats"], truth)
    assert out["values"][:5] == truth.reshape(-1)[:5].astype(np.float32).tolist()


def test_keras_weights_h5_under_a_policy_lists_its_true_dtype(keras_policy):
    policy, directory = keras_policy
    ckpt = scan_directory(str(directory)).checkpoint("model.weights.h5")
    with h5py.File(directory / "model.weights.h5") as f:
        kernel = f["layers/dense/vars/0"]
        stored = kernel.dtype
        truth = kernel[()].view(ml_dtypes.bfloat16) if policy == "bfloat16" else kernel[()]
    assert (stored.kind, stored.itemsize) == (("V", 2) if policy == "bfloat16" else ("f", 2))
    dtypes = {v.name: v.dtype for v in ckpt.variables}
    assert dtypes["layers/dense/vars/0"] == dtypes["layers/dense_1/vars/1"] == policy
    assert "void16" not in dtypes.values()
    got = read_tensor(ckpt, "layers/dense/vars/0")
    assert got.dtype == np.dtype(policy if policy == "float16" else ml_dtypes.bfloat16)
    np.testing.assert_array_equal(got.view(np.uint16), truth.view(np.uint16))


def test_keras_weights_h5_and_tf_checkpoint_agree_and_show_float32_stats(keras_policy, tf,
                                                                         capsys):
    import keras

    policy, directory = keras_policy
    keras.config.set_dtype_policy(policy)
    try:  # Keras' own reader, for the truth
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, name="hidden"),
                                  keras.layers.Dense(3, name="logits")])
        model.load_weights(str(directory / "model.weights.h5"))
    finally:
        keras.config.set_dtype_policy("float32")
    truth = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel)
    assert truth.dtype.name == policy
    out = _show_json(capsys, directory, "model.weights.h5", "layers/dense/vars/0")
    assert out["variable"]["dtype"] == policy
    _assert_stats_of(out["stats"], truth)

    reader = tf.train.load_checkpoint(str(directory / "tf_ckpt"))
    tf_dtypes = {k: v.name for k, v in reader.get_variable_to_dtype_map().items()}
    ckpt = scan_directory(str(directory)).checkpoint("tf_ckpt")
    assert {v.name: v.dtype for v in ckpt.variables} == tf_dtypes
    assert policy in tf_dtypes.values()
    # (Keras 3 on TF: the model's weights are saved under the optimizer's object path)
    kernel = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"
    np.testing.assert_array_equal(reader.get_tensor(kernel).view(np.uint16),
                                  truth.view(np.uint16))  # the two writers agree
    out = _show_json(capsys, directory, "tf_ckpt", kernel)
    assert out["variable"]["dtype"] == policy
    _assert_stats_of(out["stats"], truth)


def test_preview_of_low_precision_is_drawn_in_float32():
    matrix = np.random.default_rng(1).normal(size=(3000, 2100)).astype(ml_dtypes.bfloat16)
    matrix[5, 7] = np.nan
    p = make_preview("c", _variable_info(matrix), matrix)
    f32 = matrix.astype(np.float32)
    expected = make_preview("c", _variable_info(f32), f32)
    assert p.kind == IMAGE and p.display.dtype == np.float32
    np.testing.assert_array_equal(p.display, expected.display)
    np.testing.assert_array_equal(p.special, expected.special)
    assert p.stats.nan == 1 and p.stats.histogram == expected.stats.histogram

    vector = np.arange(-7, 8, dtype=np.int8).astype(ml_dtypes.int4)
    p = make_preview("c", _variable_info(vector), vector)
    assert p.kind == VECTOR
    np.testing.assert_array_equal(p.display, np.arange(-7, 8, dtype=np.float32))


def _variable_info(array: np.ndarray):
    from ckpt_gui.core.model import VariableInfo

    return VariableInfo("w", array.shape, array.dtype.name, array.nbytes, "weight", "w")


def test_gui_draws_a_bfloat16_heatmap(qtbot, tmp_path, tf):
    from PySide6.QtCore import QSettings

    from ckpt_gui.ui.main_window import MainWindow

    values = np.random.default_rng(2).normal(size=(40, 24)).astype(ml_dtypes.bfloat16)
    tf.train.Checkpoint(w=tf.Variable(values, dtype=tf.bfloat16)).write(str(tmp_path / "bf"))
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.show()
    window.after_first_paint()
    with qtbot.waitSignal(window.directory_loaded, timeout=60_000):
        window.open_path(str(tmp_path))
    key = "w/.ATTRIBUTES/VARIABLE_VALUE"
    with qtbot.waitSignal(window.preview.preview_ready, timeout=60_000,
                          check_params_cb=lambda p: p.variable.name == key) as blocker:
        assert window.variables.select(key)
    preview = blocker.args[0]
    truth = values.astype(np.float32)
    assert preview.kind == IMAGE and preview.variable.dtype == "bfloat16"
    np.testing.assert_array_equal(window.preview.image.image, truth)  # what the heatmap holds
    assert window.preview.stat_labels["max"].text() == f"{truth.max():.6g}"
    assert window.preview.value_at(7.2, 2.8) == f"[3, 7] = {truth[3, 7]:.6g}"
    window.close()
