"""Selecting a 100M-element tensor until its heatmap and histogram are drawn, against TF's reader
loading the tensor alone, measured in the same run (issue 4: within 2x).

    .venv/bin/python benchmarks/bench_preview.py [--elements 100000000] [--runs 3]

Also reports the longest stall of the GUI event loop while the preview loads (a 5 ms timer).
Runs offscreen; the checkpoint is written to a temporary folder and deleted afterwards.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--elements", type=int, default=100_000_000)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()

    from ckpt_gui.core.tfrt import tf as get_tf

    tf = get_tf()
    tmp = tempfile.mkdtemp(prefix="ckpt_gui_bench_")
    try:
        cols = 1000
        var = tf.Variable(tf.random.normal([a.elements // cols, cols]))
        tf.train.Checkpoint(big=var, small=tf.Variable([1.0, 2.0])).write(os.path.join(tmp, "big"))
        del var
        key = "big/.ATTRIBUTES/VARIABLE_VALUE"
        prefix = os.path.join(tmp, "big")

        def tf_read():
            t0 = time.perf_counter()
            tf.train.load_checkpoint(prefix).get_tensor(key)
            return time.perf_counter() - t0

        from PySide6.QtCore import QEventLoop, QSettings, QTimer
        from PySide6.QtWidgets import QApplication

        app = QApplication([])
        from ckpt_gui.ui.main_window import MainWindow

        w = MainWindow(settings=QSettings(os.path.join(tmp, "s.ini"), QSettings.IniFormat))
        w.resize(1400, 820)
        w.show()
        w.after_first_paint()
        loop = QEventLoop()
        w.directory_loaded.connect(lambda *_: loop.quit())
        w.open_path(tmp)
        loop.exec()

        def gui_preview():
            """Select 'small' first (so 'big' is a fresh selection), then time 'big'."""
            done = QEventLoop()
            w.preview.preview_ready.connect(lambda p: done.quit())
            w.variables.select("small/.ATTRIBUTES/VARIABLE_VALUE")
            done.exec()
            gaps, last = [], [time.perf_counter()]

            def tick():
                now = time.perf_counter()
                gaps.append(now - last[0])
                last[0] = now

            timer = QTimer()
            timer.setInterval(5)
            timer.timeout.connect(tick)
            timer.start()
            t0 = time.perf_counter()
            w.variables.select(key)
            done.exec()
            app.processEvents()  # the heatmap and histogram are painted
            w.preview.plot.repaint()
            w.preview.hist.repaint()
            elapsed = time.perf_counter() - t0 - w.preview.task._debounce.interval() / 1000
            timer.stop()
            w.preview.preview_ready.disconnect()
            return elapsed, max(gaps[1:] or [0])

        tf_times = [tf_read() for _ in range(a.runs)]
        gui = [gui_preview() for _ in range(a.runs)]
        tf_best = min(tf_times)
        gui_best = min(t for t, _ in gui)
        stall = max(s for _, s in gui)
        print("per run (s, stall):", [(round(t, 3), round(s * 1000)) for t, s in gui])
        print(f"TF reader loads the {a.elements:,}-element tensor: {tf_best:.3f} s (best of {a.runs})")
        print(f"select -> heatmap + histogram drawn:               {gui_best:.3f} s "
              f"(best of {a.runs}; the {w.preview.task._debounce.interval()} ms debounce excluded)")
        print(f"ratio: {gui_best / tf_best:.2f}x   goal: within 2x -> "
              f"{'met' if gui_best / tf_best <= 2 else 'missed'}")
        print(f"longest event-loop stall while loading: {1000 * stall:.0f} ms")
        w.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
