"""Benchmark of prune planning on big folders (issue 10: 10,000 checkpoints took 27 s to plan).

    .venv/bin/python benchmarks/bench_prune.py            # 10,000 and 50,000 checkpoints
    .venv/bin/python benchmarks/bench_prune.py --small    # 2,000 and 10,000

Each folder holds N V2 checkpoints of two files each (hard links to one checkpoint written by
tf.train.Checkpoint) and a state file listing all of them. Measured in the same run, best of
several (the machine is shared):

- baseline: ``os.listdir`` and grouping the names by checkpoint prefix into a dict, the least any
  planner has to do;
- scan: ``scan_directory`` (what the CLI and the GUI have before planning);
- plan: ``plan_prune(scan, policy=Policy(keep_last=3))``: the plan, the files with their sizes
  (one lstat each), the state file afterwards;
- dry run: ``ckpt-inspect prune DIR --keep-last 3 --dry-run --json`` in-process, output discarded
  (scan + plan + report).

Planning is linear: plan / baseline stays flat from 10,000 to 50,000 checkpoints.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = ".data-00000-of-00001"


def make_folder(seed: str, directory: str, n: int) -> None:
    from ckpt_gui.core import statefile

    os.makedirs(directory)
    names = [f"ckpt-{i}" for i in range(1, n + 1)]
    for name in names:
        os.link(seed + ".index", os.path.join(directory, name + ".index"))
        os.link(seed + DATA, os.path.join(directory, name + DATA))
    statefile.write_state_file(directory, statefile.format_state(names[-1], names))


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def baseline(directory: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in os.listdir(directory):
        groups.setdefault(name.split(".", 1)[0], []).append(name)
    return groups


def measure(directory: str, n: int, repeat: int) -> None:
    from ckpt_gui import cli
    from ckpt_gui.core import scan_directory
    from ckpt_gui.core.prune import Policy, plan_prune

    scan = scan_directory(directory)
    plan = plan_prune(scan, policy=Policy(keep_last=3))
    assert len(plan.deleted) == n - 3 and len(plan.files) == 2 * (n - 3)

    def dry_run():
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["prune", directory, "--keep-last", "3", "--dry-run", "--json"]) == 0

    t_base = _best(lambda: baseline(directory), repeat)
    t_scan = _best(lambda: scan_directory(directory), repeat)
    t_plan = _best(lambda: plan_prune(scan, policy=Policy(keep_last=3)), repeat)
    t_dry = _best(dry_run, max(1, repeat - 1))
    print(f"{n:>7,} checkpoints ({2 * n:,} files): baseline {t_base * 1e3:7.0f} ms   "
          f"scan {t_scan:6.2f} s   plan {t_plan:6.2f} s ({t_plan / t_base:5.1f}x baseline, "
          f"{t_plan / t_scan:4.2f}x scan)   dry run {t_dry:6.2f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = (2_000, 10_000) if args.small else (10_000, 50_000)
    import tensorflow as tf

    root = tempfile.mkdtemp(prefix="bench_prune.")
    try:
        seed = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])).write(os.path.join(root, "seed"))
        for n in sizes:
            folder = os.path.join(root, f"n{n}")
            make_folder(seed, folder, n)
            measure(folder, n, args.repeat)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
