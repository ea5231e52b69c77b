"""Shared fixtures. Qt runs offscreen; the real-data corpus is copied before anything may write."""
from __future__ import annotations

import csv
import gc
import os
import shutil
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import pytest  # noqa: E402

from _buckets import isolate_env  # noqa: E402

# No test may reach a cloud: dummy keys, no metadata servers (google-auth reads its settings
# when first imported, so this comes before any client library is)
isolate_env()

from ckpt_gui.ui import gc_guard  # noqa: E402

# Cyclic garbage is collected on the main thread only, between tests (as the app collects on
# the GUI thread): a test window's Qt objects collected on a worker thread can deadlock
gc.disable()


@pytest.fixture(autouse=True)
def _collect_on_the_main_thread():
    yield
    gc_guard.collect_due()


REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("CKPT_GUI_CORPUS", REPO.parent / "shared" / "corpus"))


def _read_tsv(name: str) -> list[dict]:
    with open(CORPUS / name, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def manifest() -> list[dict]:
    return _read_tsv("MANIFEST.tsv")


def verify_rows() -> list[dict]:
    return _read_tsv("VERIFY.tsv")


def corpus_names() -> list[str]:
    return [row["name"] for row in manifest()]


@pytest.fixture
def corpus_copy(tmp_path):
    """copy(name) -> a writable copy of one corpus directory in a temporary folder."""
    def copy(name: str) -> Path:
        src = CORPUS / name
        dst = tmp_path / name
        shutil.copytree(src, dst)
        for p in dst.rglob("*"):  # the corpus is read-only; the copy must not be
            p.chmod(p.stat().st_mode | 0o200)
        dst.chmod(dst.stat().st_mode | 0o200)
        return dst
    return copy


@pytest.fixture(scope="session")
def tf():
    from ckpt_gui.core.tfrt import tf as get_tf

    return get_tf()
