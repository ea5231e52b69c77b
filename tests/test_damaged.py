"""Damaged and hostile inputs: every one gets a plain problem or one clear line, never a crash,
and nothing is written anywhere. Plus the CLI's exit codes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckpt_gui import cli
from ckpt_gui.core import bundle, scan_directory
from ckpt_gui.core.model import BROKEN, OK, PARTIAL
from ckpt_gui.core.reading import ReadError, read_tensor
from ckpt_gui.core.scan import ScanError

N_VARS = 5  # _CHECKPOINTABLE_OBJECT_GRAPH, b, save_counter, step, w


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tf):
    """Two checkpoints of a small model (CheckpointManager), written once for the module."""
    d = tmp_path_factory.mktemp("pristine")
    rng = np.random.default_rng(0)
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(w=tf.Variable(rng.normal(size=(64, 32)).astype(np.float32)),
                               b=tf.Variable(rng.normal(size=32).astype(np.float32)), step=step)
    manager = tf.train.CheckpointManager(ckpt, str(d), max_to_keep=5)
    for i in (1, 2):
        step.assign(10 * i)
        manager.save()
    return d


@pytest.fixture
def work(pristine, tmp_path):
    d = tmp_path / "ckpts"
    shutil.copytree(pristine, d)
    return d


def _snapshot(*roots) -> dict:
    out = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for n in dirs + files:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                out[p] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def _scan_both(d):
    """Scan without and with verification; neither may change a file."""
    before = _snapshot(d)
    plain = scan_directory(str(d))
    verified = scan_directory(str(d), verify=True)
    assert _snapshot(d) == before
    return plain, verified


def _entry(d, name):
    return bundle.read_index(str(d / "ckpt-2.index")).entries[name]


def _write_bytes(path, data: bytes):
    with open(path, "wb") as f:
        f.write(data)


def test_pristine_is_ok(work):
    plain, verified = _scan_both(work)
    assert [c.name for c in plain.checkpoints] == ["ckpt-1", "ckpt-2"]
    assert all(c.status == OK and c.problems == [] for c in plain.checkpoints + verified.checkpoints)
    assert [c.n_readable for c in verified.checkpoints] == [N_VARS, N_VARS]
    assert plain.checkpoint("ckpt-2").counters == {"save_counter": 2, "step": 20}


# --- truncated, bit-flipped, zeroed, empty ---------------------------------------------------

def test_truncated_index(work):
    with open(work / "ckpt-2.index", "r+b") as f:
        f.truncate(100)
    plain, verified = _scan_both(work)
    for scan in (plain, verified):
        c = scan.checkpoint("ckpt-2")
        assert c.status == BROKEN and c.n_variables == 0 and c.counters == {}
        assert c.problems == ["ckpt-2.index cannot be read: "
                              "not a TensorFlow checkpoint table (bad magic number)"]
        assert scan.checkpoint("ckpt-1").status == OK
    # its data file still belongs to it, not an orphan
    assert plain.orphans == []
    assert "ckpt-2.data-00000-of-00001" in [f.name for f in plain.checkpoint("ckpt-2").files]
    assert verified.state_file.problems == [
        "the state file's latest, ckpt-2, is broken: it cannot be restored "
        "(the newest readable one is ckpt-1)"]


def test_truncated_data(work, tf):
    data = work / "ckpt-2.data-00000-of-00001"
    entries = bundle.read_index(str(work / "ckpt-2.index")).entries
    w = entries["w/.ATTRIBUTES/VARIABLE_VALUE"]
    cut = w.offset + w.size // 2
    with open(data, "r+b") as f:
        f.truncate(cut)
    lost = sorted(n for n, e in entries.items() if e.offset + e.size > cut)
    assert "w/.ATTRIBUTES/VARIABLE_VALUE" in lost and len(lost) < N_VARS
    plain, verified = _scan_both(work)
    c = plain.checkpoint("ckpt-2")
    expected = [f"ckpt-2.data-00000-of-00001 is truncated: {len(lost)} of {N_VARS} "
                "variables cannot be read"]
    assert c.status == PARTIAL and c.problems == expected
    assert sorted(v.name for v in c.variables if v.readable is False) == lost
    v = verified.checkpoint("ckpt-2")
    assert v.status == PARTIAL and v.n_readable == N_VARS - len(lost)
    assert v.problems == expected  # TensorFlow agrees with what the index said
    readable = [x for x in v.variables if x.readable]
    assert readable and all(x.name not in lost for x in readable)
    with pytest.raises(ReadError):
        read_tensor(v, "w/.ATTRIBUTES/VARIABLE_VALUE")


def test_bit_flip_caught_by_tensorflow_checksum(work, tf):
    w = _entry(work, "w/.ATTRIBUTES/VARIABLE_VALUE")
    path = work / "ckpt-2.data-00000-of-00001"
    raw = bytearray(path.read_bytes())
    raw[w.offset + 1234] ^= 0x10
    _write_bytes(path, bytes(raw))
    plain, verified = _scan_both(work)
    assert plain.checkpoint("ckpt-2").status == OK  # the index cannot know
    c = verified.checkpoint("ckpt-2")
    assert c.status == PARTIAL and c.n_readable == N_VARS - 1
    assert c.problems == ["ckpt-2.data-00000-of-00001 is damaged (its data fails TensorFlow's "
                          "checksum): 1 of 5 variables cannot be read"]
    bad = [v for v in c.variables if not v.readable]
    assert [v.name for v in bad] == ["w/.ATTRIBUTES/VARIABLE_VALUE"]
    assert "checksum" in bad[0].problem
    with pytest.raises(ReadError, match="checksum"):
        read_tensor(c, "w/.ATTRIBUTES/VARIABLE_VALUE")
    np.testing.assert_array_equal(read_tensor(c, "b/.ATTRIBUTES/VARIABLE_VALUE"),
                                  tf.train.load_checkpoint(c.path).get_tensor(
                                      "b/.ATTRIBUTES/VARIABLE_VALUE"))


def test_bit_flip_in_a_counter_is_not_believed(work):
    step = _entry(work, "step/.ATTRIBUTES/VARIABLE_VALUE")
    path = work / "ckpt-2.data-00000-of-00001"
    raw = bytearray(path.read_bytes())
    raw[step.offset] ^= 0x01  # 20 -> 21: plausible, but the checksum says no
    _write_bytes(path, bytes(raw))
    plain, verified = _scan_both(work)
    c = plain.checkpoint("ckpt-2")
    assert c.counters == {"save_counter": 2}
    assert c.status == PARTIAL
    assert c.problems == ["ckpt-2.data-00000-of-00001 is damaged (its data fails TensorFlow's "
                          "checksum): 1 of 5 variables cannot be read"]
    assert verified.checkpoint("ckpt-2").problems == c.problems


def test_zeroed_index_and_zeroed_data(work):
    index = work / "ckpt-2.index"
    _write_bytes(index, bytes(index.stat().st_size))
    data = work / "ckpt-1.data-00000-of-00001"
    _write_bytes(data, bytes(data.stat().st_size))
    plain, verified = _scan_both(work)
    two = verified.checkpoint("ckpt-2")
    assert two.status == BROKEN and two.problems == [
        "ckpt-2.index cannot be read: not a TensorFlow checkpoint table (bad magic number)"]
    one = plain.checkpoint("ckpt-1")
    assert one.counters == {}  # zeros are not believed as values
    assert one.status == PARTIAL  # the counters' checksums fail before anything else is read
    one = verified.checkpoint("ckpt-1")
    assert one.status == BROKEN and one.n_readable == 0
    assert ("ckpt-1.data-00000-of-00001 is damaged (its data fails TensorFlow's checksum): "
            "5 of 5 variables cannot be read") in one.problems
    assert verified.latest == "ckpt-2"  # what the state file names, broken or not


def test_empty_files(work):
    (work / "ckpt-2.index").write_bytes(b"")
    (work / "ckpt-1.data-00000-of-00001").write_bytes(b"")
    for name in ("empty.h5", "empty.weights.h5", "empty.keras", "empty.hdf5"):
        (work / name).write_bytes(b"")
    (work / "checkpoint").write_bytes(b"")
    plain, verified = _scan_both(work)
    assert [c.name for c in plain.checkpoints] == ["ckpt-1", "ckpt-2", "empty.h5", "empty.hdf5",
                                                   "empty.keras", "empty.weights.h5"]
    assert plain.checkpoint("ckpt-2").problems == [
        "ckpt-2.index cannot be read: file is too short (0 bytes)"]
    assert plain.checkpoint("ckpt-1").problems == [
        "ckpt-1.data-00000-of-00001 is truncated: 5 of 5 variables cannot be read"]
    for c in verified.checkpoints:
        assert c.status == BROKEN and c.problems and c.n_readable == 0
        if c.name.startswith("empty."):
            assert c.problems[0].startswith(f"{c.name} cannot be read: ")
    assert verified.state_file.present and verified.state_file.latest is None
    assert verified.state_file.problems == ["the state file names no latest checkpoint"]
    assert verified.latest == "ckpt-2"  # nothing usable: highest number


@pytest.mark.parametrize("name, fmt", [("junk.index", "tf-v2"), ("junk.h5", "keras-h5"),
                                       ("junk.hdf5", "keras-h5"), ("junk.keras", "keras"),
                                       ("junk.weights.h5", "keras3-h5")])
def test_random_bytes_with_a_checkpoint_name(tmp_path, name, fmt, capsys):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    (tmp_path / name).write_bytes(rng.bytes(5000))
    (tmp_path / "notes.txt").write_bytes(rng.bytes(100))  # not a checkpoint: ignored
    (tmp_path / "model-3").write_bytes(rng.bytes(100))    # no table magic: not a V1 file
    plain, verified = _scan_both(tmp_path)
    (c,) = verified.checkpoints
    assert c.format == fmt and c.status == BROKEN and c.n_readable == 0
    assert len(c.problems) == 1 and c.problems[0].startswith(f"{name} cannot be read: ")
    assert "Traceback" not in c.problems[0]
    assert verified.latest == c.name and verified.orphans == []
    assert cli.main(["scan", str(tmp_path), "--verify"]) == 1
    out = capsys.readouterr()
    assert f"{c.name}: {name} cannot be read" in out.out and out.err == ""
    assert cli.main(["show", str(tmp_path), c.name, "anything"]) == 2
    assert "has no variable" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "zero the middle"])
def test_damaged_v1_single_file(corpus_copy, damage):
    d = corpus_copy("tdgammon-v1-v2-tf1")
    f = d / "checkpoint-447880"
    data = bytearray(f.read_bytes())
    if damage == "truncate":  # the table's footer kept, its blocks cut
        data = data[:60000] + data[-48:]
    else:
        data[1000:100000] = bytes(99000)
    f.write_bytes(bytes(data))
    plain, verified = _scan_both(d)
    c = verified.checkpoint("checkpoint-447880")
    assert c.format == "tf-v1" and c.status == BROKEN and c.n_readable == 0
    assert c.problems and all(p.startswith("checkpoint-447880 cannot be read: ") or
                              p.endswith(f"{c.n_variables} of {c.n_variables} variables cannot "
                                         "be read") for p in c.problems)
    assert not any("{{function_node" in p or "[Op:" in p for p in c.problems)
    assert verified.checkpoint("checkpoint-462746").status == OK  # its V2 sibling is fine


def test_truncated_h5_and_keras(tmp_path, tf):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save_weights(str(tmp_path / "good.weights.h5"))
    model.save(str(tmp_path / "good.keras"))
    for name in ("good.weights.h5", "good.keras"):
        raw = (tmp_path / name).read_bytes()
        (tmp_path / name.replace("good", "cut")).write_bytes(raw[: len(raw) // 2])
    _, verified = _scan_both(tmp_path)
    statuses = {c.name: c.status for c in verified.checkpoints}
    assert statuses == {"cut.keras": BROKEN, "cut.weights.h5": BROKEN,
                        "good.keras": OK, "good.weights.h5": OK}
    for name in ("cut.keras", "cut.weights.h5"):
        assert verified.checkpoint(name).problems[0].startswith(f"{name} cannot be read: ")


def test_missing_shard_of_a_two_shard_checkpoint(corpus_copy, capsys):
    d = corpus_copy("foodprep-sharded2-keras-tf")
    (d / "cp.ckpt.data-00001-of-00002").unlink()
    plain, verified = _scan_both(d)
    expected = ["cp.ckpt.data-00001-of-00002 is missing: 29 of 30 variables cannot be read"]
    for scan in (plain, verified):
        (c,) = scan.checkpoints
        assert c.status == PARTIAL and c.problems == expected
        assert c.counters == {}  # optimizer/iter lived in the missing shard
        assert [f.name for f in c.files] == ["cp.ckpt.index", "cp.ckpt.data-00000-of-00002"]
    assert verified.checkpoints[0].n_readable == 1
    assert cli.main(["scan", str(d), "--verify"]) == 1
    assert expected[0] in capsys.readouterr().out


def test_orphans_data_without_index_and_stale_shard(corpus_copy):
    d = corpus_copy("foodprep-sharded2-keras-tf")
    (d / "cp.ckpt.data-00000-of-00001").write_bytes(b"\x00" * 64)   # an older one-shard save
    (d / "old.ckpt.data-00000-of-00001").write_bytes(b"\x01" * 64)  # its index was deleted
    (d / "lonely.meta").write_bytes(b"\x02" * 16)                   # a graph without weights
    plain, verified = _scan_both(d)
    assert plain.orphans == ["cp.ckpt.data-00000-of-00001", "lonely.meta",
                             "old.ckpt.data-00000-of-00001"]
    (c,) = verified.checkpoints
    assert c.status == OK and c.n_readable == 30
    assert "cp.ckpt.data-00000-of-00001" not in [f.name for f in c.files]
    assert c.bytes == sum((d / f.name).stat().st_size for f in c.files)


def test_state_file_listing_only_missing_checkpoints(work, tf):
    (work / "checkpoint").write_text('model_checkpoint_path: "ckpt-8"\n'
                                     'all_model_checkpoint_paths: "ckpt-7"\n'
                                     'all_model_checkpoint_paths: "ckpt-8"\n')
    plain, _ = _scan_both(work)
    assert plain.state_file.listed == [] and plain.state_file.latest is None
    assert plain.state_file.problems == [
        "the state file lists ckpt-7, which does not exist",
        "the state file lists ckpt-8, which does not exist",
        "the state file names ckpt-8 as latest, which does not exist",
        "the state file lists nothing that exists"]
    assert plain.latest == "ckpt-2"  # the highest number instead
    assert tf.train.latest_checkpoint(str(work)) is None  # TensorFlow finds nothing


def test_state_file_with_windows_absolute_paths(work, tf):
    (work / "checkpoint").write_text(
        'model_checkpoint_path: "C:\\\\Users\\\\me\\\\ckpt\\\\ckpt-2"\n'
        'all_model_checkpoint_paths: "C:\\\\Users\\\\me\\\\ckpt\\\\ckpt-1"\n'
        'all_model_checkpoint_paths: "C:\\\\Users\\\\me\\\\ckpt\\\\ckpt-2"\n')
    assert tf.train.latest_checkpoint(str(work)) is None  # the quirk is real
    plain, _ = _scan_both(work)
    s = plain.state_file
    assert s.latest_raw == "C:\\Users\\me\\ckpt\\ckpt-2"
    assert s.listed == ["ckpt-1", "ckpt-2"] and s.latest == "ckpt-2" == plain.latest
    assert s.problems == [
        "the state file holds absolute paths from another place (C:\\Users\\me\\ckpt\\ckpt-2); "
        "tf.train.latest_checkpoint will not find them, so entries were matched by base name"]


def test_state_file_that_is_binary_or_garbage(work):
    (work / "checkpoint").write_bytes(b"\x00\x01\x02garbage")
    plain, _ = _scan_both(work)
    assert plain.state_file.problems == [
        "the state file cannot be read: the state file is binary, not a CheckpointState text file"]
    assert plain.latest == "ckpt-2"
    (work / "checkpoint").write_text("this is not a state file\n")
    plain, _ = _scan_both(work)
    assert plain.state_file.problems == [
        "the state file names no latest checkpoint",
        "the state file has 1 line(s) that are not CheckpointState fields, "
        "e.g. 'this is not a state file'"]


# --- no permission (tests run as root, who bypasses chmod: simulate the OS's refusal) --------

def test_chmod_000_as_root_still_reads(work):
    """Root reads a chmod-000 file anyway; the scan must simply work."""
    (work / "ckpt-2.index").chmod(0)
    try:
        scan = scan_directory(str(work), verify=True)
        assert scan.checkpoint("ckpt-2").status == (OK if os.geteuid() == 0 else BROKEN)
    finally:
        (work / "ckpt-2.index").chmod(0o644)


def _deny_open(monkeypatch, path) -> str:
    """Make open() and os.open() of ``path`` fail as for an unreadable file (root ignores
    chmod)."""
    import builtins

    denied = str(path)

    def denying(real):
        def fake_open(file, *args, **kwargs):
            if os.fspath(file) == denied:
                raise PermissionError(13, "Permission denied", denied)
            return real(file, *args, **kwargs)
        return fake_open

    monkeypatch.setattr(builtins, "open", denying(builtins.open))
    monkeypatch.setattr(os, "open", denying(os.open))
    return denied


def test_unreadable_index_file(work, monkeypatch):
    _deny_open(monkeypatch, work / "ckpt-2.index")
    scan = scan_directory(str(work))
    c = scan.checkpoint("ckpt-2")
    assert c.status == BROKEN
    assert c.problems == ["ckpt-2.index cannot be read (permission denied)"]
    assert scan.checkpoint("ckpt-1").status == OK


def test_unreadable_state_file(work, monkeypatch):
    _deny_open(monkeypatch, work / "checkpoint")
    scan = scan_directory(str(work))
    assert scan.state_file.present and scan.state_file.latest is None
    assert scan.state_file.problems == [
        "the state file cannot be read: checkpoint cannot be read (permission denied)"]
    assert scan.latest == "ckpt-2" and len(scan.checkpoints) == 2


def test_directory_without_permission(work, monkeypatch, capsys):
    from ckpt_gui.core import scan as scan_module

    monkeypatch.setattr(scan_module.os, "access", lambda path, mode: False)
    with pytest.raises(ScanError, match="permission denied"):
        scan_directory(str(work))
    assert cli.main(["scan", str(work)]) == 2
    err = capsys.readouterr().err
    assert err == f"ckpt-inspect: {work}: permission denied\n"


def test_directory_that_cannot_be_listed(work, monkeypatch, capsys):
    from ckpt_gui.core import discover

    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(discover.os, "scandir", refuse)
    assert cli.main(["scan", str(work), "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"ckpt-inspect: {work}: cannot be listed: Permission denied\n"


# --- the CLI -------------------------------------------------------------------------------

def test_cli_exit_codes_in_process(work, tmp_path, capsys):
    assert cli.main(["scan", str(work)]) == 0
    assert "ckpt-2" in capsys.readouterr().out
    assert cli.main(["scan", str(work), "--verify"]) == 0
    capsys.readouterr()
    # damage: --verify exits 1, a plain scan still 0
    w = _entry(work, "w/.ATTRIBUTES/VARIABLE_VALUE")
    path = work / "ckpt-1.data-00000-of-00001"
    raw = bytearray(path.read_bytes())
    raw[w.offset + 7] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cli.main(["scan", str(work)]) == 0
    capsys.readouterr()
    assert cli.main(["scan", str(work), "--verify", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in data["checkpoints"]] == [PARTIAL, OK]
    assert [c["n_readable"] for c in data["checkpoints"]] == [4, 5]
    # show: a readable variable 0, the damaged one 1 with one line, unknown names 2
    assert cli.main(["show", str(work), "ckpt-2", "w"]) == 0
    assert "min" in capsys.readouterr().out
    assert cli.main(["show", str(work), "ckpt-1", "w"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum" in err and "Traceback" not in err
    assert cli.main(["show", str(work), "ckpt-9", "w"]) == 2
    assert "no checkpoint 'ckpt-9'" in capsys.readouterr().err
    assert cli.main(["show", str(work), "latest", "nope"]) == 2
    assert "ckpt-2 has no variable 'nope'" in capsys.readouterr().err
    # bad usage: argparse exits 2
    for argv in ([], ["scan"], ["frobnicate", str(work)], ["scan", str(work), "--bogus"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
    capsys.readouterr()


def test_cli_missing_directory_file_and_empty_directory(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert cli.main(["scan", str(missing)]) == 2
    assert capsys.readouterr().err == f"ckpt-inspect: {missing}: no such directory\n"
    f = tmp_path / "ckpt-1.index"
    f.write_bytes(b"x")
    assert cli.main(["scan", str(f), "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith(f"ckpt-inspect: {f}: is a file, not a directory")
    assert cli.main(["show", str(missing), "latest", "w"]) == 2
    assert "no such directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["scan", str(empty), "--json", "--verify"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"directory": str(empty), "latest": None,
                    "state_file": {"present": False, "latest": None, "listed": [], "problems": []},
                    "checkpoints": [], "runs": [], "orphans": [], "subdirectories": [],
                    "problems": []}
    assert cli.main(["scan", str(empty)]) == 0
    assert "(no checkpoints in this directory)" in capsys.readouterr().out
    assert cli.main(["show", str(empty), "latest", "w"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_subfolders_with_checkpoints_are_reported(work, pristine):
    shutil.copytree(pristine, work / "run2")
    (work / "logs").mkdir()
    (work / "logs" / "events.txt").write_text("x")
    scan = scan_directory(str(work))
    assert scan.subdirectories == ["run2"]
    assert [c.name for c in scan.checkpoints] == ["ckpt-1", "ckpt-2"]


def test_console_script_on_a_damaged_folder_writes_nothing(work, tmp_path):
    """One real run of the installed ``ckpt-inspect``: clean output, exit 1, nothing written
    (not in the folder, its parent, the working directory or HOME)."""
    (work / "ckpt-2.data-00000-of-00001").unlink()
    (work / "junk.h5").write_bytes(os.urandom(300))
    (work / "stale.ckpt.data-00000-of-00001").write_bytes(b"\0" * 10)
    home, cwd, tmp = tmp_path / "home", tmp_path / "cwd", tmp_path / "tmp"
    for d in (home, cwd, tmp):
        d.mkdir()
    script = Path(sys.executable).with_name("ckpt-inspect")
    assert script.exists()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "CKPT_GUI", "KERAS"))}
    env.update(HOME=str(home), TMPDIR=str(tmp))

    def snapshot():  # Python's tempfile probes TMPDIR (a file made and removed): only its mtime
        snap = _snapshot(tmp_path)
        snap[str(tmp)] = snap[str(tmp)][0]
        return snap

    before = snapshot()
    run = subprocess.run([str(script), "scan", str(work), "--verify", "--json"], cwd=cwd,
                         env=env, capture_output=True, text=True, timeout=300)
    assert snapshot() == before  # in particular, no ~/.keras/keras.json
    assert run.returncode == 1, run.stderr
    assert run.stderr == ""
    data = json.loads(run.stdout)
    by = {c["name"]: c for c in data["checkpoints"]}
    assert by["ckpt-2"]["status"] == BROKEN and by["ckpt-2"]["n_readable"] == 0
    assert by["ckpt-2"]["problems"] == [
        "ckpt-2.data-00000-of-00001 is missing: 5 of 5 variables cannot be read"]
    assert by["ckpt-1"]["status"] == OK and by["junk.h5"]["status"] == BROKEN
    assert data["orphans"] == ["stale.ckpt.data-00000-of-00001"]
    assert data["latest"] == "ckpt-2"
    missing = subprocess.run([str(script), "scan", str(work / "nope")], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"ckpt-inspect: {work / 'nope'}: no such directory\n"
