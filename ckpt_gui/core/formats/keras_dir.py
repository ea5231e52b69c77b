"""Unzipped ``.keras`` models (``model.save(path, zipped=False)``): a folder holding
``config.json`` and ``model.weights.h5``, one checkpoint named by the folder and read as its
zipped twin is (core/keras_dir.py). Prune removes its files in keras_dir.files() order (the
config first: the folder then no longer is a model), the folder itself last."""
from __future__ import annotations

import json
import os

from .. import keras_dir, storage
from .base import CarriedConfig, Candidate, DirectoryListing
from .keras_archive import KerasArchive

NAME = "keras-dir"


class KerasDir(KerasArchive):
    name = NAME
    archive = False   # its weights are a plain file inside the folder, not a zip member

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        candidates = []
        for d in listing.unclaimed_subdirectories():
            path = listing.path(d)
            if not self.is_checkpoint_folder(path):
                continue   # (a link may lead anywhere: its files are not this folder's)
            listing.claim_subdirectory(d)
            candidates.append(Candidate(d, path, NAME, keras_dir.files(path)))
        return candidates

    def hints_at(self, file_name: str) -> bool:
        return False

    def single_file_kind(self, rel: str) -> str:
        return "folder" if "/" not in rel else "hdf5" if rel.endswith(".h5") else "file"

    def open_weights(self, path: str):
        return keras_dir.open_weights(path)

    def model_config(self, path: str) -> dict | None:
        return keras_dir.config(path)

    def carried_config(self, ckpt):
        """config.json: files it names only inside the model's folder, its assets/ folder."""
        config = keras_dir.config(ckpt.path)
        if config is None:
            return None
        return CarriedConfig(json.dumps(config), ckpt.path,
                             assets=os.path.join(ckpt.path, keras_dir.ASSETS))

    def is_checkpoint_folder(self, path):
        return not os.path.islink(path) and keras_dir.recognise(_entries(path))

    def settle(self, info, keras3: bool, writer: str):
        names = super().settle(info, keras3, writer)
        info.writer = "Keras 3 model.save(zipped=False) (unzipped .keras folder)"
        return names

    def owns(self, file_name, ckpt):
        return file_name == ckpt.name or file_name.startswith(ckpt.name + "/")

    def deletion_rank(self, file_name, ckpt):
        """The order keras_dir.files() listed them in (scan keeps it)."""
        order = [f.name for f in ckpt.files]
        return (order.index(file_name),) if file_name in order else (len(order), file_name)


def _entries(path: str) -> list[str]:
    try:
        files, folders = storage.list_folder(path)
        return files + folders
    except OSError:
        return []
