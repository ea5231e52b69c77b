"""The main window: assembles the panels and the actions; all work happens in task slots.

Start-up order: the window is painted, the folder is scanned and its table painted, and only then
are pyqtgraph (on the GUI thread) and TensorFlow (on a thread of its own) loaded; scans and
previews never wait for TensorFlow (see tasks.py).
"""
from __future__ import annotations

import dataclasses
import os

from PySide6.QtCore import (QEvent, QFileSystemWatcher, QObject, QSettings, QSize, Qt, QTimer,
                            Signal)
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QInputDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QPushButton, QSplitter, QStyle, QTabWidget, QWidget)

from ..core import limits, storage
from ..core.model import CheckpointInfo, DirectoryScan
from ..textfmt import human_bytes, plural
from . import savedir
from .checkpoints_panel import CheckpointsPanel
from .diff_panel import DiffPanel
from .open_url import OpenUrlDialog, recent_locations, recent_urls, remember_location
from .preview_panel import PreviewPanel
from .remote_watch import RemoteScan, RemoteWatcher, remote_scan_job
from .tasks import TaskSlot, tensorflow_thread, tensorflow_waits, work_thread
from .trend_panel import TrendPanel
from .variables_panel import VariablesPanel
from .verification import Started, summary, verify_job

MEMORY_BUDGET_KEY = "engine/memoryBudgetBytes"
WAITING_FOR_TF = "Waiting for TensorFlow to finish loading"
APP_NAME = "ckpt_gui"
HEAVY_LOAD_AT_THE_LATEST_MS = 300  # after the first scan, when its table is not painted


class _PaintWatch(QObject):
    """Calls ``callback`` once, from the event loop, after ``widget``'s next paint."""

    def __init__(self, widget: QWidget, callback):
        super().__init__(widget)
        self._callback = callback
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Paint:
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self._callback)
            self.deleteLater()
        return False


def after_next_paint(widget: QWidget, callback) -> None:
    """Run ``callback`` right after ``widget`` is next painted (Qt paints on a timer of its
    own, after work queued now: a zero timer would run before the paint)."""
    _PaintWatch(widget, callback)


def scan_job(directory: str, *, state) -> DirectoryScan:
    from ..core.scan import scan_directory

    return scan_directory(directory, progress=state.progress, cancelled=state.cancelled)


def reinspect_job(scan: DirectoryScan, names: list[str], *, state) -> DirectoryScan:
    from ..core.scan import reinspect_checkpoints

    return reinspect_checkpoints(scan, names, progress=state.progress, cancelled=state.cancelled)


def load_tensorflow_job(*, state) -> str:
    from ..core.tfrt import tf

    return tf().__version__


def warm_kernels() -> None:
    """numba's compiled loops loaded (compiled on a machine's first run) on an idle engine
    thread, so the first large tensor previewed does not wait for them."""
    from ..core import kernels

    kernels.warm()


def demo_job(*, state) -> str:
    from ..demo import make_demo

    return make_demo(progress=state.progress)


def _default_size() -> QSize:
    """1400x860, or what the screen has room for (a laptop or a 1280x800 display)."""
    screen = QGuiApplication.primaryScreen()
    room = screen.availableGeometry().size() if screen is not None else QSize(1400, 860)
    return QSize(min(1400, room.width()), min(860, room.height()))


class MainWindow(QMainWindow):
    directory_loaded = Signal(object)      # DirectoryScan, after every (re)scan lands
    tensorflow_ready = Signal(str)
    error_shown = Signal(str)

    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings or QSettings(APP_NAME, APP_NAME)
        self.scan: DirectoryScan | None = None
        self.directory: str | None = None
        self._pending_select: str | None = None
        self._painted = False           # after_first_paint has run
        self._heavy_started = False     # pyqtgraph built, TensorFlow asked for
        self._verifying: list[str] = []           # names asked for in the running verification
        self._verified: list[CheckpointInfo] = []  # its results so far
        self._changed: set[str] = set()  # checkpoints whose files changed in place
        self._rescan = False             # the folder's listing changed: scan it all
        self._file_owner: dict[str, str] = {}     # watched file -> its checkpoint's name
        self.setWindowTitle("ckpt_gui")
        self.setAcceptDrops(True)
        self.resize(_default_size())

        self.checkpoints = CheckpointsPanel()
        self.variables = VariablesPanel()
        self.preview = PreviewPanel(self.settings)
        self.trend = TrendPanel()
        self.diff = DiffPanel()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("rightTabs")
        self.tabs.addTab(self.preview, "Tensor")
        self.tabs.addTab(self.trend, "Across checkpoints")
        self.tabs.addTab(self.diff, "Diff")
        left = QSplitter(Qt.Vertical)
        left.addWidget(self.checkpoints)
        left.addWidget(self.variables)
        left.setSizes([330, 500])
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setSizes([620, 780])
        self.setCentralWidget(self.splitter)

        self.scan_task = TaskSlot(self)
        self.scan_task.finished.connect(self._on_scanned)
        self.scan_task.failed.connect(self._on_scan_failed)
        self.scan_task.progress.connect(self._on_progress)
        self.scan_task.busy.connect(self._on_busy)
        self.verify_task = TaskSlot(self, executor=work_thread())
        self.verify_task.partial.connect(self._on_verify_step)
        self.verify_task.finished.connect(lambda _results: self._finish_verification())
        self.verify_task.failed.connect(self._on_verify_failed)
        self.verify_task.progress.connect(self._on_progress)
        self.verify_task.busy.connect(self._on_busy)
        self.demo_task = TaskSlot(self, executor=work_thread())
        self.demo_task.finished.connect(self.open_path)
        self.demo_task.failed.connect(self._on_demo_failed)
        self.demo_task.progress.connect(self._on_progress)
        self.demo_task.busy.connect(self._on_busy)
        self.tf_task = TaskSlot(self, executor=tensorflow_thread())
        self.tf_task.finished.connect(self._on_tensorflow)
        self.tf_task.failed.connect(lambda m, d: self.show_error(f"TensorFlow failed to load: {m}", d))
        tensorflow_waits().waiting.connect(self._on_waiting_for_tensorflow)

        self.checkpoints.checkpoint_selected.connect(self._on_checkpoint)
        self.checkpoints.open_directory_requested.connect(self.open_path)
        self.checkpoints.verify_requested.connect(self.verify)
        self.checkpoints.verify_all_requested.connect(self.verify_all)
        self.checkpoints.restore_requested.connect(self.restore)
        self.checkpoints.delete_requested.connect(self.delete)
        self.checkpoints.pair_selected.connect(self.compare)
        self.checkpoints.compare_requested.connect(self.compare_with)
        self.variables.variable_selected.connect(self._on_variable)
        self.trend.point_chosen.connect(self._show_point)
        self.trend.flags_found.connect(self._show_flags)
        self.preview.status_message.connect(self.statusBar().showMessage)
        self.preview.preview_failed.connect(lambda m, d: self.error_shown.emit(m))

        self._preview_request = (None, None)   # what the preview shows, once it is built
        self._chosen_variable: str | None = None  # to select in the next checkpoint shown
        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._on_directory_changed)
        self.watcher.fileChanged.connect(self._on_file_changed)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.setInterval(500)
        self.refresh_timer.timeout.connect(self._apply_changes)
        self.remote_watch = RemoteWatcher(self, self.settings)
        self.remote_watch.changed.connect(self._on_remote_changed)
        self.remote_watch.failed.connect(self.statusBar().showMessage)

        self._apply_memory_budget()
        self._build_status_bar()
        self._build_menus()
        self._build_toolbar()
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # --- start-up -------------------------------------------------------------------------
    def after_first_paint(self) -> None:
        """What would delay the first paint, and then the folder's table: pyqtgraph, then
        TensorFlow on its thread. Started once the first scan has landed, at once when no
        folder is being opened."""
        self._painted = True
        if not (self.scan_task.is_running() or self.demo_task.is_running()):
            self._load_heavy_modules()

    def _load_heavy_modules(self) -> None:
        if self._heavy_started:
            return
        self._heavy_started = True
        self.preview.build()
        self.preview.show_variable(*self._preview_request)
        self.tf_status.setText("Loading TensorFlow…")
        self.tf_task.submit(load_tensorflow_job)

    def _after_first_scan(self) -> None:
        """The heavy modules load once the first scan's rows have been painted (or a moment
        later, should the table not be painted at all)."""
        if self._painted and not self._heavy_started:
            after_next_paint(self.checkpoints.table.viewport(), self._load_heavy_modules)
            QTimer.singleShot(HEAVY_LOAD_AT_THE_LATEST_MS, self._load_heavy_modules)

    def _on_tensorflow(self, version: str) -> None:
        tensorflow_thread().start(warm_kernels)   # (its one job, TensorFlow's import, is done)
        self.tf_status.setText(f"TensorFlow {version}")
        if self.statusBar().currentMessage().startswith(WAITING_FOR_TF):
            self.statusBar().clearMessage()  # the wait is over: no stale "waiting" stays
        self.tensorflow_ready.emit(version)

    def _on_waiting_for_tensorflow(self, thread: str) -> None:
        if thread == tensorflow_thread().thread.name:
            return  # (the import itself: the label beside says so)
        what = ("verification" if self.verify_task.is_running() else "this restore or demo") \
            if thread == work_thread().thread.name else "reading this tensor"
        self.statusBar().showMessage(f"{WAITING_FOR_TF}: {what} needs it…")

    def open_demo(self) -> None:
        self.statusBar().showMessage("Creating the demo training folder (trains a small MLP)…")
        self.demo_task.submit(demo_job)

    def _on_demo_failed(self, message: str, details: str) -> None:
        self.show_error(f"The demo failed: {message}", details)
        self._after_first_scan()

    # --- opening --------------------------------------------------------------------------
    def open_path(self, path: str) -> None:
        """Open a directory, or the directory of a checkpoint (a file, an unzipped .keras
        folder) with that checkpoint selected. A URL is opened as it is: what it names (a
        folder, a checkpoint) costs requests, which the scan makes on the engine thread."""
        from ..core.scan import checkpoint_location

        if storage.is_url(path):
            path, select = storage.normalise(path), None
        else:
            path, select = checkpoint_location(os.path.abspath(os.path.expanduser(path)))
        if self.directory != path:
            self._unwatch()
            self.remote_watch.stop()
            self._show_in_preview(None, None)
            self.trend.clear()   # nothing of the other folder stays on any tab
            self.diff.clear()
            savedir.watch(None if storage.is_url(path) else path)
            if self.verify_task.is_running():  # (its results are of the other folder)
                self.verify_task.cancel()
                self.checkpoints.proxy.clear_notes()
        self.directory = path
        self._pending_select = select
        self.setWindowTitle(f"{storage.base_name(path)} — ckpt_gui")
        self._remember(path)
        self.refresh()

    def open_url(self) -> None:
        """File → Open URL…: a folder in a bucket, chosen among the recent URLs or typed."""
        dialog = OpenUrlDialog(recent_urls(self.settings), self)
        self.url_dialog = dialog
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.open_path(dialog.url()))
        dialog.open()

    def go_up(self) -> None:
        """Open the parent of the open folder (a URL's too, up to its bucket)."""
        up = storage.parent(self.directory) if self.directory else None
        if up:
            self.open_path(up)

    def refresh(self) -> None:
        """Scan the whole folder again (what was verified is forgotten with it)."""
        self._changed.clear()
        self._rescan = False
        if self.directory:
            self.checkpoints.show_verify_summary("")
            if storage.is_url(self.directory):
                self.statusBar().showMessage(f"Listing {self.directory}…")
                self.scan_task.submit(remote_scan_job, self.directory)
            else:
                self.statusBar().showMessage(f"Scanning {self.directory}…")
                self.scan_task.submit(scan_job, self.directory)

    def _on_scanned(self, scan: DirectoryScan | RemoteScan) -> None:
        """A scan landed: a whole one, or one of a few checkpoints inspected again."""
        if isinstance(scan, RemoteScan):
            self.remote_watch.watch(scan.scan.directory, scan.listing)
            scan = scan.scan
        else:
            self._watch(scan)
        self.scan = scan
        select = self._checkpoint_for(scan, self._pending_select)
        self._pending_select = None
        self.checkpoints.set_scan(scan, select)
        self.statusBar().showMessage(
            f"{plural(len(scan.checkpoints), 'checkpoint')} in {scan.directory}"
            + (f"; latest {scan.latest}" if scan.latest else ""), 8000)
        self._after_first_scan()
        self.directory_loaded.emit(scan)

    @staticmethod
    def _checkpoint_for(scan: DirectoryScan, file_name: str | None) -> str | None:
        if not file_name:
            return None
        for c in scan.checkpoints:
            if c.name == file_name or any(os.path.basename(f.name) == file_name for f in c.files):
                return c.name
        return None

    def _on_scan_failed(self, message: str, details: str) -> None:
        self.scan = None
        self.checkpoints.set_scan(None)
        self.checkpoints.show_failure(message)
        self.variables.set_checkpoint(None)
        self._show_in_preview(None, None)
        self.trend.clear()
        self.diff.clear()
        self.remote_watch.stop()   # (Refresh tries again)
        if self.directory and storage.is_url(self.directory):
            self.statusBar().showMessage(message)   # (no box: one line, the window usable)
            self.error_shown.emit(message)
        else:
            self.show_error(message, details)
        self._after_first_scan()

    def _on_remote_changed(self) -> None:
        """The bucket folder's listing changed: scan it again (unless a scan is under way,
        which reads the new listing anyway)."""
        if not self.scan_task.is_running():
            self.refresh()

    # --- watching the folder --------------------------------------------------------------
    def _watch(self, scan: DirectoryScan) -> None:
        """Watch the folder (files come and go) and each checkpoint's files (changed in
        place: truncated, rewritten)."""
        self._file_owner = {os.path.join(scan.directory, f.name): c.name
                            for c in scan.checkpoints for f in c.files}
        watched = set(self.watcher.files())
        if watched - self._file_owner.keys():
            self.watcher.removePaths(sorted(watched - self._file_owner.keys()))
        if self._file_owner.keys() - watched:
            self.watcher.addPaths(sorted(self._file_owner.keys() - watched))
        if scan.directory not in self.watcher.directories():
            self.watcher.addPath(scan.directory)

    def _unwatch(self) -> None:
        paths = self.watcher.directories() + self.watcher.files()
        if paths:
            self.watcher.removePaths(paths)
        self._file_owner = {}
        self._changed.clear()
        self._rescan = False

    def _on_directory_changed(self, _path: str) -> None:
        self._rescan = True
        self.refresh_timer.start()  # a burst of writes (a save) becomes one rescan

    def _on_file_changed(self, path: str) -> None:
        owner = self._file_owner.get(path)
        if owner is None:
            self._rescan = True
        else:
            self._changed.add(owner)
        self.refresh_timer.start()

    def _apply_changes(self) -> None:
        """Scan the folder again when its listing changed (or a scan is under way, which may
        have read the old bytes); else inspect again only the checkpoints whose files changed."""
        if self._rescan or self.scan is None or self.scan_task.is_running():
            self.refresh()
        elif self._changed:
            names = sorted(self._changed)
            self._changed.clear()
            self.statusBar().showMessage(f"Changed on disk: {', '.join(names)}; reading again…")
            self.scan_task.submit(reinspect_job, self.scan, names)

    # --- selection ------------------------------------------------------------------------
    def _on_checkpoint(self, ckpt) -> None:
        previous = self.variables.current()
        chosen, self._chosen_variable = self._chosen_variable, None
        self.variables.set_checkpoint(ckpt, select=chosen or (previous.name if previous else None))
        if ckpt is None:
            self._show_in_preview(None, None)
        elif self.variables.current() is not None:
            self._show_in_preview(ckpt, self.variables.current())

    def _on_variable(self, var) -> None:
        self._show_in_preview(self.checkpoints.current(), var)
        self.trend.set_variable(self.scan, var)

    def _show_in_preview(self, ckpt, var) -> None:
        """Show this variable in the preview, or remember it until the preview is built (the
        first scan's table is painted before pyqtgraph is imported)."""
        self._preview_request = (ckpt, var)
        if self._heavy_started:
            self.preview.show_variable(ckpt, var)

    def _show_flags(self, found) -> None:
        """Health flags the history found (a norm jump, a frozen variable) onto the
        checkpoints and variables panels."""
        from ..core.trajectory import flag_variables

        if self.scan is not None and flag_variables(self.scan, found):
            self.checkpoints.table.fit_status()
            self.checkpoints.table.viewport().update()
            self.variables.tree.viewport().update()

    def _show_point(self, name: str, key: str) -> None:
        """A point of the history: its checkpoint, with that variable (its key there) selected,
        on the Tensor tab."""
        current = self.checkpoints.current()
        if current is not None and current.name == name:
            self.variables.select(key)
        else:
            self._chosen_variable = key   # selected once the checkpoint's tree is shown
        if self.checkpoints.select(name):
            self.tabs.setCurrentWidget(self.preview)

    # --- checkpoint actions ---------------------------------------------------------------
    def compare(self, a: CheckpointInfo, b: CheckpointInfo) -> None:
        """Show what changed between two checkpoints (the Diff tab)."""
        self.diff.compare(a, b)
        self.tabs.setCurrentWidget(self.diff)

    def compare_with(self, name: str | None = None):
        """Ask what to compare a checkpoint (else the current one) with: another of this
        folder's (both rows then selected) or one in another folder. Returns the dialog."""
        ckpt = self.scan.checkpoint(name) if (self.scan and name) else self.checkpoints.current()
        if ckpt is None:
            return None
        from .compare_dialog import CompareDialog

        dialog = CompareDialog(self.scan, ckpt.name, self.settings, self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.chosen_here.connect(self.checkpoints.select)
        dialog.chosen_elsewhere.connect(self.compare)
        dialog.open()
        return dialog

    def verify(self, names: str | list[str] | None = None) -> None:
        """Read every tensor of these checkpoints (default: the selected ones)."""
        if self.scan is None:
            return
        names = [names] if isinstance(names, str) else names or self.checkpoints.selected_names()
        self._verify([c for c in self.scan.checkpoints if c.name in names])

    def verify_all(self) -> None:
        if self.scan is not None:
            self._verify(list(self.scan.checkpoints))

    def _verify(self, checkpoints: list[CheckpointInfo]) -> None:
        if not checkpoints:
            return
        if self.verify_task.is_running():
            self.verify_task.cancel()
        self.checkpoints.proxy.clear_notes()
        self._verifying = [c.name for c in checkpoints]
        self._verified = []
        for name in self._verifying:
            self.checkpoints.proxy.set_note(name, "waiting…")
        self.checkpoints.show_verify_summary(
            f"Verifying {plural(len(checkpoints), 'checkpoint')} (reading every tensor)…")
        self.statusBar().showMessage(
            f"Verifying {plural(len(checkpoints), 'checkpoint')} (reading every tensor)…")
        self.verify_task.submit(verify_job, checkpoints)

    def _on_verify_step(self, step) -> None:
        if isinstance(step, Started):
            self.checkpoints.proxy.set_note(step.name, "verifying…")
            return
        self._verified.append(step)
        self.checkpoints.proxy.set_note(step.name, None)
        if self.scan is not None and self.scan.checkpoint(step.name) is not None:
            step.is_latest = self.scan.checkpoint(step.name).is_latest
            self.scan = dataclasses.replace(self.scan, checkpoints=[
                step if c.name == step.name else c for c in self.scan.checkpoints])
            self.checkpoints.set_scan(self.scan)

    def _finish_verification(self, cancelled: bool = False) -> None:
        self.checkpoints.proxy.clear_notes()
        text = summary(self._verified, len(self._verifying), cancelled)
        self.checkpoints.show_verify_summary(text)
        self.statusBar().showMessage(text)
        self._verifying = []

    def _on_verify_failed(self, message: str, details: str) -> None:
        self._finish_verification(cancelled=True)
        self.show_error(f"Verification failed: {message}", details)

    def restore(self, name: str | None = None) -> None:
        ckpt = self.scan.checkpoint(name) if (self.scan and name) else self.checkpoints.current()
        if ckpt is None:
            return
        try:
            from .restore_dialog import RestoreDialog
        except ImportError as e:
            self.show_error("Restoring is not available in this build.", str(e))
            return
        dialog = RestoreDialog(self.scan, ckpt.name, self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()

    def delete(self, names: list[str] | None = None) -> None:
        if self.scan is None:
            return
        names = names if names is not None else self.checkpoints.selected_names()
        try:
            from .prune_dialog import PruneDialog
        except ImportError as e:
            self.show_error("Deleting is not available in this build.", str(e))
            return
        dialog = PruneDialog(self.scan, list(names), self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.pruned.connect(lambda *_: self.refresh())
        dialog.show()

    # --- errors and status ----------------------------------------------------------------
    def show_error(self, message: str, details: str = "") -> None:
        self.statusBar().showMessage(message)
        box = QMessageBox(QMessageBox.Warning, "ckpt_gui", message, QMessageBox.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        self.error_box = box
        self.error_shown.emit(message)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self._cancel)
        self.tf_status = QLabel("")
        self.tf_status.setObjectName("tensorflowStatus")
        self.tf_status.setMinimumWidth(self.tf_status.fontMetrics().horizontalAdvance(
            "Loading TensorFlow…  "))  # (a long message must not squeeze it to a letter)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.tf_status)

    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        if what:
            self.statusBar().showMessage(what)

    def _on_busy(self, busy: bool) -> None:
        running = any(t.is_running() for t in (self.scan_task, self.verify_task, self.demo_task))
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.cancel_action.setEnabled(running)

    def _cancel(self) -> None:
        verifying = self.verify_task.is_running()
        for task in (self.scan_task, self.verify_task, self.demo_task):
            task.cancel()
        if verifying:
            self._finish_verification(cancelled=True)
        else:
            self.statusBar().showMessage("Cancelled", 4000)

    # --- menus, recent directories, drag and drop ----------------------------------------
    def _action(self, menu, text, slot, shortcut=None, name=None, icon=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if name:
            action.setObjectName(name)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self.open_action = self._action(m, "&Open Directory…", self.choose_directory,
                                        QKeySequence.Open, "actionOpen", QStyle.SP_DirOpenIcon)
        self.open_url_action = self._action(m, "Open &URL…", self.open_url, "Ctrl+Shift+O",
                                            "actionOpenUrl", QStyle.SP_DriveNetIcon)
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.up_action = self._action(m, "&Up to the Parent Folder", self.go_up, "Alt+Up",
                                      "actionUp", QStyle.SP_FileDialogToParent)
        self.up_action.setIconText("Up")
        self.refresh_action = self._action(m, "&Refresh", self.refresh, QKeySequence.Refresh,
                                           "actionRefresh", QStyle.SP_BrowserReload)
        self._action(m, "Open &Demo Folder", self.open_demo, None, "actionDemo")
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.Quit, "actionQuit")
        m = self.menuBar().addMenu("&Checkpoint")
        self.verify_action = self._action(m, "&Verify Selected (read every tensor)", self.verify,
                                          "Ctrl+Shift+V", "actionVerify",
                                          QStyle.SP_DialogApplyButton)
        self.verify_action.setIconText("Verify")
        self.verify_all_action = self._action(m, "Verify &All", self.verify_all, "Ctrl+Alt+V",
                                              "actionVerifyAll")
        self.cancel_action = self._action(m, "&Cancel Verification or Scan", self._cancel,
                                          Qt.Key_Escape, "actionCancel")
        self.cancel_action.setEnabled(False)
        m.addSeparator()
        self._action(m, "&Restore into Model…", self.restore, "Ctrl+R", "actionRestore")
        self._action(m, "Compare &With…", self.compare_with, "Ctrl+D", "actionCompare")
        self._action(m, "&Delete Checkpoints…", self.delete, None, "actionDelete")
        self._action(m, "&Prune…", lambda: self.delete([]), "Ctrl+Shift+P", "actionPrune")
        m = self.menuBar().addMenu("&View")
        self._action(m, "&Filter Variables", self.focus_filter, QKeySequence.Find, "actionFind")
        self._action(m, "&Tensor", lambda: self.tabs.setCurrentWidget(self.preview), "Ctrl+1",
                     "actionTensorTab")
        self._action(m, "&Across Checkpoints", lambda: self.tabs.setCurrentWidget(self.trend),
                     "Ctrl+2", "actionTrendTab")
        m.addSeparator()
        self._action(m, "&Memory Budget…", self.ask_memory_budget, None, "actionMemoryBudget")
        m = self.menuBar().addMenu("&Help")
        self._action(m, "&About ckpt_gui", self.about, None, "actionAbout")
        self._fill_recent()

    # --- the memory budget ------------------------------------------------------------------
    def _apply_memory_budget(self) -> None:
        """The remembered budget (bytes; none: the engine's default, a quarter of memory)."""
        saved = self.settings.value(MEMORY_BUDGET_KEY)
        limits.set_memory_budget(int(saved) if saved not in (None, "", "0", 0) else None)

    def ask_memory_budget(self) -> None:
        """How much one tensor or file may take in memory: every read that would need more is
        refused before it allocates (a downloaded folder can declare any size)."""
        limits.set_memory_budget(None)
        default = limits.memory_budget()
        saved = self.settings.value(MEMORY_BUDGET_KEY)
        current = int(saved) if saved not in (None, "", "0", 0) else default
        gb, ok = QInputDialog.getDouble(
            self, "Memory budget",
            "The most one tensor or file may take in memory, in GB\n"
            f"(0: the default, a quarter of this machine's memory: {human_bytes(default)}):",
            current / 2**30, 0.0, 1e6, 2)
        if ok:
            self.settings.setValue(MEMORY_BUDGET_KEY, int(gb * 2**30))
        self._apply_memory_budget()
        self.statusBar().showMessage(f"Memory budget: {human_bytes(limits.memory_budget())}")

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolBar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.open_url_action.setIconText("Open URL")
        for action in (self.open_action, self.open_url_action, self.up_action, self.refresh_action,
                       self.verify_action, self.verify_all_action):
            bar.addAction(action)

    def focus_filter(self) -> None:
        self.variables.filter.setFocus()
        self.variables.filter.selectAll()

    def about(self) -> None:
        from .. import __version__

        QMessageBox.about(self, "About ckpt_gui",
                          f"ckpt_gui {__version__}\nSee inside TensorFlow/Keras checkpoint folders.")

    def choose_directory(self) -> None:
        local = self.directory and not storage.is_url(self.directory)
        start = self.directory if local else os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, "Open Checkpoint Directory", start)
        if path:
            self.open_path(path)

    def recent(self) -> list[str]:
        """The folders and URLs opened lately, newest first (see open_url.recent_locations)."""
        return recent_locations(self.settings)

    def _remember(self, path: str) -> None:
        remember_location(self.settings, path)
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent()
        for path in recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
                event.acceptProposedAction()
                return

    def closeEvent(self, event):
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.scan_task.cancel()
        self.verify_task.cancel()
        self.remote_watch.stop()
        self.preview.task.cancel()
        self.trend.task.cancel()
        self.diff.cancel()
        super().closeEvent(event)
