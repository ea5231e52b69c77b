"""The object graph (core.preview.TreeRow) in a read-only tree view."""
from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem

from ...core.preview import TreeRow


class GraphTree(QTreeWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("objectGraphTree")
        self.setHeaderLabels(["object", "detail"])
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)

    def show_tree(self, root: TreeRow) -> None:
        self.clear()
        self.addTopLevelItem(self._item(root))
        self.expandToDepth(2)
        self.resizeColumnToContents(0)

    def _item(self, row: TreeRow) -> QTreeWidgetItem:
        item = QTreeWidgetItem([row.label, row.detail])
        item.addChildren([self._item(child) for child in row.children])
        return item
