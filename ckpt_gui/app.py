"""``ckpt-gui [PATH]`` and ``python -m ckpt_gui``: the window first, everything heavy after it."""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import time

# Shared libraries Qt's xcb platform plugin loads, and the Debian/Ubuntu packages that ship them.
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-randr.so.0": "libxcb-randr0",
}


def missing_xcb_packages(load=ctypes.CDLL) -> list[str]:
    """Packages to install before Qt's xcb plugin can start (empty when all libraries load)."""
    missing = []
    for soname, package in XCB_LIBRARIES.items():
        try:
            load(soname)
        except OSError:
            missing.append(package)
    return missing


def display_problem(environ=os.environ, platform=sys.platform, load=ctypes.CDLL) -> str | None:
    """A clear sentence when Qt would abort with a cryptic one, else None."""
    qpa = environ.get("QT_QPA_PLATFORM", "")
    if not platform.startswith("linux") or qpa not in ("", "xcb"):
        return None
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return ("No display: DISPLAY is not set. Run ckpt-gui inside a desktop session, or use "
                "the command-line twin `ckpt-inspect` on machines without a display.")
    if environ.get("WAYLAND_DISPLAY") and not qpa:
        return None
    packages = missing_xcb_packages(load)
    if packages:
        return ("Qt's X11 (xcb) platform plugin needs system libraries that are missing. "
                "Install them with:\n    sudo apt-get install -y " + " ".join(packages))
    return None


def install_desktop_entry(home: str | None = None, exec_command: str | None = None) -> tuple[str, str]:
    """Install the .desktop entry and icon for this user; return their paths."""
    from .paths import resource

    data = os.environ.get("XDG_DATA_HOME") if home is None else None
    data = data or os.path.join(home or os.path.expanduser("~"), ".local", "share")
    apps = os.path.join(data, "applications")
    icons = os.path.join(data, "icons", "hicolor", "scalable", "apps")
    os.makedirs(apps, exist_ok=True)
    os.makedirs(icons, exist_ok=True)
    icon_path = os.path.join(icons, "ckpt-gui.svg")
    shutil.copyfile(resource("ckpt-gui.svg"), icon_path)
    command = exec_command or shutil.which("ckpt-gui") or f"{sys.executable} -m ckpt_gui"
    text = resource("ckpt-gui.desktop").read_text()
    text = text.replace("Exec=ckpt-gui %f", f"Exec={command} %f")
    text = text.replace("Icon=ckpt-gui", f"Icon={icon_path}")
    desktop_path = os.path.join(apps, "ckpt-gui.desktop")
    with open(desktop_path, "w") as f:
        f.write(text)
    return desktop_path, icon_path


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="ckpt-gui",
                                     description="See inside TensorFlow/Keras checkpoint folders.")
    parser.add_argument("path", nargs="?", help="a checkpoint directory, any checkpoint file, or a URL of one "
                             "(s3://bucket/path, gs://bucket/path)")
    parser.add_argument("--demo", action="store_true",
                        help="create a small training folder (once, in the cache) and open it")
    parser.add_argument("--install-desktop", action="store_true",
                        help="install the desktop menu entry and icon for this user, then exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.install_desktop:
        desktop, icon = install_desktop_entry()
        print(f"Installed {desktop}\nIcon: {icon}")
        return 0
    problem = display_problem()
    if problem:
        print(f"ckpt-gui: {problem}", file=sys.stderr)
        return 2

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .paths import resource
    from .ui import gc_guard
    from .ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    gc_guard.install(app)   # Qt objects are never collected on a worker thread
    app.setApplicationName("ckpt_gui")
    app.setOrganizationName("ckpt_gui")
    app.setDesktopFileName("ckpt-gui")
    app.setWindowIcon(QIcon(str(resource("ckpt-gui.svg"))))
    window = MainWindow()
    window.show()

    report = os.environ.get("CKPT_GUI_STARTUP_REPORT")  # benchmarks/bench_launch.py, …

    def after_paint():
        if report:
            print(f"ckpt_gui-shown {time.time():.6f}", flush=True)
            if report == "quit":
                app.quit()
                return
            if report == "table":  # benchmarks/bench_first_table.py
                window.directory_loaded.connect(lambda *_: _report_table_painted(window, app))
        if args.demo:
            window.open_demo()
        elif args.path:
            window.open_path(args.path)
        window.after_first_paint()  # (once a folder's scan is under way: it waits for that)

    QTimer.singleShot(0, after_paint)
    return app.exec()


def _report_table_painted(window, app) -> None:
    """Print when the first scan's rows have been painted (and whether TensorFlow and pyqtgraph
    were imported by then), then quit: what benchmarks/bench_first_table.py times."""
    from .ui.main_window import after_next_paint

    def report():
        loaded = [m for m in ("tensorflow", "pyqtgraph") if m in sys.modules]
        print(f"ckpt_gui-table {time.time():.6f} {window.checkpoints.proxy.rowCount()} "
              f"{','.join(loaded) or '-'}", flush=True)
        app.quit()

    after_next_paint(window.checkpoints.table.viewport(), report)
