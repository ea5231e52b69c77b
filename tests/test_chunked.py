"""Tensors read in chunks (issue 12): statistics, histogram, heatmap and .npy export made from
pieces equal those made from the whole array, for every format that reads pieces and the
dtypes TF and Keras write, with NaN and Inf; a tensor over the memory budget previews instead of
failing; the GUI shows a streamed preview. Chunks are forced small (chunked.CHUNK_BYTES) so that
the tensors stay small. Checkpoints are written with the real writers."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

from ckpt_gui import cli
from ckpt_gui.core import chunked, limits, scan_directory
from ckpt_gui.core.preview import MAX_ABS, MEAN, BlockReducer, block_steps, make_preview, \
    reduce_blocks
from ckpt_gui.core.reading import ReadError, read_tensor
from ckpt_gui.core.stats import StatsAccumulator, tensor_stats
from test_gui import open_dir, window  # noqa: F401 (the fixture)

DTYPES = ["float32", "bfloat16", "float16", "float8_e4m3fn", "int8"]
SHAPES = {"matrix": (1030, 2077), "cube": (3, 130, 70), "vector": (9001,)}
CHUNK = 50_000   # bytes per piece: many pieces, none aligned to rows or blocks


def _values(dtype: str, shape, seed=0) -> np.ndarray:
    """Values of ``dtype`` in ``shape``, with NaN, +Inf and -Inf in the float types."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 3, shape)
    if dtype == "int8":
        return np.round(values).astype(np.int8)
    flat = values.reshape(-1)
    flat[[5, 777, flat.size - 3]] = [np.nan, np.inf, -np.inf]
    flat[100:140] = 0.0
    return values.astype(getattr(ml_dtypes, dtype, dtype))


def _in_pieces(a: np.ndarray, sizes) -> list[np.ndarray]:
    flat = a.reshape(-1)
    cuts = np.cumsum(sizes)
    return [p for p in np.split(flat, cuts[cuts < flat.size]) if p.size]


def assert_same_stats(ours, truth, values):
    """``ours`` (made from pieces) against ``truth`` (tensor_stats of ``values``, whole)."""
    assert (ours.count, ours.nan, ours.inf, ours.posinf, ours.zeros) == \
        (truth.count, truth.nan, truth.inf, truth.posinf, truth.zeros)
    assert (ours.min, ours.max) == (truth.min, truth.max)
    for field in ("mean", "std", "l2"):
        assert getattr(ours, field) == pytest.approx(getattr(truth, field), rel=1e-10, abs=1e-12)
    assert_true_histogram(ours, values, len(truth.histogram))


def assert_true_histogram(stats, values, bins):
    """The histogram of a tensor counted in pieces (its range grown as they came) has from half
    to all of ``bins`` equal bins, the first holding the minimum and the last the maximum, and
    each bin holds the values between its edges (numpy's count, but for values within float32
    rounding of an edge, which either side may take)."""
    edges = np.asarray(stats.bin_edges)
    finite = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = finite[np.isfinite(finite)]
    assert bins // 2 <= len(stats.histogram) <= bins and len(edges) == len(stats.histogram) + 1
    assert sum(stats.histogram) == finite.size
    width = edges[1] - edges[0]
    np.testing.assert_allclose(np.diff(edges), width, rtol=1e-9)
    if stats.min < stats.max:   # (a constant's range is widened by 0.5 on either side)
        assert edges[0] <= stats.min < edges[1] and edges[-2] <= stats.max <= edges[-1]
    expected, _ = np.histogram(finite, bins=edges)
    assert np.abs(np.asarray(stats.histogram) - expected).sum() <= 4


def assert_same_picture(ours, truth):
    assert (ours.kind, ours.step, tuple(ours.index)) == (truth.kind, truth.step, tuple(truth.index))
    # block means: float32 rounding (sums grouped by piece); max|x| and codes: exactly
    np.testing.assert_allclose(ours.display, truth.display, rtol=2e-6, atol=1e-6)
    if truth.special is None:
        assert ours.special is None
    else:
        np.testing.assert_array_equal(ours.special, truth.special)
    assert ours.display_range == pytest.approx(truth.display_range, rel=1e-6)


# --- the arithmetic: pieces against the whole array ------------------------------------------

@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_statistics_of_pieces_equal_the_whole(dtype, kernels):
    a = _values(dtype, (301, 257))
    truth = tensor_stats(a)
    rng = np.random.default_rng(1)
    pieces = _in_pieces(a, rng.integers(1, 20_000, 100))
    acc = StatsAccumulator(a.dtype, kernels=kernels)
    for p in pieces:
        acc.add(p)
    ours = acc.result()
    assert truth.nan + truth.inf == (0 if dtype == "int8" else 3)  # (float8_e4m3fn: Inf is NaN)
    assert_same_stats(ours, truth, a)


@pytest.mark.parametrize("how", [MEAN, MAX_ABS])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2500, 1301), (1, 9001), (1030, 7)])
def test_blocks_fed_in_pieces_equal_reduce_blocks(shape, dtype, how):
    a = _values(dtype, shape)
    finite_only = dtype != "int8"
    most = (1, 4096) if shape[0] == 1 else (1024, 1024)
    truth = reduce_blocks(a, *most, how, finite_only)
    reducer = BlockReducer(*shape, block_steps(*shape, *most), how, finite_only)
    for p in _in_pieces(a, np.random.default_rng(2).integers(1, 300_000, 100)):
        reducer.feed(p)
    display, special, steps = reducer.result()
    assert steps == truth[2] and steps != (1, 1)
    if how == MAX_ABS:
        np.testing.assert_array_equal(display, truth[0])
    else:
        np.testing.assert_allclose(display, truth[0], rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(special, truth[1])


# --- every format that reads pieces, written by its real writer ------------------------------

@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunked, "CHUNK_BYTES", CHUNK)
    monkeypatch.setattr(chunked, "STREAM_ABOVE", 5_000)


@pytest.fixture(scope="module")
def tf_bundle(tmp_path_factory, tf):
    directory = tmp_path_factory.mktemp("bundle")
    made = {}
    for dtype in DTYPES:
        tf_dtype = getattr(tf.dtypes, dtype, None) or getattr(tf.dtypes.experimental, dtype)
        for kind, shape in SHAPES.items():
            made[f"{dtype}_{kind}"] = tf.Variable(_values(dtype, shape), dtype=tf_dtype)
    tf.train.Checkpoint(**made).write(str(directory / "ckpt"))
    return directory


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory, tf):
    """A Keras 3 .weights.h5 (one dataset per weight, bfloat16 as opaque bytes) and a legacy
    Keras 2-layout .h5, of a model whose weights hold NaN and Inf."""
    import keras

    directory = tmp_path_factory.mktemp("keras")
    for policy in ("float32", "bfloat16"):
        keras.config.set_dtype_policy(policy)
        try:
            model = keras.Sequential([keras.Input((1030,)), keras.layers.Dense(
                2077, name="wide"), keras.layers.Dense(3, name="head")])
        finally:
            keras.config.set_dtype_policy("float32")
        kernel, bias = model.get_layer("wide").get_weights()
        model.get_layer("wide").set_weights([_values("float32", kernel.shape), bias])
        model.save_weights(str(directory / f"{policy}.weights.h5"))
        if policy == "float32":
            model.save(str(directory / "legacy.h5"))
    return directory


def _check_every_streamed(directory, names=None):
    """For each numeric variable above the threshold: the streamed preview (and the streamed
    statistics) equal those of the whole tensor. Returns {checkpoint: [(name, shape)]} checked."""
    checked = {}
    for ckpt in scan_directory(str(directory)).checkpoints:
        for var in ckpt.variables:
            if not chunked.streams(ckpt, var) or (names and not any(n in var.name for n in names)):
                continue
            whole = read_tensor(ckpt, var.name)
            index = (1,) if whole.ndim == 3 else None
            truth = make_preview(ckpt.name, var, whole, index=index)
            ours = chunked.stream_preview(ckpt, var, index=index)
            assert ours.streamed and ours.array is None
            assert (ours.shape, ours.dtype) == (whole.shape, str(whole.dtype))
            assert_same_stats(ours.stats, truth.stats, whole)
            assert_same_picture(ours, truth)
            assert_same_stats(chunked.stream_stats(ckpt, var, bins=64), truth.stats, whole)
            checked.setdefault(ckpt.name, []).append((var.display_name, whole.shape))
    return checked


def test_tf_bundle_streamed_previews_equal_whole(tf_bundle):
    checked = _check_every_streamed(tf_bundle)
    assert sorted(name for name, _ in checked["ckpt"]) == sorted(
        f"{d}_{k}" for d in DTYPES for k in SHAPES)


def test_keras_h5_streamed_previews_equal_whole(keras_files):
    checked = _check_every_streamed(keras_files)
    assert set(checked) == {"float32.weights.h5", "bfloat16.weights.h5", "legacy.h5"}
    for tensors in checked.values():
        assert (1030, 2077) in [shape for _, shape in tensors]   # the wide kernel


def test_export_npy_is_written_piece_by_piece(tf_bundle, tmp_path):
    ckpt = scan_directory(str(tf_bundle)).checkpoints[0]
    for dtype in ("float32", "bfloat16"):
        var = ckpt.variable(f"{dtype}_cube/.ATTRIBUTES/VARIABLE_VALUE")
        out = str(tmp_path / f"{dtype}.npy")
        seen = []
        chunked.write_npy(ckpt, var, out, progress=lambda d, t, w: seen.append((d, t)))
        whole = read_tensor(ckpt, var.name)
        loaded = np.load(out)
        assert loaded.shape == whole.shape
        np.testing.assert_array_equal(loaded.view(np.uint8), whole.view(np.uint8))
        assert len(seen) == -(-whole.nbytes // CHUNK) and seen[-1] == (whole.nbytes,) * 2
        assert os.listdir(tmp_path).count(f"{dtype}.npy.part") == 0


def test_a_cancelled_export_leaves_no_file(tf_bundle, tmp_path):
    ckpt = scan_directory(str(tf_bundle)).checkpoints[0]
    var = ckpt.variable("float32_matrix/.ATTRIBUTES/VARIABLE_VALUE")

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    with pytest.raises(Stop):
        chunked.write_npy(ckpt, var, str(tmp_path / "x.npy"), check=stop)
    assert os.listdir(tmp_path) == []


def test_damaged_data_fails_its_checksum_when_streamed(tf_bundle, tmp_path):
    import shutil

    copy = shutil.copytree(tf_bundle, tmp_path / "copy")
    ckpt = scan_directory(str(copy)).checkpoints[0]
    var = ckpt.variable("float32_matrix/.ATTRIBUTES/VARIABLE_VALUE")
    data = next(p for p in copy.iterdir() if ".data-" in p.name)
    from ckpt_gui.core import bundle

    _, entry = bundle.lookup_entry(str(copy / "ckpt.index"), var.name)
    with open(data, "r+b") as f:
        f.seek(entry.offset + entry.size // 2)
        byte = f.read(1)
        f.seek(entry.offset + entry.size // 2)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(ReadError, match="checksum"):
        chunked.stream_preview(ckpt, var)


def test_over_the_memory_budget_previews_by_chunks(tf_bundle, capsys, monkeypatch):
    monkeypatch.setattr(chunked, "STREAM_ABOVE", 1 << 40)   # only the budget makes it stream
    ckpt = scan_directory(str(tf_bundle)).checkpoints[0]
    var = ckpt.variable("bfloat16_matrix/.ATTRIBUTES/VARIABLE_VALUE")
    whole = read_tensor(ckpt, var.name)
    truth = tensor_stats(whole)
    limits.set_memory_budget(200_000)
    try:
        with pytest.raises(ReadError, match="memory budget"):
            read_tensor(ckpt, var.name)
        assert chunked.streams(ckpt, var)
        preview = chunked.stream_preview(ckpt, var, bins=50)
        assert_same_stats(preview.stats, truth, whole)
        assert cli.main(["show", str(tf_bundle), "ckpt", var.name, "--json", "--values", "3"]) == 0
    finally:
        limits.set_memory_budget(None)
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["read_in_chunks"] is True
    assert out["stats"]["histogram"] == preview.stats.histogram
    assert out["values"] == [float(x) for x in read_tensor(ckpt, var.name).reshape(-1)[:3]]


# --- Orbax (written by orbax.checkpoint in a subprocess: it imports jax) ----------------------

ORBAX_WRITER = """
import sys, numpy as np, orbax.checkpoint as ocp
sys.path.insert(0, {tests!r})
from test_chunked import _values, SHAPES
state = {{f"{{d}}_{{k}}": _values(d, s) for d in {dtypes!r} for k, s in SHAPES.items()}}
mgr = ocp.CheckpointManager({out!r}, item_names=("state",))
mgr.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
mgr.wait_until_finished()
mgr.close()
"""


def test_orbax_streamed_previews_equal_whole(tmp_path):
    out = tmp_path / "run"
    code = ORBAX_WRITER.format(tests=os.path.dirname(__file__), dtypes=DTYPES, out=str(out))
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True,
                   capture_output=True, timeout=600,
                   env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))})
    checked = _check_every_streamed(out)
    assert len(checked["1"]) == len(DTYPES) * len(SHAPES)


# --- the GUI ----------------------------------------------------------------------------------

def test_gui_shows_a_streamed_preview_with_the_same_statistics(
        qtbot, window, tf_bundle, tmp_path):  # noqa: F811 (the fixture)
    open_dir(qtbot, window, tf_bundle)
    window.checkpoints.select("ckpt")
    name = "float32_matrix/.ATTRIBUTES/VARIABLE_VALUE"
    progress = []
    window.preview.task.progress.connect(lambda d, t, w: progress.append((d, t)))
    with qtbot.waitSignal(window.preview.preview_ready, timeout=60_000,
                          check_params_cb=lambda p: p.variable.name == name) as blocker:
        assert window.variables.select(name)
    preview = blocker.args[0]
    ckpt = scan_directory(str(tf_bundle)).checkpoints[0]
    whole = read_tensor(ckpt, name)
    truth = tensor_stats(whole, bins=64)
    assert preview.streamed
    assert_same_stats(preview.stats, truth, whole)
    labels = window.preview.stat_labels
    assert labels["max"].text() == f"{truth.max:.6g}"
    assert labels["NaN"].text() == "1" and labels["shape"].text() == "[1030, 2077] float32"
    np.testing.assert_allclose(window.preview.image.image[:3, :3],
                               make_preview("ckpt", ckpt.variable(name), whole).display[:3, :3],
                               rtol=2e-6)
    assert progress and progress[-1][0] == progress[-1][1]   # it reported progress to the end
    hover = window.preview.value_at(7.2, 2.8)
    assert hover.startswith("[3, 7]: block mean ") and "read in chunks" in hover
    assert not window.preview.export_csv.isEnabled()
    out = tmp_path / "kernel.npy"
    with qtbot.waitSignal(window.preview.export_task.finished, timeout=60_000):
        window.preview.export_tensor("npy", str(out))
    np.testing.assert_array_equal(np.load(out), whole)

    # another slice of a streamed cube is read again, up to the slice
    cube = "float32_cube/.ATTRIBUTES/VARIABLE_VALUE"
    with qtbot.waitSignal(window.preview.preview_ready, timeout=60_000,
                          check_params_cb=lambda p: p.variable.name == cube):
        assert window.variables.select(cube)
    with qtbot.waitSignal(window.preview.preview_ready, timeout=60_000,
                          check_params_cb=lambda p: p.index == (2,)) as blocker:
        window.preview.spins[0].setValue(2)
    truth = make_preview("ckpt", ckpt.variable(cube), read_tensor(ckpt, cube), index=(2,))
    assert blocker.args[0].streamed
    np.testing.assert_allclose(blocker.args[0].display, truth.display, rtol=2e-6)
    window.close()


def test_gui_stop_cancels_a_streamed_read(qtbot, window, tf_bundle,
                                          monkeypatch):  # noqa: F811 (the fixture)
    from PySide6.QtCore import Qt

    monkeypatch.setattr(chunked, "CHUNK_BYTES", 1_000)   # thousands of pieces: time to stop
    open_dir(qtbot, window, tf_bundle)
    window.checkpoints.select("ckpt")
    landed = []
    window.preview.preview_ready.connect(lambda p: landed.append(p.variable.name))
    big = "float32_matrix/.ATTRIBUTES/VARIABLE_VALUE"
    with qtbot.waitSignal(window.preview.task.progress, timeout=60_000):
        assert window.variables.select(big)
    assert window.preview.stop.isVisible()
    qtbot.mouseClick(window.preview.stop, Qt.LeftButton)
    assert window.preview.text.toPlainText() == "Stopped reading."
    assert not window.preview.stop.isVisible()
    # the engine thread is free again: the next tensor lands, the stopped one never does
    small = "int8_vector/.ATTRIBUTES/VARIABLE_VALUE"
    with qtbot.waitSignal(window.preview.preview_ready, timeout=60_000,
                          check_params_cb=lambda p: p.variable.name == small):
        assert window.variables.select(small)
    assert landed == [small]
    window.close()
