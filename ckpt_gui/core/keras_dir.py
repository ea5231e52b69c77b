"""An unzipped ``.keras`` model: a directory holding what the zip would (Keras 3.4+
``model.save(path, zipped=False)``; the path must not end in ``.keras``)::

    NAME/config.json        the model's config, as in the archive
    NAME/metadata.json      {"keras_version": ..., "date_saved": ...}
    NAME/model.weights.h5   an ordinary Keras 3 weights file
    NAME/assets/            (often empty)

One checkpoint named by the directory, with the variables and config of its zipped twin: the
weights file is opened and read through hdf5.py (the same rules), the config parsed as
hdf5.archive_config parses the archive's. Nothing here knows about the rest of the engine.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import contextmanager

import numpy as np

from . import hdf5, storage

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = hdf5.ARCHIVE_WEIGHTS  # model.weights.h5, the archive's member name
ASSETS = "assets"


def recognise(entries: Iterable[str]) -> bool:
    """Whether a directory whose entries are named ``entries`` is an unzipped .keras model:
    its config and its weights (metadata.json and assets/ are optional, as Keras' loader
    treats them)."""
    entries = set(entries)
    return CONFIG in entries and WEIGHTS in entries


def weights_path(directory: str) -> str:
    return os.path.join(directory, WEIGHTS)


@contextmanager
def open_weights(directory: str):
    """The directory's weights file, open (hdf5.open_weights: a regular file only)."""
    with hdf5.open_weights(weights_path(directory), archive=False) as f:
        yield f


def config(directory: str) -> dict | None:
    """The model config (config.json), or None, as hdf5.archive_config gives the archive's."""
    try:
        raw, _ = storage.read_small(os.path.join(directory, CONFIG), hdf5.CONFIG_LIMIT)
    except OSError:
        return None
    return hdf5.config_from_bytes(raw)


def metadata(directory: str) -> dict | None:
    """metadata.json (the Keras version that saved it, the date), or None."""
    try:
        raw, _ = storage.read_small(os.path.join(directory, METADATA), hdf5.CONFIG_LIMIT)
    except OSError:
        return None
    return hdf5.config_from_bytes(raw)


def list_variables(directory: str) -> list[hdf5.H5Dataset]:
    """Every variable of the weights file, as hdf5.list_datasets lists an archive's."""
    with open_weights(directory) as f:
        return hdf5.list_datasets(f)


def read_variable(directory: str, name: str) -> np.ndarray:
    with open_weights(directory) as f:
        return hdf5.read_dataset(f, name)


def files(directory: str) -> list[str]:
    """Every path of the model, relative to the directory's parent folder, in prune order:
    config.json first (the directory then no longer is a model), the weights, every other
    entry in name order with a directory after its contents, the directory itself last.
    Links are listed, never followed."""
    name = os.path.basename(os.path.normpath(directory))
    first = [os.path.join(name, n) for n in (CONFIG, WEIGHTS)]
    rest = [p for p in _bottom_up(directory, name) if p not in first]
    return first + rest + [name]


def _bottom_up(path: str, rel: str):
    if storage.is_url(path):  # (a bucket has no links)
        files, folders = storage.list_folder(path)
        for name in sorted(files + folders):
            if name in folders:
                yield from _bottom_up(f"{path}/{name}", os.path.join(rel, name))
            yield os.path.join(rel, name)
        return
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            yield from _bottom_up(entry.path, os.path.join(rel, entry.name))
        yield os.path.join(rel, entry.name)
