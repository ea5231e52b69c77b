"""The statistics beside the histogram, formatted as people read numbers."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from ...core.preview import TensorPreview
from ...textfmt import number, plural

ROWS = ("shape", "finite", "min", "max", "mean", "std", "L2", "NaN", "+Inf", "-Inf", "zeros")


def stat_texts(p: TensorPreview) -> dict[str, str]:
    s = p.stats
    fmt = (lambda v: "—" if v is None else number(v))
    return {
        "shape": f"{list(p.shape)} {p.dtype}",
        "finite": plural(s.finite, "value"), "min": fmt(s.min), "max": fmt(s.max),
        "mean": fmt(s.mean), "std": fmt(s.std), "L2": fmt(s.l2),
        "NaN": f"{s.nan:,}", "+Inf": f"{s.posinf:,}", "-Inf": f"{s.neginf:,}",
        "zeros": f"{s.zeros:,} ({100 * s.zero_fraction:.1f}%)" if s.count else "0",
    }


class StatsView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        form = QFormLayout(self)
        self.labels: dict[str, QLabel] = {}
        for key in ROWS:
            label = QLabel()
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setObjectName(f"stat_{key}")
            self.labels[key] = label
            form.addRow(key, label)

    def show_preview(self, p: TensorPreview) -> None:
        for key, text in stat_texts(p).items():
            self.labels[key].setText(text)

    def clear(self) -> None:
        for label in self.labels.values():
            label.clear()

    def text(self) -> str:
        return "\n".join(f"{k}: {v.text()}" for k, v in self.labels.items())
