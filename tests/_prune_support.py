"""Helpers shared by the prune tests: a trash inside tmp_path, and what TensorFlow sees."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


@pytest.fixture
def tmp_trash(tmp_path, monkeypatch) -> Path:
    """Point the desktop trash at tmp_path: nothing the tests delete lands in the real trash.

    send2trash's freedesktop backend fixes its home trash when it is imported, so its module
    constants are patched as well as HOME and XDG_DATA_HOME."""
    import send2trash
    import send2trash.plat_other as po

    home = tmp_path / "home"
    xdg = home / ".local" / "share"
    xdg.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    monkeypatch.setattr(po, "XDG_DATA_HOME", os.fsencode(str(xdg)))
    monkeypatch.setattr(po, "HOMETRASH_B", os.fsencode(str(xdg / "Trash")))
    monkeypatch.setattr(po, "HOMETRASH", str(xdg / "Trash"))
    monkeypatch.setattr(send2trash, "send2trash", po.send2trash)
    return xdg / "Trash"


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def snapshot(directory) -> dict[str, tuple[int, str]]:
    """name -> (size, sha1) of every file, to compare a folder before and after."""
    out = {}
    for name in sorted(os.listdir(directory)):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                out[name] = (os.path.getsize(p), hashlib.sha1(f.read()).hexdigest())
    return out


def tf_view(tf, directory) -> dict:
    """What TensorFlow itself says about the folder."""
    d = str(directory)
    state = tf.train.get_checkpoint_state(d)
    mgr = tf.train.CheckpointManager(tf.train.Checkpoint(), d, max_to_keep=None)
    return {
        "state_latest": state.model_checkpoint_path if state else None,
        "state_all": list(state.all_model_checkpoint_paths) if state else [],
        "latest": tf.train.latest_checkpoint(d),
        "manager_latest": mgr.latest_checkpoint,
        "manager_checkpoints": list(mgr.checkpoints),
    }


def assert_tf_agrees(tf, directory):
    """tf.train.get_checkpoint_state/latest_checkpoint, a CheckpointManager and the engine's scan
    all name the same latest checkpoint, everything the state file lists exists, and the latest's
    tensors can be read. Returns (scan, tf view)."""
    from ckpt_gui.core import scan_directory

    d = str(directory)
    scan = scan_directory(d)
    view = tf_view(tf, d)
    assert not [p for p in scan.state_file.problems
                if "does not exist" in p or "another place" in p or "lists nothing" in p], \
        scan.state_file.problems
    if scan.state_file.present:
        assert scan.latest == scan.state_file.latest
        expected = os.path.join(d, scan.latest)
        assert view["state_latest"] == expected
        assert view["latest"] == expected
        assert view["manager_latest"] == expected
        assert view["state_all"][-1] == expected
        for p in view["state_all"] + view["manager_checkpoints"]:
            assert os.path.isfile(p + ".index") or os.path.isfile(p), p
    latest = scan.checkpoint(scan.latest) if scan.latest else None
    if latest is not None and latest.status == "ok" and scan.state_file.present:
        reader = tf.train.load_checkpoint(expected)
        shapes = reader.get_variable_to_shape_map()
        assert shapes
        key = sorted(k for k in shapes if "CHECKPOINTABLE" not in k)[0]
        reader.get_tensor(key)  # the data file is there and readable
    if not scan.state_file.present:
        assert view["state_latest"] is None and view["latest"] is None
        assert view["manager_latest"] is None
    return scan, view
