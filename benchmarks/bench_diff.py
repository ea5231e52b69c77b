"""Benchmark of ``diff`` (issue 13): two checkpoints of about 1 GB each.

    .venv/bin/python benchmarks/bench_diff.py              # 1 GB each, a few minutes
    .venv/bin/python benchmarks/bench_diff.py --gb 0.25    # a quick look

Two TF bundles written by tf.train.Checkpoint, each holding ``--tensors`` float32 variables
(``--gb`` in all); B is A with half of the tensors moved by a small step (the other half the
same: both paths of the comparison are timed). Measured in one fresh subprocess, in turns:

- baseline: TensorFlow's reader (``tf.train.load_checkpoint``) reading every tensor of both
  checkpoints, one at a time;
- diff: ``core.diff.diff_checkpoints`` (pairing, reading both through the engine, comparing);
- for the record, the engine's reads alone (what diff costs beyond them is the comparison).

Goals: diff within 1.3x the baseline's time; peak memory (VmHWM over the run, reset through
/proc/self/clear_refs) bounded by the largest tensor pair (plus the comparison's chunk buffers,
a few MiB). Times (wall clock, and CPU seconds of all threads) are the best of ``--runs`` (the
machine is shared); the data is written into a temporary folder and deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from ckpt_gui.core.diff import CHUNK  # noqa: E402

BUFFERS = 4 * 3 * CHUNK * 8   # three float64 chunks per comparing thread, up to four threads

WRITE = r"""
import sys
import numpy as np
import tensorflow as tf
directory, elements, tensors = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
each = elements // tensors
variables = [tf.Variable(rng.standard_normal(each, dtype=np.float32), name=f"w{i}")
             for i in range(tensors)]
ckpt = tf.train.Checkpoint(**{f"w{i}": v for i, v in enumerate(variables)})
ckpt.write(directory + "/a")
for i, v in enumerate(variables):
    if i % 2:
        v.assign_add(tf.fill(v.shape, 1e-3))
ckpt.write(directory + "/b")
"""

MEASURE = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
from ckpt_gui.core import scan_directory
from ckpt_gui.core.diff import diff_checkpoints, read_variable
directory, runs = sys.argv[1], int(sys.argv[2])


def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def baseline():
    for prefix in ("a", "b"):
        reader = tf.train.load_checkpoint(f"{directory}/{prefix}")
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            del value


def engine_reads():
    scan = scan_directory(directory)
    for c in scan.checkpoints:
        for v in c.variables:
            value = read_variable(c, v)
            del value


def diff():
    scan = scan_directory(directory)
    result = diff_checkpoints(scan.checkpoint("a"), scan.checkpoint("b"))
    assert not result.cancelled
    return result


def measured(fn):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # the high-water mark restarts from the current resident set
    before = status("VmRSS:")
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - t0, time.process_time() - c0, status("VmHWM:") - before,
            out)


diff()   # warm: imports, page cache
baseline()
sides = (("baseline", baseline), ("engine_reads", engine_reads), ("diff", diff))
times = {side: [] for side, _ in sides}
cpus = {side: [] for side, _ in sides}
peaks = {side: [] for side, _ in sides}
counts = None
for _ in range(runs):
    for side, fn in sides:
        t, cpu, peak, out = measured(fn)
        times[side].append(t)
        cpus[side].append(cpu)
        peaks[side].append(peak)
        if side == "diff":
            counts = out.counts()
print(json.dumps({"times": times, "cpus": cpus, "peaks": peaks, "counts": counts}))
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0, help="size of each checkpoint")
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    elements = int(a.gb * 2**30) // 4
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    tmp = tempfile.mkdtemp(prefix="ckpt_gui_bench_diff_")
    try:
        subprocess.run([sys.executable, "-c", WRITE, tmp, str(elements), str(a.tensors)],
                       env=env, check=True)
        out = subprocess.run([sys.executable, "-c", MEASURE, tmp, str(a.runs)], env=env,
                             check=True, capture_output=True, text=True).stdout
        m = json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base, diff = min(m["times"]["baseline"]), min(m["times"]["diff"])
    pair = 2 * 4 * (elements // a.tensors)
    peak = max(m["peaks"]["diff"])
    print(f"two checkpoints of {a.gb:g} GB, {a.tensors} float32 tensors each; diff found "
          f"{m['counts']}")
    print(f"TF reader, both checkpoints: {base:.2f} s, peak +{max(m['peaks']['baseline']) / 2**20:.0f}"
          f" MiB (best of {a.runs})")
    print(f"engine reads, both:          {min(m['times']['engine_reads']):.2f} s")
    print(f"diff_checkpoints:            {diff:.2f} s, peak +{peak / 2**20:.0f} MiB")
    ratio = diff / base
    cpu_base, cpu_diff = min(m["cpus"]["baseline"]), min(m["cpus"]["diff"])
    print(f"time ratio: {ratio:.2f}x   goal: within 1.3x -> {'met' if ratio <= 1.3 else 'missed'}"
          f"   (CPU seconds: {cpu_diff:.2f} vs {cpu_base:.2f}, {cpu_diff / cpu_base:.2f}x)")
    bound = pair + BUFFERS
    print(f"peak memory: {peak / pair:.2f}x the largest tensor pair ({pair / 2**20:.0f} MiB)   "
          f"goal: the pair + the comparison's buffers ({BUFFERS / 2**20:.0f} MiB) -> "
          f"{'met' if peak <= bound else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
