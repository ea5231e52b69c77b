"""Scan time of folders of very many files: it must grow linearly (issue 10).

    .venv/bin/python benchmarks/bench_many_files.py            # 50,000 two-file checkpoints
    .venv/bin/python benchmarks/bench_many_files.py --n 10000  # a quicker look

Makes n two-file checkpoints (copies of one small checkpoint written by TensorFlow) and, in
another folder, 2n stray files of no known kind (each sniffed for its magic bytes), then times
a scan of a fifth of each folder and of the whole. Prints microseconds per file for both sizes
and their ratio (goal: the whole costs at most 1.5x per file what the fifth costs: linear).
Times are the best of a few runs; data goes to a temporary folder, deleted afterwards.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def make_checkpoints(root: str, counts: list[int]) -> list[str]:
    """One folder per count, holding that many copies of one small TF checkpoint."""
    import numpy as np

    from ckpt_gui.core.tfrt import tf

    t = tf()
    src = os.path.join(root, "src")
    t.train.Checkpoint(w=t.Variable(np.ones((4, 4), np.float32)),
                       step=t.Variable(1, dtype=t.int64)).write(os.path.join(src, "ckpt"))
    index = open(os.path.join(src, "ckpt.index"), "rb").read()
    data = open(os.path.join(src, "ckpt.data-00000-of-00001"), "rb").read()
    folders = []
    for n in counts:
        d = os.path.join(root, f"checkpoints-{n}")
        os.mkdir(d)
        for i in range(n):
            with open(os.path.join(d, f"ckpt-{i}.index"), "wb") as f:
                f.write(index)
            with open(os.path.join(d, f"ckpt-{i}.data-00000-of-00001"), "wb") as f:
                f.write(data)
        folders.append(d)
    return folders


def make_strays(root: str, counts: list[int]) -> list[str]:
    folders = []
    for n in counts:
        d = os.path.join(root, f"strays-{n}")
        os.mkdir(d)
        for i in range(n):
            with open(os.path.join(d, f"notes{i}"), "wb") as f:
                f.write(b"not a checkpoint\n" * 8)
        folders.append(d)
    return folders


def best_scan(folder: str, repeat: int) -> float:
    from ckpt_gui.core import bundle, roles, scan_directory

    best = float("inf")
    for _ in range(repeat):
        bundle.clear_caches()
        roles.clear_caches()
        t = time.perf_counter()
        scan_directory(folder)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="checkpoints in the big folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scan, best taken")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="ckpt-many-")
    try:
        small, big = args.n // 5, args.n
        rows = []
        for kind, folders in (("two-file checkpoints", make_checkpoints(root, [small, big])),
                              ("stray files", make_strays(root, [2 * small, 2 * big]))):
            per_file = []
            for folder in folders:
                seconds = best_scan(folder, args.repeat)
                files = len(os.listdir(folder))
                per_file.append(seconds / files * 1e6)
                print(f"{kind}: {files} files scanned in {seconds:.2f} s "
                      f"({per_file[-1]:.1f} us per file)")
            rows.append((kind, per_file[1] / per_file[0]))
        print("\n=== summary ===")
        for kind, ratio in rows:
            print(f"{kind:22s} per-file cost, whole / fifth: {ratio:.2f}x  (goal <= 1.5x)  "
                  f"{'met' if ratio <= 1.5 else 'MISSED'}")
    finally:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
