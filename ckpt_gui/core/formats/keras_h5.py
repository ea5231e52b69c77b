"""Keras 1/2 HDF5 files (save_weights or whole-model ``model.save`` to .h5): layers listed in
order, each with its flat list of weight names; and the base of every Keras weights file."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager

from .. import hdf5, inspect as inspection, readers, varnames
from .base import (HDF5, HDF5_SUFFIXES, KERAS_SUFFIX, Binding, CarriedConfig, Candidate,
                   CheckpointFormat, DirectoryListing)

NAME = "keras-h5"
KERAS3_NAME = "keras3-h5"   # what a file turns out to be when its layout is Keras 3's
KERAS3_SUFFIX = ".weights.h5"


class KerasWeightsFormat(CheckpointFormat):
    """A file read with h5py: one file, its datasets the variables."""

    needs_tensorflow = False
    # slices of its datasets; a .keras archive whose weights member is compressed is first
    # decompressed whole into memory (hdf5.open_weights, within the memory budget)
    reads_in_chunks = True

    def open_weights(self, path: str):
        """Its HDF5 weights, open (a context manager): the file itself, or an archive's."""
        return hdf5.open_weights(path, self.archive)

    def model_config(self, path: str) -> dict | None:
        """The model config it carries (an archive's config.json), or None."""
        return hdf5.archive_config(path) if self.archive else None

    @contextmanager
    def key_reader(self, ckpt):
        import numpy as np

        with self.open_weights(ckpt.path) as f:
            yield lambda key: np.asarray(hdf5.read_dataset(f, key))

    def inspect(self, info, cand, directory, opened, stale):
        inspection.inspect_keras_file(info, self.open_weights,
                                      lambda: self.model_config(info.path), self.settle)

    def settle(self, info, keras3: bool, writer: str):
        """Name the format and writer from the layout found inside the file (a legacy file may
        be named .weights.h5); return how that layout names its variables in the model
        (VariableInfo.display_name): ``display_names(f, variables, config)``, see varnames."""
        info.format = KERAS3_NAME if keras3 else NAME
        info.writer = writer
        return varnames.keras3_h5_names if keras3 else _layer_order_names

    def read(self, ckpt, var):
        return readers.read_keras_tensor(ckpt, var, self.open_weights)

    def read_chunks(self, ckpt, var, max_bytes):
        return readers.read_keras_chunks(ckpt, var, self.open_weights, max_bytes)

    def verify(self, ckpt, progress, cancelled):
        return readers.verify_keras_file(ckpt, self.open_weights, progress, cancelled)

    def carries_config(self, ckpt):
        return self.carries_config_always or "model.save" in (ckpt.writer or "")

    def carried_config(self, ckpt):
        """An archive's config.json, or a whole-model .h5's ``model_config`` attribute."""
        config = self.model_config(ckpt.path)
        if config is not None:
            text = json.dumps(config)
        else:
            with self.open_weights(ckpt.path) as f:
                text = _text(f.attrs.get("model_config"))
        if text is None:
            return None
        return CarriedConfig(text, os.path.dirname(ckpt.path),
                             assets=ckpt.path if self.archive else None)


class KerasH5(KerasWeightsFormat):
    name = NAME
    binding = Binding.LAYER_ORDER

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        candidates = []
        for n in sorted(listing.unclaimed()):
            lower = n.lower()
            path = listing.path(n)
            if lower.endswith(KERAS_SUFFIX):   # a Keras 2 model.save named .keras
                mine = hdf5.has_hdf5_signature(path)
            elif lower.endswith(HDF5_SUFFIXES):
                mine = not lower.endswith(KERAS3_SUFFIX)
            else:
                mine = listing.sniff(n) == HDF5
            if mine:
                listing.claim([n])
                candidates.append(Candidate(n, path, NAME, [n]))
        return candidates

    def hints_at(self, file_name: str) -> bool:
        return file_name.endswith(HDF5_SUFFIXES)


def _text(value) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else \
        None if value is None else str(value)


def _layer_order_names(f, variables, config) -> dict:
    """Keras 1/2 files name their variables by layer_names and weight_names (no config)."""
    return varnames.keras2_h5_names(f, variables)
