"""Watching a folder in a bucket: no file-system notifications there, so its listing is polled.

Slowly (``remote/pollSeconds`` in the settings, 30 s by default: each poll is a LIST request,
which a bucket's owner pays for), only while the window is on screen (not hidden, not
minimised), and on the work thread (a slow or hung server never holds up the GUI, nor the
scans and previews of the engine thread). A poll compares names, sizes and ETags with the
listing the last scan read; any difference asks for a scan.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QWidget

from ..core.model import DirectoryScan
from .tasks import TaskSlot, work_thread

POLL_KEY = "remote/pollSeconds"
DEFAULT_POLL_SECONDS = 30

Listing = dict[str, tuple[bool, int, str]]   # name -> (is a folder, size, ETag)


@dataclass(frozen=True)
class RemoteScan:
    """A scan of a URL and the folder listing it read (None when that could not be had)."""
    scan: DirectoryScan
    listing: Listing | None


def remote_scan_job(url: str, *, state) -> RemoteScan:
    """Scan the URL; then take the listing the scan itself read (no second request): whatever
    changes after it, the next poll sees."""
    from ..core import storage
    from ..core.scan import scan_directory

    state.progress(0, 0, f"Listing {url}…")
    scan = scan_directory(url, progress=lambda done, total, what: state.progress(
        done, total, f"Reading {url}: {what} ({done + 1} of {total})" if what else ""),
        cancelled=state.cancelled)
    try:
        listing = storage.listing_now(scan.directory, fresh=False)
    except OSError:
        listing = None
    return RemoteScan(scan, listing)


def poll_job(url: str, *, state) -> Listing:
    from ..core import storage

    return storage.listing_now(url)


class RemoteWatcher(QObject):
    """Polls one folder URL while ``window`` is visible; ``changed`` when its listing differs
    from the last scan's, ``failed(sentence)`` when a poll cannot list it."""

    changed = Signal()
    failed = Signal(str)

    def __init__(self, window: QWidget, settings: QSettings):
        super().__init__(window)
        self._window = window
        self.url: str | None = None
        self._listing: Listing | None = None
        self._since = QElapsedTimer()    # since the last poll (or the scan)
        self.task = TaskSlot(self, executor=work_thread())
        self.task.finished.connect(self._on_polled)
        self.task.failed.connect(lambda message, _details: self.failed.emit(
            f"{self.url}: {message}"))
        self.timer = QTimer(self)
        seconds = settings.value(POLL_KEY, DEFAULT_POLL_SECONDS)
        self.timer.setInterval(int(float(seconds or DEFAULT_POLL_SECONDS) * 1000))
        self.timer.timeout.connect(self.poll)
        window.installEventFilter(self)

    def watch(self, url: str, listing: Listing | None) -> None:
        """Watch ``url``, whose last scan read ``listing`` (None: the scan failed, so any
        listing a poll gets asks for a scan again)."""
        self.url, self._listing = url, listing
        self._since.start()
        self._update()

    def stop(self) -> None:
        self.url = None
        self.task.cancel()
        self._update()

    def is_polling(self) -> bool:
        return self.timer.isActive()

    def poll(self) -> None:
        """List the folder now (on the work thread)."""
        if self.url is not None:
            self._since.start()
            self.task.submit(poll_job, self.url)

    def _on_polled(self, listing: Listing) -> None:
        if listing != self._listing:
            self._listing = listing
            self.changed.emit()

    def _update(self) -> None:
        """Poll while there is a URL and the window is on screen; when it comes back after
        longer than an interval, poll at once."""
        on_screen = self._window.isVisible() and not self._window.isMinimized()
        if self.url is None or not on_screen:
            self.timer.stop()
        elif not self.timer.isActive():
            self.timer.start()
            if self._since.isValid() and self._since.elapsed() >= self.timer.interval():
                self.poll()

    def eventFilter(self, obj, event):
        if event.type() in (QEvent.Show, QEvent.Hide, QEvent.WindowStateChange):
            self._update()
        return False
