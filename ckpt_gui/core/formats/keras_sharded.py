"""Keras 3 sharded weights (``save_weights("NAME.weights.json", max_shard_size=...)``): the json
and its ``NAME_NNNNN.weights.h5`` shards are one checkpoint, named by the json (core/
keras_sharded.py reads them). Registered before the single ``.weights.h5`` format, so that its
shards are never listed as checkpoints of their own."""
from __future__ import annotations

from contextlib import contextmanager

from .. import inspect as inspection, keras_sharded, readers, varnames
from ..model import BROKEN, OK, PARTIAL
from .base import Binding, Candidate, DirectoryListing
from .keras_h5 import KerasWeightsFormat

NAME = "keras3-sharded"


class KerasSharded(KerasWeightsFormat):
    name = NAME
    binding = Binding.LAYER_PATHS

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        candidates = []
        for json_name, files in keras_sharded.claims(listing.unclaimed()).items():
            listing.claim(files)
            candidates.append(Candidate(json_name, listing.path(json_name), NAME, files))
        return candidates

    def hints_at(self, file_name: str) -> bool:
        return file_name.endswith(keras_sharded.SUFFIX)

    def single_file_kind(self, rel: str) -> str:
        return "weight map" if rel.endswith(keras_sharded.SUFFIX) else "shard"

    def inspect(self, info, cand, directory, opened, stale):
        info.writer = "Keras 3 save_weights, sharded (.weights.json + .weights.h5 shards)"
        weight_map = keras_sharded.read_map(info.path)
        listing = keras_sharded.list_variables(info.path)
        stored = keras_sharded.vars_names(info.path, weight_map)
        inspection.fill_keras_variables(
            info, listing.variables, stored.get("optimizer/vars"),
            lambda variables: varnames.keras3_names(stored.get, variables, None,
                                                    list(weight_map.groups),
                                                    stored.get("optimizer/vars")),
            lambda v: keras_sharded.read_variable(info.path, v.name, weight_map))
        info.problems += listing.problems
        if listing.problems and info.status == OK:
            info.status = PARTIAL if info.variables else BROKEN

    def read(self, ckpt, var):
        try:
            return keras_sharded.read_variable(ckpt.path, var.name)
        except Exception as e:  # h5py raises many types on damaged data
            raise readers.ReadError(str(e) or type(e).__name__) from None

    def read_chunks(self, ckpt, var, max_bytes):
        try:
            yield from keras_sharded.iter_variable(ckpt.path, var.name, max_bytes)
        except Exception as e:  # h5py raises many types on damaged data
            raise readers.ReadError(str(e) or type(e).__name__) from None

    def verify(self, ckpt, progress, cancelled):
        weight_map = keras_sharded.read_map(ckpt.path)
        ckpt = readers.verify_variables(
            ckpt, lambda v: keras_sharded.read_variable(ckpt.path, v.name, weight_map),
            progress, cancelled)
        if keras_sharded.health(ckpt.path, weight_map).partial and ckpt.status == OK:
            ckpt.status = PARTIAL   # the variables of a missing shard are not even listed
        return ckpt

    def owns(self, file_name, ckpt):
        return file_name == ckpt.name or bool(
            keras_sharded.shard_pattern(ckpt.name).fullmatch(file_name))

    def deletion_rank(self, file_name, ckpt):
        """The json first (the shards are then no checkpoint), then the shards in order."""
        return (0, "") if file_name == ckpt.name else (1, file_name)

    def carried_config(self, ckpt):
        return None   # save_weights: weights only

    @contextmanager
    def key_reader(self, ckpt):
        weight_map = keras_sharded.read_map(ckpt.path)
        yield lambda key: keras_sharded.read_variable(ckpt.path, key, weight_map)
