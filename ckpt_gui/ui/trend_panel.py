"""The selected variable across the directory's checkpoints: its statistics along training and
how much it moved since the checkpoint before. Computed only while the tab is shown."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from ..core.compare import Trend, variable_trend
from ..core.model import DirectoryScan, VariableInfo
from ..textfmt import plural
from .tasks import TaskSlot


def trend_job(scan: DirectoryScan, name: str, shape, *, state) -> Trend:
    from ..core.reading import read_tensor

    return variable_trend(scan, name, shape, read_tensor, progress=state.progress,
                          cancelled=state.cancelled)


class TrendPanel(QWidget):
    checkpoint_chosen = Signal(str)
    trend_ready = Signal(object)

    COLUMNS = ("Checkpoint", "x", "mean", "std", "L2", "change vs previous")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pg = None
        self._request = None     # (scan, variable) waiting for the tab to be shown
        self._shown_key = None
        self._label = ""
        self.trend: Trend | None = None
        self.task = TaskSlot(self, debounce_ms=300)
        self.task.finished.connect(self._on_trend)
        self.task.failed.connect(lambda m, d: self.title.setText(f"Cannot compare: {m}"))
        self.task.progress.connect(self._on_progress)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Select a variable to follow it across checkpoints.")
        self.title.setObjectName("trendTitle")
        self.title.setWordWrap(True)
        self._layout.addWidget(self.title)

    def build(self) -> None:
        if self._pg is not None:
            return
        import pyqtgraph as pg

        self._pg = pg
        self.stats_plot = pg.PlotWidget()
        self.stats_plot.setObjectName("trendStatsPlot")
        self.stats_plot.addLegend(offset=(10, 10))
        self.change_plot = pg.PlotWidget()
        self.change_plot.setObjectName("trendChangePlot")
        self.change_plot.setLabel("left", "relative change (L2)")
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.cellDoubleClicked.connect(
            lambda row, _col: self.checkpoint_chosen.emit(self.table.item(row, 0).text()))
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.stats_plot)
        split.addWidget(self.change_plot)
        split.addWidget(self.table)
        split.setSizes([320, 180, 200])
        self._layout.addWidget(split, 1)

    def set_variable(self, scan: DirectoryScan | None, var: VariableInfo | None) -> None:
        """Remember what to compare; compute now only if the tab is visible."""
        self._request = (scan, var) if scan is not None and var is not None else None
        if self.isVisible():
            self._start()

    def showEvent(self, event):
        super().showEvent(event)
        self._start()

    def _start(self) -> None:
        if self._request is None:
            return
        scan, var = self._request
        key = (id(scan), var.name)
        if key == self._shown_key:
            return
        self._shown_key = key
        self._label = var.display_name
        self.build()
        self.title.setText(f"<b>{var.display_name}</b> across checkpoints — reading…")
        self.task.submit(trend_job, scan, var.display_name, var.shape)  # (its key may change)

    def _on_progress(self, done: int, total: int, what: str) -> None:
        if total:
            self.title.setText(f"Reading {done + 1} of {total}: {what}" if done < total else "")

    def _on_trend(self, trend: Trend) -> None:
        self.trend = trend
        pg = self._pg
        pts = trend.points
        x = np.array([p.x for p in pts])
        self.stats_plot.clear()
        self.change_plot.clear()
        self.stats_plot.setLabel("bottom", trend.x_label)
        self.change_plot.setLabel("bottom", trend.x_label)
        numeric = [p for p in pts if p.stats.mean is not None]
        if numeric:
            xs = np.array([p.x for p in numeric])
            mean = np.array([p.stats.mean for p in numeric])
            std = np.array([p.stats.std for p in numeric])
            band = pg.mkPen((25, 118, 210, 90))
            upper = self.stats_plot.plot(xs, mean + std, pen=band)
            lower = self.stats_plot.plot(xs, mean - std, pen=band)
            self.stats_plot.addItem(pg.FillBetweenItem(upper, lower, brush=(25, 118, 210, 60)))
            self.stats_plot.plot(xs, mean, pen=pg.mkPen("#1976d2", width=2), symbol="o",
                                 symbolSize=6, name="mean ± std")
            self.stats_plot.plot(xs, [p.stats.min for p in numeric], pen=pg.mkPen("#90a4ae"),
                                 name="min / max")
            self.stats_plot.plot(xs, [p.stats.max for p in numeric], pen=pg.mkPen("#90a4ae"))
            changed = [p for p in numeric if p.relative_change is not None]
            if changed:
                self.change_plot.plot([p.x for p in changed], [p.relative_change for p in changed],
                                      pen=pg.mkPen("#e65100", width=2), symbol="o", symbolSize=6)
        self.table.setRowCount(len(pts))
        for row, p in enumerate(pts):
            s = p.stats
            values = [p.checkpoint, f"{p.x:g}", _fmt(s.mean), _fmt(s.std), _fmt(s.l2),
                      "" if p.relative_change is None else f"{100 * p.relative_change:.3g} %"]
            for col, text in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(text))
        skipped = (f"; not in {plural(len(trend.skipped), 'other checkpoint')}"
                   if trend.skipped else "")
        self.title.setText(f"<b>{self._label}</b> in {plural(len(pts), 'checkpoint')}{skipped}. "
                           "Double-click a row to open that checkpoint.")
        self.trend_ready.emit(trend)


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.6g}"
