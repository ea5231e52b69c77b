"""Two checkpoints compared (core/diff.py): a sortable table of every variable's status and how
much it changed, and for the selected one A, B and A−B side by side (A and B on one colour
scale, A−B on the diverging CET-D1 map symmetric about zero) with both histograms overlaid.
The whole diff runs on the work thread with progress and cancel; one variable's pictures on
the engine thread. pyqtgraph is imported when the panel is first built."""
from __future__ import annotations

import dataclasses
import html
import os
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from ..core.diff import DiffResult, VariableDiff
from ..core.model import CheckpointInfo
from ..core.preview import AUTO, IMAGE, SYMMETRIC, VECTOR, TensorPreview, colour_levels
from ..textfmt import number, plural, safe_name
from .tasks import TaskSlot, work_thread
from .titled_tab import TitledTab

PROMPT = ("Select two checkpoints (Ctrl+click, or right-click one: Compare with…) to see what "
          "changed between them.")
COLUMNS = ("Status", "Variable", "max |a−b|", "L2(a−b)", "change %", "Role")
STATUS_COLOURS = {"same": "#2e7d32", "changed": "#e65100", "shape_changed": "#c62828",
                  "only_a": "#6a1b9a", "only_b": "#1565c0", "unreadable": "#c62828"}
BOOKKEEPING = QColor("#78909c")   # counters and metadata: listed, not counted


def diff_job(a: CheckpointInfo, b: CheckpointInfo, *, state) -> DiffResult:
    from ..core.diff import diff_checkpoints

    return diff_checkpoints(a, b, progress=state.progress, cancelled=state.cancelled)


@dataclass
class PairView:
    """One variable of both checkpoints, ready to draw."""
    diff: VariableDiff
    a: TensorPreview | None
    b: TensorPreview | None
    delta: TensorPreview | None
    histograms: tuple[np.ndarray, np.ndarray, np.ndarray] | None   # edges, counts A, counts B


def pair_job(a: CheckpointInfo, b: CheckpointInfo, d: VariableDiff, *, state) -> PairView:
    from ..core.diff import difference, is_numeric, overlaid_histograms, read_variable
    from ..core.preview import make_preview

    sides = []
    for ckpt, key in ((a, d.key_a), (b, d.key_b)):
        var = ckpt.variable(key) if key else None
        state.check()
        sides.append((ckpt, var, np.asarray(read_variable(ckpt, var)) if var else None))
    (_, va, xa), (_, vb, xb) = sides
    pa = make_preview(a.name, va, xa) if va is not None else None
    pb = make_preview(b.name, vb, xb) if vb is not None else None
    delta = histograms = None
    if pa is not None and pb is not None and xa.shape == xb.shape \
            and is_numeric(xa) and is_numeric(xb):
        state.check()
        delta = make_preview(f"{a.name} − {b.name}", dataclasses.replace(va, dtype="float64"),
                             difference(xa, xb))
        histograms = overlaid_histograms(xa, xb)
    return PairView(d, pa, pb, delta, histograms)


class _Item(QTableWidgetItem):
    """A cell that sorts by its key (numbers as numbers, statuses by severity)."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key
        self.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)

    def __lt__(self, other):
        return self.key < other.key


class DiffPanel(TitledTab):
    diff_ready = Signal(object)     # DiffResult (tests and the main window listen)
    pair_ready = Signal(object)     # PairView

    def __init__(self, parent=None):
        super().__init__(PROMPT, "diffTitle", parent)
        self._built = False
        self.result: DiffResult | None = None
        self.pair: tuple[CheckpointInfo, CheckpointInfo] | None = None
        self.rows: list[VariableDiff] = []
        self._sides = ""   # the title's "A name ↔ B name" (with their folders if two)
        self.task = TaskSlot(self, executor=work_thread())
        self.task.finished.connect(self._on_diff)
        self.task.failed.connect(lambda m, _d: self.title.setText(f"Cannot compare: {m}"))
        self.task.progress.connect(self._on_progress)
        self.task.busy.connect(self._on_busy)
        self.pair_task = TaskSlot(self, debounce_ms=120)
        self.pair_task.finished.connect(self._on_pair)
        self.pair_task.failed.connect(lambda m, _d: self.caption.setText(f"Cannot read: {m}"))

    def build(self) -> None:
        if self._built:
            return
        from .preview import configure_pyqtgraph
        from .preview.tensor_plot import TensorPlot

        pg = configure_pyqtgraph()
        self._built = True
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel_button)
        self._layout.addLayout(bar)
        self._on_busy(False)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("diffTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.itemSelectionChanged.connect(self._on_row)

        self.plots = {side: TensorPlot() for side in ("a", "b", "delta")}
        self.plot_titles = {side: QLabel() for side in self.plots}
        pictures = QWidget()
        row = QHBoxLayout(pictures)
        row.setContentsMargins(0, 0, 0, 0)
        for side, plot in self.plots.items():
            column = QVBoxLayout()
            self.plot_titles[side].setWordWrap(True)
            column.addWidget(self.plot_titles[side])
            column.addWidget(plot, 1)
            row.addLayout(column, 1)
        a_view = self.plots["a"].plot
        for side in ("b", "delta"):   # one tensor's cells: zoom and pan them together
            self.plots[side].plot.setXLink(a_view)
        self.plots["b"].plot.setYLink(a_view)   # A and B: on one value axis too
        self.histogram = pg.PlotWidget()
        self.histogram.setObjectName("diffHistogram")
        self.histogram.setLabel("bottom", "value")
        self.histogram.setLabel("left", "count")
        self.histogram.addLegend(offset=(10, 10))
        self.caption = QLabel()
        self.caption.setObjectName("diffCaption")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.pictures = pictures
        split = QSplitter(Qt.Vertical)
        for w in (self.table, self.caption, pictures, self.histogram):
            split.addWidget(w)
        split.setSizes([230, 60, 330, 200])
        self._layout.addWidget(split, 1)

    # --- the diff -------------------------------------------------------------------------
    def compare(self, a: CheckpointInfo, b: CheckpointInfo) -> None:
        """Compare ``a`` with ``b`` (a newer request supersedes a running one)."""
        self.build()
        self.pair = (a, b)
        self.result = None
        self.pair_task.cancel()
        self._fill([])
        self._clear_pictures()
        self._sides = _sides(a, b)
        self.title.setToolTip("" if _folder(a) == _folder(b) else
                              f"A: {safe_name(a.path)}\nB: {safe_name(b.path)}")
        self.title.setText(f"{self._sides} — reading…")
        self.task.submit(diff_job, a, b)

    def clear(self) -> None:
        """Nothing of a comparison stays once another folder opens (or its scan fails)."""
        self.task.cancel()
        self.pair_task.cancel()
        self.pair, self.result = None, None
        self.title.setText(PROMPT)
        self.title.setToolTip("")
        if self._built:
            self._fill([])
            self._clear_pictures()
            self._on_busy(False)

    def cancel(self) -> None:
        if self.task.is_running():
            self.task.cancel()
            self.title.setText(self.title.text().replace("reading…", "cancelled"))

    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"%v / %m {safe_name(what)[:40]}")

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def _on_diff(self, result: DiffResult) -> None:
        self.result = result
        counts = "; ".join(f"{n} {status.replace('_', ' ')}"
                           for status, n in result.counts().items()) or "no variables"
        verdict = "the same" if result.identical else "different"
        self.title.setText(
            f"{self._sides}: {verdict} — {counts}"
            + (f" (+ {plural(len(result.counters), 'counter')} and metadata, in grey, "
               "not counted)" if result.counters else ""))
        self._fill(result.variables + result.counters)
        if self.rows:
            self.table.selectRow(0)
        self.diff_ready.emit(result)

    def _fill(self, rows: list[VariableDiff]) -> None:
        self.rows = rows
        counted = len(self.result.variables) if self.result else 0
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for r, d in enumerate(rows):
            cells = [_Item(d.status.replace("_", " "), r),   # the engine's order: by change
                     _Item(safe_name(d.name), d.name)]   # (B's name, if another: tooltip)
            percent = None if d.rel_change is None else 100 * d.rel_change   # as the history
            cells += [_Item(_num(x), -1.0 if x is None else x)
                      for x in (d.max_abs_diff, d.l2_diff, percent)]
            cells.append(_Item(d.role, d.role))
            cells[0].setForeground(QColor(STATUS_COLOURS.get(d.status, "#000")))
            cells[1].setToolTip(_tooltip(d))
            cells[0].setData(Qt.UserRole, r)
            for c, item in enumerate(cells):
                if r >= counted:
                    item.setForeground(BOOKKEEPING)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.AscendingOrder)

    # --- one variable ---------------------------------------------------------------------
    def selected(self) -> VariableDiff | None:
        items = self.table.selectedItems() if self._built else []
        rows = {i.row() for i in items}
        if len(rows) != 1:
            return None
        return self.rows[self.table.item(rows.pop(), 0).data(Qt.UserRole)]

    def _on_row(self) -> None:
        d = self.selected()
        if d is None or self.pair is None:
            return
        self.caption.setText(f"Reading {_escape(d.name)} …")
        self.pair_task.submit(pair_job, *self.pair, d)

    def _on_pair(self, view: PairView) -> None:
        from .preview.colours import DIVERGING, colormap_name

        self._clear_pictures()
        d = view.diff
        self.caption.setText(_tooltip(d).replace("\n", "<br>"))
        shared = _shared_levels([p for p in (view.a, view.b) if p is not None])
        labels = {"a": ("A", view.a), "b": ("B", view.b), "delta": ("A − B", view.delta)}
        image = view.delta is not None and view.delta.kind == IMAGE   # rows: link; values: not
        self.plots["delta"].plot.setYLink(self.plots["a"].plot if image else None)
        for side, (label, p) in labels.items():
            what = f"<b>{label}</b>"
            if side != "delta" and p is not None:
                what += f" {_escape(p.checkpoint)}"
            if p is not None and p.kind not in (IMAGE, VECTOR) and p.text:
                what += f": {_escape(p.text[:200])}"
            self.plot_titles[side].setText(what if p is not None or side != "delta" else "")
            if p is None or p.kind not in (IMAGE, VECTOR):
                continue
            if side == "delta":
                self.plots[side].show_preview(p, SYMMETRIC, DIVERGING, "Line")
            else:
                cmap = colormap_name(AUTO, shared) if shared else AUTO
                self.plots[side].show_preview(p, AUTO, cmap, "Line", levels=shared)
        self.pictures.setVisible(any(p is not None and p.kind in (IMAGE, VECTOR)
                                     for p in (view.a, view.b)))
        self.histogram.setVisible(view.histograms is not None)
        if view.histograms is not None:
            edges, counts_a, counts_b = view.histograms
            self.histogram.plot(edges, counts_a, stepMode="center", name="A",
                                pen={"color": "#1976d2", "width": 2})
            self.histogram.plot(edges, counts_b, stepMode="center", name="B",
                                pen={"color": "#e65100", "width": 2, "style": Qt.DashLine})
            self.histogram.autoRange()
        self.pair_ready.emit(view)

    def _clear_pictures(self) -> None:
        for side, plot in self.plots.items():
            plot.clear()
            self.plot_titles[side].clear()
        self.histogram.clear()
        self.caption.clear()


def _sides(a: CheckpointInfo, b: CheckpointInfo) -> str:
    """The title's A and B: their names, and their folders when these differ."""
    folders = _folder(a), _folder(b)
    if folders[0] == folders[1]:
        return f"<b>A</b> {_escape(a.name)} ↔ <b>B</b> {_escape(b.name)}"
    fa, fb = folder_labels(*folders)
    return (f"<b>A</b> {_escape(a.name)} <i>in {_escape(fa)}</i> ↔ "
            f"<b>B</b> {_escape(b.name)} <i>in {_escape(fb)}</i>")


def _folder(c: CheckpointInfo) -> str:
    return os.path.dirname(c.path)


def folder_labels(a: str, b: str) -> tuple[str, str]:
    """Two different folders named as briefly as tells them apart: their paths below the
    deepest folder holding both (``run1`` and ``run2``; ``x/ckpt`` and ``y/ckpt``)."""
    common = os.path.commonpath([a, b])
    if common in (a, b):   # one inside the other: name the outer one too
        common = os.path.dirname(common)
    return os.path.relpath(a, common), os.path.relpath(b, common)


def _shared_levels(previews: list[TensorPreview]) -> tuple[float, float] | None:
    """One colour range for A and B: wide enough for both, symmetric when either is signed."""
    images = [p for p in previews if p.kind == IMAGE]
    if not images:
        return None
    levels = [colour_levels(p, AUTO) for p in images]
    lo, hi = min(lv[0] for lv in levels), max(lv[1] for lv in levels)
    if any(p.signed for p in images):
        bound = max(abs(lo), abs(hi))
        return -bound, bound
    return lo, hi


def _tooltip(d: VariableDiff) -> str:
    lines = [f"{d.status.replace('_', ' ')}: {safe_name(d.name)}"]
    if d.name_b:
        lines.append(f"in B: {safe_name(d.name_b)} (paired by {d.how})")
    for side, key, shape, dtype in (("A", d.key_a, d.shape_a, d.dtype_a),
                                    ("B", d.key_b, d.shape_b, d.dtype_b)):
        if key is not None:
            lines.append(f"{side}: {safe_name(key)}  {list(shape)} {dtype}")
    if d.nan_mismatch:
        lines.append(f"NaN on one side only at {plural(d.nan_mismatch, 'position')}")
    if d.problem:
        lines.append(safe_name(d.problem))
    return "\n".join(lines)


def _num(x) -> str:
    return "" if x is None else number(x, 4)


def _escape(text: str) -> str:
    return html.escape(safe_name(text), quote=False)
