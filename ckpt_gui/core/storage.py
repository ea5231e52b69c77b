"""The one place the engine opens the files of a folder it reads.

A downloaded folder can hold anything behind a checkpoint's name: a FIFO (an open blocks
forever), a symbolic link to /dev/zero (reads never end), a file we may not read. Here only
regular files are opened, also behind symbolic links: a file is opened without blocking
(O_NONBLOCK), checked with fstat, and refused unless it is a regular file. Every refusal is an
UnreadableFile (an OSError) whose text is one sentence naming the file, e.g.
"ckpt-1.data-00000-of-00001 is not a regular file (a FIFO)".

Paths are local today; the interface is kept small and path-based so that other stores can
stand behind the same functions later.
"""
from __future__ import annotations

import errno
import os
import stat
import sys
from stat import S_ISREG

from ..textfmt import human_bytes

_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
          | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))

MISSING = "is missing"
DENIED = "cannot be read (permission denied)"


class UnreadableFile(OSError):
    """A file cannot be read; str() is one sentence naming it, ``reason`` the part after the
    name, ``errno`` the system's error number when there is one."""

    def __init__(self, path: str | os.PathLike, reason: str, code: int | None = None):
        self.path = os.fspath(path)
        self.reason = reason
        self.sentence = f"{os.path.basename(self.path)} {reason}"
        super().__init__(self.sentence)
        self.errno = code

    def __str__(self) -> str:
        return self.sentence

    @property
    def missing(self) -> bool:
        return self.errno == errno.ENOENT


def _refusal(path, e: OSError) -> UnreadableFile:
    if isinstance(e, UnreadableFile):
        return e
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return UnreadableFile(path, MISSING, errno.ENOENT)
    if e.errno in (errno.EACCES, errno.EPERM):
        return UnreadableFile(path, DENIED, e.errno)
    reason = (e.strerror or type(e).__name__).lower()
    return UnreadableFile(path, f"cannot be read ({reason})", e.errno)


def _not_regular(path: str | os.PathLike, mode: int) -> UnreadableFile:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return UnreadableFile(path, f"is not a regular file ({kind})")


def open_regular(path: str | os.PathLike) -> tuple[int, os.stat_result]:
    """A read-only file descriptor of the regular file ``path`` and its stat (two system calls:
    open, fstat); the caller closes it. UnreadableFile otherwise: never blocks."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as e:
        raise _refusal(path, e) from None
    st = os.fstat(fd)
    if not S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st.st_mode)
    return fd, st


def read_fd(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` of an open file (fewer at its end). Read in parts of
    at most 64 MB: os.pread allocates what it is asked for, and ``size`` may be a lie."""
    parts = []
    while size > 0:
        chunk = os.pread(fd, min(size, _PART), offset)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


_PART = 64 << 20


def read_range(path: str | os.PathLike, offset: int, size: int) -> bytes:
    """Up to ``size`` bytes of the regular file ``path`` at ``offset``; never more than the
    file holds, whatever ``size`` says."""
    fd, st = open_regular(path)
    try:
        return read_fd(fd, max(0, min(size, st.st_size - offset)), offset)
    except OSError as e:
        raise _refusal(path, e) from None
    finally:
        os.close(fd)


def read_ends(path: str | os.PathLike, head: int, tail: int) -> tuple[bytes, bytes]:
    """The first ``head`` and the last ``tail`` bytes of the regular file ``path`` (fewer in a
    shorter file), with one open: what telling formats apart by their magic bytes needs."""
    fd, st = open_regular(path)
    try:
        first = os.pread(fd, head, 0) if head else b""
        if not tail:
            return first, b""
        if st.st_size <= len(first):
            return first, first[-tail:]
        return first, os.pread(fd, tail, max(st.st_size - tail, 0))
    except OSError as e:
        raise _refusal(path, e) from None
    finally:
        os.close(fd)


def read_small(path: str | os.PathLike, limit: int) -> tuple[bytes, os.stat_result]:
    """The whole regular file ``path`` and its stat (open, fstat, read, close), refused with
    UnreadableFile when it is bigger than ``limit`` bytes."""
    fd, st = open_regular(path)
    try:
        if st.st_size > limit:
            raise UnreadableFile(path, f"is too big to read ({human_bytes(st.st_size)}, more "
                                       f"than the memory budget of {human_bytes(limit)})")
        data = os.read(fd, st.st_size)  # (a short read is rare: read_fd gets the rest)
        if len(data) < st.st_size:
            data += read_fd(fd, st.st_size - len(data), len(data))
        return data, st
    except UnreadableFile:
        raise
    except OSError as e:
        raise _refusal(path, e) from None
    finally:
        os.close(fd)


def open_file(path: str | os.PathLike):
    """The regular file ``path`` as a binary file object (for zipfile and the like)."""
    fd, _ = open_regular(path)
    return os.fdopen(fd, "rb")


def fd_path(fd: int, path: str | os.PathLike) -> str:
    """A path that opens the very file ``fd`` is open on (Linux: /proc/self/fd/N), for
    libraries that open by name (HDF5): what was checked is what they read. Elsewhere
    ``path`` itself."""
    if sys.platform.startswith("linux"):
        return f"/proc/self/fd/{fd}"
    return os.fspath(path)
