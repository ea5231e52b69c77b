"""Preview of one tensor: a view chosen by its shape (heatmap, bars/line, slices, text, the object
graph's tree), a histogram and statistics. The parts live in ui/preview/; this panel assembles
them, runs the reads on the engine thread and keeps every part showing the same tensor or
nothing. pyqtgraph is imported when the panel is first built, after the window is painted."""
from __future__ import annotations

import csv
import html

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QPlainTextEdit,
                               QProgressBar, QPushButton, QSpinBox, QSplitter, QStackedWidget,
                               QWidget)

from ..core.model import CheckpointInfo, VariableInfo
from ..core.preview import (IMAGE, MAX_ABS, MEAN, RANGE_MODES, TREE, VECTOR, TensorPreview,
                            make_preview)
from ..core.varnames import file_stem
from ..textfmt import safe_name
from .savedir import remember as remember_save
from .savedir import save_path
from .tasks import TaskSlot, work_thread
from .titled_tab import TitledTab

PROMPT = "Select a variable to preview it."
SETTINGS_KEYS = {"range": "preview/colourRange", "cmap": "preview/colourMap",
                 "log": "preview/histogramLog"}


PROGRESS_STEPS = 1000   # progress is reported in these steps (byte counts overflow Qt's int)


def load_preview(ckpt: CheckpointInfo, name: str, blocks: str, *, state) -> TensorPreview:
    """Worker: read the tensor (TensorFlow releases the GIL while it reads) and prepare it; a
    large one in chunks (core/chunked.py), with progress, stopped between chunks on cancel."""
    from ..core import chunked
    from ..core.reading import read_tensor

    var = ckpt.variable(name)
    if chunked.streams(ckpt, var):
        return chunked.stream_preview(ckpt, var, blocks=blocks, progress=_steps(state),
                                      check=state.check)
    state.progress(0, 2, f"reading {name}")
    array = read_tensor(ckpt, name)
    state.check()
    state.progress(1, 2, "statistics")
    return make_preview(ckpt.name, var, array, blocks=blocks)


def reslice_preview(ckpt: CheckpointInfo, previous: TensorPreview, index: tuple[int, ...],
                    blocks: str, *, state) -> TensorPreview:
    """Worker: another 2-D slice, or other blocks, of a loaded tensor (read again in chunks
    when it was streamed: only up to the slice's end, its statistics kept)."""
    if previous.streamed:
        from ..core import chunked

        return chunked.stream_preview(ckpt, previous.variable, index, stats=previous.stats,
                                      blocks=blocks, progress=_steps(state), check=state.check)
    return make_preview(previous.checkpoint, previous.variable, previous.array, index,
                        stats=previous.stats, blocks=blocks)


def export_streamed(ckpt: CheckpointInfo, var: VariableInfo, path: str, *, state) -> str:
    """Worker: a tensor read in chunks written to .npy chunk by chunk."""
    from ..core import chunked

    chunked.write_npy(ckpt, var, path, progress=_steps(state), check=state.check)
    return path


def _steps(state):
    """chunked's byte progress as PROGRESS_STEPS steps on the task's progress."""
    return lambda done, total, what: state.progress(done * PROGRESS_STEPS // max(total, 1),
                                                    PROGRESS_STEPS, what)


class PreviewPanel(TitledTab):
    status_message = Signal(str)
    preview_ready = Signal(object)     # TensorPreview (tests and the main window listen)
    preview_failed = Signal(str, str)

    def __init__(self, settings: QSettings | None = None, parent=None):
        """``settings``: where the user's colour, range and histogram choices are remembered
        (the main window's); none: the application's default settings."""
        super().__init__(PROMPT, "previewTitle", parent)
        self.settings = settings if settings is not None else QSettings()
        self.preview: TensorPreview | None = None
        self.checkpoint: CheckpointInfo | None = None   # the previewed tensor's
        self._built = False
        self.task = TaskSlot(self, debounce_ms=120)
        self.task.finished.connect(self._on_loaded)
        self.task.failed.connect(self._on_failed)
        self.task.busy.connect(self._on_busy)
        self.task.progress.connect(self._on_progress)
        self.export_task = TaskSlot(self, executor=work_thread())
        self.export_task.finished.connect(
            lambda path: self.status_message.emit(f"Exported to {path}"))
        self.export_task.failed.connect(
            lambda message, _details: self.status_message.emit(f"Export failed: {message}"))
        self.export_task.progress.connect(self._on_export_progress)

    # --- construction (pyqtgraph is imported here, not at start-up) -------------------------
    def build(self) -> None:
        if self._built:
            return
        from .preview import configure_pyqtgraph

        pg = configure_pyqtgraph()
        from .preview.colours import COLORMAPS
        from .preview.graph_tree import GraphTree
        from .preview.histogram import HistogramView
        from .preview.stats import StatsView
        from .preview.tensor_plot import BAR, LINE, TensorPlot

        self._built = True
        settings = self.settings
        self.mode = self._combo([BAR, LINE], "How to draw a vector", self._render)
        self.colour_range = self._combo(RANGE_MODES, "Which values the colours span", self._render,
                                        settings.value(SETTINGS_KEYS["range"]))
        self.colour_map = self._combo(COLORMAPS, "Colour map (auto: diverging for signed data, "
                                      "sequential for non-negative data)", self._render,
                                      settings.value(SETTINGS_KEYS["cmap"]))
        self.blocks = self._combo([MEAN, MAX_ABS], "How a block of a large tensor becomes one "
                                  "cell: its mean, or its element of largest magnitude",
                                  self._reslice)
        self.colour_range.currentTextChanged.connect(
            lambda t: settings.setValue(SETTINGS_KEYS["range"], t))
        self.colour_map.currentTextChanged.connect(
            lambda t: settings.setValue(SETTINGS_KEYS["cmap"], t))
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
        self.stop = QPushButton("Stop")
        self.stop.setToolTip("Stop reading this tensor")
        self.stop.clicked.connect(self.stop_reading)
        # its room is kept while hidden: showing it must not resize (and so redraw) the plot
        policy = self.stop.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.stop.setSizePolicy(policy)
        self.stop.hide()
        self.colour_choices = self._labelled(("colours", self.colour_range),
                                             ("map", self.colour_map))
        self.block_choice = self._labelled(("blocks", self.blocks))
        bar = QHBoxLayout()
        for w in (self.mode, self.colour_choices, self.block_choice, self.slices):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.busy)
        bar.addWidget(self.stop)
        for b in (self.export_npy, self.export_csv, self.export_png):
            bar.addWidget(b)
        self._layout.addLayout(bar)

        self.tensor_plot = TensorPlot()
        self.plot = self.tensor_plot.plot
        self.image = self.tensor_plot.image
        self.text = QPlainTextEdit()
        self.text.setObjectName("previewText")
        self.text.setReadOnly(True)
        self.graph_tree = GraphTree()
        self.view = QStackedWidget()
        for w in (self.tensor_plot, self.text, self.graph_tree):
            self.view.addWidget(w)

        self.histogram = HistogramView()
        self.histogram.log.setChecked(settings.value(SETTINGS_KEYS["log"], False, type=bool))
        self.histogram.log_changed.connect(lambda on: settings.setValue(SETTINGS_KEYS["log"], on))
        self.hist = self.histogram.plot
        self.stats = StatsView()
        self.stat_labels = self.stats.labels
        self.lower = lower = QWidget()
        lower_layout = QHBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.histogram, 3)
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
        self.clear()

    def _combo(self, items, tip: str, on_change, current=None) -> QComboBox:
        box = QComboBox()
        box.addItems(list(items))
        box.setToolTip(tip)
        if current in items:
            box.setCurrentText(current)
        box.currentIndexChanged.connect(lambda *_: on_change())
        return box

    @staticmethod
    def _labelled(*pairs: tuple[str, QWidget]) -> QWidget:
        """Controls with their names before them, shown and hidden together."""
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        for name, widget in pairs:
            label = QLabel(f"{name}:")
            label.setBuddy(widget)
            layout.addWidget(label)
            layout.addWidget(widget)
        return row

    # --- requests -------------------------------------------------------------------------
    def show_variable(self, ckpt: CheckpointInfo | None, var: VariableInfo | None) -> None:
        self.build()
        self.task.cancel()
        if ckpt is None or var is None:
            self.clear()
            return
        self.clear(f"Reading {safe_name(var.display_name)} …")
        self.checkpoint = ckpt
        self.title.setText(f"<b>{html.escape(safe_name(var.display_name))}</b> — "
                           f"{html.escape(safe_name(ckpt.name))}")
        self.task.submit(load_preview, ckpt, var.name, self.blocks.currentText())

    def clear(self, message: str = PROMPT) -> None:
        """Every part shows nothing of any tensor: title, picture, colour bar, caption,
        histogram and its axes, statistics, hover read-out, slices and export buttons."""
        self.preview = None
        self.title.setText(message)
        if not self._built:
            return
        self.tensor_plot.clear()
        self.histogram.clear()
        self.stats.clear()
        self.graph_tree.clear()
        self.hover.setText(" ")
        self.view.setCurrentWidget(self.text)
        self.text.setPlainText(message)
        self._set_slices(None)
        self._set_export_enabled(False)
        for w in (self.mode, self.colour_choices, self.block_choice):
            w.hide()

    # --- results --------------------------------------------------------------------------
    def _on_loaded(self, preview: TensorPreview) -> None:
        self.preview = preview
        self.hover.setText(" ")
        self._set_slices(preview)
        self._render()
        self.stats.show_preview(preview)
        self.histogram.show_stats(preview.stats)
        self._set_export_enabled(True)
        self.preview_ready.emit(preview)

    def _on_failed(self, message: str, details: str) -> None:
        title = self.title.text()
        self.clear(f"This tensor cannot be read:\n{message}")
        self.title.setText(title)
        self.status_message.emit(f"Preview failed: {message}")
        self.preview_failed.emit(message, details)

    def _on_busy(self, busy: bool) -> None:
        self.busy.setRange(0, 0)   # until a read in chunks says how far it is
        self.busy.setVisible(busy)
        self.stop.setVisible(busy)

    def _on_progress(self, done: int, total: int, what: str) -> None:
        if total == PROGRESS_STEPS:   # a read in chunks
            self.busy.setRange(0, total)
            self.busy.setValue(done)
            self.busy.setFormat(f"{what} %p%")
            self.busy.setToolTip(what)

    def _on_export_progress(self, done: int, total: int, what: str) -> None:
        self.status_message.emit(f"Exporting … {100 * done // max(total, 1)}%")

    def stop_reading(self) -> None:
        """Cancel the read under way (between two chunks of a large tensor); nothing of it
        stays on screen."""
        if not self.task.is_running():
            return
        title = self.title.text()
        self.task.cancel()
        self.clear("Stopped reading.")
        self.title.setText(title)
        self.status_message.emit("Preview stopped")

    def _render(self) -> None:
        p = self.preview
        if p is None:
            return
        self.mode.setVisible(p.kind == VECTOR)
        self.colour_choices.setVisible(p.kind == IMAGE)
        self.block_choice.setVisible(p.downsampled)
        self.lower.setVisible(p.kind in (IMAGE, VECTOR))  # a scalar or a string: no histogram
        if p.kind in (IMAGE, VECTOR):
            self.view.setCurrentWidget(self.tensor_plot)
            self.tensor_plot.show_preview(p, self.colour_range.currentText(),
                                          self.colour_map.currentText(), self.mode.currentText())
        elif p.kind == TREE:
            self.view.setCurrentWidget(self.graph_tree)
            self.graph_tree.show_tree(p.tree)
        else:
            self.view.setCurrentWidget(self.text)
            self.text.setPlainText(p.text)

    # --- slices of >2-D tensors ------------------------------------------------------------
    def _set_slices(self, p: TensorPreview | None) -> None:
        lead = p.ndim - 2 if p is not None and p.kind == IMAGE else 0
        if len(self.spins) == lead and p is not None and list(p.index) == [s.value() for s in self.spins]:
            for axis, spin in enumerate(self.spins):
                spin.setMaximum(p.shape[axis] - 1)
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
            spin.setRange(0, p.shape[axis] - 1)
            spin.setValue(p.index[axis])
            spin.valueChanged.connect(self._reslice)
            self.slice_layout.addWidget(spin)
            self.spins.append(spin)
        self.slices.setVisible(lead > 0)

    def _reslice(self, *_):
        if self.preview is not None:
            self.task.submit(reslice_preview, self.checkpoint, self.preview,
                             tuple(s.value() for s in self.spins), self.blocks.currentText())

    # --- hover ----------------------------------------------------------------------------
    def _on_mouse(self, event) -> None:
        pos = event[0]
        inside = self.plot.sceneBoundingRect().contains(pos)
        point = self.plot.getPlotItem().vb.mapSceneToView(pos)
        text = self.value_at(point.x(), point.y()) if inside else None
        self.hover.setText(text or " ")

    def value_at(self, x: float, y: float) -> str | None:
        """'[3, 7] = -0.0123' under view coordinates (x, y), read from the whole tensor."""
        return self.tensor_plot.value_at(x, y) if self.preview is not None else None

    # --- export ---------------------------------------------------------------------------
    def _set_export_enabled(self, enabled: bool) -> None:
        for b in (self.export_npy, self.export_csv, self.export_png):
            b.setEnabled(enabled)
        self.export_png.setEnabled(enabled and self.preview is not None
                                   and self.preview.kind in (IMAGE, VECTOR))
        streamed = self.preview is not None and self.preview.streamed
        self.export_csv.setEnabled(enabled and not streamed)
        self.export_csv.setToolTip("Too large for .csv: read in chunks" if streamed else "")

    def _suggested_name(self, ext: str) -> str:
        p = self.preview
        return f"{file_stem(p.variable.display_name) if p and p.variable else 'tensor'}.{ext}"

    def export_tensor(self, kind: str, path: str | None = None) -> str | None:
        """Write the whole tensor to .npy or .csv (2-D at most; higher ranks are flattened).
        A tensor read in chunks goes to .npy chunk by chunk on a worker thread (the status bar
        says when it is written); .csv of it is refused (gigabytes of text)."""
        if self.preview is None:
            return None
        if self.preview.streamed and kind != "npy":
            self.status_message.emit("This tensor is read in chunks: export it as .npy "
                                     "(a .csv of it would be far larger)")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, f"Export tensor as .{kind}",
                                                  save_path(self._suggested_name(kind)),
                                                  f"*.{kind}")
            if not path:
                return None
            remember_save(path)
        if self.preview.streamed:
            self.export_task.submit(export_streamed, self.checkpoint, self.preview.variable, path)
            return path
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

    def plot_title(self) -> list[str]:
        """What an exported picture says about itself: name, checkpoint, shape and dtype,
        then the caption (colour range, blocks, NaN/Inf counts)."""
        p = self.preview
        where = f", slice {list(p.index)}" if p.index else ""
        return [f"{safe_name(p.variable.display_name)} — {safe_name(p.checkpoint)}",
                f"shape {list(p.shape)} {p.dtype}{where}",
                *self.tensor_plot.caption_text().splitlines()]

    def export_plot(self, path: str | None = None) -> str | None:
        if self.preview is None or self.preview.kind not in (IMAGE, VECTOR):
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save plot as PNG",
                                                  save_path(self._suggested_name("png")), "*.png")
            if not path:
                return None
            remember_save(path)
        from .preview.export import titled_png

        titled_png(self.plot.getPlotItem(), self.plot_title(), path)
        self.status_message.emit(f"Saved plot to {path}")
        return path
