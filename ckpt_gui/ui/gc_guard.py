"""Python's cyclic garbage collector, run on the GUI thread only.

Left automatic, the collector runs in whichever thread happens to allocate: a worker reading a
bucket could then destroy a Qt object of a closed window. Its destructor takes Qt's
signal-slot lock and waits for the GIL (PySide checks for a Python override), while the GUI
thread, holding the GIL, waits for that same lock to delete another object: the window
freezes for good (seen in the tests: the S3 client's JSON parse collected a QAction). So
automatic collection is off, and the GUI thread collects what is due on a timer, with the
thresholds the automatic collector would have used (pyqtgraph's util.garbage_collector does
the same; it is not imported at start-up, hence these lines)."""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

_THRESHOLDS = gc.get_threshold()


def collect_due() -> None:
    """Collect the generations whose allocation counts passed their thresholds."""
    counts = gc.get_count()
    due = [g for g in range(3) if counts[g] > _THRESHOLDS[g]]
    if due:
        gc.collect(max(due))


def install(parent: QObject, interval_ms: int = 1000) -> QTimer:
    """Turn automatic collection off and collect what is due every ``interval_ms`` on the
    thread of ``parent`` (the application: the GUI thread)."""
    gc.disable()
    timer = QTimer(parent)
    timer.timeout.connect(collect_due)
    timer.start(interval_ms)
    return timer
