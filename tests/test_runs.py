"""Training runs (issue 13): which checkpoints of a folder one training saved, and prune per run.

Folders are written with the real APIs (tf.train.CheckpointManager, Keras ModelCheckpoint); what
prune leaves is judged by TensorFlow's own tf.train.get_checkpoint_state / latest_checkpoint and
by the files left. The corpus folders' runs are asserted for every folder MANIFEST.tsv lists.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from _prune_support import listing, tmp_trash  # noqa: F401
from ckpt_gui import cli
from ckpt_gui.core import scan_directory
from ckpt_gui.core.prune import Policy, execute_prune, plan_prune
from conftest import corpus_names

DATA = ".data-00000-of-00001"
HOUR = 3600.0


def runs_of(scan) -> list[tuple[str, list[str], str | None]]:
    return [(r.id, r.checkpoints, r.restarted_from) for r in scan.runs]


def tf_state(tf, d) -> tuple[str | None, list[str]]:
    """(latest, all listed) as TensorFlow reads the state file, as base names."""
    state = tf.train.get_checkpoint_state(str(d))
    if state is None:
        return None, []
    latest = tf.train.latest_checkpoint(str(d))
    assert latest == state.model_checkpoint_path
    return (os.path.basename(latest),
            [os.path.basename(p) for p in state.all_model_checkpoint_paths])


def v2(*names: str) -> list[str]:
    return [f for n in names for f in (n + DATA, n + ".index")]


@pytest.fixture
def keras_and_manager(tmp_path, tf):
    """A folder as the demo writes it, small: CheckpointManager ckpt-1..5 (max_to_keep=None),
    ModelCheckpoint weights.01..05.weights.h5 and best.keras, one epoch between saves."""
    import keras

    d = tmp_path / "train"
    d.mkdir()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(ckpt, str(d), max_to_keep=None)
    callbacks = [keras.callbacks.ModelCheckpoint(str(d / "weights.{epoch:02d}.weights.h5"),
                                                 save_weights_only=True),
                 keras.callbacks.ModelCheckpoint(str(d / "best.keras"), monitor="loss",
                                                 save_best_only=True)]
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    for epoch in range(1, 6):
        model.fit(x, y, epochs=epoch, initial_epoch=epoch - 1, verbose=0, callbacks=callbacks)
        manager.save()
    return d


def test_two_runs_and_an_unnumbered_file(keras_and_manager, tf, tmp_trash):
    d = keras_and_manager
    scan = scan_directory(str(d))
    weights = [f"weights.{n:02d}.weights.h5" for n in range(1, 6)]
    ckpts = [f"ckpt-{n}" for n in range(1, 6)]
    assert runs_of(scan) == [("ckpt-{N}", ckpts, None),
                             ("weights.{N}.weights.h5", weights, None)]
    assert {r.id: r.writer for r in scan.runs} == {
        "ckpt-{N}": "tf.train.Checkpoint",
        "weights.{N}.weights.h5": "Keras 3 save_weights / ModelCheckpoint (.weights.h5)"}
    assert {c.name: c.run for c in scan.checkpoints} == {
        "best.keras": None, **{n: "ckpt-{N}" for n in ckpts},
        **{n: "weights.{N}.weights.h5" for n in weights}}

    plan = plan_prune(scan, policy=Policy(keep_last=3))
    # The last 3 of each run; best.keras is no run's and never chosen by a policy.
    assert plan.deleted == ["ckpt-1", weights[0], "ckpt-2", weights[1]]
    assert plan.reasons["best.keras"].startswith("has no number")
    assert plan.reasons["ckpt-3"] == "one of the last 3 of run ckpt-{N}"
    result = execute_prune(plan)
    assert result.ok
    assert listing(d) == sorted(["best.keras", "checkpoint", *v2("ckpt-3", "ckpt-4", "ckpt-5"),
                                 *weights[2:]])
    assert tf_state(tf, d) == ("ckpt-5", ["ckpt-3", "ckpt-4", "ckpt-5"])


def test_a_partial_newest_checkpoint_is_not_one_of_the_last(keras_and_manager, tf, tmp_trash):
    d = keras_and_manager
    data = d / f"ckpt-5{DATA}"
    os.truncate(data, data.stat().st_size // 2)
    scan = scan_directory(str(d))
    assert scan.checkpoint("ckpt-5").status == "partial"
    assert scan.checkpoint("ckpt-5").run == "ckpt-{N}"        # still of its run
    plan = plan_prune(scan, policy=Policy(keep_last=2, run="ckpt-{N}"))
    # ckpt-5 is neither counted among the last 2 (ckpt-3 and ckpt-4 are kept in its place)
    # nor deleted: it is listed, left alone; the other run is out of the policy's scope.
    assert plan.deleted == ["ckpt-1", "ckpt-2"]
    assert plan.skipped["ckpt-5"].startswith("left alone: it is partial: ")
    assert plan.reasons["weights.01.weights.h5"] == "in another run (weights.{N}.weights.h5)"
    assert execute_prune(plan).ok
    assert [f for f in listing(d) if f.startswith("ckpt-")] == v2("ckpt-3", "ckpt-4", "ckpt-5")
    assert len([f for f in listing(d) if f.startswith("weights.")]) == 5
    assert tf_state(tf, d) == ("ckpt-5", ["ckpt-3", "ckpt-4", "ckpt-5"])


def test_a_checkpoint_damaged_later_stays_in_its_run(keras_and_manager):
    d = keras_and_manager
    data = d / f"ckpt-3{DATA}"
    os.truncate(data, data.stat().st_size // 2)      # changed in place, long after its save
    t = data.stat().st_mtime + HOUR
    os.utime(data, (t, t))
    scan = scan_directory(str(d))
    assert scan.checkpoint("ckpt-3").status == "partial"
    assert runs_of(scan)[0] == ("ckpt-{N}", [f"ckpt-{n}" for n in range(1, 6)], None)


def _restarted(tf, d):
    """ckpt-1..3 by one training; then a fresh Checkpoint and CheckpointManager in the same
    folder, whose save_counter starts again: its ckpt-1 and ckpt-2 overwrite the first run's."""
    step = tf.Variable(0, dtype=tf.int64)
    first = tf.train.Checkpoint(step=step, w=tf.Variable(tf.zeros([2, 2])))
    manager = tf.train.CheckpointManager(first, str(d), max_to_keep=None)
    for _ in range(3):
        step.assign_add(100)
        manager.save()
    again = tf.Variable(0, dtype=tf.int64)
    second = tf.train.Checkpoint(step=again, w=tf.Variable(tf.ones([2, 2])))
    manager = tf.train.CheckpointManager(second, str(d), max_to_keep=None)
    for _ in range(2):
        again.assign_add(10)
        manager.save()


def test_a_restarted_run(tmp_path, tf, tmp_trash):
    d = tmp_path / "restart"
    _restarted(tf, d)
    scan = scan_directory(str(d))
    assert [(c.name, c.counters["save_counter"]) for c in scan.checkpoints] == [
        ("ckpt-1", 1), ("ckpt-2", 2), ("ckpt-3", 3)]
    # The state file lists them in save order, ckpt-3 first: ckpt-3 is the older run's.
    assert tf_state(tf, d) == ("ckpt-2", ["ckpt-3", "ckpt-1", "ckpt-2"])
    expected = [("ckpt-{N}", ["ckpt-3"], None), ("ckpt-{N}#2", ["ckpt-1", "ckpt-2"], "ckpt-{N}")]
    assert runs_of(scan) == expected
    assert runs_of(scan_directory(str(d))) == expected                # stable on a rescan

    plan = plan_prune(scan, policy=Policy(keep_last=1))
    assert plan.deleted == ["ckpt-1"] and plan.kept == ["ckpt-2", "ckpt-3"]
    assert execute_prune(plan).ok
    assert listing(d) == sorted(["checkpoint", *v2("ckpt-2", "ckpt-3")])
    assert tf_state(tf, d) == ("ckpt-2", ["ckpt-3", "ckpt-2"])
    assert runs_of(scan_directory(str(d))) == [("ckpt-{N}", ["ckpt-3"], None),
                                               ("ckpt-{N}#2", ["ckpt-2"], "ckpt-{N}")]


def test_a_restart_told_by_modification_times_alone(tmp_path, tf):
    d = tmp_path / "restart"
    _restarted(tf, d)
    os.remove(d / "checkpoint")
    for f in v2("ckpt-3"):                      # the first run, an hour before the restart
        t = os.stat(d / f).st_mtime - HOUR
        os.utime(d / f, (t, t))
    assert runs_of(scan_directory(str(d))) == [
        ("ckpt-{N}", ["ckpt-3"], None), ("ckpt-{N}#2", ["ckpt-1", "ckpt-2"], "ckpt-{N}")]
    # Times a moment apart (a copy, a checkout writes files in any order) order nothing.
    for f in v2("ckpt-3"):
        t = os.stat(d / f).st_mtime + HOUR - 1.0
        os.utime(d / f, (t, t))
    assert runs_of(scan_directory(str(d))) == [("ckpt-{N}", ["ckpt-1", "ckpt-2", "ckpt-3"], None)]


def test_a_file_touched_later_splits_nothing_the_state_file_orders(tmp_path, tf):
    """A checkpoint modified after its successors (a repair, a copy without times) is still
    where the state file lists it: its order is taken over the times."""
    d = tmp_path / "touched"
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(w=tf.Variable([1.0])), str(d),
                                         max_to_keep=None)
    for _ in range(3):
        manager.save()
    for f in v2("ckpt-2"):
        t = os.stat(d / f).st_mtime + HOUR
        os.utime(d / f, (t, t))
    assert tf_state(tf, d) == ("ckpt-3", ["ckpt-1", "ckpt-2", "ckpt-3"])
    assert runs_of(scan_directory(str(d))) == [("ckpt-{N}", ["ckpt-1", "ckpt-2", "ckpt-3"], None)]


def test_a_counter_going_back_splits_a_run(tmp_path, tf):
    d = tmp_path / "counter"
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(step=step, w=tf.Variable(tf.zeros([3])))
    for n, value in ((1, 100), (2, 200), (3, 30), (4, 40)):
        step.assign(value)                      # the step restarted at ckpt-3
        ckpt.write(str(d / f"model-{n}"))
    assert runs_of(scan_directory(str(d))) == [
        ("model-{N}", ["model-1", "model-2"], None),
        ("model-{N}#2", ["model-3", "model-4"], "model-{N}")]


def test_shapes_that_change_along_a_run_do_not_split_it(tmp_path, tf):
    d = tmp_path / "growing"
    ckpt = tf.train.Checkpoint(embedding=tf.Variable(tf.zeros([10, 4])), bias=tf.Variable([0.0]))
    manager = tf.train.CheckpointManager(ckpt, str(d), max_to_keep=None)
    manager.save()
    manager.save()
    ckpt.embedding = tf.Variable(tf.zeros([20, 4]))      # the vocabulary grew
    manager.save()
    scan = scan_directory(str(d))
    shapes = [next(v.shape for v in c.variables if v.name.startswith("embedding/"))
              for c in scan.checkpoints]
    assert shapes == [(10, 4), (10, 4), (20, 4)]
    assert runs_of(scan) == [("ckpt-{N}", ["ckpt-1", "ckpt-2", "ckpt-3"], None)]


def test_a_different_model_under_the_same_pattern_is_another_run(tmp_path, tf):
    d = tmp_path / "two-models"
    small = tf.train.Checkpoint(a=tf.Variable([1.0]), b=tf.Variable([2.0]))
    other = tf.train.Checkpoint(encoder=tf.Variable(tf.zeros([3, 3])),
                                decoder=tf.Variable(tf.zeros([3, 3])))
    for n, ckpt in ((1, small), (2, small), (3, other), (4, other)):
        ckpt.write(str(d / f"model-{n}"))
    assert runs_of(scan_directory(str(d))) == [
        ("model-{N}", ["model-1", "model-2"], None), ("model-{N}#2", ["model-3", "model-4"], None)]


def test_runs_in_the_cli(tmp_path, tf, capsys):
    d = tmp_path / "restart"
    _restarted(tf, d)
    assert cli.main(["scan", str(d), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == [
        {"id": "ckpt-{N}", "pattern": "ckpt-{N}", "writer": "tf.train.Checkpoint",
         "checkpoints": ["ckpt-3"]},
        {"id": "ckpt-{N}#2", "pattern": "ckpt-{N}", "writer": "tf.train.Checkpoint",
         "checkpoints": ["ckpt-1", "ckpt-2"], "restarted_from": "ckpt-{N}"}]
    assert [c["run"] for c in data["checkpoints"]] == ["ckpt-{N}#2", "ckpt-{N}#2", "ckpt-{N}"]
    assert cli.main(["scan", str(d)]) == 0
    out = capsys.readouterr().out
    assert "  ckpt-{N}#2: 2 checkpoints (ckpt-1, ckpt-2), tf.train.Checkpoint; restarted " \
           "after ckpt-{N}" in out
    row = next(line for line in out.splitlines() if line.startswith("*"))
    assert row.split()[1:4] == ["ckpt-2", "ckpt-{N}#2", "2"]
    assert cli.main(["prune", str(d), "--keep-last", "0", "--run", "ckpt-{N}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "  - ckpt-3 (older than the last 0 of run ckpt-{N}): ckpt-3.index, ckpt-3" in out
    assert cli.main(["prune", str(d), "--keep-last", "1", "--run", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


# --- the corpus -------------------------------------------------------------------------------

CORPUS_RUNS = {
    "tictactoe-tf2mgr-keras3opt": [("ckpt-{N}", ["ckpt-17", "ckpt-18", "ckpt-19"], None)],
    # the state file's ckpt-1, ckpt-2 are a restart; ckpt-3..5 an older run it overwrote the
    # start of (their optimizer iterations, 45..80, are below ckpt-2's 630)
    "supercon-gan-tf2": [("ckpt-{N}", ["ckpt-3", "ckpt-4", "ckpt-5"], None),
                         ("ckpt-{N}#2", ["ckpt-1", "ckpt-2"], "ckpt-{N}")],
    "charity-hd5f-keras-tf": [("weights.{N}.hd5f", [f"weights.{n:02d}.hd5f"
                                                    for n in range(5, 101, 5)], None)],
    "foodprep-sharded2-keras-tf": [],                 # cp.ckpt: no number
    "dynrnn-mixed-shards-keras-tf": [],               # 16LSTM_Neurons10Epochs.ckpt...: no number
    "regr-contrib-abs-home-tf1": [("model.ckpt-{N}", ["model.ckpt-0", "model.ckpt-5000"], None)],
    # a V1 and a V2 checkpoint of one TF1 Saver
    "tdgammon-v1-v2-tf1": [("checkpoint-{N}", ["checkpoint-447880", "checkpoint-462746"], None)],
    "daviesx-partial-data-tf1": [],
    "churn-keras3-weights-h5": [],
}


def test_every_corpus_folder_has_its_runs_asserted():
    assert sorted(CORPUS_RUNS) == sorted(corpus_names())


@pytest.mark.parametrize("name", sorted(CORPUS_RUNS))
def test_corpus_runs(name, corpus_copy):
    scan = scan_directory(str(corpus_copy(name)))
    assert runs_of(scan) == CORPUS_RUNS[name]
    in_run = {n for _, members, _ in CORPUS_RUNS[name] for n in members}
    assert [c.name for c in scan.checkpoints if c.run is None] == [
        c.name for c in scan.checkpoints if c.name not in in_run]
    assert all(c.number is None for c in scan.checkpoints if c.run is None)


# --- the checkpoints table --------------------------------------------------------------------

def test_the_checkpoints_table_shows_runs(qtbot, corpus_copy):
    from PySide6.QtCore import Qt

    from ckpt_gui.ui.checkpoints_panel import NAME, RUN, STATUS, CheckpointsPanel
    from ckpt_gui.ui.models import RUN_TINTS

    panel = CheckpointsPanel()
    qtbot.addWidget(panel)
    panel.set_scan(scan_directory(str(corpus_copy("supercon-gan-tf2"))))
    proxy = panel.proxy

    def rows():
        return [(proxy.index(r, NAME).data(), proxy.index(r, RUN).data(),
                 proxy.index(r, RUN).data(Qt.BackgroundRole).color())
                for r in range(proxy.rowCount())]

    first, second = RUN_TINTS[:2]          # one tint per run, in the scan's order of runs
    assert rows() == [("ckpt-1", "ckpt-{N}#2", second), ("ckpt-2  ★ latest", "ckpt-{N}#2", second),
                      ("ckpt-3", "ckpt-{N}", first), ("ckpt-4", "ckpt-{N}", first),
                      ("ckpt-5", "ckpt-{N}", first)]
    header = panel.table.horizontalHeader()
    assert [header.logicalIndex(i) for i in range(3)] == [NAME, STATUS, RUN]
    assert "run ckpt-{N}#2: 2 checkpoints of tf.train.Checkpoint, restarted after run ckpt-{N}" \
        in proxy.index(0, NAME).data(Qt.ToolTipRole)
    panel.table.sortByColumn(RUN, Qt.AscendingOrder)          # by run, then number
    assert [name for name, _, _ in rows()] == ["ckpt-3", "ckpt-4", "ckpt-5", "ckpt-1",
                                               "ckpt-2  ★ latest"]
    assert panel.current().name == "ckpt-2"                   # the latest, still selected

    panel.set_scan(scan_directory(str(corpus_copy("regr-contrib-abs-home-tf1"))))
    by_name = {proxy.index(r, NAME).data(): (proxy.index(r, RUN).data(),
                                             proxy.index(r, RUN).data(Qt.BackgroundRole))
               for r in range(proxy.rowCount())}
    assert by_name["model.ckpt  ★ latest"] == ("—", None)     # unnumbered: in no run
    assert by_name["model.ckpt-0"][0] == "model.ckpt-{N}"
