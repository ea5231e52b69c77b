"""Make the README's screenshot from the app itself: open a folder, select a checkpoint and a
variable, wait for the preview, grab the window.

    .venv/bin/python scripts/screenshot.py DIR CHECKPOINT VARIABLE OUT.png [WIDTHxHEIGHT]

VARIABLE is a key or a display name; the window is 1400x820 unless a size is given.
"""
import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main(directory, checkpoint, variable, out, size="1400x820"):
    app = QApplication([])
    from ckpt_gui.ui.main_window import MainWindow

    # Settings in a throwaway file: Qt saves them by renaming a new file over the old one, so
    # QSettings(os.devnull) run as root replaces /dev/null with a regular file.
    settings = QSettings(os.path.join(tempfile.mkdtemp(prefix="ckpt-gui-shot-"), "settings.ini"),
                         QSettings.IniFormat)
    w = MainWindow(settings=settings)
    w.resize(*map(int, size.split("x")))
    w.show()
    w.after_first_paint()

    def loaded(_scan):
        w.checkpoints.select(checkpoint)
        w.variables.select(variable)

    def grab():
        QTimer.singleShot(1500, lambda: (w.grab().save(out), app.quit()))

    def shot(preview):
        if variable in (preview.variable.name, preview.variable.display_name):
            grab()

    w.directory_loaded.connect(loaded)
    w.preview.preview_ready.connect(shot)
    w.preview.preview_failed.connect(lambda *_: grab())  # an unreadable tensor says why
    w.open_path(directory)
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    return 0 if os.path.exists(out) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
