"""Orbax checkpoints (issue 12): written by keras.callbacks.OrbaxCheckpoint and by
orbax.checkpoint.CheckpointManager (in a subprocess, tests/_orbax_writers.py), read by
ckpt_gui.core.orbax with tensorstore alone and checked against Orbax's own restore."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from ckpt_gui.core import orbax
from ckpt_gui.core.model import BIAS, BROKEN, COUNTER, METADATA, NORMALIZATION, OK, OPTIMIZER, \
    PARTIAL, WEIGHT

WRITERS = Path(__file__).with_name("_orbax_writers.py")
sys.path.insert(0, str(WRITERS.parent))
from _orbax_writers import manager_state  # noqa: E402


def _run_python(code: str) -> str:
    """stdout of ``code`` run by a fresh interpreter importing this worktree's ckpt_gui."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120, check=True,
                         env={**os.environ, "PYTHONPATH": str(WRITERS.parents[1])})
    return out.stdout


def _write(*args) -> None:
    subprocess.run([sys.executable, str(WRITERS), *map(str, args)], check=True,
                   capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def keras_dirs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("keras_orbax")
    _write("keras", out)
    return out


@pytest.fixture(scope="module")
def manager_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("orbax_manager") / "run"
    _write("manager", out, 3)
    return out


@pytest.fixture
def manager_copy(manager_dir, tmp_path) -> Path:
    return Path(shutil.copytree(manager_dir, tmp_path / "run"))


def orbax_restore(item_dir) -> dict:
    """{'/'-joined tree path: array} as Orbax itself restores the item."""
    import orbax.checkpoint as ocp

    flat = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(prefix + (str(k),), v)
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(prefix + (str(i),), v)
        else:
            flat["/".join(prefix)] = np.asarray(node)

    walk((), ocp.PyTreeCheckpointer().restore(os.path.abspath(item_dir)))
    return flat


def same_bits(ours: np.ndarray, theirs: np.ndarray) -> bool:
    theirs = np.asarray(theirs)
    if theirs.dtype != ours.dtype:  # Python scalars come back from Orbax as Python numbers
        theirs = theirs.astype(ours.dtype)
    return ours.shape == theirs.shape and ours.tobytes() == theirs.tobytes()


def orbax_steps(directory) -> list[int]:
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(os.path.abspath(directory)) as mgr:
        return list(mgr.all_steps())


# ---------------------------------------------------------------------------------------------
# Keras OrbaxCheckpoint

def test_keras_folder_steps_and_latest(keras_dirs):
    full = keras_dirs / "full"
    assert orbax.recognise(str(full)) == "folder"
    assert orbax.recognise(str(full / "2")) == "step"
    # an item on its own is what PyTreeCheckpointer().save(path) writes: one step's tree
    assert orbax.recognise(str(full / "2" / "pytree")) == "step"
    assert orbax.recognise(str(full / "2" / "pytree" / "d")) is None
    assert orbax.recognise(str(keras_dirs)) is None
    steps = orbax.list_steps(str(full))
    assert [(s.name, s.step, s.committed) for s in steps] == [("0", 0, True), ("1", 1, True),
                                                              ("2", 2, True)]
    assert orbax.latest_step(steps).name == "2"
    assert [s.step for s in steps] == orbax_steps(full)


def test_keras_full_step_variables_roles_counters_config(keras_dirs):
    reference = np.load(keras_dirs / "full.npz")
    info = orbax.inspect_step(str(keras_dirs / "full" / "2"))
    by_name = {v.name: v for v in info.variables}
    assert sorted(by_name) == sorted(reference.files)          # the model's own variables
    for name in reference.files:
        assert by_name[name].shape == reference[name].shape, name
        if info.locations[name].value_type == "scalar":  # Keras saves 0-d values as Python
            assert by_name[name].dtype in ("int64", "float64"), name  # numbers
        else:
            assert by_name[name].dtype == reference[name].dtype.name, name
            assert by_name[name].bytes == reference[name].nbytes, name
        assert same_bits(orbax.read_array(info.locations[name]), reference[name]), name
    roles = {n: v.role for n, v in by_name.items()}
    assert roles["trainable_variables/tiny/hidden/kernel"] == WEIGHT
    assert roles["trainable_variables/tiny/logits/bias"] == BIAS
    assert roles["trainable_variables/tiny/bn/gamma"] == NORMALIZATION
    assert roles["non_trainable_variables/tiny/bn/moving_variance"] == NORMALIZATION
    assert roles["optimizer_variables/adam/iteration"] == COUNTER
    assert roles["optimizer_variables/adam/learning_rate"] == OPTIMIZER
    assert roles["metrics_variables/accuracy/total"] == METADATA
    slot = by_name["optimizer_variables/adam/tiny_hidden_kernel_velocity"]
    assert (slot.role, slot.slot_of, slot.slot_name) == (
        OPTIMIZER, "trainable_variables/tiny/hidden/kernel", "velocity")
    # 64 samples, batch 16, 3 epochs: 12 optimizer steps; the directory says step 2
    assert info.counters == {"optimizer_variables/adam/iteration": 12,
                             orbax.STEP_COUNTER: 2}
    assert (info.status, info.problems, info.writer) == (OK, [], "keras OrbaxCheckpoint")
    # what a later read needs, from _METADATA alone (no inspection kept)
    assert orbax.locations(info.step.path) == (info.locations, info.model_config_text)
    assert info.model_config["class_name"] == "Sequential"
    layers = [layer["config"]["name"] for layer in info.model_config["config"]["layers"]]
    assert layers[-3:] == ["hidden", "bn", "logits"]
    on_disk = sorted((str(p.relative_to(keras_dirs / "full")), p.stat().st_size)
                     for p in (keras_dirs / "full" / "2").rglob("*") if p.is_file())
    assert sorted((f.name, f.bytes) for f in info.files) == on_disk
    assert info.bytes == sum(size for _, size in on_disk)


def test_keras_model_config_builds_the_model_for_restore(keras_dirs):
    from ckpt_gui.core.templates import model_from_config_json, vetted_config

    info = orbax.inspect_step(str(keras_dirs / "full" / "2"))
    config = orbax.checkpoint_config(info)
    assert config.folder == str(keras_dirs / "full" / "2")
    assert {(4, 8), (8,), (8, 3), (3,), ()} <= config.tensor_shapes
    model = model_from_config_json(vetted_config(config), compile=False)
    # a model rebuilt from its config names its variables without the model's name
    # ('hidden/kernel'); the saved tree has 'tiny/hidden/kernel' (Keras 3.15 on TF)
    shapes = {f"{model.name}/{v.path}": tuple(v.shape) for v in model.weights}
    assert shapes == {v.name.split("/", 1)[1]: v.shape for v in info.variables
                      if v.name.startswith(("trainable_variables/", "non_trainable_variables/"))}
    assert orbax.checkpoint_config(
        orbax.inspect_step(orbax.list_steps(str(keras_dirs / "weights_only"))[-1])) is None


def test_keras_every_step_equals_orbax_restore_whole_and_by_chunks(keras_dirs):
    for folder in ("full", "weights_only"):
        for step in orbax.list_steps(str(keras_dirs / folder)):
            restored = orbax_restore(Path(step.path) / "pytree")
            info = orbax.inspect_step(step)
            assert sorted(v.name for v in info.variables) == sorted(restored)
            for name, loc in info.locations.items():
                whole = orbax.read_array(loc)
                assert same_bits(whole, restored[name]), (step.path, name)
                pieces = list(orbax.iter_chunks(loc, max_bytes=16))
                joined = pieces[0][2] if whole.ndim == 0 else np.concatenate(
                    [p for _, _, p in pieces])
                assert same_bits(joined, whole), name
                if whole.ndim:
                    assert [(a, b) for a, b, _ in pieces][0][0] == 0
                    assert pieces[-1][1] == whole.shape[0]


def test_keras_weights_only(keras_dirs):
    reference = np.load(keras_dirs / "weights_only.npz")
    steps = orbax.list_steps(str(keras_dirs / "weights_only"))
    assert [s.step for s in steps] == [0, 1]
    info = orbax.inspect_step(steps[-1])
    assert sorted(v.name for v in info.variables) == sorted(reference.files)
    assert len(info.variables) == 8 and info.model_config is None
    assert info.counters == {orbax.STEP_COUNTER: 1}
    for name in reference.files:
        assert same_bits(orbax.read_array(info.locations[name]), reference[name])


def test_keras_deleted_and_uncommitted_steps(keras_dirs, tmp_path):
    full = Path(shutil.copytree(keras_dirs / "full", tmp_path / "full"))
    shutil.rmtree(full / "1")
    os.rename(full / "2", full / "2.orbax-checkpoint-tmp")
    steps = orbax.list_steps(str(full))
    assert [(s.step, s.committed) for s in steps] == [(0, True), (2, False)]
    assert orbax.latest_step(steps).step == 0 and orbax_steps(full) == [0]
    assert orbax.inspect_step(steps[0]).status == OK
    assert orbax.inspect_step(steps[1]).status == BROKEN


# ---------------------------------------------------------------------------------------------
# CheckpointManager with numpy arrays

def test_manager_dtypes_and_values_equal_orbax_restore(manager_dir):
    steps = orbax.list_steps(str(manager_dir))
    assert [s.step for s in steps] == [0, 10, 20] == orbax_steps(manager_dir)
    for step in steps:
        info = orbax.inspect_step(step)
        written = manager_state(step.step)
        restored = orbax_restore(Path(step.path) / "state")
        dtypes = {v.name: v.dtype for v in info.variables}
        assert dtypes == {"big": "float32", "params/bf16": "bfloat16",
                          "params/dense/bias": "float32", "params/dense/kernel": "float32",
                          "params/f8": "float8_e4m3fn", "params/i4": "int4", "step": "int64"}
        assert info.counters == {"step": step.step, orbax.STEP_COUNTER: step.step}
        for name, loc in info.locations.items():
            value = orbax.read_array(loc)
            assert same_bits(value, restored[name]), name
            keys = name.split("/")
            mine = written[keys[0]] if len(keys) == 1 else written[keys[0]][keys[1]]
            mine = mine if len(keys) < 3 else mine[keys[2]]
            assert same_bits(value, mine), name
        assert orbax.read_array(info.locations["params/bf16"]).dtype == ml_dtypes.bfloat16


def test_manager_chunks_are_bounded_and_slices_read(manager_dir):
    info = orbax.inspect_step(orbax.list_steps(str(manager_dir))[-1])
    loc = info.locations["big"]
    whole = orbax.read_array(loc)
    pieces = list(orbax.iter_chunks(loc, max_bytes=4096))   # 16 rows of 64 float32
    assert [(a, b) for a, b, _ in pieces] == [(i, i + 16) for i in range(0, 256, 16)]
    assert all(p.nbytes <= 4096 for _, _, p in pieces)
    assert same_bits(np.concatenate([p for _, _, p in pieces]), whole)
    assert same_bits(orbax.read_array(loc, (slice(3, 9), slice(60, None))), whole[3:9, 60:])


def test_reads_are_held_to_the_memory_budget(manager_dir):
    from ckpt_gui.core.limits import OverBudget, set_memory_budget

    loc = orbax.inspect_step(orbax.list_steps(str(manager_dir))[-1]).locations["big"]
    set_memory_budget(8192)
    try:
        with pytest.raises(OverBudget, match=r"^big: 64.0 KB does not fit the memory budget of 8.0 KB"):
            orbax.read_array(loc)
        assert len(list(orbax.iter_chunks(loc, max_bytes=8192))) == 8     # 32 rows a piece
        with pytest.raises(OverBudget):
            list(orbax.iter_chunks(loc, max_bytes=1 << 20))
    finally:
        set_memory_budget(None)


# ---------------------------------------------------------------------------------------------
# Damage

def test_uncommitted_step_is_flagged_and_not_latest(manager_copy):
    os.rename(manager_copy / "20", manager_copy / "20.orbax-checkpoint-tmp")
    steps = orbax.list_steps(str(manager_copy))
    assert [(s.name, s.committed) for s in steps] == [
        ("0", True), ("10", True), ("20.orbax-checkpoint-tmp", False)]
    assert orbax.latest_step(steps).step == 10
    assert orbax_steps(manager_copy) == [0, 10]
    info = orbax.inspect_step(steps[-1])
    assert info.status == BROKEN
    assert info.problems == ["step 20.orbax-checkpoint-tmp was not committed (its directory "
                             "still has the temporary suffix .orbax-checkpoint-tmp): Orbax does "
                             "not list it"]


def test_an_empty_temporary_step_is_listed_to_be_pruned(manager_copy):
    (manager_copy / "30.orbax-checkpoint-tmp").mkdir()     # a save killed at its start
    (manager_copy / "40").mkdir()                          # not a step: nothing Orbax wrote
    steps = orbax.list_steps(str(manager_copy))
    assert [(s.name, s.committed) for s in steps][-1] == ("30.orbax-checkpoint-tmp", False)
    assert "40" not in [s.name for s in steps]
    info = orbax.inspect_step(steps[-1])
    assert info.status == BROKEN and info.variables == [] and info.bytes == 0
    assert info.problems[-1] == "30.orbax-checkpoint-tmp holds no Orbax pytree item (_METADATA)"


def _data_file(step_dir: Path) -> Path:
    """The OCDBT data file holding 'big' (the only one large enough)."""
    files = [p for p in (step_dir / "state").rglob("ocdbt.process_*/d/*")]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_missing_or_truncated_data_file_breaks_only_the_arrays_it_holds(manager_copy, damage):
    data = _data_file(manager_copy / "20")
    if damage == "missing":
        data.unlink()
    else:
        os.truncate(data, data.stat().st_size // 2)
    info = orbax.inspect_step(str(manager_copy / "20"))
    assert info.status == OK            # the metadata is intact: only reading tells
    orbax.verify_step(info)
    assert {v.name: v.readable for v in info.variables} == {
        "big": False, "params/bf16": True, "params/dense/bias": True,
        "params/dense/kernel": True, "params/f8": True, "params/i4": True, "step": True}
    assert info.status == PARTIAL
    kind = ("its data is missing or damaged" if damage == "missing" else "a file is truncated")
    [problem] = info.problems
    assert problem.startswith(f"big cannot be read ({kind}): Error reading \"big/")
    assert '"20/state/"' in problem and "tensorstore_spec" not in problem
    assert "\n" not in problem
    with pytest.raises(orbax.OrbaxError) as raised:
        orbax.read_array(info.locations["big"])
    assert str(raised.value) == problem


def test_missing_root_node_makes_every_array_unreadable(manager_copy):
    for node in (manager_copy / "20" / "state" / "d").iterdir():
        node.unlink()
    info = orbax.inspect_step(str(manager_copy / "20"))
    assert info.status == BROKEN
    assert all(v.readable is False for v in info.variables)
    assert all("(a file is missing)" in v.problem for v in info.variables)
    assert len(info.variables) == 7 and len(info.problems) == 5     # four named, three counted
    assert info.problems[-1] == "3 more variables cannot be read"


def test_read_fills_nothing_for_a_missing_chunk(tmp_path):
    """Without OCDBT (older Orbax) a chunk is a file: a missing one is an error, not zeros."""
    import orbax.checkpoint as ocp

    item = tmp_path / "1" / "state"
    ocp.PyTreeCheckpointer(use_ocdbt=False, use_zarr3=False).save(
        os.path.abspath(item), {"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    info = orbax.inspect_step(str(tmp_path / "1"))
    assert same_bits(orbax.read_array(info.locations["w"]),
                     np.arange(6, dtype=np.float32).reshape(2, 3))
    (item / "w" / "0.0").unlink()
    with pytest.raises(orbax.OrbaxError, match=r"^w cannot be read \(a file is missing\)"):
        orbax.read_array(info.locations["w"])


# ---------------------------------------------------------------------------------------------
# Deleting steps

def test_deletion_plan_renames_first_and_orbax_lists_the_kept_steps(manager_copy):
    import orbax.checkpoint as ocp

    os.rename(manager_copy / "20", manager_copy / "30.orbax-checkpoint-tmp")  # a failed save
    shutil.copytree(manager_copy / "10", manager_copy / "20")
    steps = {s.name: s for s in orbax.list_steps(str(manager_copy))}
    plan = orbax.deletion_plan(steps["0"])
    assert plan.actions == [
        ("rename", str(manager_copy / "0"), str(manager_copy / "0.orbax-checkpoint-tmp-deleting")),
        ("remove_tree", str(manager_copy / "0.orbax-checkpoint-tmp-deleting"))]
    owned = sorted(str(p.relative_to(manager_copy)) for p in (manager_copy / "0").rglob("*")
                   if p.is_file())
    assert sorted(f.name for f in plan.files) == owned
    assert "0/_CHECKPOINT_METADATA" in owned and "0/state/manifest.ocdbt" in owned
    tmp_plan = orbax.deletion_plan(steps["30.orbax-checkpoint-tmp"])
    assert tmp_plan.actions == [("remove_tree", str(manager_copy / "30.orbax-checkpoint-tmp"))]
    for p in (plan, tmp_plan, orbax.deletion_plan(steps["10"])):
        orbax.execute_deletion(p)
    assert sorted(os.listdir(manager_copy)) == ["20"]
    assert orbax_steps(manager_copy) == [20]
    with ocp.CheckpointManager(os.path.abspath(manager_copy), item_names=("state",)) as mgr:
        assert mgr.latest_step() == 20
        restored = mgr.restore(20, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    assert same_bits(np.asarray(restored["state"]["big"]), manager_state(10)["big"])


def test_half_done_deletion_is_invisible_to_orbax(manager_copy):
    """A deletion stopped after its rename leaves a temporary directory Orbax does not list."""
    plan = orbax.deletion_plan(orbax.list_steps(str(manager_copy))[0])
    action, src, dst = plan.actions[0]
    os.rename(src, dst)
    assert orbax_steps(manager_copy) == [10, 20]
    assert [(s.step, s.committed) for s in orbax.list_steps(str(manager_copy))] == [
        (0, False), (10, True), (20, True)]


# ---------------------------------------------------------------------------------------------
# Hostile names and what is imported

def test_a_leaf_name_cannot_leave_its_item(tmp_path):
    step = tmp_path / "3"
    (step / "state").mkdir(parents=True)
    (step / "state" / "_METADATA").write_text(json.dumps({"tree_metadata": {"x": {
        "key_metadata": [{"key": "..", "key_type": 2}],
        "value_metadata": {"value_type": "np.ndarray"}}}, "use_ocdbt": False}))
    info = orbax.inspect_step(str(step))
    [v] = info.variables
    assert (v.name, v.readable, info.status) == ("..", False, BROKEN)
    assert v.problem == ".. cannot be read: its name '..' would lead out of its item's directory"


def test_inspecting_reads_metadata_not_data(manager_dir):
    """Shapes and dtypes come from the zarr metadata: inspecting a step reads a few kB (json,
    OCDBT manifest and root node), not its 60 kB data file; verifying reads that file."""
    out = _run_python(f"""
        import tensorstore
        from ckpt_gui.core import orbax as o

        def rchar():  # bytes read by this process
            with open('/proc/self/io') as f:
                return int(next(l for l in f if l.startswith('rchar')).split()[1])

        step = o.list_steps({str(manager_dir)!r})[-1]
        a = rchar(); info = o.inspect_step(step); b = rchar(); o.verify_step(info); c = rchar()
        print(b - a, c - b)
        """)
    inspected, verified = map(int, out.split())
    data = _data_file(manager_dir / "20").stat().st_size
    assert data > 50_000
    assert inspected < 5_000 and verified >= data


@pytest.mark.parametrize("what", ["fifo", "link to a device", "link to a directory"])
def test_files_that_are_no_regular_files_are_never_opened(manager_copy, what):
    """tensorstore opens its own files: a FIFO would block it forever."""
    manifest = manager_copy / "20" / "state" / "manifest.ocdbt"
    manifest.unlink()
    if what == "fifo":
        os.mkfifo(manifest)
    else:
        manifest.symlink_to("/dev/zero" if what == "link to a device" else "/tmp")
    out = _run_python(f"""
        from ckpt_gui.core import orbax as o
        info = o.inspect_step({str(manager_copy / '20')!r})
        print(info.status); print(info.problems[0]); print(info.variables[0].problem)
        try:
            o.read_array(info.locations['big'])
        except o.OrbaxError as e:
            print(e)
        """)
    kind = {"fifo": "a FIFO", "link to a device": "a character device",
            "link to a directory": "a directory"}[what]
    reason = f"20/state/manifest.ocdbt is not a regular file ({kind})"
    assert out.splitlines() == [BROKEN, reason, f"big cannot be read: {reason}",
                                       f"big cannot be read: {reason}"]


@pytest.mark.parametrize("metadata", ['{"tree_metadata": {"x": {"value_metadata": {}}}}',
                                      '{"tree_metadata": [1]}', '[', '{"tree_metadata": {"x": 3}}'])
def test_malformed_tree_metadata_is_one_problem(tmp_path, metadata):
    (tmp_path / "5" / "state").mkdir(parents=True)
    (tmp_path / "5" / "state" / "_METADATA").write_text(metadata)
    info = orbax.inspect_step(str(tmp_path / "5"))
    assert info.status == BROKEN and info.variables == []
    [problem] = info.problems
    assert problem.startswith("state: _METADATA ")
    assert any(w in problem for w in ("malformed", "holds no tree", "not valid JSON"))


def test_reading_imports_neither_jax_nor_tensorflow(manager_dir):
    out = _run_python(f"""
        import sys
        from ckpt_gui.core import orbax as o
        info = o.verify_step(o.inspect_step(o.list_steps({str(manager_dir)!r})[-1]))
        print(info.status, sorted(m for m in ('jax', 'tensorflow', 'orbax') if m in sys.modules))
        """)
    assert out.strip() == "ok []"
