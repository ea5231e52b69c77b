"""The one place the engine opens the files of a folder it reads.

A downloaded folder can hold anything behind a checkpoint's name: a FIFO (an open blocks
forever), a symbolic link to /dev/zero (reads never end), a file we may not read. Here only
regular files are opened, also behind symbolic links: a file is opened without blocking
(O_NONBLOCK), checked with fstat, and refused unless it is a regular file. Every refusal is an
UnreadableFile (an OSError) whose text is one sentence naming the file, e.g.
"ckpt-1.data-00000-of-00001 is not a regular file (a FIFO)".

A location is a local path or a URL (``s3://``, ``gs://``, ``memory://``, any filesystem fsspec
knows; ``file://`` is a local path): URLs are read by byte ranges through remote.py, and what
this module hands out for them (a RemoteFile instead of a descriptor, an os.stat_result made
from the folder's listing) goes through the same functions, so no reader knows the difference.
"""
from __future__ import annotations

import errno
import os
import re
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
    """A file cannot be read (or, in a bucket, written or deleted); str() is one sentence
    naming it, ``reason`` the part after the name, ``errno`` the system's error number when
    there is one."""

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


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location) -> bool:
    """Whether ``location`` is a URL read through fsspec (``file://`` is a local path)."""
    return (isinstance(location, str) and "://" in location and bool(_URL.match(location))
            and not location.lower().startswith("file://"))


def normalise(location: str) -> str:
    """A URL without its trailing slash; a ``file://`` URL or a local path as an absolute
    local path."""
    if is_url(location):
        scheme, sep, rest = location.partition("://")
        return scheme + sep + rest.rstrip("/")
    if location.lower().startswith("file://"):
        location = location[len("file://"):]
    return os.path.abspath(os.path.expanduser(location))


def parent(location: str) -> str | None:
    """The folder that holds ``location``, or None at the top (a bucket, the root folder)."""
    if is_url(location):
        head, _, name = location.rstrip("/").rpartition("/")
        return None if head.endswith(":/") or not name else head
    up = os.path.dirname(location)
    return None if up == location else up


def join(location: str, name: str) -> str:
    """``name`` inside the folder ``location`` (a URL or a local path)."""
    if is_url(location):
        return f"{location.rstrip('/')}/{name}"
    return os.path.normpath(os.path.join(location, name))


def base_name(location: str) -> str:
    """The last part of ``location`` (a bucket's name for its top folder)."""
    if is_url(location):
        return location.rstrip("/").rpartition("/")[2] or location
    return os.path.basename(location) or location


def _remote():
    from . import remote  # fsspec is imported only when a URL is opened
    return remote


def begin(location: str) -> None:
    """Start reading ``location`` afresh (a URL's folders are listed again)."""
    if is_url(location):
        _remote().begin()


def outage(location: str) -> str | None:
    """Why the store of URL ``location`` could not be reached during this operation."""
    return _remote().outage(location) if is_url(location) else None


def _refusal(path, e: OSError) -> UnreadableFile:
    if isinstance(e, UnreadableFile):
        return e
    if is_url(path):
        return UnreadableFile(path, _remote().reason_of(e), getattr(e, "errno", None)
                              if not isinstance(e, FileNotFoundError) else errno.ENOENT)
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
    open, fstat); the caller closes it (``close``). UnreadableFile otherwise: never blocks.
    For a URL the "descriptor" is a remote.RemoteFile that read_fd reads by ranges."""
    if is_url(path):
        try:
            handle = _remote().open_remote(path)
        except IsADirectoryError:
            raise UnreadableFile(path, "is not a regular file (a directory)") from None
        except Exception as e:
            raise _refusal(path, e) from None
        return handle, _remote().stat(path)
    try:
        fd = os.open(path, _FLAGS)
    except OSError as e:
        raise _refusal(path, e) from None
    st = os.fstat(fd)
    if not S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st.st_mode)
    return fd, st


def close(fd) -> None:
    """Close what open_regular opened."""
    if isinstance(fd, int):
        os.close(fd)


def is_remote(fd) -> bool:
    """Whether open_regular's ``fd`` is a remote object (read by ranges, not pread)."""
    return not isinstance(fd, int)


def read_fd(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` of an open file (fewer at its end). Read in parts of
    at most 64 MB: os.pread allocates what it is asked for, and ``size`` may be a lie."""
    if not isinstance(fd, int):
        try:
            return fd.read(size, offset)
        except Exception as e:
            raise _refusal(fd.url, e) from None
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
        close(fd)


def read_ends(path: str | os.PathLike, head: int, tail: int) -> tuple[bytes, bytes]:
    """The first ``head`` and the last ``tail`` bytes of the regular file ``path`` (fewer in a
    shorter file), with one open: what telling formats apart by their magic bytes needs."""
    fd, st = open_regular(path)
    try:
        first = read_fd(fd, head, 0) if head else b""
        if not tail:
            return first, b""
        if st.st_size <= len(first):
            return first, first[-tail:]
        return first, read_fd(fd, tail, max(st.st_size - tail, 0))
    except OSError as e:
        raise _refusal(path, e) from None
    finally:
        close(fd)


def read_small(path: str | os.PathLike, limit: int) -> tuple[bytes, os.stat_result]:
    """The whole regular file ``path`` and its stat (open, fstat, read, close), refused with
    UnreadableFile when it is bigger than ``limit`` bytes."""
    fd, st = open_regular(path)
    try:
        if st.st_size > limit:
            raise UnreadableFile(path, f"is too big to read ({human_bytes(st.st_size)}, more "
                                       f"than the memory budget of {human_bytes(limit)})")
        data = os.read(fd, st.st_size) if isinstance(fd, int) else b""
        if len(data) < st.st_size:  # (a short local read is rare: read_fd gets the rest)
            data += read_fd(fd, st.st_size - len(data), len(data))
        return data, st
    except UnreadableFile:
        raise
    except OSError as e:
        raise _refusal(path, e) from None
    finally:
        close(fd)


def open_file(path: str | os.PathLike):
    """The regular file ``path`` as a binary file object (for zipfile and the like)."""
    fd, _ = open_regular(path)
    return file_object(fd)


def file_object(fd):
    """A binary file object of its own on what open_regular opened (the caller closes both);
    a remote one reads through a block cache."""
    if isinstance(fd, int):
        return os.fdopen(os.dup(fd), "rb")
    return fd.file_object()


def fd_path(fd: int, path: str | os.PathLike):
    """What HDF5 opens to read the very file ``fd`` is open on: a path (Linux:
    /proc/self/fd/N; elsewhere ``path`` itself), or for a remote object a file object reading
    through a block cache: what was checked is what it reads."""
    if not isinstance(fd, int):
        return fd.file_object()
    if sys.platform.startswith("linux"):
        return f"/proc/self/fd/{fd}"
    return os.fspath(path)


# --- writing in a bucket (prune) --------------------------------------------------------------

def put_whole(url: str, data: bytes) -> None:
    """Write the object ``url`` whole in one request (a bucket has no rename: one PUT is its
    atomic replace). UnreadableFile naming it, in one sentence, when it cannot be written."""
    try:
        _remote().put_whole(url, data)
    except Exception as e:
        raise UnreadableFile(url, _remote().write_reason(e, "written"),
                             getattr(e, "errno", None)) from None


def remove_object(url: str) -> None:
    """Delete the one object ``url`` (one request, under the store's deadline).
    FileNotFoundError when it is gone; UnreadableFile, one sentence, when it cannot be deleted."""
    try:
        _remote().remove_object(url)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise UnreadableFile(url, _remote().write_reason(e, "deleted"),
                             getattr(e, "errno", None)) from None


def find_objects(url: str) -> dict[str, int]:
    """Every object under the folder ``url``, at any depth, listed now: its path relative to
    ``url`` -> its size ({} when there is none). OSError with a few words when it cannot be
    listed."""
    remote = _remote()
    try:
        return remote.find(url)
    except Exception as e:
        raise OSError(remote.folder_problem(url, e)) from None


# --- folders ----------------------------------------------------------------------------------

def list_folder(directory: str) -> tuple[list[str], list[str]]:
    """(the names of the files, of the folders) in ``directory`` (symbolic links followed;
    special files left out). OSError when it cannot be listed."""
    files: list[str] = []
    folders: list[str] = []
    if is_url(directory):
        try:
            for e in _remote().listing(directory).values():
                (folders if e.is_dir else files).append(e.name)
        except Exception as e:
            raise OSError(_remote().folder_problem(directory, e)) from None
        return files, folders
    with os.scandir(directory) as it:
        for e in it:
            try:
                if e.is_dir():
                    folders.append(e.name)
                elif e.is_file():
                    files.append(e.name)
            except OSError:
                continue
    return files, folders


def listing_now(url: str, *, fresh: bool = True) -> dict[str, tuple[bool, int, str]]:
    """name -> (is a folder, size, ETag or generation) of each entry of the folder ``url``:
    what a watcher compares between two polls. ``fresh``: listed now, whatever this operation
    remembers (its listing, a past outage); else the listing this operation already read (a
    scan's own: no request). OSError with a few words when it cannot be listed."""
    remote = _remote()
    try:
        entries = remote.fresh_listing(url) if fresh else remote.listing(url)
    except Exception as e:
        raise OSError(remote.folder_problem(url, e)) from None
    return {e.name: (e.is_dir, e.size, e.tag) for e in entries.values()}


def stat_of(path: str) -> os.stat_result:
    """os.stat of a local path; for a URL, from its folder's listing. OSError if not there."""
    if is_url(path):
        try:
            return _remote().stat(path)
        except OSError:
            raise
        except Exception as e:
            raise _refusal(path, e) from None
    return os.stat(path)


def is_file(path: str) -> bool:
    """Whether ``path`` is a regular file (a URL: an object of its folder's listing)."""
    if not is_url(path):
        return os.path.isfile(path)
    try:
        return stat.S_ISREG(stat_of(path).st_mode)
    except OSError:
        return False


def is_dir(path: str) -> bool:
    if not is_url(path):
        return os.path.isdir(path)
    try:
        return stat.S_ISDIR(stat_of(path).st_mode)
    except OSError:
        return False


def kvstore(directory: str) -> dict:
    """tensorstore's kvstore spec of a folder: a local one, or (tensorstore's own s3 and gcs
    drivers, with the same endpoint settings) a bucket's. ValueError for other URLs."""
    if is_url(directory):
        return _remote().tensorstore_kvstore(directory)
    return {"driver": "file", "path": directory + "/"}


def exists(path: str) -> bool:
    return is_file(path) or is_dir(path) if is_url(path) else os.path.exists(path)
