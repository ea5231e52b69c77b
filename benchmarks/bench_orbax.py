"""Benchmark of scanning a folder of 100 Orbax steps (issue 12).

    .venv/bin/python benchmarks/bench_orbax.py [--steps 100] [--repeat 5]

The folder: one step written by keras.callbacks.OrbaxCheckpoint (tests/_orbax_writers.py, a
tiny model with Adam: 26 arrays, OCDBT + zarr3, model_config) copied to steps 0..N-1. Measured in
the same process, imports done first, best of several runs (the machine is shared):

- baseline (Orbax's own): ``CheckpointManager(dir).all_steps()`` and, per step,
  ``PyTreeCheckpointer().metadata(<step>/pytree)`` (the tree with shapes and dtypes);
- ckpt_gui: ``orbax.list_steps(dir)`` and ``orbax.inspect_step`` per step with one tensorstore
  context for the scan (variables with shapes, dtypes, roles, slots; counters, which reads the
  optimizer's iteration value; files and sizes; the model config);
- and what ``ckpt-inspect scan`` and the GUI run: ``scan_directory(dir)`` (the above, plus
  listing the folder, the formats' claims, display names and the latest checkpoint).

Goal: ckpt_gui / baseline <= 1.5 (the issue's "scan": scan_directory's figure).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def make_folder(tmp: str, n: int) -> str:
    seed = os.path.join(tmp, "seed")
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "_orbax_writers.py"), "keras",
                    seed], check=True, capture_output=True)
    folder = os.path.join(tmp, "run")
    for step in range(n):
        shutil.copytree(os.path.join(seed, "full", "2"), os.path.join(folder, str(step)))
    return folder


def orbax_scan(folder: str) -> int:
    import orbax.checkpoint as ocp

    leaves = 0
    checkpointer = ocp.PyTreeCheckpointer()
    with ocp.CheckpointManager(folder) as manager:
        for step in manager.all_steps():
            metadata = checkpointer.metadata(os.path.join(folder, str(step), "pytree"))
            tree = getattr(getattr(metadata, "item_metadata", None), "tree", metadata)
            leaves += len(_leaves(tree))
    return leaves


def _leaves(tree) -> list:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    if isinstance(tree, (list, tuple)):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


def ckpt_gui_scan(folder: str) -> int:
    from ckpt_gui.core import orbax

    context = orbax.new_context()
    infos = [orbax.inspect_step(step, context) for step in orbax.list_steps(folder)]
    assert all(info.status == "ok" for info in infos)
    return sum(len(info.variables) for info in infos)


def ckpt_gui_full_scan(folder: str) -> int:
    from ckpt_gui.core import scan_directory

    scan = scan_directory(folder)
    assert len(scan.checkpoints) and all(c.status == "ok" for c in scan.checkpoints)
    return sum(len(c.variables) for c in scan.checkpoints)


def best(fn, folder: str, repeat: int) -> tuple[float, int]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(folder)
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_orbax_")
    try:
        folder = make_folder(tmp, args.steps)
        t0 = time.perf_counter()
        import tensorstore  # noqa: F401
        from ckpt_gui.core import orbax  # noqa: F401
        t1 = time.perf_counter()
        import orbax.checkpoint  # noqa: F401
        t2 = time.perf_counter()
        print(f"import: ckpt_gui.core.orbax + tensorstore {t1 - t0:.2f} s, then "
              f"orbax.checkpoint (jax; tensorstore already loaded) {t2 - t1:.2f} s")
        ckpt_gui_scan(folder), orbax_scan(folder)  # warm both (page cache, lazy imports)
        ours, ours_n = best(ckpt_gui_scan, folder, args.repeat)
        theirs, theirs_n = best(orbax_scan, folder, args.repeat)
        full, full_n = best(ckpt_gui_full_scan, folder, args.repeat)
        assert ours_n == theirs_n == full_n, (ours_n, theirs_n, full_n)
        print(f"{args.steps} steps, {ours_n} arrays")
        print(f"baseline  Orbax all_steps + metadata per step  {theirs:.3f} s")
        print(f"ckpt_gui  list_steps + inspect_step per step    {ours:.3f} s")
        print(f"ckpt_gui  scan_directory                    {full:.3f} s")
        print(f"ratio ckpt_gui / Orbax = {ours / theirs:.2f} (steps), "
              f"{full / theirs:.2f} (scan_directory); goal <= 1.5")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
