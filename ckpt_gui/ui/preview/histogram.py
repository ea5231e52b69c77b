"""Histogram of a tensor's finite values (NaN and ±Inf are counted beside it, never as bars),
with counts on a linear or logarithmic axis."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ...core.model import TensorStats
from ...textfmt import plural

LOG_FLOOR = -0.3  # log10 of the bottom of a log-count bar: a count of 1 still shows a bar


class HistogramView(QWidget):
    log_changed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.stats: TensorStats | None = None
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("histogramPlot")
        self.plot.setLabel("bottom", "value")
        self.log = QCheckBox("log count")
        self.log.setObjectName("histogramLog")
        self.log.toggled.connect(self._log_toggled)
        self.caption = QLabel()
        self.caption.setObjectName("histogramCaption")
        top = QHBoxLayout()
        top.addWidget(self.caption, 1)
        top.addWidget(self.log)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        self.clear()

    def heights(self) -> np.ndarray:
        """What the bars show: counts, or log10 counts above LOG_FLOOR (empty bins: none)."""
        counts = np.asarray(self.stats.histogram if self.stats else [], dtype=np.float64)
        if not self.log.isChecked():
            return counts
        with np.errstate(divide="ignore"):
            return np.where(counts > 0, np.log10(counts) - LOG_FLOOR, 0.0)

    def show_stats(self, stats: TensorStats) -> None:
        self.stats = stats
        self._draw()

    def clear(self) -> None:
        self.stats = None
        self._draw()

    def _log_toggled(self, on: bool) -> None:
        self._draw()
        self.log_changed.emit(on)

    def _draw(self) -> None:
        self.plot.clear()
        log = self.log.isChecked()
        self.plot.setLabel("left", "count (log)" if log else "count")
        s = self.stats
        if s is None or not s.histogram:
            self.caption.setText("" if s is None else "no finite values to count")
            self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        else:
            edges = np.asarray(s.bin_edges)
            self.plot.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=self.heights(),
                                              y0=LOG_FLOOR if log else 0, brush="#546e7a",
                                              pen=None))
            self.caption.setText(f"{plural(s.finite, 'finite value')} in {len(s.histogram)} bins")
            self.plot.autoRange()
        self.plot.getAxis("left").setLogMode(log)  # after the range: 10**(a linear range) overflows
