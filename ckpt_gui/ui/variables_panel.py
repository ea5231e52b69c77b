"""The variables of the selected checkpoint as the model's object tree, with a filter."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (QHeaderView, QLabel, QLineEdit, QStackedWidget,
                               QStyledItemDelegate, QTreeView, QVBoxLayout, QWidget)

from ..core.model import CheckpointInfo
from ..core.vartree import MODEL, VariableTree, build_tree
from .models import FILTER_ROLE, OBJECT_ROLE, VariableTreeModel, human_count
from .tasks import EngineThread, TaskSlot

# From this many variables the tree is built in the worker (about 10 ms per 1,000 variables
# here): the window stays responsive while a big model's checkpoint is selected.
BACKGROUND_FROM = 2000


def tree_job(ckpt: CheckpointInfo, *, state) -> tuple[CheckpointInfo, VariableTree]:
    return ckpt, build_tree(ckpt)


SHOWN = 2000  # rows the model branch opens to at most (see VariablesPanel._expand_defaults)


def _depth_to_show(node, limit: int, deepest: int = 2) -> int:
    """How deep (up to ``deepest``) ``node`` can be expanded with at most ``limit`` rows
    shown below it."""
    shown, level = 0, node.children
    for depth in range(deepest + 1):
        shown += len(level)
        if shown > limit:
            return max(depth - 1, 0)
        level = [c for n in level for c in n.children]
    return deepest


_tree_thread: EngineThread | None = None


def tree_thread() -> EngineThread:
    """Trees are built on a thread of their own: no TensorFlow there, and a tree need not wait
    behind a long verification or tensor read on the engine thread."""
    global _tree_thread
    if _tree_thread is None:
        _tree_thread = EngineThread("ckpt_gui-trees")
    return _tree_thread



class FilterEdit(QLineEdit):
    """A filter box that Esc clears while it holds text; an empty box leaves Esc to the
    window (which cancels a running verification or scan)."""

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.ShortcutOverride and e.key() == Qt.Key_Escape and self.text():
            e.accept()  # the key comes here instead of triggering the window's Esc shortcut
            return True
        return super().event(e)

    def keyPressEvent(self, e) -> None:
        if e.key() == Qt.Key_Escape and self.text():
            self.clear()
            return
        super().keyPressEvent(e)

class ElideRight(QStyledItemDelegate):
    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.ElideRight


class VariablesPanel(QWidget):
    variable_selected = Signal(object)   # VariableInfo or None

    def __init__(self, parent=None):
        super().__init__(parent)
        self._checkpoint: CheckpointInfo | None = None
        self._select: str | None = None  # what to select once a tree built in the worker lands
        self.task = TaskSlot(self, executor=tree_thread())
        self.task.finished.connect(self._on_tree)
        self.task.failed.connect(lambda message, _details: self.totals.setText(
            f"The variables cannot be listed: {message}"))
        self.model = VariableTreeModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        # Each tree is a new model (set_tree resets it), and filtering is asked for: no dynamic
        # re-filtering, and no recursive filtering while no filter is typed (both cost a big
        # model's tree a tenth of a second per selection).
        self.proxy.setDynamicSortFilter(False)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.proxy.setFilterRole(FILTER_ROLE)  # name, display name, key, shape, dtype, role
        self.proxy.setFilterKeyColumn(0)

        self.filter = FilterEdit()
        self.filter.setObjectName("variableFilter")
        self.filter.setPlaceholderText("Filter variables (name, shape, dtype, role)…  Ctrl+F")
        self.filter.setClearButtonEnabled(True)
        self._filter_timer = QTimer(self)  # typing fast re-filters once, not per keystroke
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(150)
        self._filter_timer.timeout.connect(lambda: self._apply_filter(self.filter.text()))
        self.filter.textChanged.connect(lambda *_: self._filter_timer.start())

        self.tree = QTreeView()
        self.tree.setObjectName("variablesTree")
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIndentation(14)
        self.tree.setTextElideMode(Qt.ElideMiddle)  # a long name keeps its start and its end
        self._elide_right = ElideRight(self.tree)  # (shape, dtype, size, role: their start)
        for column in range(1, self.model.columnCount()):
            self.tree.setItemDelegateForColumn(column, self._elide_right)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.Stretch)  # the names get what is left
        for column in range(1, self.model.columnCount()):
            header.setSectionResizeMode(column, QHeaderView.Interactive)
        self.tree.selectionModel().currentChanged.connect(self._on_current)
        self._content_widths = [header.sectionSize(c) for c in range(header.count())]
        self.tree.viewport().installEventFilter(self)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self._fit_columns)

        self.no_match = QLabel()
        self.no_match.setObjectName("noMatch")
        self.no_match.setAlignment(Qt.AlignCenter)
        self.no_match.setWordWrap(True)
        self.stack = QStackedWidget()  # the tree, or the message that nothing matches
        self.stack.addWidget(self.tree)
        self.stack.addWidget(self.no_match)

        self.totals = QLabel()
        self.totals.setObjectName("parameterTotals")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.totals)

    def set_checkpoint(self, ckpt: CheckpointInfo | None, select: str | None = None) -> None:
        """Show ``ckpt``'s variables, selecting ``select`` (else the one selected before, else
        the first weight). A big checkpoint's tree is built in the worker: until it lands the
        tree is empty and says so, and nothing is selected."""
        same = (ckpt is not None and self._checkpoint is not None
                and ckpt.name == self._checkpoint.name)
        previous = select or (self.current().name if same and self.current() else None)
        self._checkpoint = ckpt
        if ckpt is not None and ckpt.n_variables >= BACKGROUND_FROM:
            self._select = previous
            self.model.set_tree(None)
            self.totals.setText(f"Listing {ckpt.n_variables:,} variables…")
            self.task.submit(tree_job, ckpt)
            return
        self.task.cancel()
        self._show(ckpt, build_tree(ckpt) if ckpt else None, previous)

    def _on_tree(self, result: tuple[CheckpointInfo, VariableTree]) -> None:
        ckpt, tree = result
        if ckpt is self._checkpoint:  # (a newer request cancels the task; this is a guard)
            self._show(ckpt, tree, self._select)

    def _show(self, ckpt: CheckpointInfo | None, tree: VariableTree | None,
              previous: str | None) -> None:
        self.model.set_tree(tree)
        self.stack.setCurrentWidget(self.tree)
        if tree is None:
            self.totals.clear()
            self.variable_selected.emit(None)
            return
        self.totals.setText(
            f"{human_count(tree.model_params)} model parameters · "
            f"{human_count(tree.optimizer_params)} optimizer values · {ckpt.n_variables} variables")
        if self.filter.text():
            self._apply_filter(self.filter.text())
        else:
            self._expand_defaults()
            self._fit_columns_soon()
        if previous and self.select(previous):
            return
        first = next((n for n in tree.root.walk() if n.variable is not None
                      and n.variable.role == "weight"), None)
        # the first weight, shown in the tree unless that unfolds thousands of rows
        if first is not None and self.select(first.variable.name,
                                             reveal=len(first.parent.parent.children) <= SHOWN
                                             if first.parent.parent else True):
            return
        self.variable_selected.emit(None)

    def _expand_defaults(self):
        """Open the model branch down to its layers, as far as that shows at most SHOWN rows
        (Qt lays out every row shown through this Python model: 15,000 rows of a big model take
        a quarter of a second); other sections stay folded."""
        for row in range(self.proxy.rowCount()):
            section = self.proxy.index(row, 0)
            if self.filter.text():
                self.tree.expandRecursively(section, -1)
            elif self.proxy.data(section) == MODEL:
                self.tree.expandRecursively(section, _depth_to_show(
                    self.proxy.data(section, OBJECT_ROLE), SHOWN))

    def select(self, name: str, reveal: bool = True) -> bool:
        """Make variable ``name`` the current one; ``reveal``: open its folded parents and
        scroll to it."""
        source = self.model.index_of_variable(name)
        if not source.isValid():
            return False
        index = self.proxy.mapFromSource(source)
        if not index.isValid():
            return False
        self.tree.setCurrentIndex(index)
        if reveal:
            self.tree.scrollTo(index)
        return True

    def current(self):
        index = self.tree.currentIndex()
        node = self.proxy.data(index, OBJECT_ROLE) if index.isValid() else None
        return node.variable if node is not None else None

    def _on_current(self, current, _previous):
        node = self.proxy.data(current, OBJECT_ROLE) if current.isValid() else None
        if node is not None and node.variable is not None:
            self.variable_selected.emit(node.variable)

    def _fit_columns_soon(self) -> None:
        """Fit the columns once the tree has laid out the rows just expanded (Qt lays them out
        on its next turn of the event loop; measured now, only the group rows would count)."""
        self._fit_timer.start()

    def _fit_columns(self) -> None:
        """Shape, dtype, size and role as wide as what they show (of the rows laid out), the
        names the rest: long ones elided in the middle, whole in their tooltip."""
        self._content_widths = [self.tree.sizeHintForColumn(c) + 12  # (the cell's margins)
                                for c in range(self.model.columnCount())]
        self._share_width()

    def _share_width(self) -> None:
        """The other columns at their content widths; when that would leave the names less
        than they need, up to 40% of the tree's width, size and role give way first (their text elided at the
        end, down to a byte size's width), then shape and dtype."""
        name, *widths = self._content_widths
        width = self.tree.viewport().width()
        name += 2 * self.tree.indentation()  # (room for the branch marks, measured or not)
        excess = sum(widths) - (width - min(name, width * 2 // 5))
        floor = self.tree.fontMetrics().horizontalAdvance("000.0 KB") + 12
        for i in (2, 3, 0, 1):  # size, role, shape, dtype
            give = max(min(excess, widths[i] - (floor if i in (2, 3) else 24)), 0)
            widths[i] -= give
            excess -= give
        for column, width in enumerate(widths, start=1):
            self.tree.header().resizeSection(column, width)

    def eventFilter(self, watched, event) -> bool:
        # the tree's viewport, once it has its new size (the panel's own resizeEvent comes
        # before its children are laid out, with the viewport's old width)
        if event.type() == QEvent.Resize:
            self._share_width()
        return False

    def _apply_filter(self, text: str):
        self.proxy.setRecursiveFilteringEnabled(bool(text))  # (a match shows its parents)
        self.proxy.setFilterFixedString(text)
        if text:
            self.tree.expandAll()
        else:
            self._expand_defaults()
        nothing = bool(text) and self.model.tree is not None and self.proxy.rowCount() == 0
        self.no_match.setText(f"No variable matches “{text}”.\nEsc clears the filter."
                              if nothing else "")
        self.stack.setCurrentWidget(self.no_match if nothing else self.tree)
        self._fit_columns_soon()
