"""Unit tests of the engine's pure parts: names and numbers, the state-file parser, statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ckpt_gui.core import statefile
from ckpt_gui.core.naming import base_name, checkpoint_number, natural_key
from ckpt_gui.core.stats import tensor_stats

# --- checkpoint_number / natural_key ---------------------------------------------------------


@pytest.mark.parametrize("name, number", [
    ("ckpt-19", 19),
    ("ckpt-1", 1),
    ("ckpt_20", 20),
    ("weights.100.hd5f", 100),
    ("weights.05.hd5f", 5),
    ("model.ckpt-5000", 5000),
    ("model.ckpt-0", 0),
    ("checkpoint-447880", 447880),
    ("cp-0050.ckpt", 50),
    ("model_epoch03.weights.h5", 3),
    ("weights-improvement-05-0.42.hdf5", 5),
    ("ckpt_7.keras", 7),
    ("my_checkpoint-{epoch}-1", 1),  # the article's unformatted template, numbered by save()
    ("run2/ckpt-4", 4),
    ("C:\\Users\\me\\ckpt-12", 12),
    ("cp.ckpt", None),
    ("cnn.ckpt", None),
    ("fc2.ckpt", None),
    ("model.weights.h5", None),
    ("30LSTM_Neurons5Epochs.ckpt", None),
    ("128LSTM_Neurons25Epochs.ckpt", None),
])
def test_checkpoint_number(name, number):
    assert checkpoint_number(name) == number


def test_natural_key_orders_numbers_as_numbers():
    names = ["weights.100.hd5f", "weights.15.hd5f", "weights.05.hd5f", "weights.95.hd5f",
             "weights.10.hd5f"]
    assert sorted(names, key=natural_key) == [
        "weights.05.hd5f", "weights.10.hd5f", "weights.15.hd5f", "weights.95.hd5f",
        "weights.100.hd5f"]
    assert sorted(["ckpt_20", "ckpt_9", "ckpt_100", "ckpt_1"], key=natural_key) == [
        "ckpt_1", "ckpt_9", "ckpt_20", "ckpt_100"]
    # case does not matter; a prefix sorts before its longer names
    assert sorted(["Ckpt-2", "ckpt-10", "ckpt"], key=natural_key) == ["ckpt", "Ckpt-2", "ckpt-10"]
    # mixed digit/letter names compare without a TypeError
    assert sorted(["a1", "1a", "a", "10"], key=natural_key) == ["1a", "10", "a", "a1"]


def test_base_name_of_posix_and_windows_paths():
    assert base_name("/home/someone/Desktop/model.ckpt") == "model.ckpt"
    assert base_name("C:\\Users\\me\\ckpt\\cp.ckpt") == "cp.ckpt"
    assert base_name("\\\\server\\share\\run\\ckpt-3") == "ckpt-3"
    assert base_name("ckpt-3") == "ckpt-3"
    assert base_name("sub/dir/") == "dir"


# --- the state file --------------------------------------------------------------------------

MANAGER_STATE = (
    'model_checkpoint_path: "ckpt-19"\n'
    'all_model_checkpoint_paths: "ckpt-17"\n'
    'all_model_checkpoint_paths: "ckpt-18"\n'
    'all_model_checkpoint_paths: "ckpt-19"\n'
    'all_model_checkpoint_timestamps: 1673735799.685766\n'
    'all_model_checkpoint_timestamps: 1673735913.342593\n'
    'all_model_checkpoint_timestamps: 1673736140.596798\n'
    'last_preserved_timestamp: 1673735591.495455\n')


def test_parse_checkpoint_manager_state():
    s = statefile.parse_state_text(MANAGER_STATE)
    assert s.model_checkpoint_path == "ckpt-19"
    assert s.all_model_checkpoint_paths == ["ckpt-17", "ckpt-18", "ckpt-19"]
    assert s.all_model_checkpoint_timestamps == [1673735799.685766, 1673735913.342593,
                                                 1673736140.596798]
    assert s.last_preserved_timestamp == 1673735591.495455
    assert s.unparsed_lines == []


def test_parse_windows_paths_escaped_as_text_proto():
    # TensorFlow on Windows writes backslashes doubled (C escapes of the text format)
    text = ('model_checkpoint_path: "C:\\\\Users\\\\me\\\\ckpt\\\\cp.ckpt"\n'
            'all_model_checkpoint_paths: "C:\\\\Users\\\\me\\\\ckpt\\\\cp.ckpt"\n')
    s = statefile.parse_state_text(text)
    assert s.model_checkpoint_path == "C:\\Users\\me\\ckpt\\cp.ckpt"
    assert s.all_model_checkpoint_paths == ["C:\\Users\\me\\ckpt\\cp.ckpt"]
    assert statefile.resolve_entry(s.model_checkpoint_path, "/data/run", {"cp.ckpt"}) == "cp.ckpt"


@pytest.mark.parametrize("quoted, value", [
    (r'"a\"b"', 'a"b'),
    (r"'it\'s'", "it's"),
    (r'"tab\there"', "tab\there"),
    (r'"\x41\102"', "AB"),
    (r'"/d/\303\251t\303\251/ckpt-1"', "/d/été/ckpt-1"),       # octal UTF-8 (as_utf8=False)
    ('"/d/été中/ckpt-1"', "/d/été中/ckpt-1"),                    # raw UTF-8 (as_utf8=True)
    (r'"/d/\344\270\255/é/ckpt-2"', "/d/中/é/ckpt-2"),           # both in one string
    (r'"\\\\server\\share\\ckpt-3"', "\\\\server\\share\\ckpt-3"),
])
def test_parse_text_proto_escapes(quoted, value):
    s = statefile.parse_state_text(f"model_checkpoint_path: {quoted}\n")
    assert s.model_checkpoint_path == value
    assert s.unparsed_lines == []


def test_parse_reports_lines_it_does_not_understand():
    s = statefile.parse_state_text('model_checkpoint_path: "ckpt-2"\n# a comment\n\n'
                                   "garbage here\nall_model_checkpoint_paths: unquoted\n"
                                   "all_model_checkpoint_timestamps: nan-ish\n")
    assert s.model_checkpoint_path == "ckpt-2"
    assert s.all_model_checkpoint_paths == []
    assert s.unparsed_lines == ["garbage here", "all_model_checkpoint_paths: unquoted",
                                "all_model_checkpoint_timestamps: nan-ish"]


def test_format_then_parse_round_trips():
    paths = ["ckpt-1", 'we"ird\\name', "C:\\Users\\me\\cp.ckpt", "/d/été/ckpt-3"]
    text = statefile.format_state("ckpt-3", paths, [1.5, 2.5], 0.5)
    s = statefile.parse_state_text(text)
    assert s.model_checkpoint_path == "ckpt-3"
    assert s.all_model_checkpoint_paths == paths
    assert s.all_model_checkpoint_timestamps == [1.5, 2.5]
    assert s.last_preserved_timestamp == 0.5


def test_resolve_entry_without_trusting_paths(tmp_path):
    d = str(tmp_path)
    known = {"ckpt-1", "model.ckpt", "run2/ckpt-4"}
    assert statefile.resolve_entry("ckpt-1", d, known) == "ckpt-1"
    assert statefile.resolve_entry(f"{d}/ckpt-1", d, known) == "ckpt-1"
    assert statefile.resolve_entry("/home/other/Desktop/model.ckpt", d, known) == "model.ckpt"
    assert statefile.resolve_entry("D:\\work\\model.ckpt", d, known) == "model.ckpt"
    assert statefile.resolve_entry("run2/ckpt-4", d, known) == "run2/ckpt-4"
    assert statefile.resolve_entry(f"{d}/run2/ckpt-4", d, known) == "run2/ckpt-4"
    assert statefile.resolve_entry("ckpt-9", d, known) is None
    assert statefile.resolve_entry("/elsewhere/ckpt-9", d, known) is None


# --- tensor statistics -----------------------------------------------------------------------

def _check_against_numpy(a: np.ndarray, bins: int = 50):
    s = tensor_stats(a, bins=bins)
    x = np.asarray(a).astype(np.float64).reshape(-1)
    finite = x[np.isfinite(x)]
    assert s.count == a.size
    assert s.nan == int(np.isnan(x).sum())
    assert s.inf == int(np.isinf(x).sum())
    assert s.zeros == int((np.asarray(a).reshape(-1) == 0).sum())
    assert s.zero_fraction == pytest.approx(s.zeros / a.size)
    assert s.min == finite.min() and s.max == finite.max()
    assert s.mean == pytest.approx(finite.mean(), rel=1e-9, abs=1e-12)
    assert s.std == pytest.approx(finite.std(), rel=1e-7, abs=1e-12)
    assert s.l2 == pytest.approx(np.sqrt(np.dot(finite, finite)), rel=1e-9)
    assert len(s.histogram) == bins and len(s.bin_edges) == bins + 1
    assert sum(s.histogram) == finite.size
    expected, _ = np.histogram(finite, bins=np.asarray(s.bin_edges))
    # numpy and the engine may put a value lying exactly on an inner edge in neighbouring bins
    assert np.abs(np.asarray(s.histogram) - expected).sum() <= 2 * max(1, finite.size // 10**6)
    return s


def test_stats_float32_normal_spans_many_chunks():
    rng = np.random.default_rng(0)
    a = rng.normal(3.0, 2.0, size=(1000, 1100)).astype(np.float32)  # > 4 chunks
    a[0, :10] = 0
    s = _check_against_numpy(a)
    assert s.zeros == 10
    assert s.mean == pytest.approx(3.0, abs=0.01) and s.std == pytest.approx(2.0, abs=0.01)


def test_stats_with_nan_and_inf():
    a = np.array([[1.0, np.nan, -2.0], [np.inf, 0.0, -np.inf], [4.0, np.nan, 0.5]], np.float32)
    s = _check_against_numpy(a, bins=4)
    assert (s.nan, s.inf, s.zeros) == (2, 2, 1)
    assert (s.min, s.max) == (-2.0, 4.0)
    assert s.bin_edges[0] == -2.0 and s.bin_edges[-1] == 4.0
    assert s.histogram == [1, 2, 1, 1]  # -2 | 0, 0.5 | 1 | 4 in [-2,-.5) [-.5,1) [1,2.5) [2.5,4]


def test_stats_all_nan():
    s = tensor_stats(np.full(5, np.nan, np.float32))
    assert (s.count, s.nan, s.inf, s.zeros) == (5, 5, 0, 0)
    assert s.min is None and s.mean is None and s.histogram == []


def test_stats_integer_tensor():
    a = np.arange(-50, 150, dtype=np.int64).reshape(20, 10)
    s = _check_against_numpy(a, bins=10)
    assert (s.min, s.max) == (-50, 149) and s.zeros == 1
    assert s.histogram == [20] * 10


def test_stats_int64_counter_scalar():
    s = tensor_stats(np.int64(316))
    assert (s.count, s.min, s.max, s.mean, s.std, s.l2, s.zeros) == (1, 316, 316, 316, 0, 316, 0)
    assert sum(s.histogram) == 1
    assert s.bin_edges[0] < 316 < s.bin_edges[-1]


def test_stats_large_int_values_are_exact():
    a = np.array([2**40, 2**40 + 1, 2**40 + 2], dtype=np.int64)
    s = tensor_stats(a)
    assert (s.min, s.max) == (2**40, 2**40 + 2)
    assert s.mean == pytest.approx(2**40 + 1, abs=1e-3)
    assert s.std == pytest.approx(math.sqrt(2 / 3), rel=1e-6)


def test_stats_bool_tensor():
    a = np.array([True, False, True, True, False, False, False, True, False, False])
    s = tensor_stats(a, bins=2)
    assert (s.count, s.min, s.max, s.zeros) == (10, 0, 1, 6)
    assert s.mean == pytest.approx(0.4)
    assert s.histogram == [6, 4]


def test_stats_constant_tensor_gets_a_range():
    s = _check_against_numpy(np.full((7, 3), 0.25, np.float64), bins=5)
    assert s.std == 0 and s.histogram[2] == 21 and sum(s.histogram) == 21


@pytest.mark.parametrize("a", [np.zeros((0,), np.float32), np.zeros((3, 0), np.int32),
                               np.zeros((0, 5), bool)])
def test_stats_empty_tensor(a):
    s = tensor_stats(a)
    assert s.count == 0 and s.min is None and s.max is None and s.mean is None
    assert (s.nan, s.inf, s.zeros) == (0, 0, 0)
    assert s.histogram == [] and s.zero_fraction == 0.0


def test_stats_of_strings_only_counts():
    s = tensor_stats(np.array([b"a", b"bc"], dtype=object))
    assert s.count == 2 and s.min is None and s.histogram == []


def test_stats_float16_and_float64_and_complex():
    rng = np.random.default_rng(1)
    _check_against_numpy(rng.normal(size=3000).astype(np.float16))
    _check_against_numpy(rng.normal(size=(30, 40)))
    c = (rng.normal(size=100) + 1j * rng.normal(size=100)).astype(np.complex64)
    s = tensor_stats(c)
    assert s.max == pytest.approx(float(np.abs(c).max()), rel=1e-6)


def test_stats_to_dict_is_json_ready():
    import json

    d = tensor_stats(np.array([0.0, 1.0, 2.0, 3.0], np.float32), bins=3).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["zero_fraction"] == 0.25 and d["histogram"] == [1, 1, 2]
