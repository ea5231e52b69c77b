"""Health flags (core/health.py): NaN/Inf, dead units, a norm jump, a frozen variable, on a
real training run whose saved values were hurt on purpose; in the trajectory, in
verification, in the JSON and in the panels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_gui import open_dir, window  # noqa: F401 (the fixture)
from _history_writers import check_one_model, write_run
from ckpt_gui.cli import main
from ckpt_gui.core import health, scan_directory
from ckpt_gui.core.health import DEAD_UNITS, FROZEN, NONFINITE, NORM_JUMP
from ckpt_gui.core.model import BIAS, WEIGHT
from ckpt_gui.core.trajectory import trajectories, weights_and_biases


def _nan(k):
    k = k.copy()
    k[0, 0], k[1, 2] = np.nan, np.inf
    return k


def _dead(k):
    k = k.copy()
    k[:, 1] = 0   # unit 1 gets no input
    return k


@pytest.fixture(scope="module")
def hurt_dir(tmp_path_factory, tf):
    """Epoch 2 saves a NaN and an Inf in hidden/kernel; epoch 3 a dead unit in hidden/kernel
    and out/kernel 100 times larger; the frozen layer never trains."""
    folder = tmp_path_factory.mktemp("hurt")
    write_run(tf, folder, {2: {"hidden": _nan}, 3: {"hidden": _dead, "out": lambda k: k * 100}})
    return folder


def _kinds(flags):
    return sorted(f.kind for f in flags)


def test_tensor_flags_against_numpy():
    rng = np.random.default_rng(1)
    k = rng.standard_normal((6, 5)).astype(np.float32)
    assert health.tensor_flags(k, WEIGHT) == ()
    k[:, 3] = 0
    k[4] = 0
    k[0, 0] = np.nan
    nonfinite, dead = health.tensor_flags(k, WEIGHT)
    assert (nonfinite.kind, nonfinite.count, nonfinite.message) == (NONFINITE, 1, "1 NaN")
    assert (dead.kind, dead.count) == (DEAD_UNITS, 2)
    assert dead.message == "1 of 5 columns (units) and 1 of 6 rows (inputs) all zero"
    # a bias full of zeros is an initial bias, not dead units; Inf alone is counted too
    assert health.tensor_flags(np.zeros(5, np.float32), BIAS) == ()
    assert health.tensor_flags(np.array([1.0, np.inf, -np.inf]), BIAS)[0].message == "2 Inf"
    # a sum that overflows is not a NaN
    assert health.tensor_flags(np.full(4, 3e38, np.float32), BIAS) == ()
    assert health.tensor_flags(np.array([b"x"]), WEIGHT) == ()


def test_jump_only_above_ten_times_and_never_from_zero():
    assert health.jump_flag(10.0, 1.0, "a") is None
    f = health.jump_flag(100.0, 1.0, "ckpt-2")
    assert (f.kind, f.count, f.message) == (NORM_JUMP, 100, "L2 norm ×100 since ckpt-2")
    assert health.jump_flag(5.0, 0.0, "a") is None


def test_trajectory_flags_each_problem_where_it_is(hurt_dir):
    scan = scan_directory(str(hurt_dir))
    check_one_model(scan)
    found = {t.identity: t for t in trajectories(scan, weights_and_biases(scan))}
    for run in ("ckpt-{N}", "weights.{N}.weights.h5"):
        def flags(identity, run=run):
            return [_kinds(p.flags) for p in found[identity].points if p.run == run]
        assert flags("hidden/kernel") == [[], [NONFINITE], [DEAD_UNITS]]
        assert flags("out/kernel") == [[], [], [NORM_JUMP]]
        assert flags("frozen/kernel") == [[FROZEN]] * 3
        assert flags("hidden/bias") == [[], [], []]  # trained from zero: no jump
    nan_point = found["hidden/kernel"].points[1]
    assert [f.message for f in nan_point.flags] == ["1 NaN, 1 Inf"]
    assert nan_point.rel_change is None  # a change through NaN is no number
    dead = found["hidden/kernel"].points[2].flags[0]
    assert dead.message == "1 of 8 columns (units) all zero"
    jump = found["out/kernel"].points[2]
    before = found["out/kernel"].points[1]
    assert jump.flags[0].count == round(jump.stats.l2 / before.stats.l2) == 100
    assert jump.flags[0].message.endswith("since ckpt-2")


def test_verification_flags_what_one_tensor_shows(hurt_dir, capsys):
    scan = scan_directory(str(hurt_dir), verify=True)
    by_name = {c.name: {v.display_name: v for v in c.variables} for c in scan.checkpoints}
    for second, third in (("ckpt-2", "ckpt-3"), ("weights.02.weights.h5", "weights.03.weights.h5")):
        flagged = {n: _kinds(v.flags) for n, v in by_name[second].items() if v.flags}
        assert list(flagged.values()) == [[NONFINITE]]
        flagged = {n: _kinds(v.flags) for n, v in by_name[third].items() if v.flags}
        assert list(flagged.values()) == [[DEAD_UNITS]]
    assert main(["scan", str(hurt_dir), "--verify"]) == 0  # flags are findings, not failures
    text = capsys.readouterr().out
    assert "  ⚑ ckpt-2: 1 variable with NaN/Inf\n" in text
    assert "  ⚑ weights.03.weights.h5: 1 variable with dead units\n" in text
    assert main(["scan", str(hurt_dir), "--verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    summary = {c["name"]: c["flags"] for c in out["checkpoints"]}
    assert summary == {"ckpt-1": {}, "ckpt-2": {NONFINITE: 1}, "ckpt-3": {DEAD_UNITS: 1},
                       "weights.01.weights.h5": {}, "weights.02.weights.h5": {NONFINITE: 1},
                       "weights.03.weights.h5": {DEAD_UNITS: 1}}
    h5 = next(c for c in out["checkpoints"] if c["name"] == "weights.02.weights.h5")
    (kernel,) = [v for v in h5["variables"] if v["flags"]]
    assert kernel["name"] == "layers/dense/vars/0"
    assert kernel["flags"] == [{"kind": NONFINITE, "count": 2, "message": "1 NaN, 1 Inf"}]


def test_panels_show_the_flags(qtbot, hurt_dir):
    from PySide6.QtCore import Qt

    from ckpt_gui.core.vartree import build_tree
    from ckpt_gui.ui.checkpoints_panel import CheckpointsPanel
    from ckpt_gui.ui.models import CheckpointTableModel, VariableTreeModel

    scan = scan_directory(str(hurt_dir), verify=True)
    panel = CheckpointsPanel()
    qtbot.addWidget(panel)
    panel.set_scan(scan)
    rows, column = panel.proxy, CheckpointTableModel.COLUMNS.index("Status")

    def status(name, role=Qt.DisplayRole):
        return rows.data(rows.mapFromSource(panel.model.index(panel.model.row_of(name), column)),
                         role)
    assert status("ckpt-2") == "ok · 18/18 read ⚑"
    assert "⚑ 1 variable with NaN/Inf" in status("ckpt-2", Qt.ToolTipRole)
    assert status("ckpt-1") == "ok · 18/18 read"
    tree = VariableTreeModel()
    ckpt = scan.checkpoint("ckpt-2")
    tree.set_tree(build_tree(ckpt))
    (key,) = [v.name for v in ckpt.variables if v.flags]
    index = tree.index_of_variable(key)
    assert "⚑ 1 NaN, 1 Inf" in tree.data(index, Qt.ToolTipRole)
    assert tree.data(index, Qt.DecorationRole) is not None


def test_flags_the_history_found_reach_the_panels(qtbot, hurt_dir,
                                                  window):  # noqa: F811 (the fixture)
    from PySide6.QtCore import Qt

    from ckpt_gui.ui.trend_panel import MULTIPLES

    w = window
    open_dir(qtbot, w, hurt_dir)
    check_one_model(w.scan)
    w.tabs.setCurrentWidget(w.trend)
    w.trend.build()
    with qtbot.waitSignal(w.trend.multiples_ready, timeout=60_000):
        w.trend.mode.setCurrentText(MULTIPLES)
    ckpt3 = w.scan.checkpoint("ckpt-3")
    assert _kinds(ckpt3.variable("model/net/out/kernel").flags) == [NORM_JUMP]
    assert _kinds(ckpt3.variable("model/net/frozen/kernel").flags) == [FROZEN]
    rows, model = w.checkpoints.proxy, w.checkpoints.model
    index = rows.mapFromSource(model.index(model.row_of("ckpt-3"), model.COLUMNS.index("Status")))
    assert rows.data(index) == "ok ⚑"
    tip = rows.data(index, Qt.ToolTipRole)
    assert "a norm jump" in tip and "no change along the run" in tip and "dead units" in tip
