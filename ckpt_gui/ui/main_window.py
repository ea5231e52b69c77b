"""The main window: assembles the panels and the actions; all work happens in task slots."""
from __future__ import annotations

import copy
import os

from PySide6.QtCore import QFileSystemWatcher, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QPushButton, QSplitter, QTabWidget)

from ..core.model import DirectoryScan
from .checkpoints_panel import CheckpointsPanel
from .preview_panel import PreviewPanel
from .tasks import TaskSlot
from .trend_panel import TrendPanel
from .variables_panel import VariablesPanel

MAX_RECENT = 10
APP_NAME = "ckpt_gui"


def scan_job(directory: str, *, state) -> DirectoryScan:
    from ..core.scan import scan_directory

    return scan_directory(directory, progress=state.progress, cancelled=state.cancelled)


def verify_job(ckpt, *, state):
    from ..core.reading import verify_checkpoint

    return verify_checkpoint(copy.deepcopy(ckpt), progress=state.progress,
                             cancelled=state.cancelled)


def load_tensorflow_job(*, state) -> str:
    from ..core.tfrt import tf

    return tf().__version__


def demo_job(*, state) -> str:
    from ..demo import make_demo

    return make_demo(progress=state.progress)


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
        self.setWindowTitle("ckpt_gui")
        self.setAcceptDrops(True)
        self.resize(1400, 860)

        self.checkpoints = CheckpointsPanel()
        self.variables = VariablesPanel()
        self.preview = PreviewPanel()
        self.trend = TrendPanel()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("rightTabs")
        self.tabs.addTab(self.preview, "Tensor")
        self.tabs.addTab(self.trend, "Across checkpoints")
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
        self.verify_task = TaskSlot(self)
        self.verify_task.finished.connect(self._on_verified)
        self.verify_task.failed.connect(lambda m, d: self.show_error(f"Verification failed: {m}", d))
        self.verify_task.progress.connect(self._on_progress)
        self.verify_task.busy.connect(self._on_busy)
        self.demo_task = TaskSlot(self)
        self.demo_task.finished.connect(self.open_path)
        self.demo_task.failed.connect(lambda m, d: self.show_error(f"The demo failed: {m}", d))
        self.demo_task.progress.connect(self._on_progress)
        self.demo_task.busy.connect(self._on_busy)
        self.tf_task = TaskSlot(self)
        self.tf_task.finished.connect(self._on_tensorflow)
        self.tf_task.failed.connect(lambda m, d: self.show_error(f"TensorFlow failed to load: {m}", d))

        self.checkpoints.checkpoint_selected.connect(self._on_checkpoint)
        self.checkpoints.open_directory_requested.connect(self.open_path)
        self.checkpoints.verify_requested.connect(self.verify)
        self.checkpoints.restore_requested.connect(self.restore)
        self.checkpoints.delete_requested.connect(self.delete)
        self.variables.variable_selected.connect(self._on_variable)
        self.trend.checkpoint_chosen.connect(self._show_checkpoint)
        self.preview.status_message.connect(self.statusBar().showMessage)
        self.preview.preview_failed.connect(lambda m, d: self.error_shown.emit(m))

        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._on_directory_changed)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.setInterval(500)
        self.refresh_timer.timeout.connect(self.refresh)

        self._build_status_bar()
        self._build_menus()
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # --- start-up -------------------------------------------------------------------------
    def after_first_paint(self) -> None:
        """Work that would delay the first paint: pyqtgraph, then TensorFlow in a worker."""
        self.preview.build()
        self.tf_status.setText("Loading TensorFlow…")
        self.tf_task.submit(load_tensorflow_job)

    def _on_tensorflow(self, version: str) -> None:
        self.tf_status.setText(f"TensorFlow {version}")
        self.tensorflow_ready.emit(version)

    def open_demo(self) -> None:
        self.statusBar().showMessage("Creating the demo training folder (trains a small MLP)…")
        self.demo_task.submit(demo_job)

    # --- opening --------------------------------------------------------------------------
    def open_path(self, path: str) -> None:
        """Open a directory, or the directory of a checkpoint file with that checkpoint selected."""
        path = os.path.abspath(os.path.expanduser(path))
        select = None
        if os.path.isfile(path):
            select = os.path.basename(path)
            path = os.path.dirname(path)
        if self.directory != path:
            if self.watcher.directories():
                self.watcher.removePaths(self.watcher.directories())
            self.preview.show_variable(None, None)
        self.directory = path
        self._pending_select = select
        self.setWindowTitle(f"{os.path.basename(path) or path} — ckpt_gui")
        self._remember(path)
        self.refresh()

    def refresh(self) -> None:
        if self.directory:
            self.statusBar().showMessage(f"Scanning {self.directory}…")
            self.scan_task.submit(scan_job, self.directory)

    def _on_scanned(self, scan: DirectoryScan) -> None:
        self.scan = scan
        if scan.directory not in self.watcher.directories():
            self.watcher.addPath(scan.directory)
        select = self._checkpoint_for(scan, self._pending_select)
        self._pending_select = None
        self.checkpoints.set_scan(scan, select)
        n = len(scan.checkpoints)
        self.statusBar().showMessage(
            f"{n} checkpoint{'s' if n != 1 else ''} in {scan.directory}"
            + (f"; latest {scan.latest}" if scan.latest else ""), 8000)
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
        self.variables.set_checkpoint(None)
        self.preview.show_variable(None, None)
        self.show_error(message, details)

    def _on_directory_changed(self, _path: str) -> None:
        self.refresh_timer.start()  # a burst of writes (a save) becomes one rescan

    # --- selection ------------------------------------------------------------------------
    def _on_checkpoint(self, ckpt) -> None:
        previous = self.variables.current()
        self.variables.set_checkpoint(ckpt, select=previous.name if previous else None)
        if ckpt is None:
            self.preview.show_variable(None, None)
        elif self.variables.current() is not None:
            self.preview.show_variable(ckpt, self.variables.current())

    def _on_variable(self, var) -> None:
        self.preview.show_variable(self.checkpoints.current(), var)
        self.trend.set_variable(self.scan, var)

    def _show_checkpoint(self, name: str) -> None:
        if self.checkpoints.select(name):
            self.tabs.setCurrentWidget(self.preview)

    # --- checkpoint actions ---------------------------------------------------------------
    def verify(self, name: str | None = None) -> None:
        ckpt = self.scan.checkpoint(name) if (self.scan and name) else self.checkpoints.current()
        if ckpt is None:
            return
        self.statusBar().showMessage(f"Verifying {ckpt.name} (reading every tensor)…")
        self.verify_task.submit(verify_job, ckpt)

    def _on_verified(self, ckpt) -> None:
        if self.scan is None:
            return
        for i, c in enumerate(self.scan.checkpoints):
            if c.name == ckpt.name:
                ckpt.is_latest = c.is_latest
                self.scan.checkpoints[i] = ckpt
        self.checkpoints.set_scan(self.scan, ckpt.name)
        self.statusBar().showMessage(
            f"{ckpt.name}: {ckpt.n_readable} of {ckpt.n_variables} tensors readable — {ckpt.status}")

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

    def _cancel(self) -> None:
        for task in (self.scan_task, self.verify_task, self.demo_task):
            task.cancel()
        self.statusBar().showMessage("Cancelled", 4000)

    # --- menus, recent directories, drag and drop ----------------------------------------
    def _action(self, menu, text, slot, shortcut=None, name=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if name:
            action.setObjectName(name)
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open Directory…", self.choose_directory, QKeySequence.Open, "actionOpen")
        self.recent_menu = m.addMenu("Open &Recent")
        self._action(m, "&Refresh", self.refresh, QKeySequence.Refresh, "actionRefresh")
        self._action(m, "Open &Demo Folder", self.open_demo, None, "actionDemo")
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.Quit, "actionQuit")
        m = self.menuBar().addMenu("&Checkpoint")
        self._action(m, "&Verify (read every tensor)", self.verify, "Ctrl+Shift+V", "actionVerify")
        self._action(m, "&Restore into Model…", self.restore, "Ctrl+R", "actionRestore")
        self._action(m, "&Delete Checkpoints…", self.delete, None, "actionDelete")
        self._action(m, "&Prune…", lambda: self.delete([]), "Ctrl+Shift+P", "actionPrune")
        m = self.menuBar().addMenu("&View")
        self._action(m, "&Filter Variables", self.focus_filter, QKeySequence.Find, "actionFind")
        self._action(m, "&Tensor", lambda: self.tabs.setCurrentWidget(self.preview), "Ctrl+1",
                     "actionTensorTab")
        self._action(m, "&Across Checkpoints", lambda: self.tabs.setCurrentWidget(self.trend),
                     "Ctrl+2", "actionTrendTab")
        m = self.menuBar().addMenu("&Help")
        self._action(m, "&About ckpt_gui", self.about, None, "actionAbout")
        self._fill_recent()

    def focus_filter(self) -> None:
        self.variables.filter.setFocus()
        self.variables.filter.selectAll()

    def about(self) -> None:
        from .. import __version__

        QMessageBox.about(self, "About ckpt_gui",
                          f"ckpt_gui {__version__}\nSee inside TensorFlow/Keras checkpoint folders.")

    def choose_directory(self) -> None:
        start = self.directory or os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, "Open Checkpoint Directory", start)
        if path:
            self.open_path(path)

    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str) -> None:
        recent = [path] + [p for p in self.recent() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent():
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent()))

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
        self.preview.task.cancel()
        self.trend.task.cancel()
        super().closeEvent(event)
