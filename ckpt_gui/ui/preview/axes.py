"""Axes that count tensor indices: ticks only at whole numbers (a cell's centre), labelled as
integers, never 0.2 or 2.5."""
from __future__ import annotations

import math

import pyqtgraph as pg


class IndexAxis(pg.AxisItem):
    """Counts indices while ``indices`` is true; an ordinary value axis otherwise."""
    indices = True

    def tickSpacing(self, minVal, maxVal, size):
        if not self.indices:
            return super().tickSpacing(minVal, maxVal, size)
        levels = super().tickSpacing(minVal, maxVal, size)
        whole = []
        for spacing, offset in levels:
            spacing = max(1.0, float(round(spacing)))
            if all(spacing != s for s, _ in whole):
                whole.append((spacing, 0.0))
        return whole[:2]

    def tickValues(self, minVal, maxVal, size):
        if not self.indices:
            return super().tickValues(minVal, maxVal, size)
        values = super().tickValues(minVal, maxVal, size)
        return [(s, [v for v in ticks if float(v).is_integer()]) for s, ticks in values]

    def tickStrings(self, values, scale, spacing):
        if not self.indices:
            return super().tickStrings(values, scale, spacing)
        return [str(int(math.floor(v + 0.5))) for v in values]
