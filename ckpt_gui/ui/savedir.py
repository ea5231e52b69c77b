"""Where a save dialog opens: the folder the person last saved into, else Documents or home.

Never the working directory (a bare file name would put the dialog there: the repository, when
the app was started from it), nor the program's own folder, nor the checkpoint folder the
window watches (a file saved there shows up as a checkpoint, and the watcher rescans for it).
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

SETTINGS_KEY = "save/lastDirectory"
_PROGRAM = Path(__file__).resolve().parents[2]   # the checkout or site-packages holding ckpt_gui
_watched: set[str] = set()


def watch(folder: str | None) -> None:
    """The checkpoint folder now open (None: none): save dialogs stay out of it."""
    _watched.clear()
    if folder:
        _watched.add(os.path.realpath(folder))


def _settings(settings: QSettings | None) -> QSettings:
    return settings if settings is not None else QSettings("ckpt_gui", "ckpt_gui")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _allowed(folder: str) -> bool:
    real = os.path.realpath(folder)
    return os.path.isdir(real) and real not in _watched and not _inside(real, str(_PROGRAM))


def save_directory(settings: QSettings | None = None) -> str:
    """The folder a save dialog should open in."""
    remembered = _settings(settings).value(SETTINGS_KEY, "")
    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    for folder in (str(remembered or ""), documents, os.path.expanduser("~")):
        if folder and _allowed(folder):
            return folder
    return os.path.expanduser("~")


def save_path(file_name: str, settings: QSettings | None = None) -> str:
    """``file_name`` in the folder a save dialog should open in (its starting selection)."""
    return os.path.join(save_directory(settings), file_name)


def remember(path: str, settings: QSettings | None = None) -> None:
    """The person saved ``path``: the next save dialog opens in its folder."""
    _settings(settings).setValue(SETTINGS_KEY, os.path.dirname(os.path.abspath(path)))
