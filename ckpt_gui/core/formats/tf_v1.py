"""TF1 Saver checkpoints in the V1 format: one SSTable file ``P`` (or shards
``P-00000-of-00002`` ..., named by the pattern ``P-?????-of-00002``), an optional ``P.meta``."""
from __future__ import annotations

import re

from .. import bundle, inspect as inspection, readers
from .base import Binding, SSTABLE, Candidate, CheckpointFormat, DirectoryListing

NAME = "tf-v1"
# TF1 Saver(write_version=V1, sharded=True): P-00000-of-00002 ..., one P.meta, and the state
# file names the pattern P-?????-of-00002 (which TensorFlow's readers accept as the prefix).
V1_SHARD = re.compile(r"(?s)(?P<prefix>.+)-(?P<shard>\d{5})-of-(?P<total>\d{5})\Z")


class TfV1(CheckpointFormat):
    name = NAME
    needs_tensorflow = True
    named_by_state_file = True
    binding = Binding.OBJECT_GRAPH

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        return self._sharded(listing) + self._single_files(listing)

    def _sharded(self, listing: DirectoryListing) -> list[Candidate]:
        shards: dict[str, list[tuple[str, int]]] = {}
        for n in listing.unclaimed():
            m = V1_SHARD.match(n)
            if m and bundle.has_table_magic(listing.path(n)):
                shards.setdefault(m["prefix"], []).append((n, int(m["total"])))
                listing.claim([n])
        candidates = []
        for prefix, own in shards.items():
            files = sorted(f for f, _ in own) + ([prefix + ".meta"] if prefix + ".meta"
                                                 in listing.names else [])
            listing.claim(files)
            pattern = f"{prefix}-?????-of-{max(t for _, t in own):05d}"
            candidates.append(Candidate(prefix, listing.path(pattern), NAME, files))
        return candidates

    def _single_files(self, listing: DirectoryListing) -> list[Candidate]:
        candidates = []
        for n in sorted(listing.unclaimed()):
            if listing.sniff(n) == SSTABLE:
                files = [n] + ([n + ".meta"] if n + ".meta" in listing.names else [])
                listing.claim(files)
                candidates.append(Candidate(n, listing.path(n), NAME, files))
        return candidates

    def inspect(self, info, cand, directory, opened, stale):
        inspection.inspect_v1(info)

    def single_file_kind(self, rel):
        return "v1"

    def read(self, ckpt, var):
        return readers.read_v1_tensor(ckpt, var)

    def verify(self, ckpt, progress, cancelled):
        return readers.verify_with_tensorflow(ckpt, readers.memory_guard(), False, progress,
                                              cancelled)

    def owns(self, file_name, ckpt):
        return file_name in (ckpt.name, ckpt.name + ".meta")
