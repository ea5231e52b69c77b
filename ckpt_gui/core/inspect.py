"""What one checkpoint holds: its files, variables, roles, counters, object graph and health.

Everything here reads only the index/metadata and a few scalar values, never whole tensors, so a
directory of a thousand checkpoints scans quickly. ``verify`` (in reading.py) reads every tensor.
"""
from __future__ import annotations

import math
import os
from collections import Counter

import numpy as np

from . import bundle, hdf5, objgraph, roles
from .discover import Candidate
from .model import (BROKEN, COUNTER, HDF5_FORMATS, METADATA, NORMALIZATION, OK, OPTIMIZER,
                    PARTIAL, TF_V1, CheckpointInfo, FileInfo, VariableInfo)
from .naming import checkpoint_number

FILE_KINDS = (("index", ".index"), ("meta", ".meta"), ("savedmodel", "saved_model.pb"))


def _file_kind(name: str, fmt: str) -> str:
    if ".data-" in name:
        return "data"
    for kind, suffix in FILE_KINDS:
        if name.endswith(suffix):
            return kind
    if fmt == TF_V1:
        return "v1"
    return "archive" if name.lower().endswith(".keras") else "hdf5"


def _files(directory: str, cand: Candidate) -> tuple[list[FileInfo], float]:
    infos, mtime = [], 0.0
    for rel in cand.files:
        try:
            st = os.stat(os.path.join(directory, rel))
        except OSError:
            continue
        infos.append(FileInfo(rel, st.st_size, _file_kind(rel, cand.format)))
        mtime = max(mtime, st.st_mtime)
    return infos, mtime


def status_from_counts(n_variables: int, n_unreadable: int) -> str:
    if n_variables == 0 or n_unreadable == 0:
        return OK if n_variables else BROKEN
    return BROKEN if n_unreadable >= n_variables else PARTIAL


def inspect(directory: str, cand: Candidate, stale_shards: list[str] | None = None) -> CheckpointInfo:
    files, mtime = _files(directory, cand)
    info = CheckpointInfo(
        name=cand.name, path=cand.path, format=cand.format, writer="", files=files,
        bytes=sum(f.bytes for f in files), mtime=mtime, number=checkpoint_number(cand.name))
    try:
        if cand.format in HDF5_FORMATS:
            _inspect_hdf5(info)
        elif cand.format == TF_V1:
            _inspect_v1(info)
        else:
            _inspect_v2(info, stale_shards if stale_shards is not None else [])
    except Exception as e:  # any unreadable input is a problem of the checkpoint, not a crash
        info.status = BROKEN
        info.problems.append(f"{cand.files[0] if cand.files else cand.name} cannot be read: {e}")
    if not info.variables and info.status == OK:
        info.status = BROKEN
        info.problems.append("it holds no variables")
    return info


# --- TF V2 bundles ---------------------------------------------------------------------------

def _inspect_v2(info: CheckpointInfo, stale: list[str]) -> None:
    index_name = os.path.basename(info.path) + ".index"
    has_meta = any(f.kind == "meta" for f in info.files)
    try:
        index = bundle.read_index(info.path + ".index")
    except (bundle.BundleError, OSError) as e:
        info.status = BROKEN
        info.writer = "unknown (unreadable index)"
        info.problems.append(f"{index_name} cannot be read: {e}")
        return
    prefix_dir = os.path.dirname(info.path)
    base = os.path.basename(info.path)
    shard_state: dict[int, str | None] = {}   # shard -> problem text or None
    shard_size: dict[int, int] = {}
    listed = {os.path.basename(f.name): f.bytes for f in info.files if f.kind == "data"}
    for k in range(index.num_shards):
        fname = bundle.data_file_name(base, k, index.num_shards)
        try:  # sizes were taken when the files were listed; stat only what was not listed
            shard_size[k] = listed[fname] if fname in listed \
                else os.path.getsize(os.path.join(prefix_dir, fname))
            shard_state[k] = None
        except OSError:
            shard_state[k] = f"{fname} is missing"
    # Data files of another shard count belong to an earlier save with the same prefix.
    expected = {bundle.data_file_name(base, k, index.num_shards) for k in range(index.num_shards)}
    for f in list(info.files):
        if f.kind == "data" and os.path.basename(f.name) not in expected:
            stale.append(f.name)
            info.files.remove(f)
    info.bytes = sum(f.bytes for f in info.files)

    unreadable: Counter[str] = Counter()
    variables = []

    def problem_of(part: bundle.BundleEntry) -> str | None:
        problem = shard_state.get(part.shard_id, f"shard {part.shard_id} is out of range")
        if problem is None and part.offset + part.size > shard_size.get(part.shard_id, 0):
            problem = f"{bundle.data_file_name(base, part.shard_id, index.num_shards)} is truncated"
        return problem

    classify, semantic_path = roles.classify_cached, roles.semantic_path_cached
    needs_graph = False
    for entry in index.entries.values():
        if entry.sliced:
            # A partitioned variable's data is in its slices' entries, maybe in several shards.
            parts = index.slices.get(entry.name, [])
            problem = next((p for p in map(problem_of, parts) if p), None)
            shard = min((p.shard_id for p in parts), default=entry.shard_id)
            stored = sum(p.size for p in parts)
        else:
            shard, stored = entry.shard_id, entry.size
            problem = shard_state.get(shard, _OUT_OF_RANGE)
            if problem is _OUT_OF_RANGE:  # the text only when needed: this runs per variable
                problem = f"shard {shard} is out of range"
            elif problem is None and entry.offset + stored > shard_size[shard]:
                problem = f"{bundle.data_file_name(base, shard, index.num_shards)} is truncated"
        role = classify(entry.name, entry.shape, entry.dtype)
        variables.append(VariableInfo(
            entry.name, entry.shape, entry.dtype, stored or _nbytes(entry.shape, entry.dtype),
            role, semantic_path(entry.name), shard, False if problem else None, problem))
        if problem:
            unreadable[problem] += 1
        if role == OPTIMIZER or "_trainable_variables" in entry.name:
            needs_graph = True
    info.variables = variables
    _summarize_unreadable(info, unreadable)

    # The object graph says which optimizer slot belongs to which variable and which paths
    # reach a variable twice; without optimizer state it has nothing to add, so it is decoded
    # only when some variable is optimizer state (a folder of 1,000 checkpoints scans faster).
    graph = None
    graph_entry = index.entries.get(roles.OBJECT_GRAPH_KEY)
    if needs_graph and graph_entry is not None \
            and info.variable(roles.OBJECT_GRAPH_KEY).readable is not False:
        try:
            raw = bundle.read_raw(os.path.join(prefix_dir, bundle.data_file_name(
                base, graph_entry.shard_id, index.num_shards)), graph_entry)
            graph = objgraph.decode(bundle.decode_small(raw, graph_entry).item())
        except Exception as e:
            info.problems.append(f"the object graph cannot be decoded: {e}")
    if graph is not None:
        _attach_graph(info, graph)
    else:
        attach_name_based_slots(info.variables)
    info.writer = _v2_writer(info, graph_entry is not None, has_meta)

    files: dict[int, object] = {}  # shard -> its data file, unbuffered: one open per file

    def read_counter(v: VariableInfo):
        entry = index.entries[v.name]
        f = files.get(entry.shard_id)
        if f is None:
            f = files[entry.shard_id] = open(os.path.join(prefix_dir, bundle.data_file_name(
                base, entry.shard_id, index.num_shards)), "rb", buffering=0)
        raw = bundle.read_raw(f.name, entry, check=True, fd=f.fileno())
        return bundle.decode_scalar(raw, entry)

    try:
        _read_counters(info, read_counter)
    finally:
        for f in files.values():
            f.close()


_OUT_OF_RANGE = object()


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    np_dtype = bundle._NUMPY_DTYPE.get(dtype)
    return math.prod(shape) * np.dtype(np_dtype).itemsize if np_dtype else 0


def _v2_writer(info: CheckpointInfo, has_graph: bool, has_meta: bool) -> str:
    if not has_graph:
        return "TF1 Saver (name-based, V2 format)"
    # a root (first path segment) named like a Keras layer; the prefixes hold no "/"
    if any(v.path.startswith(("layer_with_weights-", "layer-")) for v in info.variables):
        return "Keras save_weights / ModelCheckpoint (TF format)"
    if info.format == "savedmodel":
        return "SavedModel"
    return "tf.train.Checkpoint"


def _summarize_unreadable(info: CheckpointInfo, unreadable: Counter) -> None:
    n = info.n_variables
    total_bad = sum(unreadable.values())
    for problem, count in unreadable.items():
        info.problems.append(f"{problem}: {count} of {n} variables cannot be read")
    if total_bad:
        info.status = status_from_counts(n, total_bad)


def _attach_graph(info: CheckpointInfo, graph: objgraph.ObjectGraph) -> None:
    by_name = {v.name: v for v in info.variables}
    # A variable reachable both through an optimizer and through the model (Keras 3:
    # optimizer/_trainable_variables/N is also model/.../kernel) is the model's: its role
    # comes from the model's path.
    for node in graph.nodes.values():
        model_paths = [a for a in node.aliases if not _through_optimizer(a)]
        if not model_paths or not _through_optimizer(node.path):
            continue
        for key in node.variables:
            v = by_name.get(key)
            if v is not None and v.role != COUNTER and v.slot_of is None:
                v.role = roles.classify(model_paths[0] + roles.ATTRIBUTE_SUFFIX, v.shape, v.dtype)
                v.model_path = model_paths[0]
    for slot_key, (owner_key, slot_name) in graph.slot_owner.items():
        v = by_name.get(slot_key)
        if v is not None:
            v.slot_of, v.slot_name = owner_key, slot_name
            v.role = OPTIMIZER
    order = {key: i for i, key in enumerate(graph.order)}
    model_vars = sorted((v for v in info.variables if v.name in order),
                        key=lambda v: order[v.name])
    slot_names = {}
    for node in graph.nodes.values():  # Keras 3 aliases: optimizer/_momentums/0 -> "momentum"
        for alias in node.aliases:
            parts = alias.split("/")
            if len(parts) >= 2 and parts[-2] in ("_momentums", "_velocities", "_accumulators",
                                                 "_average_gradients", "_u_product"):
                for key in node.variables:
                    slot_names[key] = parts[-2].strip("_").rstrip("s").replace("velocitie",
                                                                               "velocity")
    infer_slots(model_vars, slot_names)


def _through_optimizer(path: str) -> bool:
    return any(roles.is_optimizer_segment(s) for s in path.split("/")[:-1])


def infer_slots(ordered: list[VariableInfo], slot_names: dict[str, str] | None = None,
                optimizer_name: str | None = None) -> bool:
    """Attach new-style optimizer slots (``optimizer/_variables/N``, ``optimizer/vars/N``) that
    carry no ``.OPTIMIZER_SLOT`` marker to the model variables they belong to.

    Keras 3 optimizers create k slots per trainable variable, in the model's variable order.
    We accept an attachment only when every slot lines up with a variable of the same shape.
    """
    slot_names = slot_names or {}
    slots = [v for v in ordered if v.role == OPTIMIZER and v.slot_of is None and v.shape
             and _parent_segment(v.path) in ("_variables", "vars")]
    if not slots:
        return False
    owners = [v for v in ordered if v.role not in (OPTIMIZER, COUNTER, METADATA)
              and not (v.role == NORMALIZATION and "moving" in v.path)]
    for k in (2, 1, 3):
        plan, i = [], 0
        for owner in owners:
            group = slots[i:i + k]
            if len(group) == k and all(s.shape == owner.shape for s in group):
                plan.append((owner, group))
                i += k
        if i == len(slots):
            default = {2: ["m", "v"]}.get(k, [f"slot {j}" for j in range(k)])
            if optimizer_name and k == 2 and "adam" in optimizer_name.lower():
                default = ["momentum", "velocity"]
            for owner, group in plan:
                for j, s in enumerate(group):
                    s.slot_of = owner.name
                    s.slot_name = slot_names.get(s.name, default[j])
            return True
    return False


def attach_name_based_slots(variables: list[VariableInfo]) -> None:
    """TF1 optimizers keep slots beside their variable: ``fc/w/Adam`` and ``fc/w/Adam_1`` are
    Adam's m and v of ``fc/w``. Attach them when the owner exists with the same shape."""
    slots = [v for v in variables if v.role == OPTIMIZER and v.slot_of is None]
    if not slots:
        return
    by_path = {v.path: v for v in variables}
    for v in slots:
        found = roles.tf1_slot(v.path)
        if found is None:
            continue
        owner = by_path.get(found[0])
        if owner is not None and owner.shape == v.shape and owner.role not in (
                OPTIMIZER, COUNTER, METADATA):
            v.slot_of, v.slot_name = owner.name, found[1]


def _parent_segment(path: str) -> str:
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _read_counters(info: CheckpointInfo, read) -> None:
    damaged: Counter[str] = Counter()
    for v in info.variables:
        if v.role != COUNTER or v.readable is False:
            continue
        try:
            value = read(v)
            if type(value) not in (int, float, bool):  # an array: its first element, as Python
                value = np.asarray(value).reshape(-1)[0].item()
        except bundle.BundleError as e:  # damaged data: the variable cannot be read
            v.readable, v.problem = False, str(e)
            damaged[str(e)] += 1
            continue
        except Exception as e:
            info.problems.append(f"counter {v.path} cannot be read: {e}")
            continue
        info.counters[v.path] = value
    if damaged:
        for problem, count in damaged.items():
            info.problems.append(f"{problem}: {count} of {info.n_variables} variables cannot "
                                 "be read")
        bad = sum(v.readable is False for v in info.variables)
        info.status = status_from_counts(info.n_variables, bad)


# --- TF V1 single files ------------------------------------------------------------------------

def _inspect_v1(info: CheckpointInfo) -> None:
    info.writer = "TF1 Saver (V1 format)"
    folder = os.path.dirname(info.path)
    shards = [os.path.join(folder, os.path.basename(f.name)) for f in info.files if f.kind == "v1"]
    if not shards:
        raise bundle.BundleError("its file is missing")
    listed: dict[str, tuple] = {}
    for shard in shards:  # a sharded V1 save keeps each shard's tensors in that shard's table
        for name, shape, dtype in bundle.read_v1_meta(shard):
            listed.setdefault(name, (name, shape, dtype))
    for name, shape, dtype in sorted(listed.values()):
        info.variables.append(VariableInfo(
            name=name, shape=shape, dtype=dtype,
            bytes=(int(np.prod(shape)) if shape else 1) * _itemsize(dtype),
            role=roles.classify(name, shape, dtype), path=roles.semantic_path(name)))
    attach_name_based_slots(info.variables)
    if any(v.role == COUNTER for v in info.variables):
        from .tfrt import tf

        reader = tf().train.load_checkpoint(info.path)
        _read_counters(info, lambda v: reader.get_tensor(v.name))


def _itemsize(dtype: str) -> int:
    for name, np_dtype in bundle.DTYPES.values():
        if name == dtype and np_dtype:
            return np.dtype(np_dtype).itemsize
    return bundle.ITEMSIZE.get(dtype, 0)


# --- Keras HDF5 and .keras -------------------------------------------------------------------

def _inspect_hdf5(info: CheckpointInfo) -> None:
    with hdf5.open_weights(info.path, info.format) as f:
        fmt, writer = hdf5.detect_layout(f)
        if info.format != "keras":
            info.format = fmt
        else:
            writer = "Keras 3 model.save / ModelCheckpoint (.keras archive)"
        info.writer = writer
        for ds in hdf5.list_datasets(f):
            info.variables.append(VariableInfo(
                name=ds.name, shape=ds.shape, dtype=ds.dtype, bytes=ds.bytes,
                role=roles.classify(ds.name, ds.shape, ds.dtype), path=roles.semantic_path(ds.name)))
        infer_slots(info.variables, optimizer_name=hdf5.optimizer_name(f))
        _read_counters(info, lambda v: hdf5.read_dataset(f, v.name))
