"""Find the checkpoints in one directory from its file names and a few magic bytes.

No file is read beyond signatures here; what each checkpoint holds is ``inspect``'s job.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from . import bundle, hdf5, storage
from .model import KERAS3_H5, KERAS_ARCHIVE, KERAS_H5, SAVEDMODEL, TF_V1, TF_V2
from .naming import natural_key
from .statefile import STATE_FILE

DATA_FILE = re.compile(r"(?s)(?P<prefix>.+)\.data-(?P<shard>\d{5})-of-(?P<total>\d{5})\Z")
# TF1 Saver(write_version=V1, sharded=True): P-00000-of-00002 ..., one P.meta, and the state
# file names the pattern P-?????-of-00002 (which TensorFlow's readers accept as the prefix).
V1_SHARD = re.compile(r"(?s)(?P<prefix>.+)-(?P<shard>\d{5})-of-(?P<total>\d{5})\Z")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hd5", ".he5")
_NOT_V1 = (".index", ".meta", ".json", ".txt", ".py", ".pb", ".pbtxt", ".csv", ".md", ".log",
           ".png", ".jpg", ".npy", ".npz", ".pkl", ".yaml", ".yml", ".zip", ".gz", ".tar")
_TEMP = re.compile(r"(_temp(_[0-9a-f]+)?$|\.tempstate\d*$|^\.checkpoint\..*\.tmp$|_temp/?$)")


@dataclass
class Candidate:
    name: str                 # prefix or file name relative to the directory
    path: str                 # absolute prefix or file path
    format: str
    files: list[str] = field(default_factory=list)   # relative names of its own files


@dataclass
class Listing:
    candidates: list[Candidate]
    data_files: dict[str, list[tuple[str, int, int]]]  # prefix -> [(file, shard, total)]
    orphans: list[str]
    subdirectories: list[str]
    has_state_file: bool


def _is_savedmodel(path: str) -> bool:
    return (os.path.isfile(os.path.join(path, "saved_model.pb"))
            and os.path.isfile(os.path.join(path, "variables", "variables.index")))


def _savedmodel_candidate(directory: str, rel: str) -> Candidate:
    var_dir = os.path.join(directory, rel, "variables") if rel else os.path.join(directory, "variables")
    prefix = os.path.join(var_dir, "variables")
    files = []
    rel_var = os.path.relpath(var_dir, directory)
    for entry in sorted(os.listdir(var_dir)):
        if entry == "variables.index" or entry.startswith("variables.data-"):
            files.append(f"{rel_var}/{entry}")
    pb = f"{rel}/saved_model.pb" if rel else "saved_model.pb"
    return Candidate(rel or "variables/variables", prefix, SAVEDMODEL, [pb] + files)


def _looks_like_checkpoint_dir(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            for e in it:
                n = e.name
                if (n == STATE_FILE or n.endswith((".index", ".keras", ".weights.h5") + HDF5_SUFFIXES)
                        or n == "saved_model.pb" or DATA_FILE.match(n)):
                    return True
    except OSError:
        return False
    return False


def _sniff(path: str) -> str | None:
    """TF_V1 or KERAS_H5 by a file's magic bytes (one open), else None."""
    try:
        head, tail = storage.read_ends(path, hdf5.SNIFF_BYTES, 8)
    except OSError:
        return None
    if bundle.ends_with_table_magic(tail):
        return TF_V1
    return KERAS_H5 if hdf5.starts_like_hdf5(head) else None


def list_directory(directory: str) -> Listing:
    """Classify the directory's entries. Raises OSError when it cannot be listed."""
    entries = {}
    subdirs = []
    with os.scandir(directory) as it:
        for e in it:
            try:
                if e.is_dir():
                    subdirs.append(e.name)
                elif e.is_file():
                    entries[e.name] = e
            except OSError:
                continue
    names = set(entries)
    candidates: list[Candidate] = []
    orphans: list[str] = []
    claimed: set[str] = set()

    prefixes = {n[: -len(".index")] for n in names if n.endswith(".index") and len(n) > 6}
    data_files: dict[str, list[tuple[str, int, int]]] = {}
    for n in names:
        m = DATA_FILE.match(n) if ".data-" in n else None
        if m:
            data_files.setdefault(m["prefix"], []).append((n, int(m["shard"]), int(m["total"])))
            if m["prefix"] not in prefixes:
                orphans.append(n)  # a data shard with no index cannot be read by anyone
    for shards in data_files.values():
        claimed.update(f for f, _, _ in shards)

    folder = os.path.join(directory, "")
    for prefix in prefixes:
        files = [prefix + ".index", *sorted(f for f, _, _ in data_files.get(prefix, ()))]
        if prefix + ".meta" in names:
            files.append(prefix + ".meta")
        claimed.update(files)
        candidates.append(Candidate(prefix, folder + prefix, TF_V2, files))

    v1_shards: dict[str, list[tuple[str, int]]] = {}
    for n in names - claimed:
        m = V1_SHARD.match(n)
        if m and bundle.has_table_magic(os.path.join(directory, n)):
            v1_shards.setdefault(m["prefix"], []).append((n, int(m["total"])))
            claimed.add(n)
    for prefix, shards in v1_shards.items():
        files = sorted(f for f, _ in shards) + ([prefix + ".meta"] if prefix + ".meta" in names
                                                  else [])
        claimed.update(files)
        pattern = f"{prefix}-?????-of-{max(t for _, t in shards):05d}"
        candidates.append(Candidate(prefix, os.path.join(directory, pattern), TF_V1, files))

    for n in sorted(names - claimed):
        path = os.path.join(directory, n)
        lower = n.lower()
        if n == STATE_FILE:
            continue
        if _TEMP.search(n):
            orphans.append(n)
            continue
        if lower.endswith(".keras"):
            fmt = KERAS_H5 if hdf5.has_hdf5_signature(path) else KERAS_ARCHIVE
            candidates.append(Candidate(n, path, fmt, [n]))
        elif lower.endswith(HDF5_SUFFIXES):
            fmt = KERAS3_H5 if lower.endswith(".weights.h5") else KERAS_H5
            candidates.append(Candidate(n, path, fmt, [n]))
        elif lower.endswith(".meta"):
            if n[: -len(".meta")] not in names:
                orphans.append(n)  # a graph without weights
            continue
        elif not lower.endswith(_NOT_V1):
            fmt = _sniff(path)
            if fmt == TF_V1:
                files = [n] + ([n + ".meta"] if n + ".meta" in names else [])
                candidates.append(Candidate(n, path, TF_V1, files))
            elif fmt == KERAS_H5:
                candidates.append(Candidate(n, path, KERAS_H5, [n]))

    subdirectories = []
    if _is_savedmodel(directory):
        candidates.append(_savedmodel_candidate(directory, ""))
    for d in sorted(subdirs, key=natural_key):
        sub = os.path.join(directory, d)
        if _TEMP.search(d):
            orphans.append(d + "/")
        elif d == "variables" and _is_savedmodel(directory):
            continue
        elif _is_savedmodel(sub):
            candidates.append(_savedmodel_candidate(directory, d))
        elif _looks_like_checkpoint_dir(sub):
            subdirectories.append(d)

    candidates.sort(key=lambda c: natural_key(c.name))
    return Listing(candidates, data_files, sorted(orphans, key=natural_key), subdirectories,
                   STATE_FILE in names)
