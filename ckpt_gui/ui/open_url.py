"""File → Open URL…: a checkpoint folder in a bucket (``s3://``, ``gs://``, any fsspec URL), and
the one list of recently opened folders and URLs that the File menu and this dialog share."""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout,
                               QWidget)

from ..core import storage

RECENT_KEY = "recent"
MAX_RECENT = 10

HINT = (
    "<b>s3://bucket/path</b>, <b>gs://bucket/path</b>, or any URL fsspec reads "
    "(memory://, az://, …).<br>"
    "Endpoints and credentials come from the standard environment, as for the AWS and Google "
    "tools: AWS_ENDPOINT_URL, AWS_PROFILE or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
    "(~/.aws); STORAGE_EMULATOR_HOST, GOOGLE_APPLICATION_CREDENTIALS or gcloud's "
    "application-default login. Without AWS credentials a bucket is read anonymously.")


def recent_locations(settings: QSettings) -> list[str]:
    """Folders and URLs opened lately, newest first. Local folders that no longer exist are
    dropped (a URL is kept: whether it is still there costs a request, made when it is opened)."""
    value = settings.value(RECENT_KEY, [])
    if isinstance(value, str):
        value = [value]
    locations = [str(v) for v in (value or [])]
    kept = [p for p in locations if storage.is_url(p) or os.path.isdir(p)]
    if kept != locations:
        settings.setValue(RECENT_KEY, kept)
    return kept


def remember_location(settings: QSettings, location: str) -> None:
    """``location`` was opened: first in the list, which keeps MAX_RECENT entries."""
    recent = [location] + [p for p in recent_locations(settings) if p != location]
    settings.setValue(RECENT_KEY, recent[:MAX_RECENT])


def recent_urls(settings: QSettings) -> list[str]:
    return [p for p in recent_locations(settings) if storage.is_url(p)]


class OpenUrlDialog(QDialog):
    """An editable list of the recent URLs (the newest chosen) and what a URL may look like.
    OK is enabled only for a URL; ``url()`` is what was chosen, without a trailing slash."""

    def __init__(self, recent: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Open URL")
        self.setObjectName("openUrlDialog")
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.NoInsert)
        self.combo.addItems(recent)
        self.combo.setMinimumContentsLength(48)
        self.combo.lineEdit().setPlaceholderText("s3://bucket/path/to/checkpoints")
        self.combo.lineEdit().selectAll()
        hint = QLabel(HINT)
        hint.setWordWrap(True)
        hint.setTextFormat(Qt.RichText)
        hint.setObjectName("openUrlHint")
        self.problem = QLabel("")
        self.problem.setObjectName("openUrlProblem")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Checkpoint folder URL:"))
        layout.addWidget(self.combo)
        layout.addWidget(self.problem)
        layout.addWidget(hint)
        layout.addWidget(self.buttons)
        self.combo.editTextChanged.connect(self._check)
        self._check(self.combo.currentText())
        self.resize(620, self.sizeHint().height())

    def url(self) -> str:
        return storage.normalise(self.combo.currentText().strip())

    def _check(self, text: str) -> None:
        text = text.strip()
        ok = storage.is_url(text)
        self.buttons.button(QDialogButtonBox.Open).setEnabled(ok)
        self.problem.setText("" if ok or not text else
                             "Not a URL: write it as protocol://bucket/path (a local folder: "
                             "File → Open Directory…)")
