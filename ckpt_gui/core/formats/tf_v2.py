"""TensorFlow V2 bundles: ``P.index`` (an SSTable of entries) + ``P.data-K-of-N`` (+ ``P.meta``),
written by tf.train.Checkpoint, CheckpointManager, Keras save_weights in TF format and the TF1
Saver; and the base of every bundle-shaped format."""
from __future__ import annotations

import os
import re

from .. import inspect as inspection, readers, storage
from .base import Binding, Candidate, CheckpointFormat, DirectoryListing

NAME = "tf-v2"
DATA_FILE = re.compile(r"(?s)(?P<prefix>.+)\.data-(?P<shard>\d{5})-of-(?P<total>\d{5})\Z")


class BundleFormat(CheckpointFormat):
    """A V2 bundle somewhere under the scanned directory."""

    needs_tensorflow = True
    binding = Binding.OBJECT_GRAPH
    lists_files_first = False   # its inspector stats the files it opens
    graph_writer = "tf.train.Checkpoint"
    reads_in_chunks = True      # byte ranges of its data file
    reads_into = True

    def location(self, info, cand: Candidate, directory: str) -> tuple[str, str, str, str]:
        """(the prefix's folder, its base name, its index file and the folder of its files,
        both relative to ``directory``)."""
        return directory, cand.name, cand.files[0], ""

    def inspect(self, info, cand, directory, opened, stale):
        inspection.inspect_bundle(info, cand, self.location(info, cand, directory),
                                  self.graph_writer, opened, stale)

    def read(self, ckpt, var):
        return readers.read_bundle_tensor(ckpt, var)

    def read_chunks(self, ckpt, var, max_bytes, out=None):
        return readers.read_bundle_chunks(ckpt, var, max_bytes, out)

    def verify(self, ckpt, progress, cancelled):
        return readers.verify_with_tensorflow(ckpt, readers.bundle_guard(ckpt), True, progress,
                                              cancelled)


class TfV2(BundleFormat):
    name = NAME
    named_by_state_file = True

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        names = listing.unclaimed()
        prefixes = {n[: -len(".index")] for n in names if n.endswith(".index") and len(n) > 6}
        data_files: dict[str, list[str]] = {}
        for n in names:
            m = DATA_FILE.match(n) if ".data-" in n else None
            if m:
                data_files.setdefault(m["prefix"], []).append(n)
                if m["prefix"] not in prefixes:
                    listing.orphans.append(n)  # a data shard with no index cannot be read
                listing.claim([n])
        folder = os.path.join(listing.directory, "")
        candidates = []
        for prefix in prefixes:
            files = [prefix + ".index", *sorted(data_files.get(prefix, ()))]
            if prefix + ".meta" in listing.names:
                files.append(prefix + ".meta")
            listing.claim(files)
            candidates.append(Candidate(prefix, folder + prefix, NAME, files))
        return candidates

    def hints_at(self, file_name: str) -> bool:
        return file_name.endswith(".index") or DATA_FILE.match(file_name) is not None

    def owns(self, file_name, ckpt):
        p = ckpt.name
        m = DATA_FILE.match(file_name)
        return file_name in (p + ".index", p + ".meta") or (m is not None and m["prefix"] == p)

    def owner_of_orphan(self, directory, rel):
        m = DATA_FILE.match(rel)
        if m and storage.exists(os.path.join(directory, m["prefix"] + ".index")):
            return m["prefix"] + ".index"
        return None
