"""Every directory of the real-data corpus against its MANIFEST.tsv and VERIFY.tsv.

The corpus is read-only and shared: every test works on a copy (``corpus_copy`` or, for the
scans shared by many tests, a module-level copy made the same way). Assertions are generic over
the manifest rows wherever possible, then each manifest note's quirk gets its own test.
"""
from __future__ import annotations

import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest
from conftest import CORPUS, corpus_names, manifest, verify_rows

from ckpt_gui import cli
from ckpt_gui.core import scan_directory
from ckpt_gui.core.formats import keras3_h5, keras_archive, keras_h5, tf_v1, tf_v2
from ckpt_gui.core.model import BROKEN, COUNTER, METADATA, OK, OPTIMIZER, PARTIAL
from ckpt_gui.core.naming import checkpoint_number, natural_key
from ckpt_gui.core.reading import ReadError, read_tensor
from ckpt_gui.core.stats import tensor_stats

TF_V1, TF_V2 = tf_v1.NAME, tf_v2.NAME
HDF5_FORMATS = (keras_h5.NAME, keras3_h5.NAME, keras_archive.NAME)

ROWS = {row["name"]: row for row in manifest()}
NAMES = corpus_names()
VERIFY: dict[str, dict[str, dict]] = {}
for _row in verify_rows():
    VERIFY.setdefault(_row["name"], {})[_row["prefix"]] = _row


def _copy(name: str, root) -> str:
    """What conftest's corpus_copy does, for copies shared by a whole module."""
    dst = root / name
    shutil.copytree(CORPUS / name, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    return str(dst)


def _snapshot(directory: str) -> dict:
    out = {}
    for root, dirs, files in os.walk(directory):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, directory)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return {name: _copy(name, root) for name in NAMES}


@pytest.fixture(scope="module")
def scans(copies, tf):
    """name -> (plain scan, verified scan); checks on the way that scanning writes nothing."""
    out = {}
    for name, d in copies.items():
        before = _snapshot(d)
        out[name] = (scan_directory(d), scan_directory(d, verify=True))
        assert _snapshot(d) == before, f"scanning {name} changed its files"
    return out


def _note(name: str, label: str) -> str:
    m = re.search(rf"{re.escape(label)}:\s*([^;]*)", ROWS[name]["notes"])
    assert m, f"manifest note of {name} has no {label!r}"
    return m.group(1).strip()


def _expected_status(row: dict) -> str:
    if row["status"] == "OK":
        return OK
    return BROKEN if int(row["n_tensors_read_ok"]) == 0 else PARTIAL


def _tf_listing(tf, path: str) -> dict[str, tuple[tuple[int, ...], str]]:
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    assert set(shapes) == {n for n, _ in tf.train.list_variables(path)}
    return {n: (tuple(shapes[n]), dtypes[n].name) for n in shapes}


def _h5_listing(path: str) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    with h5py.File(path, "r") as f:
        def visit(n, obj):
            if isinstance(obj, h5py.Dataset):
                out[n] = (tuple(obj.shape), obj.dtype.name)
        f.visititems(visit)
    return out


# --- generic: every manifest row --------------------------------------------------------------

def test_manifest_and_verify_agree_with_each_other():
    assert set(VERIFY) == set(NAMES)
    for name in NAMES:
        assert len(VERIFY[name]) == int(ROWS[name]["n_checkpoints"]), name


@pytest.mark.parametrize("name", NAMES)
def test_checkpoints_found(name, scans):
    scan, _ = scans[name]
    found = [c.name for c in scan.checkpoints]
    assert sorted(found) == sorted(VERIFY[name])
    assert len(found) == int(ROWS[name]["n_checkpoints"])
    assert found == sorted(found, key=natural_key)  # listed in natural order
    for c in scan.checkpoints:
        assert c.number == checkpoint_number(c.name)
        fmt = VERIFY[name][c.name]["format"]
        assert c.format == {"V2": TF_V2, "V1": TF_V1}.get(fmt, c.format)
        if fmt == "h5":
            assert c.format in HDF5_FORMATS
        # its own files, with their real sizes
        sizes = {f.name: f.bytes for f in c.files}
        for f, size in sizes.items():
            assert os.path.getsize(os.path.join(scan.directory, f)) == size
        assert c.bytes == sum(sizes.values())
        if c.format == TF_V2:
            on_disk = sorted(n for n in os.listdir(scan.directory)
                             if n == c.name + ".index" or n == c.name + ".meta"
                             or n.startswith(c.name + ".data-"))
            assert sorted(sizes) == on_disk
        assert c.mtime == max(os.path.getmtime(os.path.join(scan.directory, f)) for f in sizes)
    # the manifest's total is everything in the folder but the state file
    total = sum(c.bytes for c in scan.checkpoints)
    state = os.path.join(scan.directory, "checkpoint")
    if os.path.exists(state):
        total += os.path.getsize(state)
    assert total == int(ROWS[name]["total_bytes"])
    assert scan.orphans == [] and scan.subdirectories == []


@pytest.mark.parametrize("name", NAMES)
def test_variables_counted_and_read_as_verify_says(name, scans):
    plain, verified = scans[name]
    for c in plain.checkpoints:
        row = VERIFY[name][c.name]
        assert c.n_variables == int(row["n_variables"]), c.name
        assert c.n_readable is None and not c.verified
    for c in verified.checkpoints:
        row = VERIFY[name][c.name]
        assert c.verified
        assert c.n_readable == int(row["n_tensors_read_ok"]), c.name
        assert c.status == _expected_status(row), c.name
        assert sum(v.readable is True for v in c.variables) == c.n_readable
        assert all(v.problem for v in c.variables if v.readable is False)
        if c.status == OK:
            assert c.problems == []
        else:
            assert c.problems
    latest = next(c for c in plain.checkpoints if c.is_latest)
    assert latest.n_variables == int(ROWS[name]["n_variables_latest"])


@pytest.mark.parametrize("name", NAMES)
def test_latest(name, scans):
    expected = re.search(r"latest=(\S+) via", ROWS[name]["notes"])
    scan, verified = scans[name]
    if expected:
        assert scan.latest == expected.group(1)
    else:  # no state file: the only/highest checkpoint
        assert not scan.state_file.present
        assert scan.latest == scan.checkpoints[-1].name
    assert verified.latest == scan.latest
    assert [c.name for c in scan.checkpoints if c.is_latest] == [scan.latest]


@pytest.mark.parametrize("name", NAMES)
def test_state_file_against_tensorflow(name, scans, tf):
    scan, _ = scans[name]
    tf_latest = tf.train.latest_checkpoint(scan.directory)
    noted = _note(name, "tf.train.latest_checkpoint") if "state:" in ROWS[name]["notes"] else None
    if noted is None:
        assert tf_latest is None and not scan.state_file.present
        return
    assert scan.state_file.present
    if noted == "None":
        assert tf_latest is None
    else:
        assert os.path.basename(tf_latest) == noted == scan.state_file.latest
    raw = open(os.path.join(scan.directory, "checkpoint")).read()
    listed = re.findall(r'all_model_checkpoint_paths: "([^"]*)"', raw)
    assert scan.state_file.listed == [os.path.basename(p) for p in listed]
    if "ABSOLUTE" in _note(name, "state"):
        assert any("absolute paths" in p for p in scan.state_file.problems)
    else:
        assert not any("absolute" in p for p in scan.state_file.problems)


@pytest.mark.parametrize("name", NAMES)
def test_names_shapes_dtypes_equal_tensorflow_or_h5py(name, scans, tf):
    scan, _ = scans[name]
    for c in scan.checkpoints:
        mine = {v.name: (tuple(v.shape), v.dtype) for v in c.variables}
        if c.format in HDF5_FORMATS:
            assert mine == _h5_listing(c.path)
        else:
            assert mine == _tf_listing(tf, c.path)
        names = [v.name for v in c.variables]
        assert len(names) == len(set(names))
        for v in c.variables:
            if v.dtype != "string":
                assert v.bytes == v.size * np.dtype(v.dtype).itemsize
            if v.name == "_CHECKPOINTABLE_OBJECT_GRAPH":
                assert v.role == METADATA


@pytest.mark.parametrize("name", NAMES)
def test_values_read_through_the_engine_equal_tensorflow(name, scans, tf):
    scan, _ = scans[name]
    for c in scan.checkpoints:
        if c.format in HDF5_FORMATS:
            with h5py.File(c.path, "r") as f:
                for v in c.variables:
                    np.testing.assert_array_equal(read_tensor(c, v.name), f[v.name][()])
            continue
        reader = tf.train.load_checkpoint(c.path)
        for v in c.variables:
            try:
                expected = reader.get_tensor(v.name)
            except tf.errors.OpError:
                with pytest.raises(ReadError, match="missing"):
                    read_tensor(c, v.name)
                continue
            got = read_tensor(c, v.name)
            assert isinstance(got, np.ndarray)
            expected = np.asarray(expected, dtype=object if v.dtype == "string" else None)
            assert got.dtype == expected.dtype, v.name
            np.testing.assert_array_equal(got, expected, err_msg=f"{c.name}: {v.name}")
            # the object path reaches the same variable
            assert c.variable(v.path) is v or c.variable(v.path).name == v.name


@pytest.mark.parametrize("name", NAMES)
def test_counters_hold_the_stored_values(name, scans, tf):
    scan, _ = scans[name]
    step_like = _note(name, "step-like vars")
    wanted = [] if step_like == "none" else step_like.split(",")
    for c in scan.checkpoints:
        if c.status == BROKEN:
            assert c.counters == {}  # nothing can be read
            continue
        by_path = {v.path: v for v in c.variables}
        for key in wanted:
            path = key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")
            if path in by_path:
                assert path in c.counters, (c.name, path)
        for path, value in c.counters.items():
            v = by_path[path]
            assert v.role == COUNTER
            stored = read_tensor(c, v.name).reshape(-1)[0].item()
            assert value == stored and type(value) is type(stored)


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_slots_attached_to_their_variable(name, scans):
    scan, _ = scans[name]
    latest = scan.checkpoint(scan.latest)
    slots_note = _note(name, "slots(latest)")
    for c in scan.checkpoints:
        by_name = {v.name: v for v in c.variables}
        for v in c.variables:
            if v.slot_of is not None:
                owner = by_name[v.slot_of]
                assert v.role == OPTIMIZER and v.slot_name
                assert owner.shape == v.shape
                assert owner.role not in (OPTIMIZER, COUNTER, METADATA)
            if ".OPTIMIZER_SLOT/" in v.name:
                assert v.role == OPTIMIZER and v.slot_of is not None
    slots = [v for v in latest.variables if v.slot_of]
    if slots_note == "none":
        assert slots == []
        return
    assert slots
    # every trainable variable the slots serve gets the same number of slots
    per_owner: dict[str, list[str]] = {}
    for v in slots:
        per_owner.setdefault(v.slot_of, []).append(v.slot_name)
    assert len({len(names) for names in per_owner.values()}) == 1
    assert all(len(set(names)) == len(names) for names in per_owner.values())
    for marker in slots_note.split(","):
        marker = marker.split(" (")[0].strip().removeprefix("h5 ")
        if marker.startswith(".OPTIMIZER_SLOT/"):  # .OPTIMIZER_SLOT/m: the slot's name
            assert marker.split("/", 1)[1] in {v.slot_name for v in slots}, marker
        else:  # a layout: optimizer/_variables/N, /Adam
            pattern = re.escape(marker).replace("N", r"\d+") + "($|/)"
            assert any(re.search(pattern, v.name) for v in slots), marker


@pytest.mark.parametrize("name", NAMES)
def test_cli_scan_json_verify(name, copies, scans, capsys):
    code = cli.main(["scan", copies[name], "--verify", "--json"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    data = json.loads(out.out)
    _, verified = scans[name]
    assert set(data) == {"directory", "latest", "state_file", "checkpoints", "runs", "orphans",
                         "subdirectories", "problems"}
    in_runs = {n: r["id"] for r in data["runs"] for n in r["checkpoints"]}
    assert {c["name"]: c["run"] for c in data["checkpoints"]} == {
        c["name"]: in_runs.get(c["name"]) for c in data["checkpoints"]}
    assert [r["id"] for r in data["runs"]] == [r.id for r in verified.runs]
    assert set(data["state_file"]) == {"present", "latest", "listed", "problems"}
    assert data["directory"] == copies[name] and data["latest"] == verified.latest
    for c in data["checkpoints"]:
        row = VERIFY[name][c["name"]]
        assert c["n_variables"] == int(row["n_variables"]) == len(c["variables"])
        assert c["n_readable"] == int(row["n_tensors_read_ok"])
        assert c["status"] == _expected_status(row)
        assert {"name", "format", "files", "bytes", "number", "counters", "status", "problems",
                "n_variables", "n_readable", "variables"} <= set(c)
        for v in c["variables"]:
            assert {"name", "shape", "dtype", "bytes", "role"} <= set(v)
    problems = (any(c["status"] != OK for c in data["checkpoints"])
                or data["state_file"]["problems"] or data["orphans"])
    assert code == (1 if problems else 0)
    # without --verify: exit 0, n_readable null
    assert cli.main(["scan", copies[name], "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert all(c["n_readable"] is None for c in plain["checkpoints"])


@pytest.mark.parametrize("name", NAMES)
def test_cli_show_latest_first_variable(name, copies, scans, capsys):
    scan, _ = scans[name]
    latest = scan.checkpoint(scan.latest)
    v = next(v for v in latest.variables if v.role not in (METADATA,) and v.size > 1)
    code = cli.main(["show", copies[name], "latest", v.name, "--json"])
    out = capsys.readouterr()
    if latest.status == BROKEN:
        assert code == 1 and "cannot be read" in out.err and "Traceback" not in out.err
        return
    assert code == 0, out.err
    data = json.loads(out.out)
    value = read_tensor(latest, v.name)
    assert data["checkpoint"] == latest.name and data["variable"]["name"] == v.name
    assert data["values"] == pytest.approx(value.reshape(-1)[:20].tolist())
    expected = tensor_stats(value).to_dict()
    assert data["stats"]["histogram"] == expected.pop("histogram")
    assert data["stats"]["bin_edges"] == pytest.approx(expected.pop("bin_edges"))
    assert {k: data["stats"][k] for k in expected} == pytest.approx(expected)


# --- the quirk in each note ------------------------------------------------------------------

def test_regr_contrib_absolute_posix_state_paths(corpus_copy, tf):
    d = str(corpus_copy("regr-contrib-abs-home-tf1"))
    assert tf.train.latest_checkpoint(d) is None  # the quirk is real
    scan = scan_directory(d)
    assert scan.latest == "model.ckpt"
    assert scan.state_file.latest == "model.ckpt"
    assert scan.state_file.listed == ["model.ckpt-0", "model.ckpt-5000", "model.ckpt"]
    assert [p for p in scan.state_file.problems if "/home/manishankar/Desktop/" in p]
    assert not any("does not exist" in p for p in scan.state_file.problems)
    by = {c.name: c for c in scan.checkpoints}
    assert by["model.ckpt-5000"].counters == {"global_step": 5000}
    assert by["model.ckpt-0"].counters == {"global_step": 0}
    assert by["model.ckpt"].counters == {} and by["model.ckpt"].number is None
    assert all(c.name + ".meta" in [f.name for f in c.files] for c in scan.checkpoints)
    assert by["model.ckpt-5000"].writer.startswith("TF1 Saver")


def test_tdgammon_v1_beside_v2_and_state_file_not_a_checkpoint(corpus_copy):
    d = str(corpus_copy("tdgammon-v1-v2-tf1"))
    scan = scan_directory(d, verify=True)
    assert [c.name for c in scan.checkpoints] == ["checkpoint-447880", "checkpoint-462746"]
    v1, v2 = scan.checkpoints
    assert v1.format == TF_V1 and [f.name for f in v1.files] == ["checkpoint-447880",
                                                                 "checkpoint-447880.meta"]
    assert v2.format == TF_V2
    assert v1.counters["global_step"] == 447880 and v2.counters["global_step"] == 462746
    assert scan.checkpoint("checkpoint") is None and "checkpoint" not in scan.orphans
    assert scan.latest == "checkpoint-462746" and v1.status == v2.status == OK
    assert sorted(v.name for v in v1.variables) == sorted(v.name for v in v2.variables)


def test_charity_hd5f_names_sort_naturally(corpus_copy):
    scan = scan_directory(str(corpus_copy("charity-hd5f-keras-tf")))
    names = [c.name for c in scan.checkpoints]
    assert names.index("weights.95.hd5f") < names.index("weights.100.hd5f") == len(names) - 1
    assert names[:3] == ["weights.05.hd5f", "weights.10.hd5f", "weights.15.hd5f"]
    c = scan.checkpoint("weights.100.hd5f")
    assert c.number == 100 and c.format == TF_V2 and c.is_latest
    assert [c.number for c in scan.checkpoints] == list(range(5, 101, 5))
    iters = [c.counters["optimizer/iter"] for c in scan.checkpoints]
    assert iters == sorted(iters) and iters[-1] == 20 * iters[0]
    assert scan.state_file.problems == []


def test_foodprep_two_shards(corpus_copy, tf):
    d = str(corpus_copy("foodprep-sharded2-keras-tf"))
    scan = scan_directory(d, verify=True)
    (c,) = scan.checkpoints
    assert [f.name for f in c.files] == ["cp.ckpt.index", "cp.ckpt.data-00000-of-00002",
                                         "cp.ckpt.data-00001-of-00002"]
    by_shard = {}
    for v in c.variables:
        by_shard.setdefault(v.shard, []).append(v.name)
    assert by_shard[0] == ["_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(by_shard[1]) == 29
    assert c.status == OK and c.n_readable == 30
    assert {v.slot_name for v in c.variables if v.slot_of} == {"rms"}
    assert c.counters == {"optimizer/iter": 64000}


def test_daviesx_missing_data_file(corpus_copy, capsys):
    d = str(corpus_copy("daviesx-partial-data-tf1"))
    scan = scan_directory(d)
    cnn, fc2 = scan.checkpoint("cnn.ckpt"), scan.checkpoint("fc2.ckpt")
    # known from the index alone, before any tensor is read
    assert cnn.status == BROKEN
    assert cnn.problems == ["cnn.ckpt.data-00000-of-00001 is missing: "
                            "27 of 27 variables cannot be read"]
    assert [f.name for f in cnn.files] == ["cnn.ckpt.index", "cnn.ckpt.meta"]
    assert fc2.status == OK and fc2.counters == {"global_step": 20000}
    assert scan.latest == "cnn.ckpt"  # the state file names it, even broken
    assert scan.state_file.problems == [
        "the state file's latest, cnn.ckpt, is broken: it cannot be restored "
        "(the newest readable one is fc2.ckpt)"]
    assert cli.main(["scan", d, "--verify"]) == 1
    out = capsys.readouterr().out
    assert "cnn.ckpt.data-00000-of-00001 is missing" in out
    assert "0/27" in out and "21/21" in out
    with pytest.raises(ReadError, match="missing"):
        read_tensor(cnn, "fc/w")
    # TF1 name-based Adam slots belong to the variable they are named after
    slots = {v.name: v for v in fc2.variables if v.slot_of}
    assert set(slots) == {f"{layer}/{p}/{s}" for layer in ("h1", "h2", "output")
                          for p in ("w", "b") for s in ("Adam", "Adam_1")}
    assert (slots["h1/w/Adam_1"].slot_of, slots["h1/w/Adam_1"].slot_name) == ("h1/w", "v")
    assert (slots["output/b/Adam"].slot_of, slots["output/b/Adam"].slot_name) == ("output/b", "m")


def test_supercon_counters_and_latest(corpus_copy):
    scan = scan_directory(str(corpus_copy("supercon-gan-tf2")))
    assert scan.latest == "ckpt-2"
    iters = [c.counters["generator_optimizer/iter"] for c in scan.checkpoints]
    assert iters == [315, 630, 45, 65, 80]
    assert [c.counters["discriminator_optimizer/iter"] for c in scan.checkpoints] == iters
    assert [c.counters["save_counter"] for c in scan.checkpoints] == [1, 2, 3, 4, 5]
    assert [c.training_progress() for c in scan.checkpoints] == iters
    # ckpt-3..5 are an older run that the restart (the state file's ckpt-1, ckpt-2) overwrote
    # the start of: higher numbers of another run do not make the state file's latest wrong
    assert [(r.id, r.checkpoints, r.restarted_from) for r in scan.runs] == [
        ("ckpt-{N}", ["ckpt-3", "ckpt-4", "ckpt-5"], None),
        ("ckpt-{N}#2", ["ckpt-1", "ckpt-2"], "ckpt-{N}")]
    assert scan.state_file.problems == []
    assert not any(v.slot_of for c in scan.checkpoints for v in c.variables)
    norm = [v for v in scan.checkpoints[0].variables if "moving_" in v.name]
    assert norm and all(v.role == "normalization" for v in norm)


def test_tictactoe_new_style_optimizer_slots(corpus_copy):
    scan = scan_directory(str(corpus_copy("tictactoe-tf2mgr-keras3opt")))
    c = scan.checkpoint("ckpt-19")
    assert c.counters == {"net/optimizer/_iterations": 316, "optimizer/_iterations": 0,
                          "save_counter": 19, "step": 1}
    slots = {v.path: (v.slot_of, v.slot_name) for v in c.variables if v.slot_of}
    k0 = "net/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    b0 = "net/layer_with_weights-0/bias/.ATTRIBUTES/VARIABLE_VALUE"
    k1 = "net/layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    b1 = "net/layer_with_weights-1/bias/.ATTRIBUTES/VARIABLE_VALUE"
    assert slots == {
        "net/optimizer/_variables/1": (k0, "momentum"), "net/optimizer/_variables/2": (k0, "velocity"),
        "net/optimizer/_variables/3": (b0, "momentum"), "net/optimizer/_variables/4": (b0, "velocity"),
        "net/optimizer/_variables/5": (k1, "momentum"), "net/optimizer/_variables/6": (k1, "velocity"),
        "net/optimizer/_variables/7": (b1, "momentum"), "net/optimizer/_variables/8": (b1, "velocity"),
    }
    assert [c.counters["net/optimizer/_iterations"] for c in scan.checkpoints] == [116, 216, 316]
    assert scan.state_file.listed == ["ckpt-17", "ckpt-18", "ckpt-19"]
    assert scan.state_file.problems == []


def test_churn_keras3_weights_h5(corpus_copy):
    d = str(corpus_copy("churn-keras3-weights-h5"))
    scan = scan_directory(d, verify=True)
    (c,) = scan.checkpoints
    assert c.name == "model.weights.h5" and c.format == "keras3-h5"
    assert c.n_variables == c.n_readable == 20 and c.status == OK
    assert not scan.state_file.present and scan.latest == "model.weights.h5"
    roles = {v.name: v.role for v in c.variables}
    assert roles["layers/dense/vars/0"] == "weight" and roles["layers/dense/vars/1"] == "bias"
    assert c.counters == {"optimizer/vars/0": 4500}
    assert sum(v.slot_of is not None for v in c.variables) == 12


def test_dynrnn_many_models_one_folder(corpus_copy):
    scan = scan_directory(str(corpus_copy("dynrnn-mixed-shards-keras-tf")))
    assert len(scan.checkpoints) == 18
    assert all(c.number is None for c in scan.checkpoints)
    two_shards = [c.name for c in scan.checkpoints
                  if sum(f.kind == "data" for f in c.files) == 2]
    assert len(two_shards) == 16 and "30LSTM_Neurons5Epochs.ckpt" not in two_shards
    assert scan.latest == "30LSTM_Neurons5Epochs.ckpt"
    shapes = {c.name: next(v.shape for v in c.variables if v.role == "weight")
              for c in scan.checkpoints}
    assert shapes["16LSTM_Neurons10Epochs.ckpt"] != shapes["128LSTM_Neurons10Epochs.ckpt"]
    # only checkpoints of the same model are compared: the 30-unit one trained longer
    (problem,) = scan.state_file.problems
    assert "30LSTM_Neurons18Epochs.ckpt" in problem and "optimizer/iter = 51" in problem
