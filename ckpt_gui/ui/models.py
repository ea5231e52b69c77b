"""Qt item models: thin adapters over the engine's plain data (no I/O, no TensorFlow)."""
from __future__ import annotations

import datetime as _dt

from PySide6.QtCore import (QAbstractItemModel, QAbstractTableModel, QModelIndex,
                            QSortFilterProxyModel, Qt)
from PySide6.QtGui import QBrush, QColor, QFont

from ..core import health
from ..core.model import BROKEN, OK, PARTIAL, CheckpointInfo, Run
from ..core.naming import natural_key
from ..core.vartree import TreeNode, VariableTree
from ..textfmt import counters_text, human_bytes, human_count, plural, safe_name  # noqa: F401 (panels import them)

SORT_ROLE = Qt.UserRole + 1
OBJECT_ROLE = Qt.UserRole + 2
FILTER_ROLE = Qt.UserRole + 3  # what the variables filter searches
STATUS_COLORS = {OK: QColor("#2e7d32"), PARTIAL: QColor("#ef6c00"), BROKEN: QColor("#c62828")}


# One light tint per training run (cycling), so that a run reads as one block of rows and a
# restart (ckpt-{N}#2) as another; unnumbered checkpoints (no run) keep the plain rows.
RUN_TINTS = tuple(QColor(c) for c in ("#e3f2fd", "#fff3e0", "#e8f5e9", "#f3e5f5", "#fffde7",
                                      "#e0f7fa"))


class CheckpointTableModel(QAbstractTableModel):
    COLUMNS = ("Name", "Number", "Counters", "Format", "Size", "Modified", "Variables", "Status",
               "Run")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[CheckpointInfo] = []
        self._runs: dict[str, Run] = {}
        self._run_index: dict[str, int] = {}     # run id -> its place in the scan's runs

    def set_checkpoints(self, checkpoints: list[CheckpointInfo], runs: list[Run] = ()) -> None:
        self.beginResetModel()
        self._rows = list(checkpoints)
        self._runs = {r.id: r for r in runs}
        self._run_index = {r.id: i for i, r in enumerate(runs)}
        self.endResetModel()

    def _run_text(self, c: CheckpointInfo) -> str:
        return safe_name(c.run) if c.run else "—"

    def checkpoint(self, row: int) -> CheckpointInfo | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, name: str) -> int:
        for i, c in enumerate(self._rows):
            if c.name == name:
                return i
        return -1

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        c = self.checkpoint(index.row())
        if c is None:
            return None
        col = self.COLUMNS[index.column()]
        if role == Qt.DisplayRole:
            return {
                "Name": safe_name(c.name) + ("  ★ latest" if c.is_latest else ""),
                "Number": "" if c.number is None else str(c.number),
                "Counters": counters_text(c),
                "Format": c.format,
                "Size": human_bytes(c.bytes),
                "Modified": _dt.datetime.fromtimestamp(c.mtime).strftime("%Y-%m-%d %H:%M")
                if c.mtime else "",
                "Variables": (f"{c.n_readable}/{c.n_variables}" if c.verified
                              else str(c.n_variables)),
                "Status": c.status,
                "Run": self._run_text(c),
            }[col]
        if role == Qt.BackgroundRole and c.run in self._run_index:
            return QBrush(RUN_TINTS[self._run_index[c.run] % len(RUN_TINTS)])
        if role == SORT_ROLE:
            return {
                "Name": natural_key(c.name), "Number": (c.number is None, c.number or 0),
                "Counters": c.training_progress() or -1, "Format": c.format, "Size": c.bytes,
                "Modified": c.mtime, "Variables": c.n_variables,
                "Status": (c.status != OK, c.status),
                "Run": (c.run is None, self._run_index.get(c.run, 0),
                        c.number if c.number is not None else 0, natural_key(c.name)),
            }[col]
        if role == Qt.ToolTipRole:
            lines = [f"{safe_name(c.name)} — {c.writer}", f"{plural(len(c.files), 'file')}: "
                     + ", ".join(safe_name(f.name) for f in c.files), self._run_tip(c)]
            lines += [f"⚠ {p}" for p in c.problems]
            if c.flagged():
                flags = health.summary(v.flags for v in c.variables)
                lines.append(f"⚑ {health.summary_text(flags)}")
            return "\n".join(lines)
        if role == Qt.ForegroundRole and col == "Status":
            return QBrush(STATUS_COLORS.get(c.status, QColor("black")))
        if role == Qt.FontRole and c.is_latest:
            f = QFont()
            f.setBold(True)
            return f
        if role == OBJECT_ROLE:
            return c
        if role == Qt.TextAlignmentRole and col in ("Number", "Size", "Variables"):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def _run_tip(self, c: CheckpointInfo) -> str:
        run = self._runs.get(c.run)
        if run is None:
            return "in no training run (no number in its name)"
        restart = (f", restarted after run {safe_name(run.restarted_from)}"
                   if run.restarted_from else "")
        return (f"run {safe_name(run.id)}: {plural(len(run.checkpoints), 'checkpoint')} of "
                f"{run.writer}{restart}")


def _flag_icon():
    from PySide6.QtWidgets import QApplication, QStyle

    return QApplication.style().standardIcon(QStyle.SP_MessageBoxWarning)


class PythonSortProxy(QSortFilterProxyModel):
    """Sorts by SORT_ROLE values compared as Python objects (natural-order tuples included)."""

    def lessThan(self, left, right):
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


def _shape_text(v) -> str:
    return "×".join(map(str, v.shape)) if v.shape else "scalar"


class VariableTreeModel(QAbstractItemModel):
    """Adapter over core.vartree: groups by object path, optimizer state and counters apart."""

    COLUMNS = ("Name", "Shape", "Dtype", "Size", "Role")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._tree: VariableTree | None = None
        self._root = TreeNode("")

    def set_tree(self, tree: VariableTree | None) -> None:
        self.beginResetModel()
        self._tree = tree
        self._root = tree.root if tree else TreeNode("")
        self.endResetModel()

    @property
    def tree(self) -> VariableTree | None:
        return self._tree

    def node(self, index: QModelIndex) -> TreeNode:
        return index.internalPointer() if index.isValid() else self._root

    # index, parent and rowCount run for every visible row each time the view lays itself out
    # (15,000 rows for a big model's tree): kept to a few attribute lookups each.
    def index(self, row, column, parent=QModelIndex()):
        children = (parent.internalPointer() if parent.isValid() else self._root).children
        if 0 <= row < len(children) and 0 <= column < 5:
            return self.createIndex(row, column, children[row])
        return QModelIndex()

    def parent(self, index):
        if not index.isValid():
            return QModelIndex()
        parent = index.internalPointer().parent
        if parent is None or parent is self._root:
            return QModelIndex()
        return self.createIndex(parent.index, 0, parent)

    def rowCount(self, parent=QModelIndex()):
        if not parent.isValid():
            return len(self._root.children)
        return len(parent.internalPointer().children) if parent.column() == 0 else 0

    def columnCount(self, parent=QModelIndex()):
        return len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        node: TreeNode = index.internalPointer()
        v = node.variable
        col = self.COLUMNS[index.column()]
        if role == Qt.DisplayRole:
            if col == "Name":
                return node.name
            if v is None:
                unit = "param" if node.path.split("/", 1)[0] == "Model" else "value"
                return {"Size": plural(node.params, unit)}.get(col, "")
            return {"Shape": _shape_text(v), "Dtype": v.dtype, "Size": human_bytes(v.bytes),
                    "Role": v.role}[col]
        if role == FILTER_ROLE:  # (a display name finds its variable, shown here in pieces)
            return node.name if v is None else "\n".join(
                (node.name, v.display_name, v.name, _shape_text(v), v.dtype, v.role))
        if role == Qt.ToolTipRole:
            if v is None:
                return f"{node.path}: {plural(node.params, 'value')}, {human_bytes(node.bytes)}"
            tip = [v.display_name, f"key: {v.name}", plural(v.size, "value")]
            if v.problem:
                tip.append(f"⚠ {v.problem}")
            tip += [f"⚑ {f.message}" for f in v.flags]
            return "\n".join(tip)
        if role == Qt.DecorationRole and col == "Name" and v is not None and v.flags:
            return _flag_icon()
        if role == Qt.ForegroundRole and v is not None and v.readable is False:
            return QBrush(STATUS_COLORS[BROKEN])
        if role == Qt.FontRole and v is None and node.parent is self._root:
            f = QFont()
            f.setBold(True)
            return f
        if role == OBJECT_ROLE:
            return node
        return None

    def index_of_variable(self, name: str) -> QModelIndex:
        for node in self._root.walk():
            if node.variable is not None and node.variable.name == name \
                    and not node.name.startswith("["):
                return self.createIndex(node.row(), 0, node)
        return QModelIndex()
