"""Cyclic garbage is collected on the GUI thread only (ckpt_gui/ui/gc_guard.py): a Qt object in
a reference cycle is destroyed by the GUI thread's timer, never by a worker thread that
happens to allocate (a destructor there can deadlock with the GUI thread)."""
from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtCore import QObject

from ckpt_gui.ui import gc_guard


def test_a_qt_object_in_a_cycle_is_collected_by_the_gui_threads_timer(qtbot, qapp):
    timer = gc_guard.install(qapp, interval_ms=10)
    try:
        assert not gc.isenabled()
        destroyed_in = []
        holder = QObject()
        holder.destroyed.connect(lambda: destroyed_in.append(threading.current_thread().name))
        holder.cycle = holder             # only the collector can free it
        gone = weakref.ref(holder)
        del holder

        kept = []

        def allocate():                   # a worker allocating much, as a bucket client does
            kept.extend([] for _ in range(20_000))
        worker = threading.Thread(target=allocate, name="worker")
        worker.start()
        worker.join()
        assert gone() is not None         # the worker did not collect it
        qtbot.waitUntil(lambda: gone() is None, timeout=5000)
        assert destroyed_in in ([], ["MainThread"])
    finally:
        timer.stop()
        timer.deleteLater()
