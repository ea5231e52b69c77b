"""A plot saved as a PNG that says what it shows: a title band above the picture (variable,
checkpoint, shape, dtype, colour range), also stored as the PNG's text chunks."""
from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter

TITLE_KEY = "Title"
PADDING = 8


def titled_png(plot_item, lines: list[str], path: str) -> QImage:
    """Render ``plot_item`` (with its colour bar) and write it below ``lines`` to ``path``."""
    from pyqtgraph.exporters import ImageExporter

    picture = ImageExporter(plot_item).export(toBytes=True)
    font = QFont()
    font.setPointSize(11)
    metrics = QFontMetrics(font)
    band = PADDING * 2 + metrics.lineSpacing() * len(lines)
    width = max(picture.width(), max(metrics.horizontalAdvance(t) for t in lines) + 2 * PADDING)
    out = QImage(width, picture.height() + band, QImage.Format_RGB32)
    out.fill(QColor("white"))
    painter = QPainter(out)
    painter.setFont(font)
    painter.setPen(QColor("black"))
    painter.drawText(QRect(PADDING, PADDING, width - 2 * PADDING, band - PADDING),
                     Qt.AlignLeft | Qt.AlignTop, "\n".join(lines))
    painter.drawImage(0, band, picture)
    painter.end()
    out.setText(TITLE_KEY, "\n".join(lines))
    if not out.save(path, "PNG"):
        raise OSError(f"cannot write {path}")
    return out
