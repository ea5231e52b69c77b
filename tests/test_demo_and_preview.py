"""The demo folder, and how previews are chosen by a tensor's shape (core.preview, no Qt)."""
from __future__ import annotations

import json
import os

import numpy as np

from ckpt_gui.core import scan_directory
from ckpt_gui.core.model import VariableInfo
from ckpt_gui.core.preview import IMAGE, SCALAR, TEXT, VECTOR, make_preview
from ckpt_gui.demo import DONE_MARKER, make_demo


def _var(name, shape, dtype="float32"):
    return VariableInfo(name, tuple(shape), dtype, 0, "weight", name)


def test_demo_is_a_real_training_folder(tmp_path, tf):
    seen = []
    d = make_demo(str(tmp_path / "demo"), progress=lambda *a: seen.append(a), epochs=6)
    scan = scan_directory(d)
    names = [c.name for c in scan.checkpoints]
    # CheckpointManager(max_to_keep=5) kept the last five of six epochs ...
    assert [n for n in names if n.startswith("ckpt-")] == ["ckpt-2", "ckpt-3", "ckpt-4", "ckpt-5", "ckpt-6"]
    assert os.path.basename(tf.train.latest_checkpoint(d)) == scan.latest == "ckpt-6"
    # ... beside Keras ModelCheckpoint files, one a epoch, and the best whole model
    assert [n for n in names if n.endswith(".weights.h5")] == \
        [f"weights.{e:02d}.weights.h5" for e in range(1, 7)]
    assert "best.keras" in names
    latest = scan.checkpoint("ckpt-6")
    assert {v.shape for v in latest.variables if v.role == "weight"} == {(784, 128), (128, 10)}
    assert latest.counters["step"] == latest.counters["optimizer/_iterations"] == 6 * 32
    assert all(c.status == "ok" for c in scan.checkpoints)
    assert seen[-1][:2] == (7, 7)
    # made once: a second call reuses it
    marker = os.path.join(d, DONE_MARKER)
    mtime = os.path.getmtime(marker)
    assert make_demo(d) == d and os.path.getmtime(marker) == mtime


def test_views_are_chosen_by_shape():
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    p = make_preview("c", _var("k", m.shape), m)
    assert p.kind == IMAGE and p.step == (1, 1)
    np.testing.assert_array_equal(p.display, m)
    v = np.linspace(-1, 1, 9, dtype=np.float32)
    p = make_preview("c", _var("b", v.shape), v)
    assert p.kind == VECTOR
    np.testing.assert_array_equal(p.display, v)
    assert make_preview("c", _var("s", ()), np.array(7, dtype=np.int64)).text == "7"
    assert make_preview("c", _var("s", ()), np.array(7, dtype=np.int64)).kind == SCALAR
    t = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    p = make_preview("c", _var("conv", t.shape, "float64"), t, index=(1, 2))
    np.testing.assert_array_equal(p.display, t[1, 2])
    assert p.index == (1, 2)


def test_large_matrices_are_block_averaged_for_painting():
    a = np.random.default_rng(0).standard_normal((3000, 10), dtype=np.float32)
    p = make_preview("c", _var("big", a.shape), a)
    assert p.display.shape == (1000, 10) and p.step == (3, 1)
    np.testing.assert_allclose(p.display, a.reshape(1000, 3, 10).mean(axis=1), rtol=1e-5, atol=1e-6)
    assert p.stats.count == a.size  # statistics always cover the whole tensor


def test_keras_object_config_json_is_pretty_printed():
    config = {"class_name": "Dense", "config": {"units": 10, "activation": "relu"}}
    raw = np.array(json.dumps(config).encode(), dtype=object)
    p = make_preview("c", _var("layer/.ATTRIBUTES/OBJECT_CONFIG_JSON", (), "string"), raw)
    assert p.kind == TEXT
    assert p.text == json.dumps(config, indent=2)
