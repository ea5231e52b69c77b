"""A SavedModel's variables: ``saved_model.pb`` beside ``variables/variables.{index,data-*}``, a
V2 bundle inside a folder the format claims whole (the scanned directory or a subfolder)."""
from __future__ import annotations

import os

from .. import storage
from .base import Candidate, DirectoryListing
from .tf_v2 import BundleFormat

NAME = "savedmodel"
GRAPH_FILE = "saved_model.pb"


def _is_savedmodel(path: str) -> bool:
    return (storage.is_file(os.path.join(path, GRAPH_FILE))
            and storage.is_file(os.path.join(path, "variables", "variables.index")))


def _candidate(directory: str, rel: str) -> Candidate:
    var_dir = os.path.join(directory, rel, "variables")   # rel "": the directory itself
    prefix = os.path.join(var_dir, "variables")
    files = []
    rel_var = os.path.relpath(var_dir, directory)
    for entry in sorted(storage.list_folder(var_dir)[0]):
        if entry == "variables.index" or entry.startswith("variables.data-"):
            files.append(f"{rel_var}/{entry}")
    pb = f"{rel}/{GRAPH_FILE}" if rel else GRAPH_FILE
    return Candidate(rel or "variables/variables", prefix, NAME, [pb] + files)


class SavedModel(BundleFormat):
    name = NAME
    prunable = False
    refusal = "a SavedModel folder is not pruned here (delete the folder itself)"
    graph_writer = "SavedModel"

    def recognise(self, listing: DirectoryListing) -> list[Candidate]:
        candidates = []
        if _is_savedmodel(listing.directory):
            candidates.append(_candidate(listing.directory, ""))
            listing.claim_subdirectory("variables")
        for d in listing.unclaimed_subdirectories():
            if _is_savedmodel(listing.path(d)):
                candidates.append(_candidate(listing.directory, d))
                listing.claim_subdirectory(d)
        return candidates

    def hints_at(self, file_name: str) -> bool:
        return file_name == GRAPH_FILE

    def location(self, info, cand, directory):
        # variables/variables.index, listed after its saved_model.pb
        prefix_dir, base = os.path.split(info.path)
        index_rel = next((f for f in cand.files if f.endswith(f"{base}.index")),
                         f"{base}.index")
        return prefix_dir, base, index_rel, index_rel[:len(index_rel) - len(base) - len(".index")]

    def owns(self, file_name, ckpt):
        return False
