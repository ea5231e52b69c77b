"""Preview of one tensor: a view chosen by its shape (heatmap, bar/line, slices, text), a histogram
and statistics. pyqtgraph is imported when the panel is first built, after the window is painted."""
from __future__ import annotations

import csv

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QSplitter,
                               QStackedWidget, QVBoxLayout, QWidget)

from ..core.model import CheckpointInfo, VariableInfo
from ..core.varnames import file_stem
from ..core.preview import IMAGE, SCALAR, TEXT, VECTOR, TensorPreview, make_preview
from .tasks import TaskSlot

BAR_LIMIT = 512  # vectors longer than this draw as a line even in bar mode


def load_preview(ckpt: CheckpointInfo, name: str, *, state) -> TensorPreview:
    """Worker: read the tensor (TensorFlow releases the GIL while it reads) and prepare it."""
    from ..core.reading import read_tensor

    state.progress(0, 2, f"reading {name}")
    array = read_tensor(ckpt, name)
    state.check()
    state.progress(1, 2, "statistics")
    return make_preview(ckpt.name, ckpt.variable(name), array)


def reslice_preview(previous: TensorPreview, index: tuple[int, ...], *, state) -> TensorPreview:
    """Worker: another 2-D slice of an already loaded tensor."""
    return make_preview(previous.checkpoint, previous.variable, previous.array, index,
                        stats=previous.stats)


class PreviewPanel(QWidget):
    status_message = Signal(str)
    preview_ready = Signal(object)     # TensorPreview (tests and the main window listen)
    preview_failed = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.preview: TensorPreview | None = None
        self._pg = None
        self.task = TaskSlot(self, debounce_ms=120)
        self.task.finished.connect(self._on_loaded)
        self.task.failed.connect(self._on_failed)
        self.task.busy.connect(self._on_busy)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Select a variable to preview it.")
        self.title.setObjectName("previewTitle")
        self.title.setWordWrap(True)
        self._layout.addWidget(self.title)

    # --- construction (pyqtgraph is imported here, not at start-up) -------------------------
    def build(self) -> None:
        if self._pg is not None:
            return
        import pyqtgraph as pg

        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w",
                            foreground="k")
        self._pg = pg
        bar = QHBoxLayout()
        self.mode = QComboBox()
        self.mode.addItems(["Bar", "Line"])
        self.mode.setToolTip("How to draw a 1-D tensor")
        self.mode.currentIndexChanged.connect(lambda *_: self._render())
        self.slices = QWidget()
        self.slice_layout = QHBoxLayout(self.slices)
        self.slice_layout.setContentsMargins(0, 0, 0, 0)
        self.spins: list[QSpinBox] = []
        self.export_npy = QPushButton("Export .npy")
        self.export_csv = QPushButton("Export .csv")
        self.export_png = QPushButton("Save plot .png")
        self.export_npy.clicked.connect(lambda: self.export_tensor("npy"))
        self.export_csv.clicked.connect(lambda: self.export_tensor("csv"))
        self.export_png.clicked.connect(lambda: self.export_plot())
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.hide()
        bar.addWidget(self.mode)
        bar.addWidget(self.slices)
        bar.addStretch(1)
        bar.addWidget(self.busy)
        for b in (self.export_npy, self.export_csv, self.export_png):
            bar.addWidget(b)
        self._layout.addLayout(bar)

        self.plot = pg.PlotWidget()
        self.plot.setObjectName("previewPlot")
        self.image = pg.ImageItem()
        self.colorbar = pg.ColorBarItem(colorMap=pg.colormap.get("CET-D1"), interactive=False,
                                        width=15)
        self.text = QPlainTextEdit()
        self.text.setObjectName("previewText")
        self.text.setReadOnly(True)
        self.view = QStackedWidget()
        self.view.addWidget(self.plot)
        self.view.addWidget(self.text)

        self.hist = pg.PlotWidget()
        self.hist.setObjectName("histogramPlot")
        self.hist.setLabel("bottom", "value")
        self.hist.setLabel("left", "count")
        self.stats = QWidget()
        form = QFormLayout(self.stats)
        self.stat_labels = {}
        for key in ("shape", "min", "max", "mean", "std", "L2", "NaN", "Inf", "zeros"):
            label = QLabel()
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setObjectName(f"stat_{key}")
            self.stat_labels[key] = label
            form.addRow(key, label)
        lower = QWidget()
        lower_layout = QHBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.hist, 3)
        lower_layout.addWidget(self.stats, 1)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.view)
        split.addWidget(lower)
        split.setSizes([500, 220])
        self._layout.addWidget(split, 1)
        self.hover = QLabel(" ")
        self.hover.setObjectName("hoverLabel")
        self._layout.addWidget(self.hover)
        self._mouse = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=60,
                                     slot=self._on_mouse)
        self._set_export_enabled(False)
        self.mode.hide()
        self.view.setCurrentWidget(self.text)
        self.text.setPlainText(self.title.text())

    # --- requests -------------------------------------------------------------------------
    def show_variable(self, ckpt: CheckpointInfo | None, var: VariableInfo | None) -> None:
        self.build()
        if ckpt is None or var is None:
            self.task.cancel()
            self.clear()
            return
        self.title.setText(f"<b>{var.display_name}</b> — {ckpt.name}")
        self.task.submit(load_preview, ckpt, var.name)

    def clear(self, message: str = "Select a variable to preview it.") -> None:
        self.preview = None
        self.title.setText(message)
        if self._pg is not None:
            self.plot.clear()
            self.hist.clear()
            self.mode.hide()
            self.view.setCurrentWidget(self.text)
            self.text.setPlainText(message)
            for label in self.stat_labels.values():
                label.clear()
            self._set_slices(None)
            self._set_export_enabled(False)

    # --- results --------------------------------------------------------------------------
    def _on_loaded(self, preview: TensorPreview) -> None:
        self.preview = preview
        self._set_slices(preview)
        self._render()
        self._show_stats(preview)
        self._set_export_enabled(True)
        self.preview_ready.emit(preview)

    def _on_failed(self, message: str, details: str) -> None:
        self.preview = None
        self.plot.clear()
        self.hist.clear()
        self.view.setCurrentWidget(self.text)
        self.text.setPlainText(f"This tensor cannot be read:\n{message}")
        self._set_export_enabled(False)
        self.status_message.emit(f"Preview failed: {message}")
        self.preview_failed.emit(message, details)

    def _on_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)

    def _render(self) -> None:
        p = self.preview
        if p is None:
            return
        pg = self._pg
        self.plot.clear()
        self.plot.getPlotItem().invertY(False)
        self.mode.setVisible(p.kind == VECTOR)
        if self.colorbar.scene() is not None:
            self.plot.getPlotItem().layout.removeItem(self.colorbar)
            self.plot.scene().removeItem(self.colorbar)
        if p.kind in (TEXT, SCALAR):
            self.view.setCurrentWidget(self.text)
            self.text.setPlainText(p.text)
        elif p.kind == VECTOR:
            self.view.setCurrentWidget(self.plot)
            step = p.step[0]
            x = np.arange(p.display.size) * step
            if self.mode.currentText() == "Bar" and p.display.size <= BAR_LIMIT:
                self.plot.addItem(pg.BarGraphItem(x=x, height=p.display, width=0.8 * step,
                                                  brush="#1976d2"))
            else:
                self.plot.plot(x, p.display, pen=pg.mkPen("#1976d2", width=1.5))
            self.plot.setLabel("bottom", "index")
            self.plot.setLabel("left", "value")
        elif p.kind == IMAGE:
            self.view.setCurrentWidget(self.plot)
            sy, sx = p.step
            self.image = pg.ImageItem(p.display)
            self.image.setRect(0, 0, p.display.shape[1] * sx, p.display.shape[0] * sy)
            self.plot.addItem(self.image)
            finite = p.display[np.isfinite(p.display)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            bound = max(abs(lo), abs(hi)) or 1.0
            levels = (-bound, bound) if lo < 0 < hi else (lo, hi if hi > lo else lo + 1)
            self.colorbar.setLevels(levels)
            self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
            self.plot.getPlotItem().invertY(True)
            self.plot.setLabel("bottom", f"column (axis {p.array.ndim - 1})")
            self.plot.setLabel("left", f"row (axis {p.array.ndim - 2})")
        self.plot.autoRange()
        self._draw_histogram(p)

    def _draw_histogram(self, p: TensorPreview) -> None:
        self.hist.clear()
        s = p.stats
        if not s.histogram:
            return
        edges = np.asarray(s.bin_edges)
        self.hist.addItem(self._pg.BarGraphItem(x0=edges[:-1], x1=edges[1:],
                                                height=np.asarray(s.histogram),
                                                brush="#546e7a", pen=None))
        self.hist.autoRange()

    def _show_stats(self, p: TensorPreview) -> None:
        s = p.stats
        fmt = (lambda v: "—" if v is None else f"{v:.6g}")
        values = {
            "shape": f"{list(p.array.shape)} {p.array.dtype}", "min": fmt(s.min),
            "max": fmt(s.max), "mean": fmt(s.mean), "std": fmt(s.std), "L2": fmt(s.l2),
            "NaN": str(s.nan), "Inf": str(s.inf),
            "zeros": f"{s.zeros} ({100 * s.zero_fraction:.1f}%)" if s.count else "0",
        }
        for key, label in self.stat_labels.items():
            label.setText(values[key])

    # --- slices of >2-D tensors ------------------------------------------------------------
    def _set_slices(self, p: TensorPreview | None) -> None:
        lead = p.array.ndim - 2 if p is not None and p.kind == IMAGE else 0
        if len(self.spins) == lead and p is not None and list(p.index) == [s.value() for s in self.spins]:
            for axis, spin in enumerate(self.spins):
                spin.setMaximum(p.array.shape[axis] - 1)
            self.slices.setVisible(lead > 0)
            return
        for spin in self.spins:
            spin.deleteLater()
        while self.slice_layout.count():
            item = self.slice_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.spins = []
        for axis in range(lead):
            self.slice_layout.addWidget(QLabel(f"axis {axis}:"))
            spin = QSpinBox()
            spin.setObjectName(f"slice{axis}")
            spin.setRange(0, p.array.shape[axis] - 1)
            spin.setValue(p.index[axis])
            spin.valueChanged.connect(self._reslice)
            self.slice_layout.addWidget(spin)
            self.spins.append(spin)
        self.slices.setVisible(lead > 0)

    def _reslice(self, *_):
        if self.preview is not None:
            self.task.submit(reslice_preview, self.preview, tuple(s.value() for s in self.spins))

    # --- hover ----------------------------------------------------------------------------
    def _on_mouse(self, event) -> None:
        p = self.preview
        if p is None or p.kind not in (IMAGE, VECTOR):
            return
        pos = event[0]
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        point = self.plot.getPlotItem().vb.mapSceneToView(pos)
        text = self.value_at(point.x(), point.y())
        self.hover.setText(text or " ")

    def value_at(self, x: float, y: float) -> str | None:
        """'index → value' under view coordinates (x, y), read from the whole tensor."""
        p = self.preview
        if p is None:
            return None
        if p.kind == VECTOR:
            i = int(round(x))
            if 0 <= i < p.array.shape[0]:
                return f"[{i}] = {p.array[i]!r}"
            return None
        if p.kind == IMAGE:
            r, c = int(np.floor(y)), int(np.floor(x))
            rows, cols = p.array.shape[-2:]
            if 0 <= r < rows and 0 <= c < cols:
                idx = tuple(p.index) + (r, c)
                return f"{list(idx)} = {p.array[idx]!r}"
        return None

    # --- export ---------------------------------------------------------------------------
    def _set_export_enabled(self, enabled: bool) -> None:
        for b in (self.export_npy, self.export_csv, self.export_png):
            b.setEnabled(enabled)

    def _suggested_name(self, ext: str) -> str:
        p = self.preview
        return f"{file_stem(p.variable.display_name) if p and p.variable else 'tensor'}.{ext}"

    def export_tensor(self, kind: str, path: str | None = None) -> str | None:
        """Write the whole tensor to .npy or .csv (2-D at most; higher ranks are flattened)."""
        if self.preview is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, f"Export tensor as .{kind}",
                                                  self._suggested_name(kind), f"*.{kind}")
            if not path:
                return None
        a = self.preview.array
        if kind == "npy":
            np.save(path, a)
        else:
            rows = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(-1, 1)
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                for row in rows:
                    w.writerow([x.decode("utf-8", "replace") if isinstance(x, bytes) else
                                repr(x.item()) if hasattr(x, "item") else x for x in row])
        self.status_message.emit(f"Exported {self.preview.variable.display_name} to {path}")
        return path

    def export_plot(self, path: str | None = None) -> str | None:
        if self.preview is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save plot as PNG",
                                                  self._suggested_name("png"), "*.png")
            if not path:
                return None
        from pyqtgraph.exporters import ImageExporter

        ImageExporter(self.plot.getPlotItem()).export(path)
        self.status_message.emit(f"Saved plot to {path}")
        return path
