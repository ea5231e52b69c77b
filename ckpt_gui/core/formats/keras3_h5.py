"""Keras 3 ``.weights.h5`` files (save_weights, ModelCheckpoint): ``layers/<name>/vars/<i>``."""
from __future__ import annotations

from .base import Binding, Candidate, DirectoryListing
from .keras_h5 import KERAS3_NAME, KERAS3_SUFFIX, KerasWeightsFormat

NAME = KERAS3_NAME


class Keras3H5(KerasWeightsFormat):
    name = NAME
    binding = Binding.LAYER_PATHS

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        candidates = []
        for n in sorted(listing.unclaimed()):
            if n.lower().endswith(KERAS3_SUFFIX):
                listing.claim([n])
                candidates.append(Candidate(n, listing.path(n), NAME, [n]))
        return candidates

    def hints_at(self, file_name: str) -> bool:
        return file_name.endswith(KERAS3_SUFFIX)
