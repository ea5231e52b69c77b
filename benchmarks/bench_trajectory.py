"""A run's history over many checkpoints: ``core.trajectory`` on N checkpoints of one
SIZE-element float32 variable, against TensorFlow's reader alone loading the same tensors,
measured in the same run (issue 13: within 1.3x; peak memory under 3x one tensor).

    .venv/bin/python benchmarks/bench_trajectory.py [--n 100] [--size 10000000] [--runs 2]

Each measurement runs in a fresh subprocess, which reports its time, its CPU seconds (all
threads: on a shared machine the wall ratio moves with the load) and its peak memory (VmHWM)
above what it held before the first read (imports, numba's compiled loops and the scan done). The two are
measured alternately, each the best of ``--runs``, so both read from a warm page cache. The
checkpoints are written to a temporary folder and deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
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
KEY = "w/.ATTRIBUTES/VARIABLE_VALUE"


def _vm(field: str) -> int:
    """VmHWM or VmRSS of this process, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Start VmHWM from the current resident size (Linux 4.0+: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def write(folder: str, n: int, size: int) -> None:
    import numpy as np

    from ckpt_gui.core.tfrt import tf as get_tf

    tf = get_tf()
    rng = np.random.default_rng(0)
    var = tf.Variable(rng.standard_normal(size, dtype=np.float32))
    ckpt = tf.train.Checkpoint(w=var)
    for i in range(1, n + 1):
        var.assign_add(tf.random.normal([size], stddev=0.01))
        ckpt.write(os.path.join(folder, f"ckpt-{i}"))


def child(kind: str, folder: str) -> None:
    """Read every checkpoint's tensor one way; print seconds and peak bytes as JSON."""
    from ckpt_gui.core import scan_directory
    from ckpt_gui.core.tfrt import tf as get_tf

    tf = get_tf()
    scan = scan_directory(folder)
    for c in scan.checkpoints:   # one run (the scan fills runs once that lands)
        c.run = c.run or "ckpt-{N}"
    prefixes = [c.path for c in sorted(scan.checkpoints, key=lambda c: c.number)]
    from ckpt_gui.core import kernels
    from ckpt_gui.core.trajectory import resolve, trajectory

    kernels.warm()   # numba's compiled loops loaded with the imports (the app does at start)
    identity = resolve(scan, KEY)
    _reset_peak()
    before = _vm("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "tf":
        for p in prefixes:
            value = tf.train.load_checkpoint(p).get_tensor(KEY)
            del value
    else:
        t = trajectory(scan, identity)
        assert len(t.points) == len(prefixes) and all(p.stats for p in t.points)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak": _vm("VmHWM") - before}))


def _measure(kind: str, folder: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, folder],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100, help="checkpoints")
    parser.add_argument("--size", type=int, default=10_000_000, help="elements of the variable")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        child(*a.child)
        return 0
    folder = tempfile.mkdtemp(prefix="ckpt_gui_bench_traj_")
    try:
        t0 = time.perf_counter()
        write(folder, a.n, a.size)
        print(f"wrote {a.n} checkpoints of {a.size:,} float32 in {time.perf_counter() - t0:.1f} s")
        best: dict[str, dict] = {}
        cpu: dict[str, float] = {}
        for _ in range(a.runs):
            for kind in ("tf", "ours"):
                m = _measure(kind, folder)
                if kind not in best or m["seconds"] < best[kind]["seconds"]:
                    best[kind] = m
                cpu[kind] = min(cpu.get(kind, m["cpu"]), m["cpu"])
        tensor = 4 * a.size
        tf_s, ours_s = best["tf"]["seconds"], best["ours"]["seconds"]
        print(f"TF reader alone:  {tf_s:7.2f} s  peak +{best['tf']['peak'] / 2**20:6.0f} MiB")
        print(f"trajectory:       {ours_s:7.2f} s  peak +{best['ours']['peak'] / 2**20:6.0f} MiB")
        print(f"CPU seconds: {cpu['ours']:.2f} vs {cpu['tf']:.2f}, "
              f"{cpu['ours'] / cpu['tf']:.2f}x (best of each)")
        print(f"time ratio {ours_s / tf_s:.2f}x (goal <= 1.3x); "
              f"peak memory {best['ours']['peak'] / tensor:.2f}x one tensor "
              f"({tensor / 2**20:.0f} MiB; goal < 3x)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
