"""The checkpoints of the open directory: a sortable table, its problems, and subfolders."""
from __future__ import annotations

import os

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QMenu, QTableView,
                               QVBoxLayout, QWidget)

from ..core.model import OK, CheckpointInfo, DirectoryScan
from .models import OBJECT_ROLE, CheckpointTableModel, PythonSortProxy, human_bytes


class CheckpointsPanel(QWidget):
    checkpoint_selected = Signal(object)        # CheckpointInfo or None
    open_directory_requested = Signal(str)
    delete_requested = Signal(list)             # checkpoint names
    restore_requested = Signal(str)
    verify_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scan: DirectoryScan | None = None
        self.model = CheckpointTableModel(self)
        self.proxy = PythonSortProxy(self)
        self.proxy.setSourceModel(self.model)

        self.table = QTableView()
        self.table.setObjectName("checkpointsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)

        self.problems = QLabel()
        self.problems.setObjectName("directoryProblems")
        self.problems.setWordWrap(True)
        self.problems.setTextFormat(Qt.RichText)
        self.problems.setStyleSheet("QLabel { background: #fff3e0; color: #7a3e00; padding: 4px; }")
        self.problems.hide()
        self.subfolders = QLabel()
        self.subfolders.setObjectName("subfolders")
        self.subfolders.setTextFormat(Qt.RichText)
        self.subfolders.linkActivated.connect(self._open_subfolder)
        self.subfolders.hide()
        self.details = QLabel()
        self.details.setObjectName("checkpointDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.problems)
        layout.addWidget(self.subfolders)
        layout.addWidget(self.details)

        self.delete_action = QAction("Delete Checkpoints…", self)
        self.delete_action.setShortcut(QKeySequence.Delete)
        self.delete_action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        self.delete_action.triggered.connect(self._request_delete)
        self.addAction(self.delete_action)

    # --- data -----------------------------------------------------------------------------
    def set_scan(self, scan: DirectoryScan | None, select: str | None = None) -> None:
        """Show a scan; keep (or set) the selected checkpoint by name."""
        previous = select or (self.current().name if self.current() else None)
        self._scan = scan
        self.model.set_checkpoints(scan.checkpoints if scan else [])
        self._show_directory_problems(scan)
        target = previous if scan and scan.checkpoint(previous or "") else (scan.latest if scan else None)
        if target:
            self.select(target)
        else:
            self.checkpoint_selected.emit(None)
            self.details.clear()

    def select(self, name: str) -> bool:
        row = self.model.row_of(name)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectionModel().select(
            index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)
        return True

    def current(self) -> CheckpointInfo | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        return self.proxy.data(rows[0], OBJECT_ROLE)

    def selected_names(self) -> list[str]:
        return [self.proxy.data(i, OBJECT_ROLE).name for i in self.table.selectionModel().selectedRows()]

    def _show_directory_problems(self, scan: DirectoryScan | None) -> None:
        lines = []
        if scan:
            lines += [f"State file: {p}" for p in scan.state_file.problems]
            if scan.orphans:
                lines.append("Orphan files (belong to no checkpoint): " + ", ".join(scan.orphans))
            if not scan.checkpoints:
                lines.append("No checkpoints in this directory.")
        self.problems.setText("<br>".join(_escape(t) for t in lines))
        self.problems.setVisible(bool(lines))
        subs = scan.subdirectories if scan else []
        self.subfolders.setText("Subfolders with checkpoints: " + ", ".join(
            f'<a href="{_escape(d)}">{_escape(d)}</a>' for d in subs))
        self.subfolders.setVisible(bool(subs))

    def _open_subfolder(self, name: str) -> None:
        if self._scan:
            self.open_directory_requested.emit(os.path.join(self._scan.directory, name))

    def _on_selection(self, *_):
        c = self.current()
        self._show_details(c)
        self.checkpoint_selected.emit(c)

    def _show_details(self, c: CheckpointInfo | None) -> None:
        if c is None:
            self.details.clear()
            return
        text = [f"<b>{_escape(c.name)}</b> — {_escape(c.writer)}; {len(c.files)} file(s), "
                f"{human_bytes(c.bytes)}"]
        if c.status != OK or c.problems:
            text += [f'<span style="color:#c62828">⚠ {_escape(p)}</span>' for p in c.problems]
        self.details.setText("<br>".join(text))

    # --- actions --------------------------------------------------------------------------
    def _request_delete(self):
        names = self.selected_names()
        if names:
            self.delete_requested.emit(names)

    def _context_menu(self, pos):
        c = self.current()
        if c is None:
            return
        menu = QMenu(self)
        menu.addAction("Verify (read every tensor)", lambda: self.verify_requested.emit(c.name))
        menu.addAction("Restore into Model…", lambda: self.restore_requested.emit(c.name))
        menu.addSeparator()
        menu.addAction(self.delete_action)
        menu.exec(self.table.viewport().mapToGlobal(pos))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
