"""A run's history (core/trajectory.py): the selected variable, or every weight and bias at
once as small multiples, along each training run: one line per run, never joined across a
restart. Computed only while the tab is shown, in the engine thread, with progress and cancel;
clicking a point (or double-clicking a row) opens that checkpoint."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                               QPushButton, QSplitter, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.model import DirectoryScan, VariableInfo
from ..core.trajectory import Trajectory, TrajectoryPoint, runs_of
from ..textfmt import number, plural, safe_name
from .tasks import TaskSlot
from .titled_tab import TitledTab

SINGLE, MULTIPLES = "This variable", "All weights and biases"
METRICS = {"L2 norm": lambda p: p.stats.l2, "mean": lambda p: p.stats.mean,
           "std": lambda p: p.stats.std, "change %": lambda p: p.rel_change}
PAGE = 12          # small multiples per page: 3 columns of 4, legible on a laptop screen
COLUMNS_PER_ROW = 3
PALETTE = ("#1976d2", "#e65100", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41",
           "#f9a825", "#3949ab", "#ad1457")
LONE = "#607d8b"   # checkpoints without a run: points, no line


PROMPT = "Select a variable to follow it across checkpoints."


def trajectory_job(scan: DirectoryScan, identity: str, *, state) -> Trajectory:
    from ..core.trajectory import trajectory

    return trajectory(scan, identity, progress=state.progress, cancelled=state.cancelled)


def multiples_job(scan: DirectoryScan, identities: list[str], *, state) -> list[Trajectory]:
    """Each variable's trajectory, handed over (state.partial) as soon as it is complete."""
    from ..core.trajectory import trajectories

    return trajectories(scan, identities, progress=state.progress, cancelled=state.cancelled,
                        each=state.partial)


class TrendPanel(TitledTab):
    point_chosen = Signal(str, str)     # a point's checkpoint and its variable's key there
    trend_ready = Signal(object)        # the Trajectory of the selected variable
    multiples_ready = Signal(list)      # the page's Trajectory objects
    flags_found = Signal(list)          # Trajectory objects whose points' flags are new

    def __init__(self, parent=None):
        super().__init__(PROMPT, "trendTitle", parent)
        self._pg = None
        self._request = None     # (scan, variable) waiting for the tab to be shown
        self._shown_key = None
        self._identities: list[str] = []   # every weight and bias, for the pages
        self._page = 0
        self._colors: dict[str, str] = {}  # series label -> colour, the same in every plot
        self._names: dict[str, str] = {}   # run id -> its legend text
        self.trend: Trajectory | None = None
        self.multiples: list[Trajectory] = []
        self.task = TaskSlot(self, debounce_ms=300)
        self.task.finished.connect(self._on_result)
        self.task.partial.connect(self._on_multiple)
        self.task.failed.connect(lambda m, d: self.title.setText(f"Cannot follow it: {m}"))
        self.task.progress.connect(self._on_progress)
        self.task.busy.connect(self._on_busy)

    # --- widgets, built on first show (pyqtgraph is imported then) ----------------------
    def build(self) -> None:
        if self._pg is not None:
            return
        import pyqtgraph as pg

        self._pg = pg
        self._layout.insertLayout(0, self._build_bar())
        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_single(pg))
        self.pages.addWidget(self._build_multiples(pg))
        self._layout.addWidget(self.pages, 1)

    def _build_bar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        self.mode = QComboBox()
        self.mode.setObjectName("trendMode")
        self.mode.addItems([SINGLE, MULTIPLES])
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.metric = QComboBox()
        self.metric.setObjectName("trendMetric")
        self.metric.addItems(list(METRICS))
        self.metric.currentIndexChanged.connect(self._redraw)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.cancel = QPushButton("Cancel")
        self.cancel.setObjectName("trendCancel")
        self.cancel.clicked.connect(self._on_cancel)
        self.cancel.hide()
        for w in (self.mode, QLabel("plot:"), self.metric):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel)
        return bar

    def _build_single(self, pg) -> QWidget:
        self.stats_plot = pg.PlotWidget()
        self.stats_plot.setObjectName("trendStatsPlot")
        self.change_plot = pg.PlotWidget()
        self.change_plot.setObjectName("trendChangePlot")
        self.change_plot.setLabel("left", "change %")
        self.change_plot.getAxis("left").enableAutoSIPrefix(False)   # never "change % (x0.001)"
        self.change_plot.setXLink(self.stats_plot)
        self.table = QTableWidget(0, 0)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.cellDoubleClicked.connect(lambda row, _col: self._choose(self.trend.points[row]))
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.stats_plot)
        split.addWidget(self.change_plot)
        split.addWidget(self.table)
        split.setSizes([300, 170, 230])
        return split

    def _build_multiples(self, pg) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        pager = QHBoxLayout()
        self.previous_page = QPushButton("◀")
        self.next_page = QPushButton("▶")
        self.previous_page.clicked.connect(lambda: self._turn(-1))
        self.next_page.clicked.connect(lambda: self._turn(1))
        self.page_label = QLabel()
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.RichText)
        for w in (self.previous_page, self.page_label, self.next_page):
            pager.addWidget(w)
        pager.addStretch(1)
        pager.addWidget(self.legend)
        layout.addLayout(pager)
        self.grid = pg.GraphicsLayoutWidget()
        self.grid.setObjectName("trendMultiples")
        self.grid.setBackground("w")
        layout.addWidget(self.grid, 1)
        return page

    # --- what to compute ----------------------------------------------------------------
    def set_variable(self, scan: DirectoryScan | None, var: VariableInfo | None) -> None:
        """Remember what to follow; compute now only if the tab is visible."""
        if scan is None:
            self._request = None
        elif var is not None or self._request is None or self._request[0] is not scan:
            self._request = (scan, var)
        if self.isVisible():
            self._start()

    def showEvent(self, event):
        super().showEvent(event)
        self._start()

    def clear(self) -> None:
        """Nothing of another folder's history stays (a folder opened, or its scan failed)."""
        self.task.cancel()
        self._request = self._shown_key = self.trend = None
        self.multiples = []
        self.title.setText(PROMPT)
        if self._pg is not None:
            self._on_busy(False)
            for plot in (self.stats_plot, self.change_plot):
                plot.clear()
            if self.stats_plot.plotItem.legend is not None:
                self.stats_plot.plotItem.legend.clear()
            self.table.setRowCount(0)
            self.grid.clear()

    def _multiples_mode(self) -> bool:
        return self._pg is not None and self.mode.currentText() == MULTIPLES

    def _start(self) -> None:
        if self._request is None:
            return
        self.build()
        scan, var = self._request
        if self._multiples_mode():
            self._start_multiples(scan)
        elif var is not None:
            self._start_single(scan, var)

    def _start_single(self, scan: DirectoryScan, var: VariableInfo) -> None:
        key = (id(scan), SINGLE, var.identity)
        if key == self._shown_key:
            return
        self._shown_key = key
        self._colors, self._names = _colors(scan), _run_names(scan)
        self.title.setText(f"<b>{_html(var.identity)}</b> across checkpoints — reading…")
        self._submit(trajectory_job, scan, var.identity)

    def _start_multiples(self, scan: DirectoryScan) -> None:
        from ..core.trajectory import weights_and_biases

        if self._shown_key is None or self._shown_key[0] != id(scan):
            self._identities = weights_and_biases(scan)
            self._page = 0
        key = (id(scan), MULTIPLES, self._page)
        if key == self._shown_key:
            return
        self._shown_key = key
        self._colors, self._names = _colors(scan), _run_names(scan)
        pages = max(1, -(-len(self._identities) // PAGE))
        count = plural(len(self._identities), "weight or bias", "weights and biases")
        self.page_label.setText(f"page {self._page + 1} of {pages} ({count})")
        self.previous_page.setEnabled(self._page > 0)
        self.next_page.setEnabled(self._page + 1 < pages)
        self.legend.setText(_legend_html(self._colors, self._names,
                                         any(c.run is None for c in scan.checkpoints)))
        self.multiples = []
        self.grid.clear()
        identities = self._identities[self._page * PAGE:(self._page + 1) * PAGE]
        self.title.setText(f"{plural(len(identities), 'variable')} across checkpoints — "
                           "reading…")
        self._submit(multiples_job, scan, identities)

    def _submit(self, job, *args) -> None:
        """Start (after the debounce) with progress and Cancel shown from now on."""
        self.task.submit(job, *args)
        self.progress.setRange(0, 0)   # busy until the first tensor is counted
        self._on_busy(True)

    def _on_mode(self) -> None:
        self.pages.setCurrentIndex(1 if self._multiples_mode() else 0)
        self._shown_key = None
        self._start()

    def _turn(self, step: int) -> None:
        self._page += step
        self._start()

    def _on_cancel(self) -> None:
        self.task.cancel()
        self._on_busy(False)
        self._shown_key = None   # showing the tab again starts over
        self.title.setText(self.title.text().replace("reading…", "cancelled"))

    # --- progress -----------------------------------------------------------------------
    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel.setVisible(busy)

    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} of {total} tensors")
        self.progress.setToolTip(what)

    # --- drawing ------------------------------------------------------------------------
    def _on_result(self, result) -> None:
        self.flags_found.emit([result] if isinstance(result, Trajectory) else result)
        if isinstance(result, Trajectory):
            self.trend = result
            self._draw_single()
            self.trend_ready.emit(result)
        else:
            self.title.setText(f"{plural(len(result), 'variable')} along each run; click a "
                               "point to open its checkpoint.")
            self.multiples_ready.emit(result)

    def _on_multiple(self, t: Trajectory) -> None:
        self.multiples.append(t)
        self._draw_cell(len(self.multiples) - 1, t)

    def _redraw(self) -> None:
        if self._pg is None:
            return
        if self.trend is not None:
            self._draw_single()
        self.grid.clear()
        for i, t in enumerate(self.multiples):
            self._draw_cell(i, t)

    def _draw_single(self) -> None:
        t = self.trend
        metric = self.metric.currentText()
        self.stats_plot.clear()
        self.change_plot.clear()
        legend = self.stats_plot.plotItem.legend or self.stats_plot.addLegend(offset=(10, 10))
        legend.clear()
        for plot in (self.stats_plot, self.change_plot):
            plot.setLabel("bottom", t.x_label)
        self.stats_plot.setLabel("left", metric)
        for label, points in _lines(t):
            self._plot_series(self.stats_plot.plotItem, label, points, METRICS[metric], legend=True)
            self._plot_series(self.change_plot.plotItem, label, points, METRICS["change %"])
        self._fill_table(t)
        runs = {p.run for p in t.points if p.run is not None}
        lone = sum(p.run is None for p in t.points)
        where = plural(len(runs), "run") + (f" and {plural(lone, 'checkpoint')} without a run"
                                            if lone else "")
        missing = (f"; not in {plural(len(t.missing), 'other checkpoint')} "
                   f"({_html(', '.join(safe_name(n) for n in t.missing[:5]))}"
                   f"{', …' if len(t.missing) > 5 else ''})" if t.missing else "")
        self.title.setText(f"<b>{_html(t.identity)}</b> in {plural(len(t.points), 'checkpoint')} "
                           f"of {where}{missing}. Click a point to open its checkpoint.")

    def _plot_series(self, plot, label: str | None, points: list[TrajectoryPoint], value,
                     legend=False, size: int = 7) -> None:
        """One run's line, or (label None) the checkpoints without a run as points; each
        point clickable."""
        pg = self._pg
        shown = [(p, value(p)) for p in points if p.stats is not None and value(p) is not None]
        if not shown:
            return
        color = LONE if label is None else self._colors.get(label, PALETTE[0])
        item = plot.plot([p.x for p, _ in shown], [v for _, v in shown],
                         pen=None if label is None else pg.mkPen(color, width=2), symbol="o",
                         symbolSize=size, symbolBrush=color, symbolPen=color,
                         data=[p for p, _ in shown],
                         name=self._legend_name(label) if legend else None)
        item.sigPointsClicked.connect(self._on_points_clicked)

    def _legend_name(self, label: str | None) -> str:
        return "without a run" if label is None else self._names.get(label, safe_name(label))

    def _on_points_clicked(self, _item, points, *_ev) -> None:
        if len(points):
            self._choose(points[0].data())

    def _choose(self, p: TrajectoryPoint) -> None:
        self.point_chosen.emit(p.checkpoint, p.key)

    def _fill_table(self, t: Trajectory) -> None:
        headers = ["Checkpoint", "Run", t.x_label, "Shape", "L2 norm", "mean", "std",
                   "change %", "Flags"]
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(t.points))
        for row, p in enumerate(t.points):
            s = p.stats
            values = [safe_name(p.checkpoint), safe_name(p.run) if p.run else "—", _num(p.x),
                      "×".join(map(str, p.shape)) or "scalar", _num(s and s.l2),
                      _num(s and s.mean), _num(s and s.std), _num(p.rel_change),
                      "; ".join(f.message for f in p.flags) or (p.problem or "")]
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col == len(values) - 1 and (p.flags or p.problem):
                    item.setForeground(QColor("#c62828"))
                    item.setText(("⚑ " if p.flags else "⚠ ") + text)
                self.table.setItem(row, col, item)

    def _draw_cell(self, i: int, t: Trajectory) -> None:
        metric = self.metric.currentText()
        plot = self.grid.addPlot(row=i // COLUMNS_PER_ROW, col=i % COLUMNS_PER_ROW)
        flagged = " ⚑" if t.flags() else ""
        plot.setTitle(_html(_elide(t.identity, 40)) + flagged, size="8pt",
                      color="#c62828" if flagged else "#333")
        plot.setToolTip("\n".join([t.identity, f"{metric} against {t.x_label}"]
                                  + [f"⚑ {f.message}" for f in t.flags()]))
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setStyle(tickFont=_small_font())
        for label, points in _lines(t):
            self._plot_series(plot, label, points, METRICS[metric], size=5)


def _lines(t: Trajectory) -> list[tuple[str | None, list[TrajectoryPoint]]]:
    """One line per run; the checkpoints without a run together as (None, points)."""
    lines = [(label, points) for label, points in t.series() if points[0].run is not None]
    lone = [p for p in t.points if p.run is None]
    return lines + ([(None, lone)] if lone else [])


def _colors(scan: DirectoryScan) -> dict[str, str]:
    """Each run's colour, in the scan's run order: the same run has the same colour in every
    plot."""
    runs = [label for label, members in runs_of(scan) if members[0].run is not None]
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(runs)}


def _run_names(scan: DirectoryScan) -> dict[str, str]:
    """Legend text of each run: its id, and which run it restarted."""
    return {r.id: safe_name(r.id) + (f" (restart of {safe_name(r.restarted_from)})"
                                     if r.restarted_from else "") for r in scan.runs}


def _legend_html(colors: dict[str, str], names: dict[str, str], lone: bool) -> str:
    items = [f'<span style="color:{c}">●</span> {_html(names.get(label, safe_name(label)))}'
             for label, c in colors.items()]
    if lone:
        items.append(f'<span style="color:{LONE}">●</span> without a run')
    return "&nbsp;&nbsp;".join(items)


_FONT = None


def _small_font():
    global _FONT
    if _FONT is None:
        from PySide6.QtGui import QFont

        _FONT = QFont()
        _FONT.setPointSize(7)
    return _FONT


def _elide(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(v) -> str:
    return "—" if v is None else number(v, 6)
