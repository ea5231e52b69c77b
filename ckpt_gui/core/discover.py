"""Find the checkpoints in one directory from its file names and a few magic bytes.

No file is read beyond signatures here; what each checkpoint holds is ``inspect``'s job.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from . import formats, storage, trash
from .formats.base import Candidate, DirectoryListing
from .naming import natural_key
from .statefile import STATE_FILE

_TEMP = re.compile(r"(_temp(_[0-9a-f]+)?$|\.tempstate\d*$|^\.checkpoint\..*\.tmp$|_temp/?$)")

__all__ = ["Candidate", "Listing", "list_directory"]


@dataclass
class Listing:
    candidates: list[Candidate]
    orphans: list[str]
    subdirectories: list[str]
    has_state_file: bool


def _looks_like_checkpoint_dir(path: str) -> bool:
    try:
        files, folders = storage.list_folder(path)
        return any(name == STATE_FILE or formats.hints_at_checkpoints(name)
                   for name in files + folders)
    except OSError:
        return False


def list_directory(directory: str) -> Listing:
    """Classify the directory's entries. Raises OSError when it cannot be listed."""
    files, subdirs = storage.list_folder(directory)
    names = set(files)
    # a save in progress (or abandoned) is nobody's checkpoint
    # (and so is what an interrupted permanent deletion left: trash.interrupted_deletion)
    temporary = {n for n in names if _TEMP.search(n) or trash.interrupted_deletion(n)}
    temporary_dirs = {d for d in subdirs if _TEMP.search(d) or trash.interrupted_deletion(d)}
    listing = DirectoryListing(directory, names,
                               sorted((d for d in subdirs if d not in temporary_dirs),
                                      key=natural_key), temporary | {STATE_FILE})
    candidates = formats.recognise(listing)
    orphans = listing.orphans + sorted(temporary) + [d + "/" for d in temporary_dirs]
    for n in listing.unclaimed():
        if n.lower().endswith(".meta") and n[: -len(".meta")] not in names:
            orphans.append(n)  # a graph without weights
    subdirectories = [d for d in listing.unclaimed_subdirectories()
                      if _looks_like_checkpoint_dir(os.path.join(directory, d))]
    candidates.sort(key=lambda c: natural_key(c.name))
    return Listing(candidates, sorted(orphans, key=natural_key), subdirectories,
                   STATE_FILE in names)
