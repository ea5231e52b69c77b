"""The frame the right-hand tabs (Tensor, Across checkpoints, Diff) share: a column with a
title line, under which each tab puts its pyqtgraph widgets the first time it is shown
(pyqtgraph is imported then, not at start-up)."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class TitledTab(QWidget):
    def __init__(self, prompt: str, title_name: str, parent=None):
        """``prompt``: the title until there is something to show; ``title_name``: the title
        label's object name (style sheets and tests find it by it)."""
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel(prompt)
        self.title.setObjectName(title_name)
        self.title.setWordWrap(True)
        self._layout.addWidget(self.title)
