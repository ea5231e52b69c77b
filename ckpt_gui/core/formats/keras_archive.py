"""Keras 3 ``.keras`` zip archives (model.save, ModelCheckpoint): ``config.json`` (the model)
and ``model.weights.h5`` (Keras 3 weights)."""
from __future__ import annotations

from .. import varnames
from .base import KERAS_SUFFIX, Binding, Candidate, DirectoryListing
from .keras_h5 import KerasWeightsFormat

NAME = "keras"


class KerasArchive(KerasWeightsFormat):
    name = NAME
    binding = Binding.LAYER_PATHS
    archive = True
    carries_config_always = True

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        candidates = []
        for n in sorted(listing.unclaimed()):
            if n.lower().endswith(KERAS_SUFFIX):
                listing.claim([n])
                candidates.append(Candidate(n, listing.path(n), NAME, [n]))
        return candidates

    def hints_at(self, file_name: str) -> bool:
        return file_name.endswith(KERAS_SUFFIX)

    def settle(self, info, keras3: bool, writer: str):
        info.writer = "Keras 3 model.save / ModelCheckpoint (.keras archive)"
        return varnames.keras3_h5_names
