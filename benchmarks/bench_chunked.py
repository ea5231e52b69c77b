"""A tensor larger than memory should be: previewed (statistics, histogram, heatmap) through
chunked reads, against TensorFlow's ``get_tensor`` of it alone, measured in the same run (issue
12: time within 1.3x; peak memory under 0.25x the tensor).

    .venv/bin/python benchmarks/bench_chunked.py [--gb 3] [--runs 2]

The checkpoint (one float32 variable of ``--gb`` GiB, 4096 columns) is written by
tf.train.Checkpoint to a temporary folder and deleted afterwards. Each side runs in its own
fresh process, imports first, then times ``runs`` repetitions (the data file is in the page
cache for both: it was just written); its peak memory is the growth of the resident set's
high-water mark over a run (bench_dtypes.measure), numba's compiled loops loaded before.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from bench_dtypes import measure, report

WRITE = """
import sys, tensorflow as tf
rows, prefix = int(sys.argv[1]), sys.argv[2]
big = tf.Variable(tf.random.normal([rows, 4096]))
tf.train.Checkpoint(big=big).write(prefix)
"""

PREVIEW = """
from ckpt_gui.core import chunked, kernels, scan_directory
kernels.warm()   # numba's compiled loops loaded with the imports (the app does at start)

def run():
    ckpt = scan_directory(DIRECTORY).checkpoints[0]
    p = chunked.stream_preview(ckpt, ckpt.variable(KEY))
    assert p.streamed and p.stats.min is not None and p.display.shape == (1024, 1024)
"""

BASELINE = """
import tensorflow as tf

def run():
    tf.train.load_checkpoint(PREFIX).get_tensor(KEY)
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=2)
    a = parser.parse_args()
    rows = int(a.gb * 2**30) // (4 * 4096)
    size = rows * 4096 * 4
    tmp = tempfile.mkdtemp(prefix="ckpt_gui_bench_")
    try:
        subprocess.run([sys.executable, "-c", WRITE, str(rows), os.path.join(tmp, "big")],
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), check=True)
        baseline = measure(BASELINE, tmp, a.runs)
        ours = measure(PREVIEW, tmp, a.runs)
        print(f"tensor: float32 [{rows}, 4096], {size / 2**30:.2f} GiB")
        report("TF get_tensor alone", "chunked preview (stats, histogram, heatmap)", baseline,
               ours, a.runs, 1.3, digits=2)
        print(f"peak memory: {ours['peak'] / size:.3f}x the tensor   goal: under 0.25x -> "
              f"{'met' if ours['peak'] < 0.25 * size else 'missed'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
