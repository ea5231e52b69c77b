"""``ckpt-inspect show`` of a 100M-element bfloat16 tensor against TF's reader loading it and numpy
computing the same float32 statistics (min, max, mean, std, 50-bin histogram), measured in the
same run (issue 12: within 1.5x; peak memory within 1.5x the tensor's float32 size).

    .venv/bin/python benchmarks/bench_dtypes.py [--elements 100000000] [--runs 3]

Each side runs in its own fresh process (so neither inherits the other's memory), imports first,
then times ``runs`` repetitions (wall clock, and the CPU seconds of all its threads: on a
shared machine the wall ratio moves with the load); its peak memory is the growth of the
resident set's high-water mark (VmHWM, reset through /proc/self/clear_refs) over a run. The checkpoint is written by
TensorFlow to a temporary folder and deleted afterwards.
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
KEY = "big/.ATTRIBUTES/VARIABLE_VALUE"

WRITE = """
import sys, tensorflow as tf
n, prefix = int(sys.argv[1]), sys.argv[2]
cols = 1000
big = tf.Variable(tf.cast(tf.random.normal([n // cols, cols]), tf.bfloat16))
tf.train.Checkpoint(big=big).write(prefix)
"""

# the two sides; each defines run() and is timed by MEASURE
SHOW = """
import io, contextlib
from ckpt_gui import cli
from ckpt_gui.core import kernels, stats  # (imported before the clock starts, like TF on the
kernels.warm()                            # other side, with numba's compiled loops)

def run():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["show", DIRECTORY, "big", KEY, "--json"]) == 0
    assert json.loads(out.getvalue())["stats"]["min"] is not None
"""

BASELINE = """
import numpy as np, tensorflow as tf

def run():
    values = tf.train.load_checkpoint(PREFIX).get_tensor(KEY).astype(np.float32)
    lo, hi = values.min(), values.max()
    values.mean(), values.std(), np.histogram(values, 50, (lo, hi))
"""

MEASURE = """
import json, os, resource, sys, time
DIRECTORY, PREFIX, KEY, RUNS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
exec(sys.argv[5])

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

def cpu():
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime

times, cpus, peaks = [], [], []
for _ in range(RUNS):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark restarts from the current resident set
    before = status("VmRSS:")
    t0, c0 = time.perf_counter(), cpu()
    run()
    times.append(time.perf_counter() - t0)
    cpus.append(cpu() - c0)
    peaks.append(status("VmHWM:") - before)
print(json.dumps({"best": min(times), "cpu": min(cpus), "peak": max(peaks)}))
"""


def measure(side: str, directory: str, runs: int) -> dict:
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, directory, os.path.join(directory, "big"), KEY,
         str(runs), side], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(base_label: str, our_label: str, baseline: dict, ours: dict, runs: int,
           goal: float, digits: int = 3) -> None:
    """Both sides' best time and peak memory (measure's results), then the time ratio against
    ``goal`` and the CPU seconds (on a shared machine the wall ratio moves with the load)."""
    width = max(len(base_label), len(our_label)) + 1
    for label, m in ((base_label, baseline), (our_label, ours)):
        print(f"{label + ':':<{width}} {m['best']:.{digits}f} s, "
              f"peak +{m['peak'] / 2**20:.0f} MiB (best of {runs})")
    ratio = ours["best"] / baseline["best"]
    print(f"time ratio: {ratio:.2f}x   goal: within {goal}x -> "
          f"{'met' if ratio <= goal else 'missed'}   (CPU seconds: {ours['cpu']:.2f} vs "
          f"{baseline['cpu']:.2f}, {ours['cpu'] / baseline['cpu']:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--elements", type=int, default=100_000_000)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="ckpt_gui_bench_")
    try:
        subprocess.run([sys.executable, "-c", WRITE, str(a.elements), os.path.join(tmp, "big")],
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), check=True)
        baseline = measure(BASELINE, tmp, a.runs)
        show = measure(SHOW, tmp, a.runs)
        f32 = 4 * a.elements
        report("TF reader + numpy float32 statistics", "ckpt-inspect show --json", baseline,
               show, a.runs, 1.5)
        print(f"peak memory: {show['peak'] / f32:.2f}x the float32 size ({f32 / 2**20:.0f} MiB)"
              f"   goal: within 1.5x -> {'met' if show['peak'] <= 1.5 * f32 else 'missed'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
