"""One canonical model path per variable (VariableInfo.canonical), whatever wrote it: one
trained Keras model saved by every writer (tests/_canon_writers.py, in a subprocess) names each
weight and optimizer slot alike, and the tensors under one canonical path are equal."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckpt_gui.core import reading
from ckpt_gui.core.canonical import (from_object_path, keras3_optimizer, slot_name,
                                     under_layer)
from ckpt_gui.core.model import BIAS, OPTIMIZER, WEIGHT, VariableInfo, VariableRows
from ckpt_gui.core.scan import scan_directory
from ckpt_gui.core.serialize import variable_dict

WRITERS = Path(__file__).with_name("_canon_writers.py")
KERAS_FORMATS = ("tfc", "manager", "weights_h5", "sharded", "keras", "keras_dir", "legacy_h5",
                 "orbax")
# Keras's random-seed state: a model variable only Orbax's variable trees save
SEED_STATE = "seed_generator/seed_generator_state"


def _write(kind: str, out: Path) -> Path:
    subprocess.run([sys.executable, str(WRITERS), kind, str(out)], check=True,
                   capture_output=True, timeout=900)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _write("tiny", tmp_path_factory.mktemp("canon_tiny"))


@pytest.fixture(scope="module")
def nested(tmp_path_factory) -> Path:
    return _write("nested", tmp_path_factory.mktemp("canon_nested"))


def _by_canonical(folder: Path) -> dict[str, np.ndarray]:
    """{canonical path: tensor} of the one checkpoint in ``folder`` (Orbax: its one step)."""
    scan = scan_directory(str(folder))
    assert len(scan.checkpoints) == 1, [c.name for c in scan.checkpoints]
    ckpt = scan.checkpoints[0]
    named = [v for v in ckpt.variables if v.canonical]
    assert len({v.canonical for v in named}) == len(named)   # one variable per path
    return {v.canonical: np.asarray(reading.read_tensor(ckpt, v.name)) for v in named
            if v.canonical != SEED_STATE}


def _assert_one_model(root: Path, formats: tuple[str, ...], expected: set[str]) -> None:
    first = _by_canonical(root / formats[0])
    assert set(first) == expected
    for fmt in formats[1:]:
        other = _by_canonical(root / fmt)
        assert set(other) == expected, fmt
        for path, value in first.items():
            np.testing.assert_allclose(other[path], value, rtol=0, atol=0, err_msg=f"{fmt} {path}")


def _adam(weights: list[str]) -> set[str]:
    return {"optimizer/iterations", "optimizer/learning_rate",
            *(f"optimizer/{w}/{s}" for w in weights for s in ("momentum", "velocity"))}


def test_every_writer_names_the_tiny_model_alike(tiny):
    trainable = ["hidden/kernel", "hidden/bias", "bn/gamma", "bn/beta", "out/kernel",
                 "out/bias"]
    expected = {*trainable, "bn/moving_mean", "bn/moving_variance", *_adam(trainable)}
    _assert_one_model(tiny, KERAS_FORMATS, expected)


def test_a_canonical_path_names_a_variable_wherever_it_was_written(tiny, capsys):
    """``show DIR CKPT hidden/kernel`` finds the weight whether a tf.train.Checkpoint (key
    ``optimizer/_trainable_variables/0/...``) or a .weights.h5 (``layers/dense/vars/0``)
    holds it."""
    from ckpt_gui.cli import main

    keys = []
    for sub in ("tfc", "weights_h5"):
        ckpt = scan_directory(str(tiny / sub)).checkpoints[0]
        v = ckpt.variable("hidden/kernel")
        keys.append(v.name)
        assert main(["show", str(tiny / sub), ckpt.name, "hidden/kernel", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["variable"]["name"] == v.name
    assert keys[0] != keys[1]


def test_a_tf1_saver_of_the_same_layers_names_them_alike(tiny):
    """TF1's Adam slots m and v are Keras 3's momentum and velocity; TF1's beta powers and
    Keras's learning rate have no counterpart: the model and its slots match."""
    keras_names = _by_canonical(tiny / "tfc")
    tf1 = _by_canonical(tiny / "tf1")
    slots_and_weights = {p for p in keras_names if p.count("/") >= 1
                         and p not in ("optimizer/iterations", "optimizer/learning_rate")}
    assert set(tf1) == slots_and_weights
    for path in tf1:
        np.testing.assert_allclose(tf1[path], keras_names[path], rtol=1e-6, err_msg=path)


def test_nested_models_rnn_cells_conv_and_embedding(nested):
    trainable = ["conv/kernel", "conv/bias", "emb/embeddings", "lstm/lstm_cell/kernel",
                 "lstm/lstm_cell/recurrent_kernel", "lstm/lstm_cell/bias",
                 "encoder/inner/kernel", "encoder/inner/bias", "encoder/ln/gamma",
                 "encoder/ln/beta", "out/kernel", "out/bias"]
    _assert_one_model(nested, KERAS_FORMATS, {*trainable, *_adam(trainable)})


def test_weights_h5_shows_layer_and_slot_names_without_a_config(tiny):
    ckpt = scan_directory(str(tiny / "weights_h5")).checkpoints[0]
    v = {v.name: v for v in ckpt.variables}
    assert v["layers/dense/vars/0"].display_name == "hidden/kernel"
    assert v["layers/batch_normalization/vars/3"].display_name == "bn/moving_variance"
    slot = v["optimizer/vars/3"]
    assert (slot.display_name, slot.slot_of, slot.slot_name) == (
        "hidden/kernel · adam velocity", "layers/dense/vars/0", "velocity")
    assert variable_dict(slot)["canonical"] == "optimizer/hidden/kernel/velocity"
    assert variable_dict(v["optimizer/vars/0"])["canonical"] == "optimizer/iterations"


def test_counters_and_metadata_have_no_canonical_path(tiny):
    ckpt = scan_directory(str(tiny / "manager")).checkpoints[0]
    v = {v.name: v for v in ckpt.variables}
    assert v["save_counter/.ATTRIBUTES/VARIABLE_VALUE"].canonical is None
    graph = v["_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert graph.canonical is None and graph.identity == graph.display_name
    assert variable_dict(graph)["canonical"] is None


def test_an_unknown_optimizer_leaves_its_slots_unattached(tmp_path):
    import h5py

    path = tmp_path / "w.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("layers/dense/vars").attrs["name"] = "hidden"
        f["layers/dense/vars/0"], f["layers/dense/vars/1"] = np.ones((2, 3)), np.ones(3)
        f.create_group("optimizer/vars").attrs["name"] = "my_own"
        f["optimizer/vars/0"], f["optimizer/vars/1"] = np.int64(1), np.float32(0.1)
        f["optimizer/vars/2"], f["optimizer/vars/3"] = np.ones((2, 3)), np.ones(3)
    v = {v.name: v for v in scan_directory(str(tmp_path)).checkpoints[0].variables}
    assert v["layers/dense/vars/0"].canonical == "hidden/kernel"
    assert v["optimizer/vars/0"].canonical == "optimizer/iterations"
    assert (v["optimizer/vars/2"].slot_of, v["optimizer/vars/2"].canonical) == (None, None)


def test_the_rules():
    assert from_object_path("model/_functional/_operations/2/moving_mean",
                            "tiny/bn/moving_mean") == "bn/moving_mean"
    assert from_object_path("model/_operations/6/cell/kernel",
                            "lstm/lstm_cell/kernel") == "lstm/lstm_cell/kernel"
    assert from_object_path("model/layer_with_weights-0/kernel", "dense/kernel") == \
        "dense/kernel"
    assert under_layer("hidden", "tiny/hidden/kernel") == "hidden/kernel"
    assert under_layer("encoder", "inner/kernel") == "encoder/inner/kernel"   # Keras 2 nesting
    assert (slot_name("m", "Adam"), slot_name("v", "adamw"), slot_name("m", "SGD")) == (
        "momentum", "velocity", "m")


def test_a_second_optimizer_of_a_process_is_known_by_its_class():
    """Keras names a process's later optimizers adam_1, adam_2 ...: still Adam's layout."""
    kernel = VariableInfo("layers/dense/vars/0", (3, 2), "float32", 24, "weight", "dense/kernel")
    head = [VariableInfo(f"optimizer/vars/{i}", (), "float32", 4, "optimizer", "") for i in (0, 1)]
    slots = [VariableInfo(f"optimizer/vars/{i}", (3, 2), "float32", 24, "optimizer", "")
             for i in (2, 3)]
    scalars, attached = keras3_optimizer([kernel], head + slots, "adam_3")
    assert list(scalars.values()) == ["iterations", "learning_rate"]
    assert attached == {"optimizer/vars/2": ("layers/dense/vars/0", "momentum"),
                        "optimizer/vars/3": ("layers/dense/vars/0", "velocity")}


def test_two_optimizers_of_one_checkpoint_keep_their_own_paths():
    """A GAN's checkpoint holds two optimizers (and two models that may share layer names):
    each canonical path names one variable, under its root attribute where they would clash."""
    from ckpt_gui.core.canonical import finish

    def var(key, path, role=OPTIMIZER, shape=(), canonical=None):
        v = VariableInfo(key, shape, "float32", 4, role, path)
        v.canonical = canonical
        return v

    attr = "/.ATTRIBUTES/VARIABLE_VALUE"
    variables = [var(f"{o}_optimizer/learning_rate{attr}", f"{o}_optimizer/learning_rate")
                 for o in ("generator", "discriminator")]
    variables += [var(f"{m}/dense/kernel{attr}", f"{m}/dense/kernel", WEIGHT, (2, 2),
                      "dense/kernel") for m in ("generator", "discriminator")]
    variables.append(var(f"generator/out/bias{attr}", "generator/out/bias", BIAS, (2,),
                         "out/bias"))
    finish(variables)
    assert [v.canonical for v in variables] == [
        "generator_optimizer/learning_rate", "discriminator_optimizer/learning_rate",
        "generator/dense/kernel", "discriminator/dense/kernel", "out/bias"]


def test_rows_shared_by_a_run_keep_the_canonical_paths():
    made = [VariableInfo("a/.ATTRIBUTES/VARIABLE_VALUE", (2,), "float32", 8, "weight", "a",
                         canonical="hidden/kernel")]
    again = VariableRows.of(made).make()
    assert again[0].canonical == "hidden/kernel" and again[0] is not made[0]
    plain = VariableRows(["hidden/kernel", "global_step"], [(2,), ()], ["float32", "int64"],
                         [8, 8], ["weight", "counter"], [0, 0]).make()
    assert [v.canonical for v in plain] == ["hidden/kernel", None]   # a TF1 Saver's names
