"""The checkpoints of the open directory: a sortable table, its problems, and subfolders."""
from __future__ import annotations

import html

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QFontMetrics, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QMenu, QSizePolicy, QStyle,
                               QTableView, QVBoxLayout, QWidget)

from ..core import storage
from ..core.model import OK, CheckpointInfo, DirectoryScan
from ..textfmt import plural, safe_name
from .models import OBJECT_ROLE, CheckpointTableModel, PythonSortProxy, human_bytes

NAME = CheckpointTableModel.COLUMNS.index("Name")
STATUS = CheckpointTableModel.COLUMNS.index("Status")
RUN = CheckpointTableModel.COLUMNS.index("Run")
NAME_SHARE = 0.45   # of the table's width the Name column takes at most (elided in the middle)
SIZED_FROM_ROWS = 200  # rows a column's width is measured on (a big folder: its first rows)
NOTES = ("waiting…", "verifying…")


class CheckpointRows(PythonSortProxy):
    """The table's rows as the view shows them: a checkpoint's Status says what is being done
    to it right now ("verifying…") and, once verified, how many of its tensors were read."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._notes: dict[str, str] = {}

    def set_note(self, name: str, note: str | None) -> None:
        """Show ``note`` as ``name``'s status until it is cleared (None)."""
        if note is None:
            self._notes.pop(name, None)
        else:
            self._notes[name] = note
        row = self.sourceModel().row_of(name)
        if row >= 0:
            index = self.mapFromSource(self.sourceModel().index(row, STATUS))
            self.dataChanged.emit(index, index)

    def clear_notes(self) -> None:
        for name in list(self._notes):
            self.set_note(name, None)

    def status_text(self, c: CheckpointInfo) -> str:
        if c.name in self._notes:
            return self._notes[c.name]
        flag = " ⚑" if c.flagged() else ""   # a health flag (its tooltip says which)
        if c.verified and c.n_readable is not None:
            return f"{c.status} · {c.n_readable}/{c.n_variables} read{flag}"
        return c.status + flag

    def status_texts(self) -> list[str]:
        model = self.sourceModel()
        return [self.status_text(model.checkpoint(r)) for r in range(model.rowCount())]

    def data(self, index, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and index.column() == STATUS:
            return self.status_text(super().data(index, OBJECT_ROLE))
        return super().data(index, role)


class CheckpointTable(QTableView):
    """Status always in view: next to the name, which gives up width (elided in the middle,
    whole in its tooltip) before any other column does."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("checkpointsTable")
        self.setTextElideMode(Qt.ElideMiddle)
        self.setWordWrap(False)
        self._name_width = 0   # what the names need, measured by fit_columns
        self._bold = QFont(self.font())
        self._bold.setBold(True)
        self._margin = 2 * (self.style().pixelMetric(QStyle.PM_FocusFrameHMargin, None, self)
                            + 1) + 6
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        header.setSectionsMovable(True)

    def setModel(self, model) -> None:
        super().setModel(model)
        header = self.horizontalHeader()
        header.moveSection(header.visualIndex(STATUS), header.visualIndex(NAME) + 1)
        header.moveSection(header.visualIndex(RUN), header.visualIndex(STATUS) + 1)

    def fit_columns(self) -> None:
        """Each column as wide as its texts (for new rows); the name at most NAME_SHARE of
        the table's width."""
        model = self.model()
        rows = range(min(model.rowCount(), SIZED_FROM_ROWS))
        for column in range(model.columnCount()):
            if column != STATUS:
                self._fit(column, [model.index(r, column).data() or "" for r in rows])
        self._name_width = self.columnWidth(NAME)
        self._limit_name()
        self.fit_status()

    def fit_status(self) -> None:
        """The Status column as wide as its widest text, notes ("verifying…") included (it
        changes with every verified row)."""
        self._fit(STATUS, [*self.model().status_texts(), *NOTES])

    def _fit(self, column: int, texts: list[str]) -> None:
        """Measured from the texts themselves: Qt's own measure asks the model for every
        role of every cell, a Python call each (a tenth of a second for 20 rows)."""
        bold = QFontMetrics(self._bold)  # (the latest row is bold)
        widest = max((bold.horizontalAdvance(t) for t in texts), default=0)
        header = self.horizontalHeader().sectionSizeFromContents(column).width()
        self.setColumnWidth(column, max(widest + self._margin, header))

    def _limit_name(self) -> None:
        limit = max(int(self.viewport().width() * NAME_SHARE), 120)
        self.setColumnWidth(NAME, min(self._name_width, limit))

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width() and self._name_width:
            self._limit_name()


class CheckpointsPanel(QWidget):
    checkpoint_selected = Signal(object)        # CheckpointInfo or None
    open_directory_requested = Signal(str)
    delete_requested = Signal(list)             # checkpoint names
    restore_requested = Signal(str)
    verify_requested = Signal(list)             # checkpoint names
    verify_all_requested = Signal()
    pair_selected = Signal(object, object)      # two CheckpointInfo, the earlier first
    compare_requested = Signal(str)             # "Compare with…" a checkpoint's name

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scan: DirectoryScan | None = None
        self.model = CheckpointTableModel(self)
        self.proxy = CheckpointRows(self)
        self.proxy.setSourceModel(self.model)

        self.table = CheckpointTable()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)

        self.verify_summary = QLabel()
        self.verify_summary.setObjectName("verifySummary")
        self.verify_summary.setWordWrap(True)
        self.verify_summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.verify_summary.hide()
        self.problems = QLabel()
        self.problems.setObjectName("directoryProblems")
        self.problems.setWordWrap(True)
        self.problems.setTextFormat(Qt.RichText)
        self.problems.setStyleSheet("QLabel { background: #fff3e0; color: #7a3e00; padding: 4px; }")
        self.problems.hide()
        self.subfolders = QLabel()
        self.subfolders.setObjectName("subfolders")
        self.subfolders.setTextFormat(Qt.RichText)
        self.subfolders.setWordWrap(True)
        # as wide as the panel, however long a name: never the panel as wide as a name
        self.subfolders.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.subfolders.linkActivated.connect(self._open_subfolder)
        self.subfolders.hide()
        self.details = QLabel()
        self.details.setObjectName("checkpointDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.verify_summary)
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
        """Show a scan; keep the selected checkpoints (or select ``select``) by name, else
        select the latest. ``checkpoint_selected`` is emitted when the current checkpoint is
        another object than before (another checkpoint, or the same one found anew)."""
        before = self.current()
        names = [select] if select else self.selected_names()
        rows_before = _names(self._scan)
        self._scan = scan
        self.table.selectionModel().blockSignals(True)
        self.model.set_checkpoints(scan.checkpoints if scan else [], scan.runs if scan else [])
        kept = [n for n in names if scan and scan.checkpoint(n)]
        if not kept and scan and scan.latest:
            kept = [scan.latest]
        self._select_names(kept)
        self.table.selectionModel().blockSignals(False)
        if _names(scan) != rows_before:
            self.table.fit_columns()
        else:  # the same rows, found anew or verified: only Status changes much
            self.table.fit_status()
        self._show_directory_problems(scan)
        now = self.current()
        self._show_details(now)
        if now is not before or now is None:
            self.checkpoint_selected.emit(now)

    def select(self, *names: str) -> bool:
        """Select these checkpoints (two: pair_selected compares them)."""
        return self._select_names(list(names))

    def _select_names(self, names: list[str]) -> bool:
        """Select these checkpoints' rows; the first one becomes the current row."""
        selection = QItemSelection()
        first = None
        for name in names:
            row = self.model.row_of(name)
            if row < 0:
                continue
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            selection.select(index, index)
            first = first or index
        if first is None:
            return False
        model = self.table.selectionModel()
        model.select(selection, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
        model.setCurrentIndex(first, QItemSelectionModel.NoUpdate)
        # (after the view has laid out rows it was just given: its scroll range is stale now)
        QTimer.singleShot(0, self._scroll_to_current)
        return True

    def _scroll_to_current(self) -> None:
        self.table.scrollTo(self.table.currentIndex())

    def current(self) -> CheckpointInfo | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        current = self.table.currentIndex()
        row = current if current.isValid() and self.table.selectionModel().isRowSelected(
            current.row()) else rows[0]
        return self.proxy.data(self.proxy.index(row.row(), 0), OBJECT_ROLE)

    def selected_names(self) -> list[str]:
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [self.proxy.data(self.proxy.index(r, 0), OBJECT_ROLE).name for r in rows]

    def show_verify_summary(self, text: str) -> None:
        """A line under the table that stays until the next scan (empty: hidden)."""
        self.verify_summary.setText(text)
        self.verify_summary.setVisible(bool(text))

    def _show_directory_problems(self, scan: DirectoryScan | None) -> None:
        lines = []
        if scan:
            lines += [f"State file: {p}" for p in scan.state_file.problems]
            if scan.orphans:
                lines.append("Orphan files (belong to no checkpoint): " + ", ".join(scan.orphans))
            lines += scan.problems
            if not scan.checkpoints:
                lines.append("No checkpoints in this directory.")
        self.problems.setText("<br>".join(_escape(t) for t in lines))
        self.problems.setVisible(bool(lines))
        self._show_subfolders(scan)

    def show_failure(self, message: str) -> None:
        """Why the folder could not be scanned, in one line under the (empty) table."""
        self.problems.setText(_escape(message))
        self.problems.setVisible(bool(message))

    def _show_subfolders(self, scan: DirectoryScan | None) -> None:
        """The parent folder (..) and the subfolders that hold checkpoints, as links."""
        if scan is None:
            self.subfolders.hide()
            return
        links = []
        if storage.parent(scan.directory):
            links.append('<a href="..">.. (parent folder)</a>')
        if scan.subdirectories:
            links.append("Subfolders with checkpoints: " + ", ".join(
                f'<a href="{_escape(d)}">{_unbroken(_escape(d))}</a>' for d in scan.subdirectories))
        self.subfolders.setText(" · ".join(links))
        self.subfolders.setVisible(bool(links))

    def _open_subfolder(self, name: str) -> None:
        if self._scan:
            folder = self._scan.directory
            path = storage.parent(folder) if name == ".." else storage.join(folder, name)
            if path:
                self.open_directory_requested.emit(path)

    def _on_selection(self, *_):
        c = self.current()
        self._show_details(c)
        self.checkpoint_selected.emit(c)
        names = self.selected_names()
        if len(names) == 2 and self._scan is not None:
            order = [x.name for x in self._scan.checkpoints]
            a, b = sorted(names, key=order.index)
            self.pair_selected.emit(self._scan.checkpoint(a), self._scan.checkpoint(b))

    def _show_details(self, c: CheckpointInfo | None) -> None:
        if c is None:
            self.details.clear()
            return
        text = [f"<b>{_escape(c.name)}</b> — {_escape(c.writer)}; "
                f"{plural(len(c.files), 'file')}, {human_bytes(c.bytes)}"]
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
        names = self.selected_names()
        menu = QMenu(self)
        menu.addAction(f"Verify {plural(len(names), 'Checkpoint')} (read every tensor)"
                       if len(names) > 1 else "Verify (read every tensor)",
                       lambda: self.verify_requested.emit(names))
        menu.addAction("Verify All", self.verify_all_requested.emit)
        menu.addAction("Restore into Model…", lambda: self.restore_requested.emit(c.name))
        menu.addAction("Compare with…", lambda: self.compare_requested.emit(c.name))
        menu.addSeparator()
        menu.addAction(self.delete_action)
        menu.exec(self.table.viewport().mapToGlobal(pos))


def _names(scan: DirectoryScan | None) -> list[str]:
    return [c.name for c in scan.checkpoints] if scan else []


def _unbroken(text: str) -> str:
    """Lines break between the links, not at the hyphens inside a folder's name."""
    return text.replace("-", "\u2011")


def _escape(text: str) -> str:
    """A name from disk as rich text: control characters escaped, markup characters too."""
    return html.escape(safe_name(text), quote=False)
