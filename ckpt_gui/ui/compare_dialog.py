"""Compare with…: which checkpoint to compare the open folder's checkpoint A with — another of
this folder's, or one in another folder (a training run continued elsewhere, a colleague's copy).

The other folder is scanned on the engine thread (a TaskSlot: the folder chosen last wins, a
folder that cannot be read says why in the dialog); the folder chosen last is remembered
(QSettings) and the next "Another Folder…" opens there."""
from __future__ import annotations

import html
import os

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QPushButton, QSizePolicy,
                               QVBoxLayout)

from ..core.model import CheckpointInfo, DirectoryScan
from ..textfmt import safe_name
from .tasks import TaskSlot

SETTINGS_KEY = "compare/lastDirectory"


def folder_scan_job(directory: str, *, state) -> DirectoryScan:
    from ..core.scan import scan_directory

    return scan_directory(directory, progress=state.progress, cancelled=state.cancelled)


def same_folder(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


class CompareDialog(QDialog):
    """Lists one folder's checkpoints (first the open one's, A left out) to pick B from."""

    chosen_here = Signal(str, str)              # A's and B's names, both in the open folder
    chosen_elsewhere = Signal(object, object)   # A, and B (CheckpointInfo) of another folder
    folder_listed = Signal(object)              # the DirectoryScan listed; None: unreadable

    def __init__(self, scan: DirectoryScan, name: str, settings: QSettings | None = None,
                 parent=None):
        super().__init__(parent)
        self.setWindowTitle("Compare with")
        self.scan = scan
        self.a = scan.checkpoint(name)
        self.settings = settings if settings is not None else QSettings("ckpt_gui", "ckpt_gui")
        self.listed: DirectoryScan | None = None   # the folder whose checkpoints are listed
        self.task = TaskSlot(self)
        self.task.finished.connect(self._list)
        self.task.failed.connect(self._on_failed)

        prompt = QLabel(f"Compare <b>A</b> {_escape(name)} with <b>B</b>:")
        self.folder = QLabel()
        self.folder.setObjectName("compareFolder")
        self.folder.setWordWrap(True)
        self.folder.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.this_folder_button = QPushButton("This Folder")
        self.this_folder_button.clicked.connect(lambda: self.open_folder(self.scan.directory))
        another = QPushButton("Another Folder…")
        another.setObjectName("anotherFolder")
        another.clicked.connect(self.choose_folder)
        self.message = QLabel()
        self.message.setObjectName("compareMessage")
        self.message.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("compareList")
        self.list.itemSelectionChanged.connect(self._enable_ok)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.compare_button = self.buttons.button(QDialogButtonBox.Ok)
        self.compare_button.setText("Compare")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.this_folder_button)
        folder_row.addWidget(another)
        layout = QVBoxLayout(self)
        layout.addWidget(prompt)
        layout.addLayout(folder_row)
        layout.addWidget(self.message)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.buttons)
        self.resize(520, 380)
        self._list(scan)

    # --- the folder -----------------------------------------------------------------------
    def choose_folder(self) -> None:
        """Ask for another folder (starting in the one chosen last, else next to this one)."""
        start = str(self.settings.value(SETTINGS_KEY, "") or "")
        if not os.path.isdir(start):
            start = os.path.dirname(self.scan.directory)
        path = QFileDialog.getExistingDirectory(
            self, "Compare with a Checkpoint in Another Folder", start)
        if path:
            self.open_folder(path)

    def open_folder(self, path: str) -> None:
        """List ``path``'s checkpoints: the open folder's at once, another's once scanned."""
        self.settings.setValue(SETTINGS_KEY, path)
        if same_folder(path, self.scan.directory):
            self.task.cancel()
            self._list(self.scan)
            return
        self.listed = None
        self.list.clear()
        self._show_folder(path)
        self.message.setText(f"Reading {_escape(path)} …")
        self._enable_ok()
        self.task.submit(folder_scan_job, path)

    def _list(self, scan: DirectoryScan) -> None:
        """Show ``scan``'s checkpoints, A left out, its latest selected (when that is A: the
        checkpoint saved just before it)."""
        self.listed = scan
        here = scan is self.scan
        everything = [c.name for c in scan.checkpoints]
        names = [n for n in everything if not (here and n == self.a.name)]
        self.list.clear()
        for n in names:
            item = QListWidgetItem(safe_name(n) + (" ★ latest" if n == scan.latest else ""))
            item.setData(Qt.UserRole, n)
            self.list.addItem(item)
        if names:
            before_a = everything.index(self.a.name) - 1 if here else len(names) - 1
            self.list.setCurrentRow(names.index(scan.latest) if scan.latest in names
                                    else max(before_a, 0))
        self._show_folder(scan.directory)
        self.message.setText(_what_is_missing(scan, here, names))
        self.message.setVisible(bool(self.message.text()))
        self._enable_ok()
        self.folder_listed.emit(scan)

    def _on_failed(self, message: str, _details: str) -> None:
        self.message.setText(f"Cannot read that folder: {_escape(message)}")
        self.folder_listed.emit(None)

    def _show_folder(self, path: str) -> None:
        here = same_folder(path, self.scan.directory)
        self.folder.setText(("This folder: " if here else "In ") + _escape(path))
        self.folder.setToolTip(safe_name(path))
        self.this_folder_button.setVisible(not here)
        self.message.show()

    # --- the choice -----------------------------------------------------------------------
    def choice(self) -> CheckpointInfo | None:
        item = self.list.currentItem()
        if self.listed is None or item is None or not item.isSelected():
            return None
        return self.listed.checkpoint(item.data(Qt.UserRole))

    def _enable_ok(self) -> None:
        self.compare_button.setEnabled(self.choice() is not None)

    def accept(self) -> None:
        b = self.choice()
        if b is None:
            return
        if self.listed is self.scan:
            self.chosen_here.emit(self.a.name, b.name)
        else:
            self.chosen_elsewhere.emit(self.a, b)
        super().accept()


def _what_is_missing(scan: DirectoryScan, here: bool, names: list[str]) -> str:
    """Why there is nothing to pick, if there is not (empty: nothing missing)."""
    if names:
        return ""
    if here and scan.checkpoints:
        return "No other checkpoint in this folder: choose another folder."
    text = f"No checkpoints in {_escape(scan.directory)}."
    if scan.subdirectories:
        text += " Subfolders with checkpoints: " + ", ".join(map(_escape, scan.subdirectories))
    return text


def _escape(text: str) -> str:
    return html.escape(safe_name(text), quote=False)
