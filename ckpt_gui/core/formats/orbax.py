"""Orbax checkpoints (``keras.callbacks.OrbaxCheckpoint``, ``orbax.checkpoint.CheckpointManager``):
the opened folder holds one directory per step, each a checkpoint named by its directory and
numbered by its step (core/orbax.py reads them with tensorstore). An uncommitted step (still
under its temporary name) is listed broken, so the latest is the highest committed step, and
prune can remove it. On disk prune removes a step as one folder, renamed away before its tree is
removed, so Orbax never lists a half-deleted step. A bucket has no rename: a step's objects go one
by one, in deletion_rank's order, the commit first."""
from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from .. import orbax, readers, storage
from ..model import FileInfo
from .base import Binding, CarriedConfig, Candidate, CheckpointFormat, DirectoryListing

NAME = "orbax"


class Orbax(CheckpointFormat):
    name = NAME
    needs_tensorflow = False
    binding = Binding.VARIABLE_PATHS
    reads_in_chunks = True   # tensorstore reads the stored chunks a slice touches

    def __init__(self):
        self._context = None   # tensorstore's, one per scan (its open files and caches)

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        free = set(listing.unclaimed_subdirectories())
        steps = [s for s in orbax.list_steps(listing.directory) if s.name in free]
        if steps:
            self._context = orbax.new_context()
        for step in steps:
            listing.claim_subdirectory(step.name)
        return [Candidate(s.name, s.path, NAME, [s.name]) for s in steps]

    def inspect(self, info, cand, directory, opened, stale):
        step = orbax.inspect_step(orbax.step_of(cand.path), self._context)
        info.writer = step.writer
        info.number = step.step.step
        info.variables = step.variables
        info.counters = step.counters
        info.status, info.problems = step.status, step.problems
        # One entry, the step's folder, carrying its files' bytes: prune removes it whole.
        info.files = [FileInfo(cand.name, step.bytes, "folder")]
        info.mtime = step.mtime

    def read(self, ckpt, var):
        with _read_errors():
            return orbax.read_array(_location(ckpt, var.name))

    def read_chunks(self, ckpt, var, max_bytes):
        with _read_errors():
            for _start, _stop, rows in orbax.iter_chunks(_location(ckpt, var.name), max_bytes):
                yield rows

    def verify(self, ckpt, progress, cancelled):
        step = orbax.verify_step(orbax.inspect_step(ckpt.path), progress=progress,
                                 cancelled=cancelled)
        if step is None:   # cancelled: nothing is known yet
            return ckpt
        by_name = {v.name: v for v in step.variables}
        for v in ckpt.variables:
            found = by_name.get(v.name)
            if found is not None:
                v.readable, v.problem = found.readable, found.problem
        ckpt.verified = True
        ckpt.n_readable = sum(1 for v in ckpt.variables if v.readable is not False)
        ckpt.status, ckpt.problems = step.status, step.problems
        return ckpt

    def owns(self, file_name, ckpt):
        return file_name == ckpt.name

    def deletion_rank(self, file_name, ckpt):
        """A step in a bucket stops being a committed step first: its ``commit_success.txt``
        (on GCS Orbax finalizes a step iff it exists), its ``_CHECKPOINT_METADATA``, its items'
        commit files, then the rest. Interrupted, it leaves a step Orbax does not list on GCS.
        (On disk the step is one entry, its folder, renamed away first.)"""
        inside = file_name[len(ckpt.name) + 1:]
        if file_name == ckpt.name or inside == orbax.COMMIT_SUCCESS:
            return (0, "")
        if inside == orbax.STEP_METADATA:
            return (1, "")
        if inside.endswith("/" + orbax.COMMIT_SUCCESS):
            return (2, inside)
        return (3, inside)

    def carries_config(self, ckpt):
        return storage.is_dir(os.path.join(ckpt.path, orbax.KERAS_CONFIG_ITEM))

    def carried_config(self, ckpt):
        """Keras' ``model_config`` item: files it names only inside the step."""
        _, text = orbax.locations(ckpt.path)
        return None if text is None else CarriedConfig(text, ckpt.path)

    def model_paths(self, ckpt):
        return orbax.model_paths(v.name for v in ckpt.variables)

    def unbound_hint(self, ckpt):
        if ckpt.writer == orbax.KERAS_WRITER:
            return ""
        return (f"{ckpt.name} was written by Orbax without Keras (a plain pytree, no "
                f"trainable_variables/<model>/... tree): its paths bind a Keras model's "
                f"variables only where they equal the variables' paths (hidden/kernel)")

    @contextmanager
    def key_reader(self, ckpt):
        locations, _ = orbax.locations(ckpt.path)
        yield lambda key: np.asarray(orbax.read_array(locations[key]))


def _location(ckpt, name: str) -> orbax.ArrayLocation:
    locations, _ = orbax.locations(ckpt.path)
    if name not in locations:
        raise readers.ReadError(f"{name} is not in step {ckpt.name}")
    return locations[name]


@contextmanager
def _read_errors():
    try:
        yield
    except orbax.OrbaxError as e:
        raise readers.ReadError(str(e)) from None
