"""Colour maps a heatmap can be drawn with, and the marked colours of NaN, +Inf and -Inf.

A range symmetric about zero (signed data) gets a perceptually uniform diverging map (colorcet's
CET-D1: blue-white-red, both halves equally light and saturated at equal distances from the
middle), so a value and its negative are equally strong and zero is neutral; any other range
(non-negative data, or min-max chosen) a perceptually uniform sequential map (viridis)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ...core.preview import NAN, NEGINF, POSINF

AUTO = "auto"
DIVERGING = "CET-D1"
SEQUENTIAL = "viridis"
COLORMAPS = (AUTO, DIVERGING, "CET-D1A", SEQUENTIAL, "cividis", "magma", "CET-L1")

# Colours that none of the maps above paints a value with; each is named in the legend.
SPECIAL_COLOURS = {NAN: (0, 0, 0), POSINF: (255, 0, 255), NEGINF: (0, 230, 230)}
SPECIAL_NAMES = {NAN: "NaN", POSINF: "+Inf", NEGINF: "-Inf"}


def colormap_name(choice: str, levels: tuple[float, float]) -> str:
    """The chosen map; AUTO is diverging exactly when the range is centred on zero (so that its
    neutral middle means zero), sequential otherwise."""
    if choice != AUTO:
        return choice
    return DIVERGING if levels[0] == -levels[1] else SEQUENTIAL


def colormap(name: str) -> pg.ColorMap:
    return pg.colormap.get(name)


def colour_at(name: str, fraction: float) -> tuple[int, int, int]:
    """The RGB a map paints at ``fraction`` (0..1) of its range."""
    c = colormap(name).map(float(np.clip(fraction, 0.0, 1.0)), mode="qcolor")
    return c.red(), c.green(), c.blue()


def special_rgba(codes: np.ndarray) -> np.ndarray:
    """An RGBA picture of the NaN/+Inf/-Inf cells, transparent elsewhere (drawn over the map)."""
    palette = np.zeros((4, 4), np.uint8)
    for code, rgb in SPECIAL_COLOURS.items():
        palette[code] = (*rgb, 255)
    return palette[codes]


def swatch(code: int) -> str:
    """A coloured square for rich-text legends."""
    r, g, b = SPECIAL_COLOURS[code]
    return f'<span style="color:#{r:02x}{g:02x}{b:02x}">■</span>'
