"""Start-up: the display check, the desktop entry, the entry points."""
from __future__ import annotations

import shutil
import subprocess
import sys

from ckpt_gui import app
from ckpt_gui.paths import resource


def _loader(missing: set[str]):
    def load(soname):
        if soname in missing:
            raise OSError(f"{soname}: cannot open shared object file")
        return object()
    return load


def test_missing_xcb_libraries_are_named_as_packages():
    load = _loader({"libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"})
    problem = app.display_problem({"DISPLAY": ":0"}, "linux", load)
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in problem


def test_no_problem_when_libraries_load_or_qt_is_offscreen():
    assert app.display_problem({"DISPLAY": ":0"}, "linux", _loader(set())) is None
    everything_missing = _loader(set(app.XCB_LIBRARIES))
    assert app.display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", everything_missing) is None
    assert app.display_problem({}, "darwin", everything_missing) is None


def test_no_display_is_one_clear_sentence():
    problem = app.display_problem({}, "linux", _loader(set()))
    assert problem.startswith("No display: DISPLAY is not set.")
    out = subprocess.run([sys.executable, "-m", "ckpt_gui"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, timeout=60)
    assert out.returncode == 2
    assert "No display" in out.stderr and "Traceback" not in out.stderr


def test_desktop_entry_is_valid_and_installs_for_the_user(tmp_path):
    validator = shutil.which("desktop-file-validate")
    assert validator, "desktop-file-validate is installed by scripts/test.sh (desktop-file-utils)"
    shipped = subprocess.run([validator, str(resource("ckpt-gui.desktop"))],
                             capture_output=True, text=True)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    desktop, icon = app.install_desktop_entry(home=str(tmp_path), exec_command="/opt/x/ckpt-gui")
    assert desktop == str(tmp_path / ".local/share/applications/ckpt-gui.desktop")
    text = open(desktop).read()
    assert "Exec=/opt/x/ckpt-gui %f" in text and f"Icon={icon}" in text
    assert open(icon).read().startswith("<svg")
    installed = subprocess.run([validator, desktop], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr


def test_install_desktop_flag(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-m", "ckpt_gui", "--install-desktop"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "data/applications/ckpt-gui.desktop").is_file()
    assert (tmp_path / "data/icons/hicolor/scalable/apps/ckpt-gui.svg").is_file()


def test_entry_points_are_declared():
    import tomllib
    from pathlib import Path

    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["gui-scripts"]["ckpt-gui"] == "ckpt_gui.app:main"
    assert project["scripts"]["ckpt-inspect"] == "ckpt_gui.cli:main"
