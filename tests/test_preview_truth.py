"""Pictures a person can trust (issue 11): colours symmetric about zero and equally strong on both
sides, NaN/±Inf in their own colours and counted, constant tensors named, reductions labelled
and outliers kept, vectors as bars, ticks on cell centres, nothing stale, titled exports.

Pixel checks read the rendered plot (``grab()``) at the centre of a tensor cell."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings
from PySide6.QtGui import QImage

from ckpt_gui.core.model import VariableInfo
from ckpt_gui.core.preview import (FINITE, MAX_ABS, MIN_MAX, NAN, NEGINF, PERCENTILE, POSINF,
                                   SYMMETRIC, TREE, VECTOR, colour_levels, make_preview,
                                   reduce_blocks)
from ckpt_gui.core.reading import read_tensor
from ckpt_gui.core.scan import scan_directory
from ckpt_gui.core.stats import tensor_stats
from ckpt_gui.textfmt import number, plural
from ckpt_gui.ui.main_window import MainWindow
from test_gui import LOAD_TIMEOUT, _select_and_wait, open_dir, window  # noqa: F401 (fixture)

KEY = "{}/.ATTRIBUTES/VARIABLE_VALUE"


def _var(name, shape, dtype="float32"):
    return VariableInfo(name, tuple(shape), dtype, 0, "weight", name)


def _lab(rgb) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB colour: lightness, and a*, b* whose length is the chroma."""
    c = np.asarray(rgb, float) / 255
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _pixel(panel, x: float, y: float) -> tuple[int, int, int]:
    """The colour drawn at view coordinates (x, y) (a cell's centre is its (column, row))."""
    scene = panel.plot.getPlotItem().vb.mapViewToScene(QPointF(x, y))
    at = panel.plot.mapFromScene(scene)
    c = panel.plot.grab().toImage().pixelColor(at.x(), at.y())
    return c.red(), c.green(), c.blue()


def _write(tf, folder, prefix="ckpt", **tensors):
    folder.mkdir(exist_ok=True)
    tf.train.Checkpoint(**{k: tf.Variable(v) for k, v in tensors.items()}).write(
        str(folder / prefix))
    return folder


def _show(qtbot, window, tf, tmp_path, name, value):
    open_dir(qtbot, window, _write(tf, tmp_path / "c", **{name: value}))
    return _select_and_wait(qtbot, window, KEY.format(name))


# --- engine (no Qt) ---------------------------------------------------------------------------

def test_nan_and_infinities_are_counted_apart_and_kept_out_of_the_histogram():
    a = np.array([1.0, np.nan, np.inf, -np.inf, np.inf, 2.0, -3.0], np.float32)
    s = tensor_stats(a, bins=4)
    assert (s.nan, s.posinf, s.neginf, s.finite) == (1, 2, 1, 3)
    assert sum(s.histogram) == 3 and (s.min, s.max) == (-3.0, 2.0)
    assert s.bin_edges[0] == -3.0 and s.bin_edges[-1] == 2.0


def test_max_abs_blocks_keep_an_outlier_that_means_average_away():
    a = np.full((2048, 2048), 0.01, np.float32)
    a[1001, 1501], a[7, 9] = 9.0, -8.0
    mean = make_preview("c", _var("w", a.shape), a)
    assert mean.step == (2, 2) and mean.display.max() == pytest.approx((9 + 3 * 0.01) / 4)
    peak = make_preview("c", _var("w", a.shape), a, blocks=MAX_ABS)
    assert peak.display[500, 750] == 9.0 and peak.display[3, 4] == -8.0  # sign kept
    assert peak.display_range == (-8.0, 9.0)


def test_a_remainder_row_is_its_own_block_not_dropped():
    a = np.zeros((1025, 10), np.float32)
    a[1024, 3] = -5.0
    display, special, step = reduce_blocks(a, 1024, 1024, MAX_ABS)
    assert step == (2, 1) and display.shape == (513, 10) and special is None
    assert display[512, 3] == -5.0
    display, _, _ = reduce_blocks(a, 1024, 1024)
    assert display[512, 3] == -5.0  # the last block is that one row


def test_non_finite_cells_are_marked_and_painted_as_zero():
    a = np.ones((4, 6), np.float32)
    a[0, 0], a[1, 3], a[3, 5] = np.nan, np.inf, -np.inf
    p = make_preview("c", _var("w", a.shape), a)
    assert p.special[0, 0] == NAN and p.special[1, 3] == POSINF and p.special[3, 5] == NEGINF
    assert (p.special == FINITE).sum() == 21 and np.isfinite(p.display).all()
    assert p.display_range == (1.0, 1.0)
    big = np.ones((3000, 20), np.float32)
    big[1500, 0] = np.nan   # one NaN in a 3x1 block marks the whole block
    p = make_preview("c", _var("w", big.shape), big)
    assert p.special[500, 0] == NAN and p.display[500, 0] == 0 and p.display[499, 0] == 1


def test_colour_ranges():
    a = np.array([[1.16, -2.77], [0.5, 0.0]], np.float32)
    p = make_preview("c", _var("w", a.shape), a)
    assert colour_levels(p, "auto") == colour_levels(p, SYMMETRIC) == pytest.approx((-2.77, 2.77))
    p1, p99 = np.percentile(a, [1, 99])
    assert colour_levels(p, PERCENTILE) == pytest.approx((-abs(p1), abs(p1)))  # zero stays centred
    assert colour_levels(p, MIN_MAX) == pytest.approx((-2.77, 1.16))
    v = make_preview("c", _var("v", a.shape), np.abs(a))  # non-negative: min-max
    assert colour_levels(v, "auto") == pytest.approx((0.0, 2.77))
    assert colour_levels(v, PERCENTILE) == pytest.approx(np.percentile(np.abs(a), [1, 99]))
    ones = make_preview("c", _var("o", (3, 3)), np.ones((3, 3), np.float32))
    assert ones.constant == 1.0 and colour_levels(ones, "auto") == (0.0, 1.0)
    neg = make_preview("c", _var("n", (3, 3)), np.full((3, 3), -2.0, np.float32))
    assert neg.constant == -2.0 and colour_levels(neg, "auto") == (-2.0, 2.0)


def test_one_by_n_and_n_by_one_are_vectors():
    for shape in ((1, 32), (32, 1), (1, 1, 32)):
        a = np.arange(32, dtype=np.float32).reshape(shape)
        p = make_preview("c", _var("b", shape), a)
        assert p.kind == VECTOR
        np.testing.assert_array_equal(p.display, np.arange(32))
        assert a[p.tensor_index(5)] == 5


def test_numbers_read_as_people_read_them():
    assert number(np.float32(3.2160924e-15)) == "3.21609e-15"
    assert [number(v) for v in (np.nan, np.inf, -np.inf, np.int64(7))] == \
        ["NaN", "+Inf", "-Inf", "7"]
    assert plural(1, "value") == "1 value" and plural(1200, "value") == "1,200 values"


def test_object_graph_is_the_checkpoints_tree(corpus_copy):
    path = corpus_copy("charity-hd5f-keras-tf")
    ckpt = scan_directory(str(path)).checkpoint("weights.100.hd5f")
    graph = "_CHECKPOINTABLE_OBJECT_GRAPH"
    p = make_preview(ckpt.name, ckpt.variable(graph), read_tensor(ckpt, graph))
    assert p.kind == TREE and p.tree.label == "(root)"
    layer = next(r for r in p.tree.children if r.label == "layer_with_weights-0")
    kernel = next(r for r in layer.children if r.label == "kernel")
    rows = {r.label: r.detail for r in kernel.children}
    prefix = "layer_with_weights-0/kernel"
    assert rows == {"VARIABLE_VALUE": f"{prefix}/.ATTRIBUTES/VARIABLE_VALUE",
                    "slot m": f"{prefix}/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE",
                    "slot v": f"{prefix}/.OPTIMIZER_SLOT/optimizer/v/.ATTRIBUTES/VARIABLE_VALUE"}
    assert all(ckpt.variable(key) is not None for key in rows.values())


# --- what is drawn ----------------------------------------------------------------------------

def test_plus_and_minus_are_equally_strong_and_zero_is_neutral(qtbot, window, tf, tmp_path):
    # the kernel: min -2.77, max 1.16; +1 and -1 must look equally strong
    a = np.array([[1.0, -1.0, 0.0], [1.16, -2.77, 0.5]], np.float32)
    _show(qtbot, window, tf, tmp_path, "k", a)
    panel = window.preview
    assert panel.tensor_plot.levels == pytest.approx((-2.77, 2.77))
    plus, minus, zero = (_lab(_pixel(panel, c, 0)) for c in (0, 1, 2))
    assert plus[0] == pytest.approx(minus[0], abs=2)                         # same lightness
    assert np.hypot(*plus[1:]) == pytest.approx(np.hypot(*minus[1:]), abs=3)  # same chroma
    assert np.hypot(*plus[1:]) > 20
    assert plus[1] > 0 > minus[2] and plus[2] > 0                            # red vs blue
    hue = np.degrees(np.arctan2(plus[2], plus[1]) - np.arctan2(minus[2], minus[1])) % 360
    assert 90 < hue < 270                                                    # opposite hues
    assert np.hypot(*zero[1:]) < 6 and zero[0] > 85                          # zero: near white
    assert "colours: ±2.77 (CET-D1)" in panel.tensor_plot.caption_text()
    panel.colour_range.setCurrentText(MIN_MAX)  # not centred on zero: no diverging map
    assert panel.tensor_plot.cmap_name == "viridis"
    assert panel.tensor_plot.levels == pytest.approx((-2.77, 1.16))


def test_non_negative_data_uses_a_sequential_map(qtbot, window, tf, tmp_path):
    v = np.linspace(0, 4e-4, 12, dtype=np.float32).reshape(3, 4)  # like Adam's v
    _show(qtbot, window, tf, tmp_path, "v", v)
    panel = window.preview
    assert panel.tensor_plot.cmap_name == "viridis"
    low, high = _pixel(panel, 0, 0), _pixel(panel, 3, 2)
    assert np.allclose(low, (68, 1, 84), atol=4) and np.allclose(high, (253, 231, 37), atol=4)


def test_constant_tensor_names_its_value(qtbot, window, tf, tmp_path):
    _show(qtbot, window, tf, tmp_path, "ones", np.ones((4, 4), np.float32))
    panel = window.preview
    assert panel.tensor_plot.caption_text() == "all 16 values are 1"
    assert not panel.tensor_plot.colorbar.isVisible()  # no 0-255 bar, no bar at all
    assert panel.tensor_plot.levels == (0.0, 1.0)
    assert np.allclose(_pixel(panel, 1, 1), (253, 231, 37), atol=4)  # the top of viridis


def test_nan_and_infinities_in_their_own_colours_and_counted(qtbot, window, tf, tmp_path):
    from ckpt_gui.ui.preview.colours import SPECIAL_COLOURS

    a = np.random.default_rng(1).standard_normal((9, 9)).astype(np.float32)
    a[1, 2], a[8, 8], a[4, 4], a[7, 1] = np.nan, np.nan, np.inf, -np.inf
    _show(qtbot, window, tf, tmp_path, "bad", a)
    panel = window.preview
    assert _pixel(panel, 2, 1) == _pixel(panel, 8, 8) == SPECIAL_COLOURS[NAN]
    assert _pixel(panel, 4, 4) == SPECIAL_COLOURS[POSINF]
    assert _pixel(panel, 1, 7) == SPECIAL_COLOURS[NEGINF]
    assert len({SPECIAL_COLOURS[NAN], SPECIAL_COLOURS[POSINF], SPECIAL_COLOURS[NEGINF]}) == 3
    labels = {k: v.text() for k, v in panel.stat_labels.items()}
    assert (labels["NaN"], labels["+Inf"], labels["-Inf"], labels["finite"]) == \
        ("2", "1", "1", "77 values")
    assert labels["max"] == number(np.nanmax(np.where(np.isfinite(a), a, np.nan)))
    bars = [i for i in panel.hist.getPlotItem().items if hasattr(i, "opts")]
    assert bars[0].opts["height"].sum() == 77  # only finite values are bars
    caption = panel.tensor_plot.caption_text()
    assert "NaN: 2 values" in caption and "+Inf: 1 value" in caption and "-Inf: 1 value" in caption


def test_downsampled_map_says_so_and_max_abs_blocks_keep_the_outlier(qtbot, window, tf,
                                                                      tmp_path):
    from ckpt_gui.ui.preview.colours import DIVERGING, colour_at

    a = np.random.default_rng(2).uniform(-0.5, 0.5, (2100, 2100)).astype(np.float32)
    a[1000, 1000] = 40.0
    a[0, 0] = -5.0
    p = _show(qtbot, window, tf, tmp_path, "big", a)
    panel = window.preview
    assert p.step == (3, 3) and panel.block_choice.isVisibleTo(panel)
    lo, hi = p.display_range
    caption = panel.tensor_plot.caption_text()
    assert f"mean of 3×3 blocks; means span {number(lo, 3)} … {number(hi, 3)}, values -5 … 40" \
        in caption
    assert hi < 5  # the outlier is averaged down ...
    with qtbot.waitSignal(panel.preview_ready, timeout=LOAD_TIMEOUT) as blocker:
        panel.blocks.setCurrentText(MAX_ABS)
    p = blocker.args[0]
    assert p.display[333, 333] == 40.0 and p.display[0, 0] == -5.0  # ... and kept here
    assert "largest |x| of each 3×3 block, sign kept; cells span -5 … 40" in \
        panel.tensor_plot.caption_text()
    panel.plot.setRange(xRange=(990, 1010), yRange=(990, 1010), padding=0)  # zoom in on it
    assert np.allclose(_pixel(panel, 1000, 1000), colour_at(DIVERGING, 1.0), atol=6)


def test_row_vector_is_bars_and_hover_reads_its_index(qtbot, window, tf, tmp_path):
    row = np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 32)
    p = _show(qtbot, window, tf, tmp_path, "row", row)
    assert p.kind == VECTOR
    panel = window.preview
    bars = [i for i in panel.plot.getPlotItem().items if hasattr(i, "opts")
            and "height" in i.opts]
    np.testing.assert_array_equal(bars[0].opts["height"], row[0])
    assert panel.value_at(5.2, 0.3) == f"[0, 5] = {number(row[0, 5])}"


def test_ticks_sit_on_integer_cell_centres(qtbot, window, tf, tmp_path):
    a = np.arange(81, dtype=np.float32).reshape(9, 9) - 40
    _show(qtbot, window, tf, tmp_path, "sq", a)
    panel = window.preview
    for side in ("bottom", "left"):
        axis = panel.plot.getAxis(side)
        lo, hi = axis.range
        ticks = [v for _, vs in axis.tickValues(lo, hi, 400) for v in vs]
        assert ticks and all(float(v).is_integer() for v in ticks)
        assert axis.tickStrings(ticks, 1, 1) == [str(int(v)) for v in ticks]
    assert panel.image.mapRectToParent(panel.image.boundingRect()).getRect() == \
        (-0.5, -0.5, 9.0, 9.0)
    assert panel.value_at(4.4, 6.6) == "[7, 4] = 27"  # the cell centred on (4, 7)


def test_log_count_histogram_and_remembered_choices(qtbot, window, tf, tmp_path):
    a = (np.linspace(0, 1, 1000) ** 4).astype(np.float32).reshape(40, 25)
    _show(qtbot, window, tf, tmp_path, "z", a)
    panel = window.preview
    panel.histogram.log.setChecked(True)
    panel.colour_range.setCurrentText(PERCENTILE)
    panel.colour_map.setCurrentText("magma")
    counts = np.asarray(panel.preview.stats.histogram)
    bars = [i for i in panel.hist.getPlotItem().items if hasattr(i, "opts")]
    nonzero = counts > 0
    np.testing.assert_allclose(bars[0].opts["height"][nonzero] + bars[0].opts["y0"],
                               np.log10(counts[nonzero]))
    assert panel.tensor_plot.cmap_name == "magma"
    assert panel.tensor_plot.levels == pytest.approx(panel.preview.percentiles)
    window.settings.sync()
    again = MainWindow(settings=QSettings(window.settings.fileName(), QSettings.IniFormat))
    qtbot.addWidget(again)
    again.preview.build()
    assert again.preview.colour_range.currentText() == PERCENTILE
    assert again.preview.colour_map.currentText() == "magma"
    assert again.preview.histogram.log.isChecked()


# --- nothing stale ----------------------------------------------------------------------------

def _nothing_shown(panel, previous: str) -> None:
    """No part of the panel holds anything of the previous tensor."""
    assert all(label.text() == "" for label in panel.stat_labels.values())
    assert panel.histogram.stats is None and panel.hist.getPlotItem().items == []
    assert panel.hist.getPlotItem().vb.viewRange() == [[0, 1], [0, 1]]
    assert panel.histogram.caption.text() == ""
    assert panel.image.image is None and panel.plot.getPlotItem().items == []
    assert not panel.tensor_plot.colorbar.isVisible()
    assert panel.tensor_plot.caption.text() == "" and panel.hover.text().strip() == ""
    assert previous not in panel.title.text() and panel.preview is None
    assert not panel.export_png.isEnabled() and not panel.export_npy.isEnabled()


def test_an_unreadable_tensor_or_another_folder_leaves_nothing_of_the_last(qtbot, window, tf,
                                                                           tmp_path):
    good = _write(tf, tmp_path / "good", w=np.full((5, 5), 3.25, np.float32) + np.eye(5))
    _write(tf, good, "broken", w=np.ones((5, 5), np.float32))
    (good / "broken.data-00000-of-00001").write_bytes(b"\0" * 10)  # truncated: unreadable
    open_dir(qtbot, window, good)
    window.checkpoints.select("ckpt")
    _select_and_wait(qtbot, window, KEY.format("w"))
    panel = window.preview
    scene = panel.plot.getPlotItem().vb.mapViewToScene(QPointF(2, 2))
    panel._on_mouse([scene])
    assert panel.hover.text() == "[2, 2] = 4.25"
    window.checkpoints.select("broken")
    with qtbot.waitSignal(panel.preview_failed, timeout=LOAD_TIMEOUT):
        window.variables.select(KEY.format("w"))
    _nothing_shown(panel, "— ckpt")
    assert "cannot be read" in panel.text.toPlainText() and "broken" in panel.title.text()

    window.checkpoints.select("ckpt")
    _select_and_wait(qtbot, window, KEY.format("w"))
    scene = panel.plot.getPlotItem().vb.mapViewToScene(QPointF(2, 2))  # (the view ranged anew)
    panel._on_mouse([scene])
    assert panel.hover.text() == "[2, 2] = 4.25"
    other = _write(tf, tmp_path / "other", "elsewhere", v=np.zeros(3, np.float32))
    open_dir(qtbot, window, other)
    if panel.preview is None:   # nothing selected yet in the new folder
        _nothing_shown(panel, "— ckpt")
    else:                       # or the new folder's first variable, and only that
        assert panel.preview.checkpoint == "elsewhere"
    assert "4.25" not in panel.hover.text() and "3.25" not in panel.stats.text()
    assert "— ckpt" not in panel.title.text()


# --- export -----------------------------------------------------------------------------------

def test_exported_png_carries_a_title(qtbot, window, tf, tmp_path):
    from pyqtgraph.exporters import ImageExporter

    from ckpt_gui.ui.preview.export import TITLE_KEY

    a = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    _show(qtbot, window, tf, tmp_path, "kern", a)
    panel = window.preview
    path = panel.export_plot(str(tmp_path / "k.png"))
    saved = QImage(path)
    plot_only = ImageExporter(panel.plot.getPlotItem()).export(toBytes=True)
    assert not saved.isNull() and saved.height() > plot_only.height() + 40
    title = saved.text(TITLE_KEY).splitlines()
    assert title[:3] == ["kern — ckpt", "shape [2, 2] float32", "colours: ±2 (CET-D1)"]
    assert os.path.getsize(path) > 1000
