"""Pruning (issue 6): plans, safe deletion, the state file kept true, crash safety, undo, CLI.

Every test works on copies of ../shared/corpus in tmp_path, with the trash pointed at tmp_path.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import pytest

from _prune_support import assert_tf_agrees, listing, snapshot, tmp_trash  # noqa: F401
from ckpt_gui.core import prune, scan_directory, statefile, trash
from ckpt_gui.core.model import FileInfo
from ckpt_gui.core.prune import (CHECKPOINTS, STATE_KEEP, STATE_REMOVE, STATE_REWRITE, PlanError,
                                 Policy, execute_prune, plan_orphans, plan_prune, undo_prune)

pytestmark = pytest.mark.usefixtures("tmp_trash")

TICTACTOE = "tictactoe-tf2mgr-keras3opt"
SUPERCON = "supercon-gan-tf2"
CHARITY = "charity-hd5f-keras-tf"
REGR = "regr-contrib-abs-home-tf1"
DAVIESX = "daviesx-partial-data-tf1"

TICTACTOE_TS = {"ckpt-17": 1673735799.685766, "ckpt-18": 1673735913.342593,
                "ckpt-19": 1673736140.596798}
TICTACTOE_PRESERVED = 1673735591.495455


def state_text(directory) -> str | None:
    p = os.path.join(directory, "checkpoint")
    return open(p).read() if os.path.exists(p) else None


def prune_dir(directory, **kw):
    permanent = kw.pop("permanent", False)
    plan = plan_prune(scan_directory(str(directory)), **kw)
    return plan, execute_prune(plan, permanent=permanent)


def v2_files(*names):
    return sorted(f for n in names for f in (f"{n}.index", f"{n}.data-00000-of-00001"))


# --- keep-last on the corpus's naming schemes --------------------------------------------------

def test_keep_last_ckpt_n_tictactoe(corpus_copy, tf, tmp_trash):
    d = corpus_copy(TICTACTOE)
    plan, result = prune_dir(d, policy=Policy(keep_last=1))
    assert plan.deleted == ["ckpt-17", "ckpt-18"]
    assert [f.name for f in plan.files] == [
        "ckpt-17.index", "ckpt-17.data-00000-of-00001",
        "ckpt-18.index", "ckpt-18.data-00000-of-00001"]
    assert plan.bytes == 2 * (1164 + 4507)
    assert plan.kept == ["ckpt-19"]
    assert result.ok and result.deleted == ["ckpt-17", "ckpt-18"]
    assert result.bytes == plan.bytes
    assert listing(d) == ["checkpoint"] + v2_files("ckpt-19")
    assert state_text(d) == (
        'model_checkpoint_path: "ckpt-19"\n'
        'all_model_checkpoint_paths: "ckpt-19"\n'
        f"all_model_checkpoint_timestamps: {TICTACTOE_TS['ckpt-19']!r}\n"
        f"last_preserved_timestamp: {TICTACTOE_PRESERVED!r}\n")
    assert state_text(d) == plan.state_after
    _, view = assert_tf_agrees(tf, d)
    assert view["manager_checkpoints"] == [os.path.join(str(d), "ckpt-19")]
    # They are in the (temporary) trash, each with a .trashinfo naming where it came from.
    assert sorted(os.listdir(tmp_trash / "files")) == v2_files("ckpt-17", "ckpt-18")
    info = (tmp_trash / "info" / "ckpt-17.index.trashinfo").read_text()
    assert f"Path={d}/ckpt-17.index" in info


def test_keep_last_supercon_keeps_the_last_of_each_run(corpus_copy, tf):
    d = corpus_copy(SUPERCON)
    before = state_text(d)
    plan, result = prune_dir(d, policy=Policy(keep_last=1))
    # Two runs: ckpt-3..5 (older) and the restart ckpt-1, ckpt-2 that the state file lists.
    # Each keeps its last; ckpt-2 is also what the state file names.
    assert plan.deleted == ["ckpt-1", "ckpt-3", "ckpt-4"]
    assert plan.kept == ["ckpt-2", "ckpt-5"]
    assert plan.reasons["ckpt-2"] == "the latest checkpoint"
    assert plan.reasons["ckpt-5"] == "one of the last 1 of run ckpt-{N}"
    assert plan.reasons["ckpt-1"] == "older than the last 1 of run ckpt-{N}#2"
    assert plan.state_action == STATE_KEEP and result.ok
    assert state_text(d) == before
    assert listing(d) == ["checkpoint"] + v2_files("ckpt-2", "ckpt-5")
    scan, _ = assert_tf_agrees(tf, d)
    assert scan.latest == "ckpt-2"
    assert [(r.id, r.checkpoints) for r in scan.runs] == [("ckpt-{N}", ["ckpt-5"]),
                                                          ("ckpt-{N}#2", ["ckpt-2"])]


def test_keep_last_uses_natural_order_charity(corpus_copy, tf):
    d = corpus_copy(CHARITY)
    plan, result = prune_dir(d, policy=Policy(keep_last=3))
    # Lexically weights.100 sorts before weights.15; naturally it is the newest.
    assert plan.kept == ["weights.90.hd5f", "weights.95.hd5f", "weights.100.hd5f"]
    assert plan.deleted == [f"weights.{n:02d}.hd5f" for n in range(5, 90, 5)]
    assert result.ok and len(result.files) == 34
    assert listing(d) == sorted(["checkpoint"] + v2_files(
        "weights.90.hd5f", "weights.95.hd5f", "weights.100.hd5f"))
    assert state_text(d) == ('model_checkpoint_path: "weights.100.hd5f"\n'
                             'all_model_checkpoint_paths: "weights.100.hd5f"\n')
    assert_tf_agrees(tf, d)


def test_keep_last_model_ckpt_n_with_foreign_absolute_paths(corpus_copy, tf):
    d = corpus_copy(REGR)
    assert tf.train.latest_checkpoint(str(d)) is None    # the absolute paths are another machine's
    plan, result = prune_dir(d, policy=Policy(keep_last=1))
    assert plan.deleted == ["model.ckpt-0"]
    assert sorted(plan.kept) == ["model.ckpt", "model.ckpt-5000"]
    assert result.ok
    # model.ckpt's files share the prefix "model.ckpt" and are untouched.
    assert listing(d) == sorted(["checkpoint"] + [
        f"{n}.{s}" for n in ("model.ckpt", "model.ckpt-5000")
        for s in ("index", "data-00000-of-00001", "meta")])
    assert state_text(d) == ('model_checkpoint_path: "model.ckpt"\n'
                             'all_model_checkpoint_paths: "model.ckpt-5000"\n'
                             'all_model_checkpoint_paths: "model.ckpt"\n')
    _, view = assert_tf_agrees(tf, d)
    assert view["latest"] == os.path.join(str(d), "model.ckpt")   # TF finds it again


# --- deleting the latest, everything, a broken checkpoint -------------------------------------

def test_delete_latest_moves_latest_to_newest_remaining(corpus_copy, tf):
    d = corpus_copy(TICTACTOE)
    plan, result = prune_dir(d, delete=["ckpt-19"])
    assert plan.latest_after == "ckpt-18" and result.latest == "ckpt-18"
    assert state_text(d) == (
        'model_checkpoint_path: "ckpt-18"\n'
        'all_model_checkpoint_paths: "ckpt-17"\n'
        'all_model_checkpoint_paths: "ckpt-18"\n'
        f"all_model_checkpoint_timestamps: {TICTACTOE_TS['ckpt-17']!r}\n"
        f"all_model_checkpoint_timestamps: {TICTACTOE_TS['ckpt-18']!r}\n"
        f"last_preserved_timestamp: {TICTACTOE_PRESERVED!r}\n")
    _, view = assert_tf_agrees(tf, d)
    assert view["manager_checkpoints"] == [os.path.join(str(d), n) for n in ("ckpt-17", "ckpt-18")]


def test_delete_latest_with_foreign_paths_regr(corpus_copy, tf):
    d = corpus_copy(REGR)
    _, result = prune_dir(d, delete=["model.ckpt"], permanent=True)
    assert result.ok and not result.can_undo
    assert state_text(d) == ('model_checkpoint_path: "model.ckpt-5000"\n'
                             'all_model_checkpoint_paths: "model.ckpt-0"\n'
                             'all_model_checkpoint_paths: "model.ckpt-5000"\n')
    assert not [f for f in listing(d) if f.startswith("model.ckpt.")]
    assert len([f for f in listing(d) if f.startswith("model.ckpt-")]) == 6
    assert_tf_agrees(tf, d)


def test_latest_stays_in_the_state_files_run_when_it_listed_only_it(corpus_copy, tf):
    d = corpus_copy(SUPERCON)
    _, result = prune_dir(d, delete=["ckpt-2"])
    # ckpt-5 is numbered higher, but of the older run; the state file describes the restart
    assert result.latest == "ckpt-1"
    assert state_text(d) == 'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n'
    assert_tf_agrees(tf, d)
    _, result = prune_dir(d, delete=["ckpt-1"])     # that run gone: the newest of the rest
    assert result.latest == "ckpt-5"
    assert state_text(d) == 'model_checkpoint_path: "ckpt-5"\nall_model_checkpoint_paths: "ckpt-5"\n'
    assert_tf_agrees(tf, d)


def test_delete_all_removes_the_state_file(corpus_copy, tf):
    d = corpus_copy(TICTACTOE)
    plan, result = prune_dir(d, policy=Policy(keep_last=0, include_latest=True))
    assert plan.deleted == ["ckpt-17", "ckpt-18", "ckpt-19"]
    assert plan.state_action == STATE_REMOVE and plan.state_after is None
    assert plan.latest_after is None
    assert result.ok and result.state_action == STATE_REMOVE
    assert listing(d) == []
    assert tf.train.get_checkpoint_state(str(d)) is None
    assert tf.train.latest_checkpoint(str(d)) is None
    assert tf.train.CheckpointManager(tf.train.Checkpoint(), str(d), 3).latest_checkpoint is None
    assert scan_directory(str(d)).checkpoints == []


def test_delete_broken_checkpoint_daviesx(corpus_copy, tf):
    d = corpus_copy(DAVIESX)
    scan = scan_directory(str(d))
    assert scan.checkpoint("cnn.ckpt").status == "broken" and scan.latest == "cnn.ckpt"
    plan, result = prune_dir(d, delete=["cnn.ckpt"])
    assert [f.name for f in plan.files] == ["cnn.ckpt.index", "cnn.ckpt.meta"]
    assert result.ok and result.latest == "fc2.ckpt"
    assert listing(d) == ["checkpoint", "fc2.ckpt.data-00000-of-00001", "fc2.ckpt.index",
                          "fc2.ckpt.meta"]
    assert state_text(d) == ('model_checkpoint_path: "fc2.ckpt"\n'
                             'all_model_checkpoint_paths: "fc2.ckpt"\n')
    scan, _ = assert_tf_agrees(tf, d)
    assert [c.status for c in scan.checkpoints] == ["ok"]


def test_keep_last_counts_only_usable_checkpoints(corpus_copy):
    d = corpus_copy(DAVIESX)
    plan = plan_prune(scan_directory(str(d)), policy=Policy(keep_last=1, include_latest=True))
    # cnn.ckpt is broken: it does not count as one of the last N, and a policy never deletes
    # it either (latest or not): it is left alone, to be deleted only by name (see above).
    assert plan.deleted == [] and plan.kept == ["fc2.ckpt"]
    assert list(plan.skipped) == ["cnn.ckpt"]
    assert plan.skipped["cnn.ckpt"].startswith("left alone: it is broken: ")
    assert plan.reasons["cnn.ckpt"] == plan.skipped["cnn.ckpt"]


def test_v1_and_v2_side_by_side_tdgammon(corpus_copy, tf):
    d = corpus_copy("tdgammon-v1-v2-tf1")
    plan, result = prune_dir(d, delete=["checkpoint-462746"])
    assert [f.name for f in plan.files] == ["checkpoint-462746.index",
                                            "checkpoint-462746.data-00000-of-00001",
                                            "checkpoint-462746.meta"]
    assert result.ok
    # The V1 single-file checkpoint becomes the latest; the state file "checkpoint" (which a
    # glob like checkpoint* would also match) is rewritten, never deleted as a checkpoint file.
    assert listing(d) == ["checkpoint", "checkpoint-447880", "checkpoint-447880.meta"]
    assert state_text(d) == ('model_checkpoint_path: "checkpoint-447880"\n'
                             'all_model_checkpoint_paths: "checkpoint-447880"\n')
    assert_tf_agrees(tf, d)
    _, result = prune_dir(d, delete=["checkpoint-447880"])
    assert result.ok and result.state_action == STATE_REMOVE and listing(d) == []


def test_keras_weights_file_without_state_file(corpus_copy):
    d = corpus_copy("churn-keras3-weights-h5")
    plan, result = prune_dir(d, delete=["model.weights.h5"])
    assert plan.state_action == "none" and [f.name for f in plan.files] == ["model.weights.h5"]
    assert result.ok and result.bytes == 57728 and listing(d) == []


# --- policies ---------------------------------------------------------------------------------

def test_keep_every_pinned_and_latest(corpus_copy):
    d = corpus_copy(CHARITY)
    scan = scan_directory(str(d))
    plan = plan_prune(scan, policy=Policy(keep_every=20, pinned=["weights.05.hd5f"]))
    assert plan.kept == ["weights.05.hd5f", "weights.20.hd5f", "weights.40.hd5f",
                         "weights.60.hd5f", "weights.80.hd5f", "weights.100.hd5f"]
    assert plan.reasons["weights.05.hd5f"] == "pinned"
    both = plan_prune(scan, policy=Policy(keep_last=2, keep_every=50))
    assert both.kept == ["weights.50.hd5f", "weights.95.hd5f", "weights.100.hd5f"]
    assert plan_prune(scan, policy=Policy()).deleted == []   # no rule: nothing goes
    # The latest is kept unless explicitly included.
    assert "weights.100.hd5f" in plan_prune(scan, policy=Policy(keep_last=0)).kept
    assert plan_prune(scan, policy=Policy(keep_last=0, include_latest=True)).kept == []
    sel = plan_prune(scan, delete=["weights.100.hd5f", "weights.05.hd5f"],
                     policy=Policy(pinned=["weights.05.hd5f"]))
    assert sel.deleted == ["weights.100.hd5f"] and sel.latest_after == "weights.95.hd5f"


def test_keep_last_by_counter_order_within_each_run(corpus_copy):
    d = corpus_copy(SUPERCON)
    scan = scan_directory(str(d))
    # By optimizer iterations ckpt-3..5 (45, 65, 80) rank below ckpt-1 and ckpt-2 (315, 630),
    # but they are another run (the older one the restart overwrote the start of): the policy
    # keeps the most trained two of each run.
    plan = plan_prune(scan, policy=Policy(keep_last=2, order="counter"))
    assert plan.kept == ["ckpt-1", "ckpt-2", "ckpt-4", "ckpt-5"]
    assert plan.deleted == ["ckpt-3"]
    # --run: one run only, the others stay
    only = plan_prune(scan, policy=Policy(keep_last=0, run="ckpt-{N}"))
    assert only.deleted == ["ckpt-3", "ckpt-4", "ckpt-5"] and only.kept == ["ckpt-1", "ckpt-2"]
    assert only.reasons["ckpt-1"] == "in another run (ckpt-{N}#2)"
    with pytest.raises(PlanError, match=r"no run 'ckpt-\{N\}#3' .*\(runs: ckpt-\{N\}, ckpt-\{N\}#2\)"):
        plan_prune(scan, policy=Policy(keep_last=1, run="ckpt-{N}#3"))


def test_plan_errors(corpus_copy):
    scan = scan_directory(str(corpus_copy(TICTACTOE)))
    with pytest.raises(PlanError, match="no checkpoint 'ckpt-1'"):
        plan_prune(scan, delete=["ckpt-1"])      # ckpt-1 is not ckpt-17's prefix
    with pytest.raises(PlanError):
        plan_prune(scan, policy=Policy(keep_last=-1))
    with pytest.raises(PlanError):
        plan_prune(scan)


# --- only a checkpoint's own files, nothing outside -------------------------------------------

def test_exact_prefix_ckpt_1_never_touches_ckpt_10(tmp_path, tf):
    d = tmp_path / "run"
    d.mkdir()
    ck = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0]))
    for n in ("ckpt_1", "ckpt_10", "ckpt_11", "ckpt_100"):
        ck.write(str(d / n))
    (d / "ckpt_1x.txt").write_text("not a checkpoint")
    plan, result = prune_dir(d, delete=["ckpt_1"], permanent=True)
    assert [f.name for f in plan.files] == ["ckpt_1.index", "ckpt_1.data-00000-of-00001"]
    assert result.ok
    assert listing(d) == sorted(v2_files("ckpt_10", "ckpt_11", "ckpt_100") + ["ckpt_1x.txt"])
    scan = scan_directory(str(d))
    assert [c.name for c in scan.checkpoints] == ["ckpt_10", "ckpt_11", "ckpt_100"]
    # keep-last on ckpt_N names: natural order, ckpt_100 is the newest.
    assert plan_prune(scan, policy=Policy(keep_last=2)).kept == ["ckpt_11", "ckpt_100"]
    assert not os.path.exists(d / "checkpoint")          # no state file, and none is made


def test_symbolic_link_only_the_link_goes(corpus_copy, tmp_path, tf):
    d = corpus_copy(TICTACTOE)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    data = "ckpt-17.data-00000-of-00001"
    os.replace(d / data, outside / data)
    os.symlink(outside / data, d / data)
    target_before = snapshot(outside)
    plan, result = prune_dir(d, delete=["ckpt-17"])
    link = next(f for f in plan.files if f.name == data)
    assert link.link_target == str(outside / data) and link.bytes == 0
    assert plan.bytes == 1164
    assert result.ok and not os.path.lexists(d / data)
    assert snapshot(outside) == target_before          # the target is never touched
    assert_tf_agrees(tf, d)
    restored = undo_prune(result)
    assert restored.ok and restored.restored == ["ckpt-17"]
    assert os.readlink(d / data) == str(outside / data)


def test_nothing_outside_the_directory(corpus_copy, tmp_path):
    d = corpus_copy(TICTACTOE)
    victim = tmp_path / "victim.index"
    victim.write_text("keep me")
    for bad in ("../victim.index", str(victim), "sub/ckpt-17.index", "..", "checkpoint"):
        with pytest.raises(ValueError):
            prune.safe_path(str(d), bad)
    scan = scan_directory(str(d))
    scan.checkpoint("ckpt-17").files.append(FileInfo("../victim.index", 7, "index"))
    plan = plan_prune(scan, delete=["ckpt-17", "ckpt-18"])
    assert plan.deleted == ["ckpt-18"] and "refused" in plan.skipped["ckpt-17"]
    # A plan tampered with after planning is refused at execution too.
    plan.files.insert(0, prune.PlannedFile("../victim.index", 7, "ckpt-18", "index"))
    result = execute_prune(plan)
    assert victim.read_text() == "keep me"
    assert list(result.failed) == ["ckpt-18"]
    assert result.errors == [f"../victim.index: '../victim.index' is not a file "
                             f"inside {d}"]
    assert os.path.exists(d / "ckpt-18.index")   # still whole, and listed again
    assert '"ckpt-18"' in state_text(d)


# --- the state file when a training process writes it meanwhile -------------------------------

def test_state_file_is_read_again_just_before_writing(corpus_copy, tf):
    d = corpus_copy(TICTACTOE)
    plan = plan_prune(scan_directory(str(d)), policy=Policy(keep_last=1))
    # After planning, a CheckpointManager saves (here in this process, before execution).
    ck = tf.train.Checkpoint(v=tf.Variable(3.0))
    mgr = tf.train.CheckpointManager(ck, str(d), max_to_keep=None, checkpoint_name="run")
    saved = mgr.save()
    result = execute_prune(plan)
    raw = statefile.read_state_file(str(d))
    assert raw.model_checkpoint_path == "run-1"
    assert raw.all_model_checkpoint_paths == ["ckpt-19", "run-1"]
    assert len(raw.all_model_checkpoint_timestamps) == 2
    assert result.latest == "run-1" and os.path.isfile(saved + ".index")
    assert_tf_agrees(tf, d)


TRAINER = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
import tensorflow as tf
directory, keep = sys.argv[1], sys.argv[2]
step = tf.Variable(0, dtype=tf.int64)
w = tf.Variable(tf.zeros([512]))
ckpt = tf.train.Checkpoint(step=step, w=w)
mgr = tf.train.CheckpointManager(ckpt, directory, checkpoint_name="run",
                                 max_to_keep=None if keep == "all" else int(keep))
print("ready", flush=True)
for line in sys.stdin:
    cmd, _, n = line.strip().partition(" ")
    if cmd != "save":
        break
    for _ in range(int(n)):
        step.assign_add(1)
        w.assign_add(tf.ones([512]))
        print("saved", os.path.basename(mgr.save()), flush=True)
    print("done", flush=True)
"""


class Trainer:
    """A training process saving through tf.train.CheckpointManager, driven through pipes."""

    def __init__(self, directory, keep="all"):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-c", TRAINER, str(directory), keep],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self.next_line() == "ready"

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self, timeout=120):
        line = self.lines.get(timeout=timeout)
        assert line is not None, f"the trainer died: {self.proc.stderr.read()}"
        return line

    def send(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def save(self, n) -> list[str]:
        self.send(f"save {n}")
        out = []
        while (line := self.next_line()) != "done":
            out.append(line.split()[1])
        return out

    def quit(self) -> str:
        self.send("quit")
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=120)
        err = self.proc.stderr.read()
        assert rc == 0, err
        return err


def test_training_process_saving_during_the_state_write(corpus_copy, tf):
    """The trainer saves between our plan and our state-file write: its entries survive."""
    d = corpus_copy(TICTACTOE)
    trainer = Trainer(d)
    try:
        plan = plan_prune(scan_directory(str(d)), policy=Policy(keep_last=1))
        assert "run-" not in plan.state_after
        saved = []

        def progress(done, total, what):
            if done == 0 and not saved:          # we are about to re-read and write the file
                saved.extend(trainer.save(2))

        result = execute_prune(plan, progress=progress)
        assert saved == ["run-1", "run-2"]
        raw = statefile.read_state_file(str(d))
        assert raw.all_model_checkpoint_paths == ["ckpt-19", "run-1", "run-2"]
        assert raw.model_checkpoint_path == "run-2"
        assert len(raw.all_model_checkpoint_timestamps) == 3
        assert result.ok and result.deleted == ["ckpt-17", "ckpt-18"]
        assert listing(d) == sorted(["checkpoint"] + v2_files("ckpt-19", "run-1", "run-2"))
        assert_tf_agrees(tf, d)
        assert trainer.save(1) == ["run-3"]      # and it keeps training afterwards
        assert "Traceback" not in trainer.quit()
    finally:
        trainer.proc.kill()
    assert tf.train.latest_checkpoint(str(d)) == os.path.join(str(d), "run-3")


def test_training_process_saving_while_a_prune_runs(corpus_copy, tf):
    """A trainer (max_to_keep=4) saves freely while we delete 19 old checkpoints: each of our
    file deletions waits for one more of its saves, so the two really interleave."""
    d = corpus_copy(CHARITY)
    trainer = Trainer(d, keep="4")
    try:
        old = [f"weights.{n:02d}.hd5f" for n in range(5, 100, 5)]
        plan = plan_prune(scan_directory(str(d)), delete=old)
        trainer.send("save 12")
        saved = [trainer.next_line()]

        def progress(done, total, what):
            if len(saved) < 12:
                saved.append(trainer.next_line())

        result = execute_prune(plan, progress=progress)
        while (line := trainer.next_line()) != "done":
            saved.append(line)
        assert "Traceback" not in trainer.quit()
    finally:
        trainer.proc.kill()
    assert saved == [f"saved run-{i}" for i in range(1, 13)]
    assert result.ok and result.deleted == old and len(result.files) == 38
    runs = [f"run-{i}" for i in range(9, 13)]
    assert listing(d) == sorted(["checkpoint"] + v2_files("weights.100.hd5f", *runs))
    raw = statefile.read_state_file(str(d))
    assert raw.model_checkpoint_path == "run-12"
    assert set(runs) <= set(raw.all_model_checkpoint_paths)
    assert_tf_agrees(tf, d)
    reader = tf.train.load_checkpoint(os.path.join(str(d), "run-12"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 12


# --- interruptions, failures ------------------------------------------------------------------

class Crash(BaseException):
    """The process dying: nothing of ours runs after it."""


def _count_ops(monkeypatch, fail_at, exc_factory):
    """Make the (fail_at+1)-th operation (state-file write/removal or file removal) raise."""
    calls = {"n": 0}

    def wrap(fn):
        def inner(*a, **k):
            calls["n"] += 1
            if calls["n"] == fail_at + 1:
                raise exc_factory(a)
            return fn(*a, **k)
        return inner

    monkeypatch.setattr(prune, "_remove_one", wrap(prune._remove_one))
    monkeypatch.setattr(statefile, "write_state_file", wrap(statefile.write_state_file))
    monkeypatch.setattr(statefile, "remove_state_file", wrap(statefile.remove_state_file))
    return calls


def _assert_half_deletions_reported(scan, original_files: dict[str, list[str]], d,
                                    original_status: dict[str, str]):
    """Each doomed checkpoint is whole (and ok in the scan) or its index is gone and whatever is
    left of it is listed as orphan files; no checkpoint is broken that was not before."""
    by_name = {c.name: c for c in scan.checkpoints}
    for name, files in original_files.items():
        present = [f for f in files if os.path.lexists(os.path.join(d, f))]
        if len(present) == len(files):
            assert by_name[name].status == original_status[name]
        else:
            assert name not in by_name
            assert set(present) <= set(scan.orphans), (name, present, scan.orphans)


SCENARIOS = [
    (TICTACTOE, ["ckpt-17", "ckpt-19"], False),     # includes the latest, timestamps
    (REGR, ["model.ckpt-0", "model.ckpt"], True),    # foreign paths, .meta files, latest
    (DAVIESX, ["cnn.ckpt", "fc2.ckpt"], True),       # a broken one, then everything
]


@pytest.mark.parametrize("name,doomed,permanent", SCENARIOS, ids=[s[0][:8] for s in SCENARIOS])
def test_interrupted_at_every_file_boundary(corpus_copy, tf, monkeypatch, name, doomed,
                                            permanent, tmp_path):
    import shutil

    src = corpus_copy(name)
    scan0 = scan_directory(str(src))
    originals = {n: [f.name for f in scan0.checkpoint(n).files] for n in doomed}
    status0 = {n: scan0.checkpoint(n).status for n in doomed}
    states = set()
    n_ops = 1 + sum(len(v) for v in originals.values())
    expected_end = None
    for k in range(n_ops + 1):
        d = tmp_path / f"{name}-{k}"
        shutil.copytree(src, d)
        plan = plan_prune(scan_directory(str(d)), delete=doomed)
        with monkeypatch.context() as m:
            calls = _count_ops(m, k, lambda a: Crash())
            if k < n_ops:
                with pytest.raises(Crash):
                    execute_prune(plan, permanent=permanent)
            else:
                expected_end = execute_prune(plan, permanent=permanent)
            assert calls["n"] == min(k + 1, n_ops)
        if k == 0:      # died before anything changed (regr's foreign paths stay unreadable)
            assert snapshot(d) == snapshot(src)
            scan = scan_directory(str(d))
        else:
            scan, _ = assert_tf_agrees(tf, d)
        _assert_half_deletions_reported(scan, originals, str(d), status0)
        broken = {c.name for c in scan.checkpoints if c.status == "broken"}
        assert broken <= {c.name for c in scan0.checkpoints if c.status == "broken"}
        # Recovery: prune again, then clean the orphans: the same end as an uninterrupted run.
        left = [n for n in doomed if scan.checkpoint(n) is not None]
        if left:
            assert execute_prune(plan_prune(scan, delete=left), permanent=True).ok
        orphans = plan_orphans(scan_directory(str(d)), min_age=0)
        assert execute_prune(orphans, permanent=True).ok
        final = listing(d)
        if k == 0:
            first_final = final
        assert final == first_final
        states.add(state_text(d))
        assert_tf_agrees(tf, d)
    assert expected_end.ok and listing(tmp_path / f"{name}-{n_ops}") == first_final
    assert len(states) == 1


@pytest.mark.parametrize("k", range(5))
def test_permission_error_after_k_operations(corpus_copy, tf, monkeypatch, k):
    """A failing removal is reported; a checkpoint whose index could not go stays whole and
    listed; one that lost its index is reported half deleted, its leftovers as orphans."""
    d = corpus_copy(TICTACTOE)
    before = state_text(d)
    plan = plan_prune(scan_directory(str(d)), delete=["ckpt-18", "ckpt-19"])
    _count_ops(monkeypatch, k, lambda a: PermissionError(13, "Permission denied", a[0]))
    result = execute_prune(plan)
    assert not result.ok and len(result.errors) == 1
    assert "ermission denied" in result.errors[0]
    scan, _ = assert_tf_agrees(tf, d)
    if k == 0:          # the state file could not be written: nothing was deleted
        assert state_text(d) == before and result.deleted == []
        assert set(result.failed) == {"ckpt-18", "ckpt-19"}
    elif k == 1:        # ckpt-18.index refused: ckpt-18 stays whole, ckpt-19 goes
        assert result.failed.keys() == {"ckpt-18"} and result.deleted == ["ckpt-19"]
        assert scan.state_file.listed == ["ckpt-17", "ckpt-18"] and scan.latest == "ckpt-18"
    elif k == 2:        # ckpt-18's data refused after its index went
        assert result.partial == {"ckpt-18": ["ckpt-18.data-00000-of-00001"]}
        assert scan.orphans == ["ckpt-18.data-00000-of-00001"]
        assert scan.latest == "ckpt-17" and result.deleted == ["ckpt-19"]
    elif k == 3:        # ckpt-19.index refused: it is whole and the latest again
        assert result.deleted == ["ckpt-18"] and result.failed.keys() == {"ckpt-19"}
        assert scan.state_file.listed == ["ckpt-17", "ckpt-19"] and scan.latest == "ckpt-19"
        raw = statefile.read_state_file(str(d))
        assert raw.all_model_checkpoint_timestamps == [TICTACTOE_TS["ckpt-17"],
                                                       TICTACTOE_TS["ckpt-19"]]
    else:
        assert result.partial == {"ckpt-19": ["ckpt-19.data-00000-of-00001"]}
        assert scan.orphans == ["ckpt-19.data-00000-of-00001"] and scan.latest == "ckpt-17"


def test_a_file_vanishing_mid_delete(corpus_copy, tf, monkeypatch, tmp_trash):
    d = corpus_copy(TICTACTOE)
    plan = plan_prune(scan_directory(str(d)), delete=["ckpt-17", "ckpt-18"])
    real = prune._remove_one

    def vanish_first(path, to_trash):
        if path.endswith("ckpt-17.data-00000-of-00001"):
            os.remove(path)               # someone else (a CheckpointManager sweep) got there
        return real(path, to_trash)

    monkeypatch.setattr(prune, "_remove_one", vanish_first)
    result = execute_prune(plan)
    assert result.ok and result.deleted == ["ckpt-17", "ckpt-18"]
    assert "ckpt-17.data-00000-of-00001 had already disappeared" in result.warnings
    assert "ckpt-17.data-00000-of-00001" not in result.files
    assert result.bytes == 1164 + 1164 + 4507
    assert listing(d) == ["checkpoint"] + v2_files("ckpt-19")
    assert sorted(os.listdir(tmp_trash / "files")) == [
        "ckpt-17.index", "ckpt-18.data-00000-of-00001", "ckpt-18.index"]
    assert_tf_agrees(tf, d)


def test_cancel_between_checkpoints_lists_the_rest_again(corpus_copy, tf):
    d = corpus_copy(TICTACTOE)
    plan = plan_prune(scan_directory(str(d)), policy=Policy(keep_last=0, include_latest=True))
    seen = []
    result = execute_prune(plan, cancelled=lambda: len(seen) >= 2,
                           progress=lambda done, total, what: seen.append(what))
    assert result.cancelled and result.deleted == ["ckpt-17"]
    assert result.not_started == ["ckpt-18", "ckpt-19"]
    raw = statefile.read_state_file(str(d))
    assert raw.all_model_checkpoint_paths == ["ckpt-18", "ckpt-19"]
    assert raw.model_checkpoint_path == "ckpt-19"
    assert raw.all_model_checkpoint_timestamps == [TICTACTOE_TS["ckpt-18"], TICTACTOE_TS["ckpt-19"]]
    assert_tf_agrees(tf, d)


# --- undo -------------------------------------------------------------------------------------

def test_undo_restores_files_and_state_file(corpus_copy, tf, tmp_trash):
    d = corpus_copy(TICTACTOE)
    before, before_state = snapshot(d), state_text(d)
    _, result = prune_dir(d, delete=["ckpt-18", "ckpt-19"])
    assert result.ok and result.can_undo
    assert listing(d) == ["checkpoint"] + v2_files("ckpt-17")
    restored = undo_prune(result)
    assert restored.ok and restored.restored == ["ckpt-18", "ckpt-19"]
    assert snapshot(d) == before
    assert state_text(d) == before_state
    assert os.listdir(tmp_trash / "files") == [] and os.listdir(tmp_trash / "info") == []
    assert_tf_agrees(tf, d)
    assert not undo_prune(result).restored       # nothing left to undo


def test_undo_after_a_new_save_keeps_the_new_latest(corpus_copy, tf):
    d = corpus_copy(TICTACTOE)
    _, result = prune_dir(d, delete=["ckpt-17", "ckpt-18"])
    mgr = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(d),
                                     max_to_keep=None, checkpoint_name="run")
    mgr.save()                                   # training went on after the prune
    restored = undo_prune(result)
    assert restored.ok
    raw = statefile.read_state_file(str(d))
    assert raw.all_model_checkpoint_paths == ["ckpt-17", "ckpt-18", "ckpt-19", "run-1"]
    assert raw.model_checkpoint_path == "run-1"
    assert raw.all_model_checkpoint_timestamps[:3] == list(TICTACTOE_TS.values())
    assert_tf_agrees(tf, d)


def test_undo_never_overwrites(corpus_copy, tf):
    d = corpus_copy(TICTACTOE)
    _, result = prune_dir(d, delete=["ckpt-17", "ckpt-18"])
    (d / "ckpt-18.index").write_bytes(b"someone else's")
    restored = undo_prune(result)
    assert restored.restored == ["ckpt-17"]
    assert restored.errors == ["ckpt-18 not restored: ckpt-18.index: its place is taken again"]
    assert (d / "ckpt-18.index").read_bytes() == b"someone else's"
    assert statefile.read_state_file(str(d)).all_model_checkpoint_paths == ["ckpt-17", "ckpt-19"]


def test_undo_where_the_trash_cannot_be_read(corpus_copy, monkeypatch):
    d = corpus_copy(TICTACTOE)
    monkeypatch.setattr(trash, "undo_support", lambda: (False, "on macOS use Finder's Put Back"))
    _, result = prune_dir(d, delete=["ckpt-17"])
    assert result.ok and not result.can_undo
    assert result.undo_problem == "on macOS use Finder's Put Back"
    assert undo_prune(result).errors == ["on macOS use Finder's Put Back"]
    _, permanent = prune_dir(d, delete=["ckpt-18"], permanent=True)
    assert permanent.undo_problem == "the files were deleted permanently"


# --- orphans ----------------------------------------------------------------------------------

def test_orphans_are_offered_separately(corpus_copy, tf):
    d = corpus_copy(REGR)
    os.remove(d / "model.ckpt-0.index")          # a half-deleted checkpoint
    (d / "ckpt-7_temp").mkdir()                  # a save's leftover temporary folder
    (d / "ckpt-7_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 10)
    old = 1_600_000_000
    for n in ("model.ckpt-0.data-00000-of-00001", "model.ckpt-0.meta", "ckpt-7_temp"):
        os.utime(d / n, (old, old))
    before_state = state_text(d)
    scan = scan_directory(str(d))
    assert scan.orphans == ["ckpt-7_temp/", "model.ckpt-0.data-00000-of-00001",
                            "model.ckpt-0.meta"]
    # A checkpoint plan never includes orphans.
    assert not [f for f in plan_prune(scan, policy=Policy(keep_last=0)).files
                if f.checkpoint is None]
    plan = plan_orphans(scan)
    assert plan.kind == "orphans" and plan.state_action == STATE_KEEP
    assert [f.name for f in plan.files] == scan.orphans
    assert plan.bytes == 10 + 7324 + 108831
    result = execute_prune(plan)
    assert result.ok and result.files == scan.orphans
    assert state_text(d) == before_state
    assert listing(d) == sorted(["checkpoint"] + [f"{n}.{s}" for n in ("model.ckpt",
                                "model.ckpt-5000") for s in ("index", "data-00000-of-00001",
                                                             "meta")])
    assert undo_prune(result).ok
    assert sorted(scan_directory(str(d)).orphans) == sorted(scan.orphans)


def test_young_orphans_and_reclaimed_shards_are_left_alone(corpus_copy, tmp_path):
    d = corpus_copy(TICTACTOE)
    os.rename(d / "ckpt-18.index", tmp_path / "ckpt-18.index")
    os.utime(d / "ckpt-18.data-00000-of-00001")  # just written: a save may be in progress
    scan = scan_directory(str(d))
    assert scan.orphans == ["ckpt-18.data-00000-of-00001"]
    plan = plan_orphans(scan)
    assert plan.files == [] and "save may be in progress" in plan.skipped[scan.orphans[0]]
    os.rename(tmp_path / "ckpt-18.index", d / "ckpt-18.index")   # the save finished
    plan = plan_orphans(scan, min_age=0)
    assert plan.files == [] and "belongs to a checkpoint" in plan.skipped[scan.orphans[0]]


def test_an_interrupted_permanent_deletion_is_finished(corpus_copy, tmp_trash, monkeypatch,
                                                       capsys):
    from ckpt_gui.cli import main

    d = corpus_copy(TICTACTOE)
    temp = d / "ckpt-20_temp"                  # an abandoned save: an orphan folder
    temp.mkdir()
    for i in range(3):
        (temp / f"part{i}").write_bytes(b"x" * 10)
    old = 1_600_000_000
    os.utime(temp, (old, old))
    before_state = state_text(d)

    def crash(path, *args, **kwargs):           # the power goes after one file
        os.remove(os.path.join(path, "part0"))
        raise OSError(5, "Input/output error", path)

    with monkeypatch.context() as m:
        m.setattr(prune.shutil, "rmtree", crash)
        result = execute_prune(plan_orphans(scan_directory(str(d))), permanent=True)
    assert not result.ok
    leftover = d / ".ckpt-20_temp.deleting"    # renamed away before its tree was removed
    assert sorted(os.listdir(leftover)) == ["part1", "part2"] and not temp.exists()
    os.utime(leftover, (old, old))             # (the crash was a while ago)

    scan = scan_directory(str(d))
    assert scan.orphans == [".ckpt-20_temp.deleting/"]
    assert scan.problems == [".ckpt-20_temp.deleting/ is what an interrupted permanent deletion "
                             "left of ckpt-20_temp; deleting the orphan files finishes it"]
    assert main(["scan", str(d)]) == 0
    assert ("  ! .ckpt-20_temp.deleting/ is what an interrupted permanent deletion left of "
            "ckpt-20_temp") in capsys.readouterr().out
    plan = plan_orphans(scan)                  # to the trash, as asked; but this one is finished
    assert plan.reasons[".ckpt-20_temp.deleting/"].startswith(
        "left by an interrupted permanent deletion of ckpt-20_temp: removing it finishes")
    result = execute_prune(plan)
    assert result.ok and result.files == [".ckpt-20_temp.deleting/"]
    assert listing(d) == ["checkpoint"] + v2_files("ckpt-17", "ckpt-18", "ckpt-19")
    assert not tmp_trash.exists() or os.listdir(tmp_trash / "files") == []   # for good
    after = scan_directory(str(d))
    assert after.orphans == [] and after.problems == []
    assert state_text(d) == before_state


# --- the command line -------------------------------------------------------------------------

def run_cli(capsys, *argv):
    from ckpt_gui.cli import main

    try:
        code = main(["prune", *map(str, argv)])
    except SystemExit as e:          # argparse usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_dry_run_changes_nothing(corpus_copy, capsys):
    d = corpus_copy(CHARITY)
    before = snapshot(d)
    mtimes = {n: os.stat(d / n).st_mtime_ns for n in os.listdir(d)}
    code, out, _ = run_cli(capsys, d, "--keep-last", "2", "--dry-run", "--json")
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["deleted", "files", "bytes", "kept", "latest", "to_trash", "dry_run",
                          "skipped"]
    assert data["skipped"] == {}
    assert data["deleted"] == [f"weights.{n:02d}.hd5f" for n in range(5, 95, 5)]
    assert data["files"][:2] == ["weights.05.hd5f.index", "weights.05.hd5f.data-00000-of-00001"]
    assert len(data["files"]) == 36 and data["bytes"] == 18 * (1608 + 74773)
    assert data["kept"] == ["weights.95.hd5f", "weights.100.hd5f"]
    assert data["latest"] == "weights.100.hd5f"
    assert data["to_trash"] is True and data["dry_run"] is True
    assert snapshot(d) == before
    assert {n: os.stat(d / n).st_mtime_ns for n in os.listdir(d)} == mtimes
    code, out, _ = run_cli(capsys, d, "--delete", "latest", "--dry-run")
    assert code == 0 and "Would delete (to the trash): 1 checkpoint," in out
    assert 'model_checkpoint_path: "weights.95.hd5f"' in out
    assert snapshot(d) == before


def test_cli_prune_json(corpus_copy, capsys, tmp_trash, tf):
    d = corpus_copy(REGR)
    code, out, err = run_cli(capsys, d, "--delete", "model.ckpt", "model.ckpt-0", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "deleted": ["model.ckpt", "model.ckpt-0"],
        "files": ["model.ckpt.index", "model.ckpt.data-00000-of-00001", "model.ckpt.meta",
                  "model.ckpt-0.index", "model.ckpt-0.data-00000-of-00001", "model.ckpt-0.meta"],
        "bytes": 313 + 2436 + 28197 + 752 + 7324 + 108831,
        "kept": ["model.ckpt-5000"], "latest": "model.ckpt-5000",
        "to_trash": True, "dry_run": False, "skipped": {}}
    assert len(os.listdir(tmp_trash / "files")) == 6
    assert_tf_agrees(tf, d)
    code, out, _ = run_cli(capsys, d, "--keep-last", "0", "--permanent", "--json")
    assert code == 0 and json.loads(out)["deleted"] == [] and json.loads(out)["to_trash"] is False


def test_cli_exit_codes(corpus_copy, capsys, monkeypatch, tmp_path):
    d = corpus_copy(TICTACTOE)
    before = snapshot(d)
    assert run_cli(capsys, d, "--delete", "ckpt-1")[0] == 2            # no such checkpoint
    assert run_cli(capsys, d)[0] == 2                                   # neither option
    assert run_cli(capsys, d, "--keep-last", "1", "--delete", "ckpt-17")[0] == 2
    assert run_cli(capsys, d, "--keep-last", "-1")[0] == 2
    assert run_cli(capsys, tmp_path / "missing", "--keep-last", "1")[0] == 2
    assert snapshot(d) == before

    def refuse(path, to_trash):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(prune, "_remove_one", refuse)
    code, out, err = run_cli(capsys, d, "--keep-last", "1", "--json")
    assert code == 1
    assert json.loads(out)["deleted"] == [] and "Permission denied" in err
    assert snapshot(d) == before                 # the state file was put back as it was
