"""The picture of a tensor: a heatmap of a 2-D slice (each cell centred on its integer index,
colours from a range that tells the truth, NaN/±Inf in their own marked colours) or bars / a
line for a vector, with a caption that says what was reduced and how."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ...core.preview import (FINITE, IMAGE, MEAN, NAN, NEGINF, POSINF, VECTOR, TensorPreview,
                             colour_levels)
from ...textfmt import number, plural
from .axes import IndexAxis
from .colours import SPECIAL_COLOURS, SPECIAL_NAMES, colormap, colormap_name, special_rgba, swatch

BAR_LIMIT = 512  # vectors longer than this draw as a line even in bar mode
BAR, LINE = "Bar", "Line"


CAPTION_DIGITS = 3


def span(lo: float, hi: float) -> str:
    """'±0.7' for a range symmetric about zero, '-0.2 … 1.3' otherwise."""
    if lo == -hi:
        return f"±{number(hi, CAPTION_DIGITS)}"
    return f"{number(lo, CAPTION_DIGITS)} … {number(hi, CAPTION_DIGITS)}"


class TensorPlot(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.preview: TensorPreview | None = None
        self.levels: tuple[float, float] | None = None
        self.cmap_name = ""
        self.plot = pg.PlotWidget(axisItems={"bottom": IndexAxis("bottom"),
                                             "left": IndexAxis("left")})
        self.plot.setObjectName("previewPlot")
        self.image = pg.ImageItem()
        self.overlay = pg.ImageItem()   # NaN/±Inf cells, transparent elsewhere
        self.colorbar = pg.ColorBarItem(interactive=False, width=15)
        self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.caption = QLabel()
        self.caption.setObjectName("plotCaption")
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption)
        self.clear()

    # --- state ----------------------------------------------------------------------------
    def clear(self) -> None:
        """Nothing of any tensor left: no image, bars, colour bar, caption or axis range."""
        self.preview = None
        self.levels = None
        self.plot.clear()
        self.image.clear()
        self.overlay.clear()
        self.colorbar.setVisible(False)
        self.caption.clear()
        self.plot.getPlotItem().invertY(False)
        self.plot.getAxis("left").indices = True
        self.plot.setLabel("bottom", "")
        self.plot.setLabel("left", "")
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)

    def show_preview(self, p: TensorPreview, range_mode: str, cmap_choice: str,
                     vector_mode: str, levels: tuple[float, float] | None = None) -> None:
        """``levels``: the colour range to use instead of ``range_mode``'s (pictures drawn
        side by side on one scale)."""
        self.clear()
        self.preview = p
        if p.kind == IMAGE:
            self._draw_image(p, range_mode, cmap_choice, levels)
        elif p.kind == VECTOR:
            self._draw_vector(p, vector_mode)
        self.caption.setText("<br>".join(self._caption_lines(p)))
        self.plot.autoRange(padding=0.02)

    # --- heatmap --------------------------------------------------------------------------
    def _draw_image(self, p: TensorPreview, range_mode: str, cmap_choice: str,
                    levels: tuple[float, float] | None) -> None:
        sy, sx = p.step
        rows, cols = p.display.shape
        rect = (-0.5, -0.5, cols * sx, rows * sy)  # cell (r, c) centred on (c, r)
        self.levels = levels or colour_levels(p, range_mode)
        self.cmap_name = colormap_name(cmap_choice, self.levels)
        self.image.setImage(p.display, autoLevels=False, levels=self.levels)
        self.image.setRect(*rect)
        self.plot.addItem(self.image)
        self.colorbar.setColorMap(colormap(self.cmap_name))
        self.colorbar.setLevels(self.levels)
        self.colorbar.setVisible(p.constant is None)
        if p.special is not None:
            self.overlay.setImage(special_rgba(p.special), autoLevels=False, levels=(0, 255))
            self.overlay.setRect(*rect)
            self.plot.addItem(self.overlay)
        self.plot.getPlotItem().invertY(True)
        self.plot.setLabel("bottom", f"column (axis {p.ndim - 1})")
        self.plot.setLabel("left", f"row (axis {p.ndim - 2})")

    # --- vector ---------------------------------------------------------------------------
    def _draw_vector(self, p: TensorPreview, mode: str) -> None:
        step = p.step[0]
        x = np.arange(p.display.size) * step
        finite = np.ones(p.display.size, bool) if p.special is None else p.special == FINITE
        if mode == BAR and p.display.size <= BAR_LIMIT:
            self.plot.addItem(pg.BarGraphItem(x=x[finite], height=p.display[finite],
                                              width=0.8 * step, brush="#1976d2"))
        else:
            y = np.where(finite, p.display, np.nan)
            self.plot.plot(x, y, pen=pg.mkPen("#1976d2", width=1.5), connect="finite")
        if p.special is not None:
            for code, rgb in SPECIAL_COLOURS.items():
                where = p.special == code
                if where.any():
                    self.plot.plot(x[where], np.zeros(int(where.sum())), pen=None, symbol="x",
                                   symbolSize=10, symbolPen=pg.mkPen(rgb, width=2),
                                   symbolBrush=rgb, name=SPECIAL_NAMES[code])
        self.plot.getAxis("left").indices = False
        axis = [n > 1 for n in p.shape].index(True)
        self.plot.setLabel("bottom", "index" if p.ndim == 1 else f"index (axis {axis})")
        self.plot.setLabel("left", "value")

    # --- caption --------------------------------------------------------------------------
    def _caption_lines(self, p: TensorPreview) -> list[str]:
        lines = []
        s = p.stats
        if p.constant is not None:
            value = number(p.constant)
            lines.append(f"every value of this slice is {value}" if s.min != s.max
                         else f"all {plural(p.size, 'value')} are {value}")
        elif self.levels is not None:
            lines.append(f"colours: {span(*self.levels)} ({self.cmap_name})")
        if p.downsampled and p.display_range is not None:
            blocks = "×".join(str(k) for k in p.step)
            how = (f"mean of {blocks} blocks; means" if p.blocks == MEAN else
                   f"largest |x| of each {blocks} block, sign kept; cells")
            lines.append(f"{how} span {span(*p.display_range)}, values {span(s.min, s.max)}")
        if p.streamed:
            lines.append("read in chunks (too large to keep): hovering shows the cells' values")
        counts = {NAN: s.nan, POSINF: s.posinf, NEGINF: s.neginf}
        marked = [f"{swatch(c)} {SPECIAL_NAMES[c]}: {plural(n, 'value')}"
                  for c, n in counts.items() if n]
        if marked:
            lines.append("not numbers, drawn in their own colours: " + "  ".join(marked))
        return lines

    def caption_text(self) -> str:
        """The caption without markup (tests, the exported title)."""
        from PySide6.QtGui import QTextDocument

        doc = QTextDocument()
        doc.setHtml(self.caption.text())
        return doc.toPlainText()

    # --- hover ----------------------------------------------------------------------------
    def index_at(self, x: float, y: float) -> tuple[int, ...] | None:
        """The tensor index under view coordinates (x, y), or None outside the tensor."""
        p = self.preview
        if p is None:
            return None
        if p.kind == VECTOR:
            i = int(np.floor(x + 0.5))
            return p.tensor_index(i) if 0 <= i < p.size else None
        if p.kind == IMAGE:
            r, c = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))
            rows, cols = p.shape[-2:]
            if 0 <= r < rows and 0 <= c < cols:
                return tuple(p.index) + (r, c)
        return None

    def value_at(self, x: float, y: float) -> str | None:
        """'[3, 7] = -0.0123' under view coordinates (x, y), read from the whole tensor; for a
        tensor read in chunks (not kept), the value of the painted cell holding it, said so."""
        idx = self.index_at(x, y)
        if idx is None:
            return None
        p = self.preview
        if not p.streamed:
            return f"{list(idx)} = {number(p.array[idx])}"
        cell = (idx[-1] // p.step[0],) if p.kind == VECTOR else \
            (idx[-2] // p.step[0], idx[-1] // p.step[1])
        code = FINITE if p.special is None else p.special[cell]
        value = number(p.display[cell]) if code == FINITE else SPECIAL_NAMES[code]
        if not p.downsampled:
            return f"{list(idx)} = {value}"
        how = "block mean" if p.blocks == MEAN else "block's largest |x|"
        return f"{list(idx)}: {how} {value} (read in chunks; elements are not kept)"
