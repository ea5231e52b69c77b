"""The desktop trash: move a file there with send2trash, and put it back (undo) where we can.

send2trash moves a file but does not say where it went. On a freedesktop.org trash (Linux and
BSD desktops: ``$XDG_DATA_HOME/Trash`` or ``~/.local/share/Trash``, ``$topdir/.Trash/$uid`` or
``$topdir/.Trash-$uid`` on other volumes) every trashed file ``files/NAME`` has an
``info/NAME.trashinfo`` whose ``Path=`` line records where it came from. Just before the move we
work out the name each trasher would give the file in each candidate trash (the first free one
of its naming sequence), and just after it take the ``.trashinfo`` of that name whose Path is our
file; putting it back is a rename of ``files/NAME`` to that path plus removing the info file.

Where it cannot work, and we say so instead of guessing:
- macOS (Finder's trash keeps no readable record of the original place; use Finder's Put Back) and
  Windows (the Recycle Bin's ``$I`` records are not read here; use the Recycle Bin's Restore);
- a send2trash backend that writes somewhere else than the freedesktop folders above;
- a file the user has since emptied from the trash, or whose original place is taken again (we
  never overwrite: that file is reported as a conflict).
Symbolic links are never sent to the trash: the link is removed and its target recorded, so undo
recreates the link; the target, which may live outside the folder, is never touched.
"""
from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

INFO_SUFFIX = ".trashinfo"


class TrashError(OSError):
    """The trash cannot be used (send2trash missing, no trash on this volume...)."""


@dataclass
class TrashedFile:
    original: str                    # absolute path the file had
    trashed: str | None = None       # its path inside the trash's files/ folder, when known
    info: str | None = None          # its .trashinfo, when known
    link_target: str | None = None   # set when the original was a symbolic link (it was unlinked)

    @property
    def restorable(self) -> bool:
        return self.link_target is not None or (self.trashed is not None and self.info is not None)


def undo_support() -> tuple[bool, str]:
    """(whether restoring from the trash can work on this platform, why not)."""
    if sys.platform == "darwin":
        return False, ("on macOS the trash keeps no record this tool can read: use Finder's "
                       "Put Back on the files in the Trash")
    if sys.platform == "win32":
        return False, ("on Windows restoring from the Recycle Bin is not implemented here: use "
                       "the Recycle Bin's Restore")
    return True, ""


def _home_trashes() -> list[tuple[str, str]]:
    """(trash folder, the folder its relative Path= entries are relative to)."""
    out = []
    mod = sys.modules.get("send2trash.plat_other")
    if mod is not None:  # send2trash fixes its home trash when it is imported
        out.append((os.fsdecode(mod.HOMETRASH_B), os.fsdecode(mod.XDG_DATA_HOME)))
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    out.append((os.path.join(xdg, "Trash"), xdg))
    return out


@functools.lru_cache(maxsize=64)
def _mount_point(path: str) -> str:
    """The mount point holding ``path`` (cached: a prune asks once per file, all in one folder)."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def candidate_trashes(path: str) -> list[tuple[str, str]]:
    """Every freedesktop trash the file at ``path`` may have been moved to."""
    top = _mount_point(os.path.dirname(os.path.abspath(path)))
    uid = str(os.getuid()) if hasattr(os, "getuid") else ""
    out = _home_trashes() + [(os.path.join(top, ".Trash", uid), top),
                             (os.path.join(top, ".Trash-" + uid), top)]
    seen, unique = set(), []
    for trash, topdir in out:
        key = os.path.realpath(trash)
        if key not in seen:
            seen.add(key)
            unique.append((trash, topdir))
    return unique


def read_trashinfo(info_path: str, topdir: str) -> str | None:
    """The absolute original path a .trashinfo records, or None."""
    try:
        with open(info_path, "rb") as f:
            lines = f.read(1 << 16).decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Path="):
            path = os.fsdecode(unquote_to_bytes(line[5:].strip()))
            return os.path.normpath(path if os.path.isabs(path) else os.path.join(topdir, path))
    return None


def _name_sequences(name: str) -> list[Iterator[str]]:
    """The names a trash may give a file called ``name``, in the order each trasher tries them:
    send2trash's own backend ``stem N.ext`` (N = 1, 2...), gio's ``first.N.rest`` (N = 2, 3...;
    the number goes before the first dot)."""
    stem, ext = os.path.splitext(name)
    first, dot, rest = name.partition(".")
    send2trash_names = (f"{stem} {n}{ext}" for n in itertools.count(1))
    gio_names = (f"{first}.{n}{dot}{rest}" if dot else f"{name}.{n}" for n in itertools.count(2))
    return [itertools.chain([name], send2trash_names), itertools.chain([name], gio_names)]


def _free_names(trash: str, name: str) -> set[str]:
    """The name each trasher would give ``name`` in ``trash`` now: the first of its sequence
    that is neither in files/ nor in info/. Probing a few names, never listing the trash: a
    listing per file made trashing 20,000 files take ten minutes."""
    free = set()
    for names in _name_sequences(name):
        for candidate in names:
            if not (os.path.lexists(os.path.join(trash, "files", candidate)) or
                    os.path.lexists(os.path.join(trash, "info", candidate + INFO_SUFFIX))):
                free.add(candidate)
                break
    return free


def send_to_trash(path: str) -> TrashedFile:
    """Move one file (or folder) to the trash; a symbolic link is unlinked and remembered.

    Raises FileNotFoundError when it is gone, OSError/TrashError when it cannot be trashed.
    """
    path = os.path.abspath(path)
    if os.path.islink(path):
        target = os.readlink(path)
        os.unlink(path)
        return TrashedFile(path, link_target=target)
    if not os.path.lexists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        from send2trash import send2trash
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise TrashError(f"send2trash is not installed ({e}); delete permanently instead") from None
    supported, _ = undo_support()
    trashes = candidate_trashes(path) if supported else []
    expected = {t: _free_names(t, os.path.basename(path)) for t, _ in trashes}
    try:
        send2trash(path)
    except OSError as e:
        if not os.path.lexists(path):
            raise FileNotFoundError(2, "No such file or directory", path) from None
        raise
    except Exception as e:  # send2trash raises its own types on some platforms
        raise TrashError(f"{os.path.basename(path)} cannot be moved to the trash: {e}") from None
    if os.path.lexists(path):
        raise TrashError(f"{os.path.basename(path)} is still there after moving it to the trash")
    for trash, topdir in trashes:
        for name in sorted(expected[trash]):
            info = os.path.join(trash, "info", name + INFO_SUFFIX)
            if read_trashinfo(info, topdir) == os.path.normpath(path):
                return TrashedFile(path, os.path.join(trash, "files", name), info)
    return TrashedFile(path)


def restore(entry: TrashedFile) -> None:
    """Put one trashed file back where it was. Never overwrites: FileExistsError if taken."""
    if os.path.lexists(entry.original):
        raise FileExistsError(17, "its original place is taken again", entry.original)
    if entry.link_target is not None:
        os.symlink(entry.link_target, entry.original)
        return
    if entry.trashed is None or entry.info is None:
        raise TrashError(f"where {os.path.basename(entry.original)} went in the trash is not known")
    if not os.path.lexists(entry.trashed):
        raise FileNotFoundError(2, "it is no longer in the trash (emptied?)", entry.trashed)
    try:
        os.rename(entry.trashed, entry.original)
    except OSError as e:
        if e.errno != 18:  # EXDEV: the trash is on another device
            raise
        shutil.move(entry.trashed, entry.original)
    try:
        os.remove(entry.info)
    except FileNotFoundError:
        pass


# --- removing for good --------------------------------------------------------------------------
# A folder deleted permanently (an Orbax step, an unzipped .keras model, an orphan ``_temp``
# folder) is first renamed to ``.NAME.deleting`` (``.NAME.deleting-2``... when taken), then its
# tree is removed: removing a tree takes many steps, and a reader must never find it half gone
# under its own name. An interruption (a crash, a power cut) leaves that hidden folder; the scan
# lists it as an orphan with a note and prune's orphan cleanup finishes removing it. It is never
# put back: the user chose to delete it for good, and what is left of a half-removed tree is no
# longer the checkpoint it was (putting it back would show a damaged checkpoint under its name).

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.deleting(?:-\d+)?/?$")


def rename_away(folder: str) -> str:
    """``folder`` under its hidden ``.NAME.deleting`` name (the first one free); the new path."""
    parent, name = os.path.split(folder)
    target = os.path.join(parent, f".{name}.deleting")
    n = 1
    while os.path.lexists(target):
        n += 1
        target = os.path.join(parent, f".{name}.deleting-{n}")
    os.rename(folder, target)
    return target


def interrupted_deletion(name: str) -> str | None:
    """The name of what was being deleted when ``name`` is the leftover of an interrupted
    permanent deletion (``.12.deleting`` -> ``12``), else None."""
    m = _LEFTOVER.match(name)
    return m.group("name") if m else None
