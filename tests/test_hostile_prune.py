"""Pruning folders from the internet (issue 10): big folders, unreadable or damaged checkpoints,
hostile file names, the state file's mode and owner, and a CLI that never shows a traceback.

Folders are written by TensorFlow itself (tf.train.Checkpoint, CheckpointManager); a big folder
copies one real checkpoint's bytes under 20,000 names. The trash points into tmp_path.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from _prune_support import listing, snapshot, tmp_trash  # noqa: F401
from ckpt_gui import cli
from ckpt_gui.core import prune, scan_directory, statefile
from ckpt_gui.core.prune import Policy, execute_prune, plan_prune, undo_prune
from ckpt_gui.textfmt import safe_name

pytestmark = pytest.mark.usefixtures("tmp_trash")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = ".data-00000-of-00001"


def v2(*names) -> list[str]:
    return sorted(f for n in names for f in (n + ".index", n + DATA))


def managed_run(tf, directory, n: int, name: str = "ckpt") -> None:
    """n checkpoints saved by a CheckpointManager (state file with timestamps), as training
    writes them: ckpt-1 ... ckpt-n."""
    ckpt = tf.train.Checkpoint(kernel=tf.Variable(tf.ones([64, 64])), bias=tf.Variable(tf.ones([64])),
                               step=tf.Variable(0, dtype=tf.int64))
    mgr = tf.train.CheckpointManager(ckpt, str(directory), max_to_keep=None, checkpoint_name=name)
    for _ in range(n):
        ckpt.step.assign_add(1)
        mgr.save()


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# --- size: planning is linear, and exact at 20,000 checkpoints --------------------------------

def test_keep_last_is_exact_among_20000_checkpoints(tmp_path, tf, capsys):
    d = tmp_path / "big"
    d.mkdir()
    seed = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])).write(str(tmp_path / "seed"))
    n = 20_000
    for i in range(1, n + 1):       # hard links: one real checkpoint's bytes, 40,000 names
        os.link(seed + ".index", d / f"ckpt-{i}.index")
        os.link(seed + DATA, d / f"ckpt-{i}{DATA}")
    names = [f"ckpt-{i}" for i in range(1, n + 1)]
    statefile.write_state_file(str(d), statefile.format_state(names[-1], names))

    plan = plan_prune(scan_directory(str(d)), policy=Policy(keep_last=3))
    assert plan.kept == ["ckpt-19998", "ckpt-19999", "ckpt-20000"]
    assert plan.deleted == names[:-3]                      # oldest first, natural order
    assert [f.name for f in plan.files[:4]] == ["ckpt-1.index", "ckpt-1" + DATA,
                                                "ckpt-2.index", "ckpt-2" + DATA]
    assert len(plan.files) == 2 * (n - 3) and not plan.skipped
    expected_state = ('model_checkpoint_path: "ckpt-20000"\n'
                      'all_model_checkpoint_paths: "ckpt-19998"\n'
                      'all_model_checkpoint_paths: "ckpt-19999"\n'
                      'all_model_checkpoint_paths: "ckpt-20000"\n')
    assert plan.state_after == expected_state

    code, out, err = run_cli(capsys, "prune", d, "--keep-last", "3", "--permanent", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["deleted"] == names[:-3] and len(result["files"]) == 2 * (n - 3)
    assert result["kept"] == names[-3:] and result["latest"] == "ckpt-20000"
    assert listing(d) == ["checkpoint"] + v2(*names[-3:])
    assert (d / "checkpoint").read_text() == expected_state
    state = tf.train.get_checkpoint_state(str(d))
    assert state.model_checkpoint_path == str(d / "ckpt-20000")
    assert list(state.all_model_checkpoint_paths) == [str(d / m) for m in names[-3:]]


# --- damaged and unreadable checkpoints: a policy never counts nor deletes them ----------------

def test_a_policy_leaves_partial_and_broken_checkpoints_alone(tmp_path, tf, capsys):
    d = tmp_path / "run"
    managed_run(tf, d, 5)
    data5 = d / f"ckpt-5{DATA}"
    os.truncate(data5, data5.stat().st_size - 4)            # the last tensor cut short
    os.remove(d / f"ckpt-4{DATA}")                          # a shard never written
    scan = scan_directory(str(d))
    assert [c.status for c in scan.checkpoints] == ["ok", "ok", "ok", "broken", "partial"]
    damaged = {n: snapshot(d)[n] for n in ("ckpt-4.index", "ckpt-5.index", f"ckpt-5{DATA}")}

    code, out, err = run_cli(capsys, "prune", d, "--keep-last", "1", "--permanent", "--json")
    assert code == 1                                        # something was left: look at it
    result = json.loads(out)
    # The newest *intact* checkpoint is the one kept; the damaged ones neither count as kept
    # nor go: a policy cannot tell a damaged file from one it merely cannot read.
    assert result["deleted"] == ["ckpt-1", "ckpt-2"] and result["kept"] == ["ckpt-3"]
    assert list(result["skipped"]) == ["ckpt-4", "ckpt-5"]
    assert result["skipped"]["ckpt-5"].startswith(
        "left alone: it is partial: ckpt-5.data-00000-of-00001 is truncated")
    assert result["skipped"]["ckpt-4"].startswith("left alone: it is broken: ")
    assert err.splitlines() == [f"ckpt-inspect: {n}: {why}"
                                for n, why in result["skipped"].items()]
    assert listing(d) == sorted(["checkpoint", "ckpt-4.index", "ckpt-5.index", f"ckpt-5{DATA}"]
                                + v2("ckpt-3"))
    assert {n: snapshot(d)[n] for n in damaged} == damaged
    raw = statefile.read_state_file(str(d))
    assert raw.all_model_checkpoint_paths == ["ckpt-3", "ckpt-4", "ckpt-5"]
    assert raw.model_checkpoint_path == "ckpt-5"             # not ours to change

    # Named explicitly, a damaged checkpoint goes; the latest moves to the intact ckpt-3, not
    # to the broken ckpt-4 listed after it.
    code, out, err = run_cli(capsys, "prune", d, "--delete", "ckpt-5", "--permanent", "--json")
    assert code == 0, err
    assert json.loads(out)["deleted"] == ["ckpt-5"] and json.loads(out)["latest"] == "ckpt-3"
    assert tf.train.latest_checkpoint(str(d)) == str(d / "ckpt-3")
    assert statefile.read_state_file(str(d)).all_model_checkpoint_paths == ["ckpt-4", "ckpt-3"]


def _without_file_permission_override() -> list[str]:
    """A command prefix under which permission bits apply to us. We run as root (so does CI),
    and root reads every file; a root process without capabilities (CAP_DAC_OVERRIDE above all)
    is refused like any user. (setpriv --reuid=nobody would not do: the interpreter of the venv
    may live under /root, which nobody cannot enter.)"""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--"]


def test_a_data_file_we_may_not_read_is_never_pruned_by_a_policy(tmp_path, tf):
    d = tmp_path / "run"
    managed_run(tf, d, 3)
    secret = d / f"ckpt-3{DATA}"
    secret.chmod(0)
    env = dict(os.environ, PYTHONPATH=REPO)
    probe = subprocess.run(_without_file_permission_override() + [
        sys.executable, "-c", f"open({str(secret)!r}, 'rb')"], env=env, capture_output=True,
        text=True)
    assert "PermissionError" in probe.stderr                 # the condition really holds
    before = snapshot(d)

    run = subprocess.run(_without_file_permission_override() + [
        sys.executable, "-m", "ckpt_gui.cli", "prune", str(d), "--keep-last", "1",
        "--permanent", "--json"], env=env, capture_output=True, text=True, timeout=300)
    result = json.loads(run.stdout)
    # The issue: ckpt-3 was called "missing", the two intact checkpoints were deleted and the
    # oldest kept. Now the unreadable one is left alone and the newest readable one is kept.
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert result["deleted"] == ["ckpt-1"] and result["kept"] == ["ckpt-2"]
    assert list(result["skipped"]) == ["ckpt-3"]
    assert run.stderr.startswith("ckpt-inspect: ckpt-3: left alone: ")
    secret.chmod(0o644)
    assert listing(d) == ["checkpoint"] + v2("ckpt-2", "ckpt-3")
    assert {n: v for n, v in snapshot(d).items() if n != "checkpoint"} == {
        n: before[n] for n in v2("ckpt-2", "ckpt-3")}
    assert tf.train.latest_checkpoint(str(d)) == str(d / "ckpt-3")


# --- the state file keeps its mode and owner ---------------------------------------------------

@pytest.mark.parametrize("mode,owner", [(0o644, (0, 0)), (0o640, (65534, 65534)),
                                        (0o664, (65534, 0))])
def test_the_state_file_keeps_its_mode_and_owner(tmp_path, tf, mode, owner):
    d = tmp_path / "run"
    managed_run(tf, d, 3)
    state = d / "checkpoint"
    os.chown(state, *owner)
    state.chmod(mode)
    plan = plan_prune(scan_directory(str(d)), delete=["ckpt-1"])
    assert plan.state_action == prune.STATE_REWRITE
    assert execute_prune(plan).ok
    st = state.stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, *owner)
    assert statefile.read_state_file(str(d)).all_model_checkpoint_paths == ["ckpt-2", "ckpt-3"]


# --- hostile names -------------------------------------------------------------------------------

def test_a_newline_in_a_name_prunes_exactly_that_checkpoint(tmp_path, tf, capsys):
    d = tmp_path / "run"
    managed_run(tf, d, 3, name="ckpt\n")                   # TensorFlow writes ckpt\n-1 ...
    decoy = tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(d / "ckpt-1"))  # unlisted
    assert os.path.basename(decoy) == "ckpt-1"
    names = ["ckpt\n-1", "ckpt\n-2", "ckpt\n-3"]
    assert listing(d) == sorted(["checkpoint"] + v2(*names, "ckpt-1"))
    before = snapshot(d)

    code, out, err = run_cli(capsys, "prune", d, "--delete", "ckpt\n-1", "--permanent")
    assert code == 0, err
    assert "  - ckpt\\n-1 (selected): ckpt\\n-1.index, ckpt\\n-1.data-00000-of-00001" in out
    assert "ckpt\n" not in out + err                         # never a raw newline in a name
    assert listing(d) == sorted(["checkpoint"] + v2("ckpt\n-2", "ckpt\n-3", "ckpt-1"))
    assert {n: snapshot(d)[n] for n in v2("ckpt-1", "ckpt\n-2", "ckpt\n-3")} == \
        {n: before[n] for n in v2("ckpt-1", "ckpt\n-2", "ckpt\n-3")}
    text = (d / "checkpoint").read_text()
    assert text.splitlines()[:3] == ['model_checkpoint_path: "ckpt\\n-3"',
                                     'all_model_checkpoint_paths: "ckpt\\n-2"',
                                     'all_model_checkpoint_paths: "ckpt\\n-3"']
    state = tf.train.get_checkpoint_state(str(d))
    assert list(state.all_model_checkpoint_paths) == [str(d / "ckpt\n-2"), str(d / "ckpt\n-3")]
    assert tf.train.latest_checkpoint(str(d)) == str(d / "ckpt\n-3")

    # The name as the output shows it (a backslash and an n) names the same checkpoint.
    code, out, err = run_cli(capsys, "prune", d, "--delete", "ckpt\\n-2", "--permanent", "--json")
    assert code == 0, err
    assert json.loads(out)["deleted"] == ["ckpt\n-2"]
    assert listing(d) == sorted(["checkpoint"] + v2("ckpt\n-3", "ckpt-1"))


EVIL = "evil\x1b]0;pwned\x07\x1b[2J\u202e-1"
EVIL_2 = EVIL[:-1] + "2"      # the same run (pattern) as EVIL


def test_escape_sequences_in_names_never_reach_the_terminal(tmp_path, tf, capsys):
    d = tmp_path / "run"
    d.mkdir()
    for name in (EVIL, EVIL_2):
        tf.train.Checkpoint(v=tf.Variable([3.0])).write(str(d / name))
    shown = "evil\\x1b]0;pwned\\x07\\x1b[2J\\u202e-1"
    assert safe_name(EVIL) == shown
    outputs = [run_cli(capsys, "scan", d),
               run_cli(capsys, "show", d, EVIL, "v/.ATTRIBUTES/VARIABLE_VALUE"),
               run_cli(capsys, "prune", d, "--keep-last", "1", "--dry-run"),
               run_cli(capsys, "show", d, EVIL, "no-such\x1b[31mvariable")]
    assert [code for code, _, _ in outputs] == [0, 0, 0, 2]
    for _, out, err in outputs:
        assert not any(ch in out + err for ch in "\x1b\x07\u202e")
    assert shown in outputs[0][1] and outputs[1][1].startswith(shown + ": v\n")  # its display name
    assert f"  - {shown} (older than the last 1 of run {shown[:-1]}{{N}})" in outputs[2][1]
    code, out, _ = run_cli(capsys, "scan", d, "--json")       # JSON: valid, and exact
    assert [c["name"] for c in json.loads(out)["checkpoints"]] == [EVIL, EVIL_2]


def test_the_prune_dialog_shows_names_escaped(qtbot, tmp_path, tf):
    from ckpt_gui.ui.prune_dialog import PruneDialog

    d = tmp_path / "run"
    d.mkdir()
    for name in (EVIL, "ok-2"):
        tf.train.Checkpoint(v=tf.Variable([3.0])).write(str(d / name))
    dlg = PruneDialog(scan_directory(str(d)), [EVIL])
    qtbot.addWidget(dlg)
    item = dlg.plan_tree.topLevelItem(0)
    assert item.text(0) == safe_name(EVIL) and item.data(0, 0x100) == EVIL
    assert [item.child(i).text(0) for i in range(item.childCount())] == [
        safe_name(EVIL) + ".index", safe_name(EVIL) + DATA]
    assert dlg.files_text.toPlainText().splitlines()[0] == safe_name(EVIL) + ".index"
    assert dlg.pin_list.item(0).text() == safe_name(EVIL)


def test_trashing_the_same_name_twice_undoes_the_right_copy(tmp_path, tf, tmp_trash):
    d = tmp_path / "run"
    managed_run(tf, d, 2)
    first = snapshot(d)
    r1 = execute_prune(plan_prune(scan_directory(str(d)), delete=["ckpt-1"]))
    shutil.copy(d / "ckpt-2.index", d / "ckpt-1.index")     # a new ckpt-1, other bytes
    shutil.copy(d / f"ckpt-2{DATA}", d / f"ckpt-1{DATA}")
    second = snapshot(d)
    r2 = execute_prune(plan_prune(scan_directory(str(d)), delete=["ckpt-1"]))
    assert r1.can_undo and r2.can_undo
    assert sorted(os.listdir(tmp_trash / "files")) == sorted(
        ["ckpt-1.index", "ckpt-1 1.index", "ckpt-1" + DATA, "ckpt-1 1" + DATA])
    assert undo_prune(r2).restored == ["ckpt-1"]
    assert snapshot(d)["ckpt-1.index"] == second["ckpt-1.index"] != first["ckpt-1.index"]
    assert sorted(os.listdir(tmp_trash / "files")) == sorted(["ckpt-1.index", "ckpt-1" + DATA])


# --- the CLI never shows a traceback -------------------------------------------------------------

def test_an_unexpected_error_is_one_line(tmp_path, tf, capsys, monkeypatch):
    d = tmp_path / "run"
    managed_run(tf, d, 2)

    def explode(*a, **k):
        raise RuntimeError("engine exploded\n  with a second line")

    monkeypatch.setattr(prune, "plan_prune", explode)
    code, out, err = run_cli(capsys, "prune", d, "--keep-last", "1")
    assert (code, out) == (1, "")
    assert err == ("ckpt-inspect: prune failed: RuntimeError: engine exploded "
                   "(--debug shows where)\n")
    with pytest.raises(RuntimeError, match="engine exploded"):
        cli.main(["--debug", "prune", str(d), "--keep-last", "1"])
    monkeypatch.setattr(prune, "plan_prune", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    code, _, err = run_cli(capsys, "prune", d, "--keep-last", "1")
    assert (code, err) == (1, "ckpt-inspect: prune failed: ran out of memory "
                              "(--debug shows where)\n")
    assert listing(d) == ["checkpoint"] + v2("ckpt-1", "ckpt-2")


def test_a_huge_state_file_is_refused_not_cut(tmp_path, tf):
    d = tmp_path / "run"
    managed_run(tf, d, 2)
    os.truncate(d / "checkpoint", statefile.MAX_STATE_BYTES + 1)   # sparse: no disk used
    scan = scan_directory(str(d))
    assert scan.state_file.problems == [
        "the state file cannot be read: the state file is larger than 64 MB, "
        "not a CheckpointState text file"]
    plan = plan_prune(scan, delete=["ckpt-1"])
    assert plan.state_action == prune.STATE_KEEP and plan.state_after is None
    assert plan.warnings == ["the state file cannot be read (the state file is larger than 64 MB, "
                             "not a CheckpointState text file); it is left as it is"]
    assert execute_prune(plan).ok
    assert (d / "checkpoint").stat().st_size == statefile.MAX_STATE_BYTES + 1
