"""The ``checkpoint`` state file (a CheckpointState text proto), read without trusting its paths.

Paths in it may be relative, absolute on this machine, or absolute on another machine (POSIX or
Windows); tf.train.latest_checkpoint returns None for the last kind. We resolve every entry by its
base name inside the directory that holds the file.
"""
from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass, field

from google.protobuf import text_encoding

from . import storage
from .naming import base_name

STATE_FILE = "checkpoint"
MAX_STATE_BYTES = 64 << 20   # some 1.5 million entries; TensorFlow's own are a few lines
_LINE = re.compile(r'^\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$')


@dataclass
class RawState:
    model_checkpoint_path: str | None = None
    all_model_checkpoint_paths: list[str] = field(default_factory=list)
    all_model_checkpoint_timestamps: list[float] = field(default_factory=list)
    last_preserved_timestamp: float | None = None
    unparsed_lines: list[str] = field(default_factory=list)


_SIMPLE_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f",
                   "v": b"\v", "\\": b"\\", "'": b"'", '"': b'"', "?": b"?"}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


def _c_unescape(body: str) -> str:
    """Undo the text format's C escapes; octal/hex escapes are bytes, raw text stays UTF-8."""
    if "\\" not in body:  # nothing escaped (paths usually): as it is
        return body
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\" or i + 1 >= n:
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[nxt]
            i += 2
        elif nxt in _OCTAL:
            j = i + 1
            while j < n and j < i + 4 and body[j] in _OCTAL:
                j += 1
            out.append(int(body[i + 1:j], 8) & 0xFF)
            i = j
        elif nxt in "xX" and i + 2 < n and body[i + 2] in _HEX:
            j = i + 2
            while j < n and j < i + 4 and body[j] in _HEX:
                j += 1
            out.append(int(body[i + 2:j], 16))
            i = j
        elif nxt in "uU":
            width = 4 if nxt == "u" else 8
            digits = body[i + 2:i + 2 + width]
            if len(digits) == width and all(c in _HEX for c in digits):
                out += chr(int(digits, 16)).encode("utf-8", "surrogatepass")
                i += 2 + width
            else:
                out += b"\\" + nxt.encode("utf-8")
                i += 2
        else:  # an unknown escape: keep it as written
            out += ("\\" + nxt).encode("utf-8", "surrogatepass")
            i += 2
    return out.decode("utf-8", "replace")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return _c_unescape(value[1:-1])
    raise ValueError(f"not a quoted string: {value}")


def parse_state_text(text: str) -> RawState:
    state = RawState()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            state.unparsed_lines.append(line)
            continue
        key, value = m.groups()
        try:
            if key == "model_checkpoint_path":
                state.model_checkpoint_path = _unquote(value)
            elif key == "all_model_checkpoint_paths":
                state.all_model_checkpoint_paths.append(_unquote(value))
            elif key == "all_model_checkpoint_timestamps":
                state.all_model_checkpoint_timestamps.append(float(value))
            elif key == "last_preserved_timestamp":
                state.last_preserved_timestamp = float(value)
            else:
                state.unparsed_lines.append(line)
        except ValueError:
            state.unparsed_lines.append(line)
    return state


def read_state_text(directory: str) -> str | None:
    """The state file's text, or None when there is none. Raises OSError, or ValueError for a
    binary file or one too big to be a state file (read whole, it could exhaust memory; read in
    part, a rewrite would drop the entries beyond the cut)."""
    path = os.path.join(directory, STATE_FILE)
    if not storage.is_file(path):
        return None
    try:
        data, _ = storage.read_small(path, MAX_STATE_BYTES)
    except storage.UnreadableFile as e:
        if e.reason.startswith("is too big"):
            raise ValueError(f"the state file is larger than {MAX_STATE_BYTES >> 20} MB, "
                             "not a CheckpointState text file") from None
        raise
    if b"\x00" in data:
        raise ValueError("the state file is binary, not a CheckpointState text file")
    return data.decode("utf-8", "replace")


def read_state_file(directory: str) -> RawState | None:
    """The parsed state file, or None when there is none. Raises OSError/ValueError if unreadable."""
    text = read_state_text(directory)
    return None if text is None else parse_state_text(text)


def resolve_entry(entry: str, directory: str, known: set[str]) -> str | None:
    """Map a path written in the state file to a checkpoint name in ``directory``, or None."""
    if entry in known:
        return entry
    candidate = entry
    if os.path.isabs(entry):
        try:
            candidate = os.path.relpath(entry, directory)
        except ValueError:
            candidate = entry
    candidate = candidate.replace("\\", "/")
    if candidate in known:
        return candidate
    name = base_name(entry)
    if name in known:
        return name
    sharded = _V1_PATTERN.search(name)  # a sharded V1 save is named by its shards' pattern
    if sharded and name[: sharded.start()] in known:
        return name[: sharded.start()]
    return None


_V1_PATTERN = re.compile(r"-\?{5}-of-\d{5}$")


def _quote(s: str) -> str:
    """A string as TensorFlow's text format writes it (protobuf's C escapes of the UTF-8 bytes:
    a newline in a name is ``\\n``, never a line break that would cut the entry in two)."""
    return '"' + text_encoding.CEscape(s.encode("utf-8", "surrogateescape"), False) + '"'


def format_state(latest: str | None, paths: list[str], timestamps: list[float] | None = None,
                 last_preserved_timestamp: float | None = None) -> str:
    lines = []
    if latest is not None:
        lines.append(f"model_checkpoint_path: {_quote(latest)}")
    for p in paths:
        lines.append(f"all_model_checkpoint_paths: {_quote(p)}")
    for t in timestamps or []:
        lines.append(f"all_model_checkpoint_timestamps: {t!r}")
    if last_preserved_timestamp is not None:
        lines.append(f"last_preserved_timestamp: {last_preserved_timestamp!r}")
    return "\n".join(lines) + "\n"


def write_state_file(directory: str, text: str) -> None:
    """Replace the state file atomically (temporary file in the same directory, then rename),
    with the permissions and owner of the file it replaces (mkstemp makes a private 0600 file;
    a state file others read, a group's training job for one, must stay readable to them). A new
    state file gets the mode TensorFlow's would have (0666 less the umask). In a bucket: one
    PUT of the whole text (an object is replaced whole; there is no rename)."""
    path = os.path.join(directory, STATE_FILE)
    if storage.is_url(directory):
        storage.put_whole(path, text.encode("utf-8"))
        return
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            _copy_ownership(f.fileno(), old)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _copy_ownership(fd: int, old: os.stat_result | None) -> None:
    """Give the open file ``fd`` the mode and owner of ``old`` (the file it will replace). The
    owner only where we may change it (root, or a group we belong to): otherwise the file is
    ours, as any file we write."""
    if old is None:
        os.fchmod(fd, 0o666 & ~_umask())
        return
    if hasattr(os, "fchown"):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except PermissionError:
            try:
                os.fchown(fd, -1, old.st_gid)
            except PermissionError:
                pass
    os.fchmod(fd, stat.S_IMODE(old.st_mode))   # after chown, which may clear set-id bits


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (os.umask() can only
    be read by setting it, a moment in which another thread's new file would get the wrong
    mode)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def checkpoint_exists(directory: str, name: str) -> bool:
    """Whether ``name`` is a checkpoint TensorFlow would find: ``name.index`` (V2) or the file
    ``name`` itself (V1 single file, or an HDF5 file a Keras callback listed)."""
    path = os.path.join(directory, name)
    return storage.is_file(path + ".index") or storage.is_file(path)


def resolve_on_disk(entry: str, directory: str) -> str | None:
    """Like ``resolve_entry`` but against the files on disk now (a training process may have
    saved checkpoints nobody scanned yet): the entry as written if relative, its path relative to
    ``directory`` if inside it, else its base name; the first that exists, or None."""
    candidates = []
    posix = entry.replace("\\", "/")
    if os.path.isabs(entry):
        rel = os.path.relpath(entry, directory)
        if not rel.startswith(".."):
            candidates.append(rel.replace("\\", "/"))
    elif not (len(posix) > 1 and posix[1] == ":") and not posix.startswith("//"):
        candidates.append(posix)
    candidates.append(base_name(entry))
    for c in candidates:
        if c and not c.startswith("../") and checkpoint_exists(directory, c):
            return c
    return None


def remove_state_file(directory: str) -> None:
    """Remove the state file (when no checkpoint is left for it to name); missing is fine."""
    path = os.path.join(directory, STATE_FILE)
    try:
        if storage.is_url(directory):
            storage.remove_object(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass
