"""Keras 3 sharded weights: ``NAME.weights.json`` and its ``NAME_00000.weights.h5`` shards, one
checkpoint named by the json.

``model.save_weights("NAME.weights.json", max_shard_size=GB)`` (Keras 3.10+) writes each shard
as an ordinary Keras 3 weights file holding some of the model's variable groups, and the json::

    {"metadata": {"total_size": BYTES},
     "weight_map": {"/layers/dense/vars": "NAME_00000.weights.h5",
                    "/layers/dense_1/vars": ["NAME_00000.weights.h5", "NAME_00001.weights.h5"]}}

A group maps to one shard, or to a list when its variables spilled into the next shard. Shard
names are ``{NAME}_{index:05}.weights.h5`` (keras/src/saving/saving_lib.py, ShardedH5IOStore).
Variables are named as in a single ``.weights.h5`` (``layers/dense/vars/0``); every shard is
opened and read through hdf5.py, with its rules (regular files only, no links or data outside
the file, reads within the memory budget). Nothing here knows about the rest of the engine.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import hdf5, storage
from .naming import natural_key

SUFFIX = ".weights.json"
SHARD_SUFFIX = ".weights.h5"
MAP_LIMIT = 64 << 20  # a weight map is kilobytes (one line per layer)


class ShardedError(ValueError):
    """The json is not a sharded-weights map this module can follow."""


class MissingShard(hdf5.HDF5Error):
    """A variable's shard is not there."""


def base_name(json_name: str) -> str:
    """``NAME`` of ``NAME.weights.json`` (what Keras prefixes its shards with)."""
    return json_name[:-len(SUFFIX)]


def shard_pattern(json_name: str) -> re.Pattern:
    return re.compile(re.escape(base_name(json_name)) + r"_\d{5}" + re.escape(SHARD_SUFFIX))


def claims(names: Iterable[str]) -> dict[str, list[str]]:
    """The sharded checkpoints among a folder's file names, from the names alone: each
    ``NAME.weights.json`` with the ``NAME_NNNNN.weights.h5`` files present, in prune order (the
    json first: once it is gone the shards are no longer a checkpoint, then the shards in
    order). Shards without their json are not claimed (each is a partial ``.weights.h5``).
    ``m.weights.json`` does not claim ``m_1_00000.weights.h5`` (that one is ``m_1``'s)."""
    names = list(names)
    shards = sorted((n for n in names if n.endswith(SHARD_SUFFIX)), key=natural_key)
    out: dict[str, list[str]] = {}
    for name in sorted((n for n in names if n.endswith(SUFFIX) and len(n) > len(SUFFIX)),
                       key=natural_key):
        pattern = shard_pattern(name)
        out[name] = [name] + [s for s in shards if pattern.fullmatch(s)]
    return out


@dataclass
class WeightMap:
    """A parsed ``.weights.json``: each variable group's shards, in the order Keras tries them."""
    groups: dict[str, list[str]]  # "/layers/dense/vars" -> ["m_00000.weights.h5", ...]
    total_size: float | None = None

    @property
    def shards(self) -> list[str]:
        """Every shard the map names, in natural order."""
        return sorted({s for files in self.groups.values() for s in files}, key=natural_key)

    def shards_of(self, variable: str) -> list[str]:
        """The shards that may hold ``variable`` (``layers/dense/vars/0``): its group's."""
        group = "/" + variable.strip("/").rpartition("/")[0]
        return self.groups.get(group, [])


def read_map(json_path: str) -> WeightMap:
    """The weight map of ``json_path``; ShardedError saying what is wrong with it. A shard must
    be a plain file name (Keras opens it next to the json): a name with a path in it could
    make us open any file."""
    raw, _ = storage.read_small(json_path, MAP_LIMIT)
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ShardedError(f"not JSON: {e}") from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict):
        raise ShardedError("it has no weight_map")
    groups: dict[str, list[str]] = {}
    for group, files in weight_map.items():
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or not files or not all(_plain(f) for f in files):
            raise ShardedError(f"the weight_map entry of {group!r} is not a list of shard "
                               f"file names next to it: {files!r}")
        groups[group] = files
    metadata = doc.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    return WeightMap(groups, total if isinstance(total, (int, float)) else None)


def _plain(name) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\\" not in name and "\0" not in name)


@dataclass
class Health:
    """Which shards the map names are missing, and the variable groups they take with them."""
    missing: dict[str, list[str]] = field(default_factory=dict)  # shard -> groups lost

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    @property
    def problems(self) -> list[str]:
        return [f"shard {shard} is missing: the variables of "
                f"{', '.join(g.strip('/') for g in groups)} cannot be read"
                for shard, groups in self.missing.items()]


def health(json_path: str, weight_map: WeightMap | None = None) -> Health:
    """Which shards of the checkpoint are missing (looked up, not opened), and the variable
    groups each takes with it; a group listing several shards is lost when any is missing
    (its variables are spread over them)."""
    weight_map = weight_map or read_map(json_path)
    folder = os.path.dirname(json_path)
    out = Health()
    for shard in weight_map.shards:
        if not storage.is_file(os.path.join(folder, shard)):
            out.missing[shard] = [g for g, files in weight_map.groups.items() if shard in files]
    return out


@dataclass
class ShardDataset(hdf5.H5Dataset):
    shard: str = ""  # the shard file holding it


@dataclass
class Listing:
    variables: list[ShardDataset]
    health: Health
    problems: list[str]  # health's, and shards that cannot be opened


def list_variables(json_path: str) -> Listing:
    """Every variable of every shard present (as hdf5.list_datasets lists them: links and data
    outside the file listed with their problem), in natural order, each with its shard. A shard
    the map names that is missing or cannot be opened is a problem; the others still list."""
    weight_map = read_map(json_path)
    state = health(json_path, weight_map)
    folder = os.path.dirname(json_path)
    variables: list[ShardDataset] = []
    problems = state.problems
    for shard in weight_map.shards:
        if shard in state.missing:
            continue
        try:
            with hdf5.open_weights(os.path.join(folder, shard), archive=False) as f:
                datasets = hdf5.list_datasets(f)
        except (OSError, hdf5.HDF5Error) as e:
            problems.append(f"shard {shard} cannot be read: {e}")
            continue
        variables += [ShardDataset(**vars(ds), shard=shard) for ds in datasets]
    variables.sort(key=lambda v: natural_key(v.name))
    return Listing(variables, state, problems)


def read_variable(json_path: str, name: str, weight_map: WeightMap | None = None) -> np.ndarray:
    """The values of variable ``name`` (``layers/dense/vars/0``) from the shard the weight map
    names for its group (the next listed ones when its group spans shards), read by
    hdf5.read_dataset; MissingShard when its shard is not there, KeyError when no shard of its
    group holds it."""
    with _shard_holding(json_path, name, weight_map) as f:
        return hdf5.read_dataset(f, name)


def iter_variable(json_path: str, name: str, max_bytes: int,
                  weight_map: WeightMap | None = None) -> Iterator[np.ndarray]:
    """read_variable's values in C order, in pieces of at most ``max_bytes`` (hdf5.iter_dataset)."""
    with _shard_holding(json_path, name, weight_map) as f:
        yield from hdf5.iter_dataset(f, name, max_bytes)


@contextmanager
def _shard_holding(json_path: str, name: str, weight_map: WeightMap | None):
    """The open shard that holds dataset ``name`` (see read_variable)."""
    weight_map = weight_map or read_map(json_path)
    folder = os.path.dirname(json_path)
    missing = []
    for shard in weight_map.shards_of(name):
        path = os.path.join(folder, shard)
        if not storage.is_file(path):
            missing.append(shard)
            continue
        with hdf5.open_weights(path, archive=False) as f:
            if hdf5.get(f, name) is not None:
                yield f
                return
    if missing:
        raise MissingShard(f"{name} is in shard {' or '.join(missing)}, which is missing")
    raise KeyError(name)


def vars_names(json_path: str, weight_map: WeightMap | None = None) -> dict[str, str]:
    """hdf5.vars_names over every shard present: each ``.../vars`` group's stored name. Keras
    writes a group's attributes into the shard open when the group was made, which may hold
    none of its variables (so not a shard the weight map lists for it): all shards are asked,
    the first that names a group wins."""
    weight_map = weight_map or read_map(json_path)
    folder = os.path.dirname(json_path)
    out: dict[str, str] = {}
    for shard in weight_map.shards:
        try:
            with hdf5.open_weights(os.path.join(folder, shard), archive=False) as f:
                names = hdf5.vars_names(f)
        except (OSError, hdf5.HDF5Error):
            continue
        for group, name in names.items():
            out.setdefault(group, name)
    return out
