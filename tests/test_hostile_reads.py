"""Hostile and broken folders: reading them never opens a file outside the folder, never
blocks, never exhausts memory, and says in one line what is wrong.

Each folder is made with the real writers (h5py, zipfile, TensorFlow) and, where a hostile
input needs it, with hand-edited index bytes. The CLI runs in a subprocess under a wrapper that
reports its peak memory; a time limit makes a hang a failure; an inotify watch on a canary file
outside the folder proves nothing opened it. The permission cases run without root's override
(an unprivileged user namespace, or the user nobody).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from ckpt_gui.core import bundle, fastproto
from ckpt_gui.core.checksum import masked_crc32c
from ckpt_gui.textfmt import human_bytes
from test_fastscan import _varint  # the protobuf varint the hand-made indexes need

REPO = Path(__file__).resolve().parents[1]
BUDGET = 256 << 20           # CKPT_GUI_MEMORY_BUDGET in the subprocesses
MAX_RSS = 300 << 20          # peak memory allowed to a CLI run (a scan takes ~35 MB) ...
MAX_RSS_TF = 900 << 20       # ... and to one that reads through TensorFlow (~550 MB)
TIMEOUT = 90                 # seconds: a hang fails instead of blocking the suite

# The wrapper runs the CLI and reports the child's peak memory on its last stderr line.
_WRAPPER = """
import os, resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print("MAXRSS", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)
sys.exit(code)
"""


def _unprivileged() -> list[str]:
    """A command prefix that runs without root's permission override: a user namespace keeps
    our files' owner bits (so the repository and the venv stay readable) but drops the
    override; where user namespaces are not allowed, the user nobody."""
    if subprocess.call(["unshare", "--user", "true"], stderr=subprocess.DEVNULL) == 0:
        return ["unshare", "--user"]
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run_cli(*args, unprivileged: bool = False) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr without the wrapper's line, peak RSS in bytes)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), CKPT_GUI_MEMORY_BUDGET=str(BUDGET),
               TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "ckpt_gui.cli", *map(str, args)]
    if unprivileged:
        cmd = _unprivileged() + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True, cwd="/")
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"ckpt-inspect {' '.join(map(str, args))} hung for {TIMEOUT} s")
    lines = err.splitlines()
    rss = int(lines[-1].split()[1]) if lines and lines[-1].startswith("MAXRSS") else -1
    err = "\n".join(lines[:-1])
    assert rss < (MAX_RSS_TF if "--verify" in args else MAX_RSS), f"peak memory {rss >> 20} MB"
    return proc.returncode, out, err, rss


# --- inotify: was a file outside the folder opened? -------------------------------------------

IN_ACCESS, IN_OPEN = 0x1, 0x20


class Canary:
    """Watches files for IN_OPEN/IN_ACCESS (atime is not reliable); ``touched()`` lists the
    watched paths something opened or read since the watch began."""

    def __init__(self, *paths):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.paths = {}
        for p in paths:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(p), IN_OPEN | IN_ACCESS)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.paths[wd] = str(p)

    def touched(self) -> list[str]:
        found = set()
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            pos = 0
            while pos < len(buf):
                wd, mask, _, length = struct.unpack_from("iIII", buf, pos)
                if mask & (IN_OPEN | IN_ACCESS) and wd in self.paths:
                    found.add(self.paths[wd])
                pos += 16 + length
        os.close(self.fd)
        return sorted(found)


# --- hostile HDF5 --------------------------------------------------------------------------

@pytest.fixture
def places(tmp_path):
    """(folder scanned, a place outside it holding a canary)."""
    folder, outside = tmp_path / "downloaded", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    return folder, outside


def _keras3_weights(path, make_kernel):
    """A Keras 3 .weights.h5 layout (layers/<name>/vars/<i>) with a kernel made by
    ``make_kernel(group, name)`` and an ordinary bias."""
    with h5py.File(path, "w") as f:
        v = f.create_group("layers/dense/vars")
        make_kernel(v, "0")
        v.create_dataset("1", data=np.arange(4, dtype=np.float32))
        f.create_group("optimizer/vars").create_dataset("0", data=np.int64(7))


def test_external_storage_is_refused_and_never_opened(places):
    folder, outside = places
    secret = outside / "secret.bin"
    secret.write_bytes(np.arange(16, dtype=np.float32).tobytes())
    _keras3_weights(folder / "m.weights.h5", lambda g, n: g.create_dataset(
        n, shape=(4, 4), dtype=np.float32, external=[(str(secret), 0, 64)]))
    canary = Canary(secret)
    code, out, err, _ = run_cli("scan", folder)
    assert code == 0, err
    problem = (f"refused: its data lives in an external file {secret}, outside the checkpoint"
               ": 1 of 3 variables cannot be read")
    assert f"  ! m.weights.h5: {problem}" in out.splitlines()
    assert "partial" in out
    code, out, err, _ = run_cli("show", folder, "m.weights.h5", "layers/dense/vars/0")
    assert (code, out) == (1, "")
    assert err == (f"ckpt-inspect: m.weights.h5: dense/kernel cannot be read: refused: "
                   f"its data lives in an external file {secret}, outside the checkpoint")
    assert canary.touched() == []


def test_external_storage_in_a_fifo_neither_blocks_nor_is_opened(places):
    folder, outside = places
    fifo = outside / "pipe"
    os.mkfifo(fifo)
    _keras3_weights(folder / "m.weights.h5", lambda g, n: g.create_dataset(
        n, shape=(4, 4), dtype=np.float32, external=[(str(fifo), 0, 64)]))
    code, out, err, _ = run_cli("show", folder, "m.weights.h5", "layers/dense/vars/0")
    assert code == 1 and err.endswith(f"its data lives in an external file {fifo}, outside "
                                      "the checkpoint")


def test_virtual_dataset_is_refused_and_its_source_never_opened(places):
    folder, outside = places
    source = outside / "source.h5"
    with h5py.File(source, "w") as f:
        f["data"] = np.arange(16, dtype=np.float32).reshape(4, 4)
    layout = h5py.VirtualLayout(shape=(4, 4), dtype=np.float32)
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(4, 4))
    _keras3_weights(folder / "m.weights.h5", lambda g, n: g.create_virtual_dataset(n, layout))
    canary = Canary(source)
    code, out, err, _ = run_cli("scan", folder)
    assert code == 0, err
    assert (f"  ! m.weights.h5: refused: its data maps onto another file ({source}), outside "
            "the checkpoint (a virtual dataset): 1 of 3 variables cannot be read") in out
    code, out, err, _ = run_cli("show", folder, "m.weights.h5", "layers/dense/vars/0")
    assert code == 1 and err.endswith(f"its data maps onto another file ({source}), outside "
                                      "the checkpoint (a virtual dataset)")
    assert canary.touched() == []


def test_external_link_is_refused_and_its_target_never_opened(places):
    folder, outside = places
    target = outside / "target.h5"
    with h5py.File(target, "w") as f:
        f["data"] = np.arange(16, dtype=np.float32).reshape(4, 4)
        f["iterations"] = np.int64(5)
    _keras3_weights(folder / "m.weights.h5",
                    lambda g, n: g.__setitem__(n, h5py.ExternalLink(str(target), "/data")))
    with h5py.File(folder / "m.weights.h5", "a") as f:  # where Keras keeps its counter
        f["optimizer/vars/1"] = h5py.ExternalLink(str(target), "/iterations")
        f["model_weights"] = h5py.ExternalLink(str(target), "/")  # probed by the layout
    canary = Canary(target)
    code, out, err, _ = run_cli("scan", folder, "--json")
    assert code == 0, err
    import json

    (ckpt,) = json.loads(out)["checkpoints"]
    problems = {v["name"]: v["problem"] for v in ckpt["variables"] if "problem" in v}
    assert problems == {
        "layers/dense/vars/0": f"refused: it links to /data in another file, {target}, "
                               "outside the checkpoint",
        "model_weights": f"refused: it links to / in another file, {target}, outside the "
                         "checkpoint",
        "optimizer/vars/1": f"refused: it links to /iterations in another file, {target}, "
                            "outside the checkpoint"}
    assert ckpt["status"] == "partial"
    code, out, err, _ = run_cli("show", folder, "m.weights.h5", "layers/dense/vars/0")
    assert code == 1 and err.endswith(f"refused: it links to /data in another file, {target}, "
                                      "outside the checkpoint")
    assert canary.touched() == []


def test_compressed_dataset_that_expands_without_bound(places):
    folder, _ = places
    _keras3_weights(folder / "m.weights.h5", lambda g, n: g.create_dataset(
        n, shape=(1 << 20, 1 << 18), dtype=np.float32, chunks=(256, 256), compression="gzip",
        fillvalue=1.0))
    assert (folder / "m.weights.h5").stat().st_size < 64 << 10
    code, out, err, _ = run_cli("scan", folder)
    assert code == 0 and out.splitlines()[5].endswith(" ok"), out
    code, out, err, rss = run_cli("show", folder, "m.weights.h5", "layers/dense/vars/0")
    assert code == 1
    # over the budget it would be read in chunks: refused first, as the bomb it is
    assert err == ("ckpt-inspect: m.weights.h5: dense/kernel cannot be read: refused: "
                   "layers/dense/vars/0 would expand from 0 B stored to 1.0 TB")


def _small_weights_h5() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.h5")
        _keras3_weights(path, lambda g, n: g.create_dataset(n, data=np.ones((4, 4), np.float32)))
        return Path(path).read_bytes()


def test_keras_archive_zip_bomb_is_refused_unread(places):
    """A valid weights file padded with 512 MB of zeros (HDF5 ignores bytes past its end)
    compresses to half a megabyte."""
    folder, _ = places
    with zipfile.ZipFile(folder / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        with zf.open("model.weights.h5", "w", force_zip64=True) as member:
            member.write(_small_weights_h5())
            zeros = bytes(1 << 20)
            for _ in range(512):
                member.write(zeros)
    assert (folder / "bomb.keras").stat().st_size < 1 << 20
    with zipfile.ZipFile(folder / "bomb.keras") as zf:
        packed = human_bytes(zf.getinfo("model.weights.h5").compress_size)
    code, out, err, _ = run_cli("scan", folder)
    assert code == 0, err
    assert ("  ! bomb.keras: bomb.keras cannot be read: refused: model.weights.h5 would expand "
            f"from {packed} to 512.0 MB (a zip bomb)") in out.splitlines(), out


def test_keras_archive_bigger_than_the_memory_budget(places):
    """Not a bomb (it expands little) but more than the budget once decompressed."""
    folder, _ = places
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(folder / "big.keras", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("model.weights.h5", "w", force_zip64=True) as member:
            member.write(_small_weights_h5())
            for _ in range(300):
                member.write(rng.integers(0, 255, 1 << 20, dtype=np.uint8).tobytes())
    code, out, err, _ = run_cli("scan", folder)
    assert ("  ! big.keras: big.keras cannot be read: model.weights.h5 (decompressed): 300.0 MB "
            "does not fit the memory budget of 256.0 MB (set CKPT_GUI_MEMORY_BUDGET to change "
            "it)") in out.splitlines(), out


# --- hostile TensorFlow checkpoints ---------------------------------------------------------

def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """One table block, keys not prefix-compressed, one restart point."""
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)


def write_table(path, entries: list[tuple[bytes, bytes]]) -> None:
    """An immutable table (TensorFlow's index format) holding ``entries`` (sorted keys)."""
    buf = bytearray()

    def add(block: bytes) -> bytes:
        at = len(buf)
        buf.extend(block + b"\0" + struct.pack("<I", masked_crc32c(block + b"\0")))
        return _varint(at) + _varint(len(block))

    data = add(_block(entries))
    meta = add(_block([]))
    index = add(_block([(entries[-1][0], data)]))
    footer = (meta + index).ljust(40, b"\0")
    buf.extend(footer + struct.pack("<II", bundle.TABLE_MAGIC & 0xFFFFFFFF,
                                    bundle.TABLE_MAGIC >> 32))
    Path(path).write_bytes(bytes(buf))


def edit_index(path, name: str, **changes) -> None:
    """Rewrite one BundleEntryProto of an index written by TensorFlow (``shape``: new dims)."""
    buf = Path(path).read_bytes()
    keys, starts, lengths = bundle.table_entries(buf)
    entries = []
    for key, start, length in zip(keys, starts.tolist(), lengths.tolist()):
        value = buf[start:start + length]
        if key == name.encode():
            entry = fastproto.BundleEntryProto.FromString(value)
            for field, new in changes.items():
                if field == "shape":
                    del entry.shape.dim[:]
                    for d in new:
                        entry.shape.dim.add(size=d)
                else:
                    setattr(entry, field, new)
            value = entry.SerializeToString()
        entries.append((key, value))
    write_table(path, entries)


KERNEL, TEXT = "kernel/.ATTRIBUTES/VARIABLE_VALUE", "text/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.fixture(scope="module")
def tf_written(tmp_path_factory):
    """A small checkpoint (a float kernel, a string, a step counter) written by TensorFlow."""
    from ckpt_gui.core.tfrt import tf as get_tf

    tf = get_tf()
    d = tmp_path_factory.mktemp("tf_written")
    ckpt = tf.train.Checkpoint(kernel=tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4)),
                               text=tf.Variable("hello"), step=tf.Variable(7, dtype=tf.int64))
    ckpt.write(str(d / "ckpt-1"))
    return d


@pytest.fixture
def tf_folder(tf_written, tmp_path):
    d = tmp_path / "downloaded"
    shutil.copytree(tf_written, d)
    return d


DATA = "ckpt-1.data-00000-of-00001"


def test_string_tensor_declaring_a_huge_size(tf_folder):
    edit_index(tf_folder / "ckpt-1.index", TEXT, size=2 << 30)
    assert (tf_folder / "ckpt-1.index").stat().st_size < 1024
    code, out, err, _ = run_cli("scan", tf_folder)
    assert code == 0, err
    assert f"  ! ckpt-1: {DATA} is truncated: 1 of 4 variables cannot be read" in out
    code, out, err, _ = run_cli("show", tf_folder, "ckpt-1", TEXT)
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: text cannot be read: {DATA} is truncated")


def test_string_tensor_with_more_elements_than_bytes(tf_folder):
    edit_index(tf_folder / "ckpt-1.index", TEXT, shape=(1 << 30,))
    code, out, err, _ = run_cli("show", tf_folder, "ckpt-1", TEXT)
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: text cannot be read: its index entry is "
                              f"inconsistent: {1 << 30} strings cannot be stored in 10 bytes")


def test_numeric_tensor_declaring_a_huge_shape(tf_folder):
    edit_index(tf_folder / "ckpt-1.index", KERNEL, shape=(1 << 20, 1 << 20, 1 << 10))
    code, out, err, _ = run_cli("show", tf_folder, "ckpt-1", KERNEL)
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: kernel cannot be read: its index entry "
                              "is inconsistent: shape [1048576, 1048576, 1024] of float32 takes "
                              f"{(1 << 50) * 4} bytes, the entry says 48")
    for verify in ([], ["--verify"]):
        code, out, err, _ = run_cli("scan", tf_folder, *verify)
        assert code == (1 if verify else 0) and "Traceback" not in err, err
        assert ("  ! ckpt-1: its index entry is inconsistent: shape [1048576, 1048576, 1024] "
                f"of float32 takes {(1 << 50) * 4} bytes, the entry says 48: 1 of 4 variables "
                "cannot be read") in out.splitlines()
        assert out.splitlines()[5].endswith(" partial")


def test_numeric_tensor_declaring_a_huge_size(tf_folder):
    edit_index(tf_folder / "ckpt-1.index", KERNEL, size=1 << 40)
    problem = (f"its index entry is inconsistent: shape [3, 4] of float32 takes 48 bytes, the "
               f"entry says {1 << 40}")
    code, out, err, _ = run_cli("scan", tf_folder)
    assert code == 0 and f"  ! ckpt-1: {problem}: 1 of 4 variables cannot be read" in out
    code, out, err, _ = run_cli("show", tf_folder, "ckpt-1", KERNEL)
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: kernel cannot be read: {problem}")


def test_a_tensor_that_fits_no_memory_budget(tf_folder):
    """Consistent sizes, data truncated: refused before anything is allocated; data there but
    over the budget: read in chunks, never whole."""
    n = (BUDGET // 4) * 2
    edit_index(tf_folder / "ckpt-1.index", KERNEL, shape=(n,), size=4 * n)
    code, out, err, _ = run_cli("show", tf_folder, "ckpt-1", KERNEL)
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: kernel cannot be read: {DATA} is "
                              "truncated")
    with open(tf_folder / DATA, "r+b") as f:  # a sparse file: big, yet nothing on disk
        f.truncate(8 * n)
    code, out, err, _ = run_cli("show", tf_folder, "ckpt-1", KERNEL)
    # over the budget, show reads it in chunks (run_cli holds the run under MAX_RSS, below the
    # tensor's 512 MB) and the zeros fail the checksum the index holds
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: kernel cannot be read: {DATA} is damaged "
                              "(its data fails TensorFlow's checksum)")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_data_file_that_is_not_a_regular_file(tf_folder, kind):
    (tf_folder / DATA).unlink()
    if kind == "fifo":
        os.mkfifo(tf_folder / DATA)
        what = "a FIFO"
    else:
        os.symlink("/dev/zero", tf_folder / DATA)
        what = "a character device"
    problem = f"{DATA} is not a regular file ({what})"
    for args in (["scan", tf_folder], ["scan", tf_folder, "--verify"]):
        code, out, err, _ = run_cli(*args)
        assert code == (1 if "--verify" in args else 0), err
        assert f"  ! ckpt-1: {problem}: 4 of 4 variables cannot be read" in out.splitlines()
        assert out.splitlines()[5].endswith(" broken")
    code, out, err, _ = run_cli("show", tf_folder, "ckpt-1", KERNEL)
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: kernel cannot be read: {problem}")


# --- permissions: not absence --------------------------------------------------------------

@pytest.fixture
def shared_folder(tf_written):
    """A copy of the checkpoint that an unprivileged user can reach (pytest's own temporary
    folders are private to root)."""
    top = tempfile.mkdtemp(prefix="ckpt-hostile-")
    os.chmod(top, 0o755)
    d = Path(top) / "downloaded"
    shutil.copytree(tf_written, d)
    for p in [d, *d.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield d
    shutil.rmtree(top)


def test_data_file_without_read_permission(shared_folder):
    (shared_folder / DATA).chmod(0)
    problem = f"{DATA} cannot be read (permission denied)"
    code, out, err, _ = run_cli("scan", shared_folder, unprivileged=True)
    assert code == 0, err
    assert f"  ! ckpt-1: {problem}: 4 of 4 variables cannot be read" in out.splitlines()
    assert out.splitlines()[5].endswith(" broken") and "missing" not in out
    code, out, err, _ = run_cli("show", shared_folder, "ckpt-1", KERNEL, unprivileged=True)
    assert (code, err) == (1, f"ckpt-inspect: ckpt-1: kernel cannot be read: {problem}")
    code, out, err, _ = run_cli("scan", shared_folder)  # root reads it: the check is real
    assert code == 0 and out.splitlines()[5].endswith(" ok"), out


def test_index_and_h5_without_read_permission(shared_folder):
    (shared_folder / "ckpt-1.index").chmod(0)
    _keras3_weights(shared_folder / "m.weights.h5",
                    lambda g, n: g.create_dataset(n, data=np.ones((2, 2), np.float32)))
    (shared_folder / "m.weights.h5").chmod(0)
    code, out, err, _ = run_cli("scan", shared_folder, unprivileged=True)
    assert code == 0, err
    assert "  ! ckpt-1: ckpt-1.index cannot be read (permission denied)" in out.splitlines()
    assert ("  ! m.weights.h5: m.weights.h5 cannot be read (permission denied)"
            in out.splitlines()), out


def test_index_declaring_a_billion_data_files(tf_folder):
    buf = (tf_folder / "ckpt-1.index").read_bytes()
    keys, starts, lengths = bundle.table_entries(buf)
    entries = [(k, buf[a:a + n]) for k, a, n in zip(keys, starts.tolist(), lengths.tolist())]
    entries[0] = (b"", b"\x08" + _varint(10**9))  # BundleHeaderProto.num_shards
    write_table(tf_folder / "ckpt-1.index", entries)
    code, out, err, _ = run_cli("scan", tf_folder)
    assert code == 0, err
    assert ("  ! ckpt-1: ckpt-1.index cannot be read: corrupt index header: it declares "
            "1000000000 data files") in out.splitlines()


# --- the engine's own pieces, in process (nothing here blocks or allocates) ---------------------

def test_storage_opens_regular_files_only_and_says_why_not(tmp_path):
    from ckpt_gui.core import storage

    regular = tmp_path / "ckpt-1.index"
    regular.write_bytes(b"abc")
    os.mkfifo(tmp_path / "pipe")
    os.symlink("/dev/null", tmp_path / "null")
    os.symlink(regular, tmp_path / "alias")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    (tmp_path / "sub").mkdir()
    open_before = len(os.listdir("/proc/self/fd"))
    expected = {"pipe": "pipe is not a regular file (a FIFO)",
                "null": "null is not a regular file (a character device)",
                "sub": "sub is not a regular file (a directory)",
                "dangling": "dangling is missing",
                "absent": "absent is missing"}
    for name, sentence in expected.items():
        with pytest.raises(storage.UnreadableFile) as caught:
            storage.open_regular(str(tmp_path / name))
        assert str(caught.value) == sentence
    assert storage.read_small(tmp_path / "alias", 3)[0] == b"abc"
    assert storage.read_range(regular, 1, 1 << 40) == b"bc"
    assert storage.read_ends(regular, 2, 2) == (b"ab", b"bc")
    with pytest.raises(storage.UnreadableFile, match="ckpt-1.index is too big to read"):
        storage.read_small(regular, 2)
    assert len(os.listdir("/proc/self/fd")) == open_before  # every refusal closed its file


def test_memory_budget_is_settable_and_named_in_refusals(monkeypatch):
    from ckpt_gui.core import limits

    assert limits.memory_budget() > 0
    limits.set_memory_budget(1 << 30)
    try:
        limits.check_fits("dense/kernel", 1 << 30)
        with pytest.raises(limits.OverBudget) as caught:
            limits.check_fits("dense/kernel", 40 << 30)
        assert str(caught.value) == ("dense/kernel: 40.0 GB does not fit the memory budget of "
                                     "1.0 GB (set CKPT_GUI_MEMORY_BUDGET to change it)")
    finally:
        limits.set_memory_budget(None)
