"""The desktop app on checkpoint folders in buckets (issue 14, item 4): File → Open URL…, the
same table and previews as the local copy, a watcher that polls the bucket, one-line errors, and
a window that keeps turning while a server is slow. Real servers on 127.0.0.1 (moto's S3, see
tests/_buckets.py) and fsspec's memory:// filesystem; nothing leaves the machine."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import fsspec
import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QDialogButtonBox

from _buckets import free_port, s3_filesystem, upload
from ckpt_gui.core import remote, scan_directory
from ckpt_gui.ui.main_window import MainWindow
from conftest import REPO
from test_buckets import s3_server  # noqa: F401  (the session's moto server)
from test_gui import LOAD_TIMEOUT, open_dir, table_rows

KERNEL = "model/kernel/.ATTRIBUTES/VARIABLE_VALUE"


def make_window(qtbot, settings_path) -> MainWindow:
    w = MainWindow(settings=QSettings(str(settings_path), QSettings.IniFormat))
    qtbot.addWidget(w)
    w.show()
    w.after_first_paint()
    return w


@pytest.fixture
def window(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path / "settings.ini")
    yield w
    w.close()


class Run:
    """A CheckpointManager's folder written by TensorFlow in tmp_path: save() adds one."""

    def __init__(self, tf, folder):
        self.tf, self.folder = tf, folder
        rng = np.random.default_rng(7)
        self.kernel = tf.Variable(rng.standard_normal((6, 4)).astype(np.float32))
        module = tf.Module()
        module.kernel = self.kernel
        self.manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=module, step=tf.Variable(0)), str(folder), max_to_keep=5)

    def save(self) -> None:
        self.kernel.assign_add(self.tf.ones_like(self.kernel))
        self.manager.save()


@pytest.fixture(params=["memory", "s3"])
def bucket(request):
    """(a client filesystem, the URL of an empty folder in a fresh bucket)."""
    remote.begin()
    if request.param == "memory":
        fs = fsspec.filesystem("memory")
        fs.store.clear()
        fs.pseudo_dirs[:] = [""]
        return fs, "memory://bucket/run"
    server = request.getfixturevalue("s3_server")
    server.reset()
    fs = s3_filesystem(server)
    fs.mkdir("bucket")
    return fs, "s3://bucket/run"


def written(fs, url, folder, tf) -> Run:
    """A Run of two checkpoints written in ``folder`` and uploaded to ``url``."""
    run = Run(tf, folder)
    run.save()
    run.save()
    upload(fs, run.folder, url)
    return run


@pytest.fixture
def uploaded(bucket, tmp_path, tf):
    """(fs, url, the Run written locally and uploaded)."""
    fs, url = bucket
    return fs, url, written(fs, url, tmp_path / "run", tf)


@pytest.fixture
def in_s3(s3_server, tmp_path, tf):  # noqa: F811
    """(fs, url, the Run written locally and uploaded) in moto's S3."""
    remote.begin()
    s3_server.reset()
    fs = s3_filesystem(s3_server)
    fs.mkdir("bucket")
    return fs, "s3://bucket/run", written(fs, "s3://bucket/run", tmp_path / "run", tf)


def open_with_dialog(qtbot, window, url):
    """File → Open URL…, the URL typed, Open clicked; the scan that lands."""
    window.open_url_action.trigger()
    dialog = window.url_dialog
    dialog.combo.setEditText(url)
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT) as blocker:
        dialog.buttons.button(QDialogButtonBox.Open).click()
    return blocker.args[0]


def row_facts(window):
    """What the table shows in each row, but when it was modified (uploaded, for a bucket)."""
    model = window.checkpoints.proxy
    shown = [model.headerData(c, Qt.Horizontal) for c in range(model.columnCount())]
    return [[model.index(r, c).data() for c, title in enumerate(shown) if title != "Modified"]
            for r in range(model.rowCount())]


def preview_of(qtbot, window, name):
    with qtbot.waitSignal(window.preview.preview_ready, timeout=LOAD_TIMEOUT,
                          check_params_cb=lambda p: p.variable.name == name) as blocker:
        assert window.variables.select(name)
    return blocker.args[0]


def test_a_bucket_folder_shows_what_its_local_copy_shows(qtbot, window, uploaded):
    fs, url, run = uploaded
    local = scan_directory(str(run.folder))
    open_dir(qtbot, window, run.folder)
    local_rows = row_facts(window)
    local_stats = preview_of(qtbot, window, KERNEL).stats

    scan = open_with_dialog(qtbot, window, url)
    assert scan.directory == url and window.directory == url
    assert window.windowTitle().startswith("run — ")
    assert [c.name for c in table_rows(window)] == [c.name for c in local.checkpoints] == \
        ["ckpt-1", "ckpt-2"]
    assert row_facts(window) == local_rows
    assert window.checkpoints.current().name == "ckpt-2"
    preview = preview_of(qtbot, window, KERNEL)
    assert preview.stats == local_stats
    assert preview.stats.mean == pytest.approx(float(run.kernel.numpy().mean()), rel=1e-6)
    # the URL heads the recent list (the File menu's and the dialog's), across runs
    assert window.settings.value("recent")[:2] == [url, str(run.folder)]
    assert [a.text() for a in window.recent_menu.actions()][:2] == [url, str(run.folder)]
    window.settings.sync()
    again = make_window(qtbot, window.settings.fileName())
    again.open_url_action.trigger()
    assert again.url_dialog.combo.itemText(0) == url and again.url_dialog.combo.count() == 1
    assert again.url_dialog.combo.currentText() == url
    again.url_dialog.reject()
    again.close()


def test_the_dialog_accepts_only_urls_and_says_where_credentials_come_from(qtbot, window):
    window.open_url_action.trigger()
    dialog = window.url_dialog
    open_button = dialog.buttons.button(QDialogButtonBox.Open)
    dialog.combo.setEditText("bucket/run")
    assert not open_button.isEnabled() and "Not a URL" in dialog.problem.text()
    dialog.combo.setEditText("gs://bucket/run/")
    assert open_button.isEnabled() and dialog.problem.text() == ""
    assert dialog.url() == "gs://bucket/run"
    hint = dialog.findChild(type(dialog.problem), "openUrlHint").text()
    for needle in ("s3://bucket/path", "gs://bucket/path", "AWS_ENDPOINT_URL", "AWS_PROFILE",
                   "STORAGE_EMULATOR_HOST", "application-default"):
        assert needle in hint
    assert window.open_url_action.shortcut().toString() == "Ctrl+Shift+O"
    dialog.reject()


def test_the_remote_watcher_polls_while_visible_and_picks_up_a_new_checkpoint(
        qtbot, window, uploaded):
    fs, url, run = uploaded
    open_dir(qtbot, window, url)
    watcher = window.remote_watch
    assert watcher.url == url and watcher.is_polling()
    assert watcher.timer.interval() == 30_000
    assert window.watcher.directories() == [] and window.watcher.files() == []  # (local only)
    # nothing changed: a poll lists the folder and scans nothing
    with qtbot.waitSignal(watcher.task.finished, timeout=LOAD_TIMEOUT):
        watcher.poll()
    assert not window.scan_task.is_running()
    run.save()
    upload(fs, run.folder, url)
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT) as blocker:
        watcher.poll()
    assert [c.name for c in blocker.args[0].checkpoints] == ["ckpt-1", "ckpt-2", "ckpt-3"]
    assert [c.name for c in table_rows(window)] == ["ckpt-1", "ckpt-2", "ckpt-3"]
    assert blocker.args[0].latest == "ckpt-3"   # (the selection stays on ckpt-2)
    assert window.checkpoints.current().name == "ckpt-2"
    # only while the window is on screen
    window.showMinimized()
    qtbot.waitUntil(lambda: not watcher.is_polling())
    window.showNormal()
    qtbot.waitUntil(watcher.is_polling)
    window.hide()
    assert not watcher.is_polling()
    window.show()
    assert watcher.is_polling()
    # another folder: the watcher stops
    open_dir(qtbot, window, run.folder)
    assert watcher.url is None and not watcher.is_polling()


def test_parent_and_subfolder_links_of_a_url(qtbot, window, uploaded):
    fs, url, run = uploaded
    open_dir(qtbot, window, url)
    label = window.checkpoints.subfolders
    assert 'href=".."' in label.text()
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT) as blocker:
        label.linkActivated.emit("..")
    assert window.directory == blocker.args[0].directory == url.rsplit("/", 1)[0]
    assert blocker.args[0].subdirectories == ["run"]
    assert 'href=".."' not in label.text()          # a bucket's top has no parent
    window.up_action.trigger()                         # (nor does Up go anywhere)
    assert window.directory == url.rsplit("/", 1)[0] and not window.scan_task.is_running()
    with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT):
        label.linkActivated.emit("run")
    assert window.directory == url and len(table_rows(window)) == 2


def test_deleting_in_a_bucket_is_permanent_and_confirmed_in_the_dialog(qtbot, window, uploaded):
    """No trash in a bucket: "Move to the trash" is disabled, permanent deletion chosen, the
    confirmation says so; after it, ckpt-1's objects are gone and the state file names ckpt-2."""
    fs, url, _ = uploaded
    open_dir(qtbot, window, url)
    window.delete(["ckpt-1"])
    from ckpt_gui.ui.prune_dialog import PruneDialog

    dialog = window.findChild(PruneDialog)
    assert not dialog.trash_radio.isEnabled() and dialog.permanent_radio.isChecked()
    assert dialog.plan is not None and not dialog.plan.to_trash
    assert dialog.plan.deleted == ["ckpt-1"]
    dialog.delete_button.click()
    assert "permanently" in dialog.confirm_label.text()
    assert "a bucket has no trash" in dialog.confirm_label.text()
    assert not dialog.trash_radio.isEnabled()
    with qtbot.waitSignal(dialog.pruned, timeout=LOAD_TIMEOUT) as blocker:
        dialog.confirm_button.click()
    result = blocker.args[0]
    assert result.ok and result.deleted == ["ckpt-1"] and not result.to_trash
    assert not any(p.rsplit("/", 1)[1].startswith("ckpt-1.") for p in fs.find(url))
    assert b'model_checkpoint_path: "ckpt-2"' in fs.cat_file(f"{url}/checkpoint")
    assert dialog.permanent_radio.isChecked() and not dialog.trash_radio.isEnabled()
    assert not dialog.undo_button.isEnabled()
    dialog.close()


def _one_line_failure(qtbot, window, url):
    with qtbot.waitSignal(window.error_shown, timeout=LOAD_TIMEOUT) as blocker:
        window.open_path(url)
    message = blocker.args[0]
    assert "\n" not in message and message.startswith(f"{url}: ")
    assert window.checkpoints.problems.isVisible()
    assert window.checkpoints.problems.text() == message
    assert window.statusBar().currentMessage() == message
    assert table_rows(window) == [] and not window.cancel_button.isVisible()
    return message


def test_no_such_bucket_and_no_credentials_are_one_line_and_the_window_stays_usable(
        qtbot, window, in_s3, monkeypatch):
    fs, _, run = in_s3
    assert "no such bucket" in _one_line_failure(qtbot, window, "s3://no-such-bucket/run")
    url = "s3://private/run"   # (a URL of its own: nothing of it is in the object cache)
    fs.mkdir("private")
    upload(fs, run.folder, url)
    assert not window.remote_watch.is_polling()
    with monkeypatch.context() as unset:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            unset.delenv(key)
        assert _one_line_failure(qtbot, window, url) == f"{url}: {remote.ANONYMOUS_DENIED}"
    # the window is usable: the folder opens once there are credentials, a local one at once
    open_dir(qtbot, window, url)
    assert [c.name for c in table_rows(window)] == ["ckpt-1", "ckpt-2"]
    assert not window.checkpoints.problems.isVisible()
    open_dir(qtbot, window, run.folder)
    assert [c.name for c in table_rows(window)] == ["ckpt-1", "ckpt-2"]


def test_a_poll_of_a_server_gone_is_one_line_in_the_status_bar(qtbot, window, in_s3, monkeypatch):
    fs, url, _ = in_s3
    open_dir(qtbot, window, url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing there
    with qtbot.waitSignal(window.remote_watch.failed, timeout=LOAD_TIMEOUT) as blocker:
        window.remote_watch.poll()
    message = blocker.args[0]
    assert message.startswith(f"{url}: cannot connect to the server") and "\n" not in message
    assert window.statusBar().currentMessage() == message
    assert [c.name for c in table_rows(window)] == ["ckpt-1", "ckpt-2"]   # what was shown stays
    assert window.remote_watch.is_polling()                          # and it polls on


def test_the_window_keeps_turning_while_a_server_is_slow_and_cancel_drops_the_scan(
        qtbot, window, in_s3, s3_server):  # noqa: F811
    fs, url, _ = in_s3
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    s3_server.log.latency = 0.5      # each response held back: a scan takes a second or more
    try:
        landed = []
        window.directory_loaded.connect(landed.append)
        window.open_path(url)
        qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith(
            f"Listing {url}") or window.statusBar().currentMessage().startswith(f"Reading {url}"))
        assert window.cancel_button.isVisible()
        qtbot.waitUntil(lambda: len(ticks) > 20, timeout=LOAD_TIMEOUT)
        window.cancel_button.click()
        assert window.statusBar().currentMessage() == "Cancelled"
        assert not window.cancel_button.isVisible()
        # opened again: it lands, and the event loop turned all along
        ticks.clear()
        started = time.monotonic()
        with qtbot.waitSignal(window.directory_loaded, timeout=LOAD_TIMEOUT) as blocker:
            window.refresh()
        took = time.monotonic() - started
    finally:
        s3_server.log.latency = 0
        timer.stop()
    assert [c.name for c in blocker.args[0].checkpoints] == ["ckpt-1", "ckpt-2"]
    assert landed == [blocker.args[0]]    # the cancelled scan never landed
    assert took >= 0.5   # (at least the listing was held back)
    gaps = np.diff([started] + ticks)
    assert gaps.max() < 0.25, f"the event loop stalled for {gaps.max():.2f} s"


def test_ckpt_gui_opens_a_url_given_on_the_command_line(in_s3, s3_server):  # noqa: F811
    fs, url, _ = in_s3
    env = dict(os.environ, CKPT_GUI_STARTUP_REPORT="table", QT_QPA_PLATFORM="offscreen",
               AWS_ENDPOINT_URL=s3_server.endpoint_url, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "ckpt_gui", url], env=env, capture_output=True,
                          text=True, timeout=120)
    table = [line.split() for line in done.stdout.splitlines() if line.startswith("ckpt_gui-table")]
    assert table and table[0][2] == "2", done.stdout + done.stderr
