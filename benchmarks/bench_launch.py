"""Launch to window shown, against `import tensorflow` alone and a bare PySide6 window, measured
in the same run (issue 4: under 1.0 s while importing TensorFlow takes 3-4 s).

    .venv/bin/python benchmarks/bench_launch.py [--runs 5] [--platform offscreen|xcb]

Each figure is the best of N fresh processes: wall time from spawning the interpreter to the
moment the window has been shown and its first events processed (the app prints a time stamp
then, when CKPT_GUI_STARTUP_REPORT is set).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

BARE_WINDOW = """
import time
from PySide6.QtWidgets import QApplication, QMainWindow
from PySide6.QtCore import QTimer
app = QApplication([])
w = QMainWindow(); w.resize(800, 600); w.show()
QTimer.singleShot(0, lambda: (print(f"ckpt_gui-shown {time.time():.6f}", flush=True), app.quit()))
app.exec()
"""
IMPORT_TF = "import time, tensorflow; print(f'ckpt_gui-shown {time.time():.6f}', flush=True)"


def timed(args: list[str], env: dict) -> float:
    start = time.time()
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    for line in out.stdout.splitlines():
        if line.startswith("ckpt_gui-shown "):
            return float(line.split()[1]) - start
    raise RuntimeError(f"no time stamp from {args}: {out.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    parser.add_argument("--directory", default=None, help="a checkpoint folder to open")
    a = parser.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM=a.platform, CKPT_GUI_STARTUP_REPORT="quit",
               TF_CPP_MIN_LOG_LEVEL="2")
    app_args = [sys.executable, "-m", "ckpt_gui"] + ([a.directory] if a.directory else [])
    cases = {
        "ckpt-gui launch to window shown": app_args,
        "bare PySide6 window (floor)": [sys.executable, "-c", BARE_WINDOW],
        "import tensorflow alone": [sys.executable, "-c", IMPORT_TF],
    }
    best = {}
    for name, args in cases.items():
        best[name] = min(timed(args, env) for _ in range(a.runs))
        print(f"{name:36s} {best[name]:6.2f} s  (best of {a.runs})", flush=True)
    launch = best["ckpt-gui launch to window shown"]
    print()
    print(f"launch / import tensorflow:  {launch / best['import tensorflow alone']:.2f}x")
    print(f"launch / bare window:        {launch / best['bare PySide6 window (floor)']:.2f}x")
    print(f"goal: launch under 1.0 s -> {'met' if launch < 1.0 else 'missed'} ({launch:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
