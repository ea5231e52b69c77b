"""Background work for panels: one task slot per panel, newest request wins.

The habit is Orange3's ``ConcurrentWidgetMixin`` (one task per widget, cancel on new input, a
Qt-free function given a state object): the function runs in an engine thread and receives a
``TaskState`` to report progress, to hand over results as they come, and to ask whether it was
cancelled. Its return value, or its exception as text, comes back to the GUI thread through
signals. A result of a superseded request is dropped, so a stale preview never lands.

Three long-lived engine threads, so that nothing waits for ``import tensorflow`` that does not
need it:

- ``engine_thread()``: reading — scans, previews, comparisons. Only a read that falls back to
  TensorFlow (a TF1 file, a string tensor) waits there for the import, and says so.
- ``work_thread()``: long work that may need TensorFlow — verification, restore, the demo.
  A scan or a preview never queues behind it.
- ``tensorflow_thread()``: ``import tensorflow``, once, after the folder is listed.
"""
from __future__ import annotations

import itertools
import queue
import threading
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal, Slot


class EngineThread:
    """One long-lived Python thread that runs the engine work given to it, in submission order.

    Not a QThreadPool: Qt's pooled threads are reused by PySide with a fresh Python thread
    state per run, while TensorFlow's pybind11 layer caches the thread state it saw first; the
    second TensorFlow error raised on a reused pooled thread then touched a freed thread state
    and crashed the process (seen with RestoreV2 on a missing data file). A plain
    ``threading.Thread`` keeps one thread state for its whole life. Work of one kind shares a
    thread (see the module's docstring), so reads of one kind do not compete for the disk.
    """

    def __init__(self, name: str = "ckpt_gui-engine"):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def start(self, job: Callable[[], None]) -> None:
        self._queue.put(job)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            except BaseException:  # jobs report their own errors; the thread must live on
                traceback.print_exc()

    @property
    def thread(self) -> threading.Thread:
        return self._thread


_threads: dict[str, EngineThread] = {}
_threads_lock = threading.Lock()


def _named_thread(name: str) -> EngineThread:
    with _threads_lock:
        if name not in _threads:
            _threads[name] = EngineThread(name)
    return _threads[name]


def engine_thread() -> EngineThread:
    """Scans and tensor reads (the default of every TaskSlot)."""
    return _named_thread("ckpt_gui-engine")


def work_thread() -> EngineThread:
    """Verification, restore, the demo: long, and needing TensorFlow for most formats."""
    return _named_thread("ckpt_gui-work")


def tensorflow_thread() -> EngineThread:
    """Where TensorFlow is imported: a thread of its own, so the others go on meanwhile."""
    return _named_thread("ckpt_gui-tensorflow")


class _TensorFlowWaits(QObject):
    """Tells the GUI thread that an engine thread waits for ``import tensorflow`` to finish
    (core.tfrt calls the listener in that thread; the signal crosses to the GUI thread)."""
    waiting = Signal(str)   # the waiting thread's name


_waits: _TensorFlowWaits | None = None


def tensorflow_waits() -> _TensorFlowWaits:
    global _waits
    with _threads_lock:
        if _waits is None:
            from ..core import tfrt

            _waits = _TensorFlowWaits()
            tfrt.add_waiting_listener(lambda: _waits.waiting.emit(threading.current_thread().name))
    return _waits


class Cancelled(Exception):
    """Raised by TaskState.check() when the task was superseded or cancelled."""


class TaskState:
    """Handed to the worker function: progress reports and cancellation, no Qt needed."""

    def __init__(self, emit_progress: Callable[[int, int, str], None],
                 emit_partial: Callable[[object], None] = lambda _result: None):
        self._cancel = threading.Event()
        self._emit = emit_progress
        self._emit_partial = emit_partial

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def progress(self, done: int, total: int, what: str = "") -> None:
        self._emit(done, total, what)

    def partial(self, result: object) -> None:
        """Hand over a piece of the result now (one verified checkpoint of many)."""
        self._emit_partial(result)


class _Signals(QObject):
    progress = Signal(int, int, int, str)        # generation, done, total, what
    partial = Signal(int, object)                # generation, a piece of the result
    done = Signal(int, object)                   # generation, result
    error = Signal(int, str, str)                # generation, message, details


class _Job:
    def __init__(self, generation: int, fn, args, kwargs, signals: _Signals, state: TaskState):
        self._gen, self._fn, self._args, self._kwargs = generation, fn, args, kwargs
        self._signals, self._state = signals, state

    def __call__(self):
        if self._state.cancelled():
            return  # superseded while it waited
        try:
            result = self._fn(*self._args, state=self._state, **self._kwargs)
        except Cancelled:
            return
        except BaseException as e:  # every error becomes a result the UI shows
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self._signals.error.emit(self._gen, message, traceback.format_exc())
            return
        if not self._state.cancelled():
            self._signals.done.emit(self._gen, result)


class TaskSlot(QObject):
    """Runs one background task at a time for its owner; a new ``submit`` supersedes the old.

    Signals carry only the current task's outcome: ``finished(result)``, ``failed(message,
    details)``, ``progress(done, total, what)``, ``partial(piece)``; ``busy(bool)`` says
    whether a task is running.
    """

    finished = Signal(object)
    failed = Signal(str, str)
    progress = Signal(int, int, str)
    partial = Signal(object)
    busy = Signal(bool)

    _counter = itertools.count(1)

    def __init__(self, parent: QObject | None = None, executor: EngineThread | None = None,
                 debounce_ms: int = 0):
        super().__init__(parent)
        self._executor = executor or engine_thread()
        self._generation = 0
        self._state: TaskState | None = None
        self._signals = _Signals()
        self._signals.progress.connect(self._on_progress)
        self._signals.partial.connect(self._on_partial)
        self._signals.done.connect(self._on_done)
        self._signals.error.connect(self._on_error)
        self._pending = None
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._start_pending)

    def is_running(self) -> bool:
        return self._state is not None

    def submit(self, fn: Callable, *args, **kwargs) -> int:
        """Run ``fn(*args, state=TaskState, **kwargs)`` in a worker (after the debounce delay)."""
        self._cancel_current()
        self._generation = next(self._counter)
        self._pending = (self._generation, fn, args, kwargs)
        if self._debounce.interval() > 0:
            self._debounce.start()
        else:
            self._start_pending()
        return self._generation

    def cancel(self) -> None:
        self._debounce.stop()
        self._pending = None
        was_running = self._cancel_current()
        self._generation = next(self._counter)
        if was_running:
            self.busy.emit(False)

    def _cancel_current(self) -> bool:
        if self._state is None:
            return False
        self._state.cancel()
        self._state = None
        return True

    @Slot()
    def _start_pending(self):
        if self._pending is None:
            return
        generation, fn, args, kwargs = self._pending
        self._pending = None
        signals = self._signals
        state = TaskState(lambda d, t, w, g=generation: signals.progress.emit(g, d, t, w),
                          lambda piece, g=generation: signals.partial.emit(g, piece))
        self._state = state
        self.busy.emit(True)
        self._executor.start(_Job(generation, fn, args, kwargs, signals, state))

    def _current(self, generation: int) -> bool:
        return generation == self._generation and self._state is not None

    @Slot(int, int, int, str)
    def _on_progress(self, generation, done, total, what):
        if self._current(generation):
            self.progress.emit(done, total, what)

    @Slot(int, object)
    def _on_partial(self, generation, piece):
        if self._current(generation):
            self.partial.emit(piece)

    @Slot(int, object)
    def _on_done(self, generation, result):
        if self._current(generation):
            self._state = None
            self.busy.emit(False)
            self.finished.emit(result)

    @Slot(int, str, str)
    def _on_error(self, generation, message, details):
        if self._current(generation):
            self._state = None
            self.busy.emit(False)
            self.failed.emit(message, details)
