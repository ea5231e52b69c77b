"""Hostile checkpoints for restore (issue 10): a checkpoint's own Keras config is built only in
Keras's safe mode, names no file outside the checkpoint's folder, asks for no more memory than
the checkpoint and the budget allow, and every refusal is one line with exit code 2.

The checkpoints are written with the real writers (Keras's get_config and model.save,
tf.train.Checkpoint for the Keras 2 era OBJECT_CONFIG_JSON), then their config is edited by hand
to point at a canary file outside the folder. Each hostile restore runs in its own process,
under a wrapper that reads its peak memory, with a cap on its data segment and a timeout; an
inotify watch on the canary proves it was never opened.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from ckpt_gui import cli
from ckpt_gui.core import scan_directory
from ckpt_gui.core.restore import RestoreSession

REPO = Path(__file__).resolve().parents[1]
PEAK_LIMIT_MB = 1200        # TensorFlow and Keras imported: about 550 MB here
DATA_CAP = 3 << 30          # RLIMIT_DATA of the restore process: a regression fails, not swaps
TIMEOUT = 300
REFUSED_OUTSIDE = ("ckpt-inspect: the checkpoint's model config names a vocabulary file outside "
                   "the checkpoint ({}); refused")


# --- watching a file, running a restore ---------------------------------------------------------

class OpenWatch:
    """inotify on one file: counts every open or read of it, by any process."""
    IN_ACCESS, IN_OPEN = 0x001, 0x020
    IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC

    def __init__(self, path: Path):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        wd = libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_OPEN | self.IN_ACCESS)
        assert wd >= 0, os.strerror(ctypes.get_errno())

    def events(self) -> int:
        n = 0
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return n
            except OSError as e:   # pragma: no cover - EAGAIN spelled another way
                if e.errno == errno.EAGAIN:
                    return n
                raise
            i = 0
            while i < len(data):   # struct inotify_event: wd, mask, cookie, len, name[len]
                length = int.from_bytes(data[i + 12:i + 16], sys.byteorder)
                n += 1
                i += 16 + length

    def close(self):
        os.close(self.fd)


WRAPPER = """
import json, resource, subprocess, sys
cap, timeout, argv = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
def limit():
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
try:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, preexec_fn=limit)
    code, out, err = p.returncode, p.stdout, p.stderr
except subprocess.TimeoutExpired:
    code, out, err = "timeout", "", ""
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"code": code, "out": out, "err": err, "peak_mb": peak}))
"""


def run_restore(*args, env=None) -> dict:
    """``ckpt-inspect restore ARGS`` in a process of its own: exit code, output, peak MB."""
    child_env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3",
                     CUDA_VISIBLE_DEVICES="-1", **(env or {}))
    argv = [sys.executable, "-m", "ckpt_gui.cli", "restore", *map(str, args)]
    p = subprocess.run([sys.executable, "-c", WRAPPER, str(DATA_CAP), str(TIMEOUT), *argv],
                       capture_output=True, text=True, env=child_env, timeout=TIMEOUT + 60)
    result = json.loads(p.stdout)
    assert result["code"] != "timeout", "the restore hung"
    return result


def assert_refused(result: dict, expected: str | re.Pattern) -> str:
    """Exit 2, nothing on stdout, one line on stderr (matching), no traceback, low memory."""
    lines = result["err"].strip().splitlines()
    assert result["code"] == 2, result
    assert result["out"] == "" and len(lines) == 1, result["err"]
    assert "Traceback" not in result["err"]
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(lines[0]), lines[0]
    else:
        assert lines[0] == expected
    assert result["peak_mb"] < PEAK_LIMIT_MB, result["peak_mb"]
    return lines[0]


# --- writing the checkpoints ---------------------------------------------------------------------

@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "outside" / "canary.txt"
    path.parent.mkdir()
    path.write_text("canary-secret-1\ncanary-secret-2\n")
    watch = OpenWatch(path)
    yield path, watch
    watch.close()


def lookup_model(layer="StringLookup", vocabulary=("a", "b", "c")):
    """A real Keras model: a string lookup (or TextVectorization) into a Dense layer."""
    import keras

    inputs = keras.Input((1,), dtype="string")
    if layer == "StringLookup":
        x = keras.layers.StringLookup(vocabulary=list(vocabulary), output_mode="one_hot",
                                      name="lookup")(inputs)
    else:
        x = keras.layers.TextVectorization(vocabulary=list(vocabulary), output_mode="multi_hot",
                                           name="lookup")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


def keras2_config(model, **layer_edits) -> dict:
    """The model's config as Keras 2 stored it (class_name and config), the lookup edited."""
    config = {"class_name": "Functional", "config": model.get_config(),
              "keras_version": "2.15.0", "backend": "tensorflow"}
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] == "lookup":
            layer["config"].update(layer_edits)
    return config


def write_tf_checkpoint(tf, prefix: Path, config: dict | str, weights: list[np.ndarray],
                        layer_config: dict | None = None) -> None:
    """A TF-format checkpoint as Keras 2 wrote one: OBJECT_CONFIG_JSON on the model, its Dense
    layer's kernel and bias under layer_with_weights-0."""
    class ConfigNode(tf.__internal__.tracking.AutoTrackable):
        def __init__(self, text):
            self._text = text

        def _serialize_to_tensors(self):
            return {"OBJECT_CONFIG_JSON": tf.constant(self._text)} if self._text else {}

        def _restore_from_tensors(self, restored):
            return tf.no_op()

    root = ConfigNode(config if isinstance(config, str) else json.dumps(config))
    dense = ConfigNode(json.dumps(layer_config) if layer_config else None)
    dense.kernel, dense.bias = (tf.Variable(w) for w in weights)
    setattr(root, "layer_with_weights-0", dense)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(root=root).write(str(prefix))


def dense_weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_layer("out").get_weights()]


def rewrite_archive_config(path: Path, edit) -> None:
    """Rewrite config.json inside a .keras archive (every other member as it was): ``edit``
    changes the parsed config in place, or returns the new text."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    config = json.loads(members["config.json"])
    text = edit(config)
    members["config.json"] = (text if text is not None else json.dumps(config)).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def set_lookup_vocabulary(config: dict, vocabulary) -> None:
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") in ("StringLookup", "TextVectorization"):
                node["config"]["vocabulary"] = vocabulary
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def hostile_folder(kind: str, tmp_path: Path, tf, vocabulary: str) -> Path:
    """A folder whose one checkpoint's config names ``vocabulary``: a TF-format checkpoint
    (Keras 2 era), a whole-model .h5, a .keras archive or an unzipped .keras folder."""
    model = lookup_model()
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    if kind == "tf":
        write_tf_checkpoint(tf, folder / "ckpt-1", keras2_config(model, vocabulary=vocabulary),
                            dense_weights(model))
    elif kind == "h5":
        model.save(folder / "model.h5")
        with h5py.File(folder / "model.h5", "r+") as f:
            config = json.loads(f.attrs["model_config"])
            set_lookup_vocabulary(config, vocabulary)
            f.attrs["model_config"] = json.dumps(config)
    elif kind == "keras-dir":
        model.save(folder / "model", zipped=False)
        config = json.loads((folder / "model" / "config.json").read_text())
        set_lookup_vocabulary(config, vocabulary)
        (folder / "model" / "config.json").write_text(json.dumps(config))
    else:
        model.save(folder / "model.keras")
        rewrite_archive_config(folder / "model.keras",
                               lambda c: set_lookup_vocabulary(c, vocabulary))
    return folder


# --- files outside the folder ------------------------------------------------------------------

def test_the_watch_sees_another_process_open_the_canary(canary):
    """The inotify watch the other tests rely on does see an open by another process."""
    path, watch = canary
    assert watch.events() == 0
    subprocess.run([sys.executable, "-c", f"open({str(path)!r}).read()"], check=True)
    assert watch.events() >= 2   # IN_OPEN and IN_ACCESS


@pytest.mark.parametrize("kind", ["tf", "h5", "keras", "keras-dir"])
def test_vocabulary_outside_the_folder_is_refused_and_never_opened(tmp_path, tf, canary, kind):
    path, watch = canary
    folder = hostile_folder(kind, tmp_path, tf, str(path))
    saved = tmp_path / "saved.keras"
    result = run_restore(folder, "latest", "--template", "checkpoint", "--save", saved)
    assert_refused(result, REFUSED_OUTSIDE.format(path))
    assert watch.events() == 0 and not saved.exists()


@pytest.mark.parametrize("how", ["relative", "link"])
def test_relative_or_linked_vocabulary_leading_out_is_refused(tmp_path, tf, canary, how):
    path, watch = canary
    if how == "relative":
        vocabulary = "../outside/canary.txt"
    else:   # a link inside the folder, to the canary outside
        (tmp_path / "ckpt").mkdir()
        (tmp_path / "ckpt" / "vocab.txt").symlink_to(path)
        vocabulary = str(tmp_path / "ckpt" / "vocab.txt")
    folder = hostile_folder("tf", tmp_path, tf, vocabulary)
    result = run_restore(folder, "latest", "--template", "checkpoint", "--json")
    assert_refused(result, REFUSED_OUTSIDE.format(vocabulary))
    assert watch.events() == 0


def test_text_vectorization_vocabulary_dev_zero_is_refused_in_bounded_memory(tmp_path, tf):
    """Before: 4.6 GB, then a segfault."""
    model = lookup_model("TextVectorization")
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1",
                        keras2_config(model, vocabulary="/dev/zero"), dense_weights(model))
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint")
    assert_refused(result, REFUSED_OUTSIDE.format("/dev/zero"))


def test_lambda_code_in_a_config_never_runs(tmp_path, tf, canary):
    """A Keras 3 Lambda layer (its code marshalled into the config, as Keras writes it) whose
    code would read the canary: refused by safe mode, both as the checkpoint's own config and
    as a .keras template."""
    import keras

    path, watch = canary
    inputs = keras.Input((3,))
    reads_canary = eval(f"lambda t: t + 0 * len(open({str(path)!r}).read())")   # no closure
    x = keras.layers.Lambda(reads_canary)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    assert watch.events() > 0   # building it ran the lambda: the canary works
    folder = tmp_path / "ckpt"
    folder.mkdir()
    model.save(folder / "model.keras")
    expected = re.compile(r"ckpt-inspect: template (checkpoint|\S+model\.keras): (building from "
                          r"the checkpoint's config|loading the model file) failed: ValueError: "
                          r"Requested the deserialization of a `Lambda` layer whose `function` "
                          r"is a Python lambda\.")
    for template in ("checkpoint", folder / "model.keras"):
        result = run_restore(folder, "latest", "--template", template)
        assert_refused(result, expected)
    assert watch.events() == 0


def test_vocabulary_inside_the_folder_is_used(tmp_path, tf, canary):
    """A Keras 2 config naming a vocabulary file in the checkpoint's own folder (by absolute
    or relative path): the file's lines become the lookup's vocabulary; nothing outside is
    opened."""
    _, watch = canary
    model = lookup_model()
    for vocabulary in ("vocab.txt", str(tmp_path / "ckpt" / "vocab.txt")):
        write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1",
                            keras2_config(model, vocabulary=vocabulary), dense_weights(model))
        (tmp_path / "ckpt" / "vocab.txt").write_text("a\nb\nc\n")
        ckpt = scan_directory(str(tmp_path / "ckpt")).checkpoint("ckpt-1")
        session = RestoreSession(ckpt, "checkpoint")
        report = session.run()
        assert report.complete and [r.shape for r in report.restored] == [[4, 2], [2]]
        lookup = session.loaded.model.get_layer("lookup")
        assert lookup.get_vocabulary() == ["[UNK]", "a", "b", "c"]
        for have, want in zip(dense_weights(session.loaded.model), dense_weights(model)):
            np.testing.assert_array_equal(have, want)
    assert watch.events() == 0


def test_tokens_that_look_like_paths_are_only_tokens(tmp_path, tf, canary):
    """A vocabulary given as a list in the config may hold "/", "../" or a URL as tokens: they
    name no file, so nothing is refused and nothing is opened."""
    _, watch = canary
    tokens = ["a", "/", "../outside/canary.txt", "https://example.com"]
    model = lookup_model(vocabulary=tokens)
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", keras2_config(model),
                        dense_weights(model))
    session = RestoreSession(scan_directory(str(tmp_path / "ckpt")).checkpoint("ckpt-1"),
                             "checkpoint")
    report = session.run()
    assert report.complete and [r.shape for r in report.restored] == [[5, 2], [2]]
    assert session.loaded.model.get_layer("lookup").get_vocabulary() == ["[UNK]", *tokens]
    assert watch.events() == 0


def test_keras_archive_with_an_adapted_lookup_restores_with_its_vocabulary(tmp_path, tf):
    """Positive control: a compiled .keras archive whose StringLookup was adapted (its
    vocabulary is an asset inside the archive) restores from its own config, exit 0, and the
    saved model keeps the vocabulary and the weights."""
    import keras

    inputs = keras.Input((1,), dtype="string")
    lookup = keras.layers.StringLookup(output_mode="one_hot", name="lookup")
    lookup.adapt(np.array([["x"], ["y"], ["y"], ["z"]]))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(lookup(inputs)))
    model.compile(optimizer="adam", loss="mse")
    (tmp_path / "ckpt").mkdir()
    model.save(tmp_path / "ckpt" / "model.keras")
    saved = tmp_path / "restored.keras"
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint",
                         "--save", saved)
    assert result["code"] == 0, result["err"]
    assert "Verified: yes" in result["out"] and f"Saved: {saved}" in result["out"]
    assert result["peak_mb"] < PEAK_LIMIT_MB
    back = keras.saving.load_model(saved)
    vocabulary = lookup.get_vocabulary()
    assert sorted(vocabulary) == ["[UNK]", "x", "y", "z"]
    assert back.get_layer("lookup").get_vocabulary() == vocabulary
    for have, want in zip(dense_weights(back), dense_weights(model)):
        np.testing.assert_array_equal(have, want)


# --- memory bombs ------------------------------------------------------------------------------

def dense_config(units: int, n_in: int = 8) -> dict:
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, n_in],
                                                "dtype": "float32", "name": "input"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": units,
                                           "activation": "linear"}}]},
        "keras_version": "2.15.0", "backend": "tensorflow"}


def test_dense_50_million_is_refused_before_allocation(tmp_path, tf):
    """A 2 KB checkpoint whose config asks for Dense(50,000,000): before, 3.4 GB while the
    template was built."""
    rng = np.random.default_rng(0)
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", dense_config(50_000_000),
                        [rng.standard_normal((8, 4)).astype("float32"),
                         np.zeros(4, "float32")])
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint")
    assert_refused(result, "ckpt-inspect: the checkpoint's model config asks for "
                           "sequential/dense/kernel of shape [8, 50000000] (1.5 GB), and the "
                           "checkpoint holds no tensor of that shape; refused before "
                           "allocating it")


def test_memory_budget_refuses_a_template_over_it(tmp_path, tf):
    """CKPT_GUI_MEMORY_BUDGET bounds what a checkpoint's config may allocate, even when the
    checkpoint does hold tensors of those shapes; under the budget the same restore works."""
    rng = np.random.default_rng(1)
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", dense_config(100),
                        [rng.standard_normal((8, 100)).astype("float32"),
                         rng.standard_normal(100).astype("float32")])
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint",
                         env={"CKPT_GUI_MEMORY_BUDGET": "1000"})
    assert_refused(result, "ckpt-inspect: the checkpoint's model config asks for 3.5 KB of "
                           "variables, over the memory budget of 1000 B (the largest: "
                           "sequential/dense/kernel of shape [8, 100], 3.1 KB); refused before "
                           "allocating them")
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint", "--json",
                         env={"CKPT_GUI_MEMORY_BUDGET": "100000"})
    assert result["code"] == 0, result["err"]
    assert [r["shape"] for r in json.loads(result["out"])["restored"]] == [[8, 100], [100]]


def test_keras_template_file_over_the_budget_is_refused_before_loading(tmp_path, tf):
    """A .keras template (Keras's own file, its config edited to Dense(50,000,000)) picked from
    a downloaded folder: sized on an abstract build before Keras loads it."""
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="dense")],
                             name="sequential")
    model.save(tmp_path / "template.keras")

    def widen(config):
        config["config"]["layers"][-1]["config"]["units"] = 50_000_000
    rewrite_archive_config(tmp_path / "template.keras", widen)
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", dense_config(4),
                        [np.zeros((8, 4), "float32"), np.zeros(4, "float32")])
    result = run_restore(tmp_path / "ckpt", "latest", "--template", tmp_path / "template.keras",
                         env={"CKPT_GUI_MEMORY_BUDGET": "1e9"})
    assert_refused(result, f"ckpt-inspect: template {tmp_path / 'template.keras'}: its model "
                           f"config asks for 1.7 GB of variables, over the memory budget of "
                           f"953.7 MB (the largest: dense/kernel of shape [8, 50000000], "
                           f"1.5 GB); refused before allocating them")


@pytest.mark.parametrize("with_input", [True, False])
def test_sample_run_asking_for_terabytes_is_not_run(tmp_path, tf, with_input):
    """RepeatVector(1,000,000,000) has no variables: the restore goes on, but running the model
    once would take 30 GB of outputs, so it is not run. Without an input layer the model is
    built on a symbolic input, never on data."""
    config = dense_config(4)
    config["config"]["layers"].append({"class_name": "RepeatVector",
                                       "config": {"name": "repeat", "n": 1_000_000_000}})
    if not with_input:
        config["config"]["layers"].pop(0)
    rng = np.random.default_rng(2)
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", config,
                        [rng.standard_normal((8, 4)).astype("float32"), np.zeros(4, "float32")])
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint",
                         env={"CKPT_GUI_MEMORY_BUDGET": "1e9"})
    assert result["code"] == 0, result["err"]
    assert "Model variables restored: 2 of 2" in result["out"]
    assert ("Sample run: not run: its layers' outputs would take 29.8 GB, over the memory "
            "budget of 953.7 MB") in result["out"]
    assert result["peak_mb"] < PEAK_LIMIT_MB


# --- broken configs: one line, exit 2 ----------------------------------------------------------

@pytest.mark.parametrize("kind", ["tf", "keras"])
def test_deeply_nested_json_config_is_one_line(tmp_path, tf, kind):
    """Before: a RecursionError traceback."""
    deep = "[" * 100_000 + "]" * 100_000
    if kind == "tf":
        write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", deep,
                            [np.zeros((8, 4), "float32"), np.zeros(4, "float32")])
    else:   # a real archive, its config.json replaced
        (tmp_path / "ckpt").mkdir()
        lookup_model().save(tmp_path / "ckpt" / "model.keras")
        rewrite_archive_config(tmp_path / "ckpt" / "model.keras", lambda _: deep)
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint")
    assert_refused(result, "ckpt-inspect: the checkpoint's model config is nested too deeply "
                           "to read; refused")


def test_deeply_nested_models_are_one_line(tmp_path, tf):
    """Sequentials nested inside each other deeper than Python recurses (whether the JSON
    parser or Keras is the first to run out of stack, it is one line)."""
    config = json.dumps(dense_config(4))
    for i in range(320):   # as text: json.dumps would run out of stack here too
        config = ('{"class_name": "Sequential", "config": {"name": "s%d", "layers": [%s]}}'
                  % (i, config))
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", config,
                        [np.zeros((8, 4), "float32"), np.zeros(4, "float32")])
    result = run_restore(tmp_path / "ckpt", "latest", "--template", "checkpoint")
    assert_refused(result, re.compile(
        r"ckpt-inspect: (the checkpoint's model config is nested too deeply to read; refused|"
        r"template checkpoint: building from the checkpoint's config failed: nested too "
        r"deeply \(maximum recursion depth exceeded\))"))


@pytest.mark.parametrize("config, expected", [
    ("{not json", r"the checkpoint's model config is not valid JSON \(Expecting property name "
                  r"enclosed in double quotes: line 1 column 2 \(char 1\)\); refused"),
    ('{"class_name": "NoSuchLayer", "config": {}}',
     r"template checkpoint: building from the checkpoint's config failed: ValueError: Unknown "
     r"layer: 'NoSuchLayer'\."),
    ('{"class_name": "Sequential", "config": 5}',
     r"template checkpoint: building from the checkpoint's config failed: \w+: .+"),
    ("42", r"template checkpoint: building from the checkpoint's config failed: \w+: .+"),
])
def test_malformed_configs_are_one_line(tmp_path, tf, capsys, config, expected):
    write_tf_checkpoint(tf, tmp_path / "ckpt" / "ckpt-1", config,
                        [np.zeros((8, 4), "float32"), np.zeros(4, "float32")])
    code = cli.main(["restore", str(tmp_path / "ckpt"), "latest", "--template", "checkpoint"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert re.fullmatch("ckpt-inspect: " + expected, lines[0]), lines[0]
