"""What one checkpoint holds: its files, variables, roles, counters, object graph and health.

Everything here reads only the index/metadata and a few scalar values, never whole tensors, so a
directory of a thousand checkpoints scans quickly. ``verify`` (reading.py) reads every tensor.
"""
from __future__ import annotations

import itertools
import math
import operator
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import bundle, canonical, checksum, hdf5, objgraph, roles, storage, varnames
from .model import (BROKEN, COUNTER, METADATA, NORMALIZATION, OK, OPTIMIZER, PARTIAL,
                    Candidate, CheckpointInfo, VariableInfo, VariableRows)


def status_from_counts(n_variables: int, n_unreadable: int) -> str:
    if n_variables == 0 or n_unreadable == 0:
        return OK if n_variables else BROKEN
    return BROKEN if n_unreadable >= n_variables else PARTIAL


# --- TF V2 bundles ---------------------------------------------------------------------------

def inspect_bundle(info: CheckpointInfo, cand: Candidate, location: tuple[str, str, str, str],
                   graph_writer: str, opened: dict[str, os.stat_result], stale: list[str]) -> None:
    """A V2 bundle. ``location``: (the prefix's folder, its base name, its index file and the
    folder of its files, both relative to the scanned directory); ``graph_writer``: the writer
    of a bundle with an object graph; ``opened``: the stat of each file opened here, by its
    name in cand.files; ``stale``: data files of the prefix that belong to an earlier save
    (another shard count)."""
    prefix_dir, base, index_rel, rel_dir = location
    try:
        buf, opened[index_rel] = bundle.read_file_stat(info.path + ".index")
        index = bundle.index_from_bytes(buf)
    except (bundle.BundleError, OSError) as e:
        info.status = BROKEN
        info.writer = "unknown (unreadable index)"
        info.problems.append(str(e) if isinstance(e, storage.UnreadableFile)
                             else f"{base}.index cannot be read: {e}")
        return
    layout = _v2_layout(index)
    listed = [rel for rel in cand.files if rel.startswith(f"{rel_dir}{base}.data-")]
    shard_state: dict[int, str | None] = {}   # shard -> problem text or None
    shard_size: dict[int, int] = {}
    fds: dict[int, int] = {}                  # open data files: the shards read below
    try:
        for k, suffix in enumerate(layout.data_suffixes):
            fname = base + suffix
            try:  # every shard is opened: a file we may not read is not "there"
                fd, st = bundle.open_fd(f"{prefix_dir}/{fname}")
            except storage.UnreadableFile as e:
                shard_state[k] = str(e)
                continue
            if k in layout.shards_to_read:
                fds[k] = fd
            else:
                storage.close(fd)
            rel = rel_dir + fname
            if rel in listed:
                opened[rel] = st
                listed.remove(rel)
            shard_size[k], shard_state[k] = st.st_size, None
        stale.extend(listed)  # another shard count: an earlier save of this prefix
        _inspect_v2_index(info, index, layout, shard_state, shard_size, graph_writer, prefix_dir,
                          base, fds)
        if layout.counters:
            _read_v2_counters(info, index, layout, fds, base)
    finally:
        for fd in fds.values():
            storage.close(fd)


def _inspect_v2_index(info: CheckpointInfo, index: bundle.BundleIndex, layout: "_V2Layout",
                      shard_state: dict, shard_size: dict, graph_writer: str, prefix_dir: str,
                      base: str, fds: dict[int, int]) -> None:
    n = index.num_shards
    all_there = True
    for k, end in layout.shard_ends.items():
        if shard_size.get(k, -1) < end:
            all_there = False
            break
    # The object graph says which optimizer slot belongs to which variable and which paths
    # reach a variable twice; without optimizer state it has nothing to add, so it is read
    # only when some variable is optimizer state.
    has_graph = layout.graph_row is not None
    if all_there and not layout.inconsistent:
        # every tensor lies inside a data file that is there: the common case, no per-variable
        # checks, and VariableInfo objects are made only when asked for (a 10,000-variable
        # checkpoint, or a folder of 1,000 checkpoints)
        rows = layout.rows
        if layout.needs_graph:
            rows = _rows_with_slots(info, index, layout, prefix_dir, base, fds)
        info.set_variable_rows(rows)
    else:
        info.variables = _v2_damaged(index, layout, shard_state, shard_size, base)
        _summarize_unreadable(info, Counter(v.problem for v in info.variables if v.problem))
        if layout.needs_graph:
            graph = None
            if has_graph and info.variable(roles.OBJECT_GRAPH_KEY).readable is not False:
                raw, problem = _graph_bytes(index, layout, prefix_dir, base, fds)
                if raw is not None:
                    graph, problem = _decode_graph(index, layout, raw)
                if problem:
                    info.problems.append(problem)
            _attach_slots(info.variables, graph)
    info.writer = _v2_writer(graph_writer, has_graph, layout.keras_layers)


def _graph_bytes(index: bundle.BundleIndex, layout: "_V2Layout", prefix_dir: str, base: str,
                 fds: dict[int, int]) -> tuple[bytes | None, str | None]:
    """The object graph's stored bytes (through its data file in ``fds`` when open), or the
    problem that keeps them from being read.

    A training run's checkpoints share one object graph. In a bucket, where each read is a
    round trip, a graph whose size and checksum (from the index) equal those of one read
    before is taken to be those bytes: a scan then fetches each distinct graph once."""
    entry = index.row(layout.graph_row)
    fd = fds.get(entry.shard_id)
    path = os.path.join(prefix_dir, bundle.data_file_name(base, entry.shard_id,
                                                          index.num_shards))
    if fd is None or not storage.is_remote(fd):
        return _read_graph(path, entry, fd)
    fingerprint = (entry.size, entry.crc32c)
    with _REMOTE_GRAPHS_LOCK:  # (a bucket's checkpoints are inspected concurrently)
        known = _REMOTE_GRAPHS.get(fingerprint)
        if known is not None:
            return known, None
        raw, problem = _read_graph(path, entry, fd)
        if raw is not None and len(_REMOTE_GRAPHS) < 64:
            _REMOTE_GRAPHS[fingerprint] = raw
        return raw, problem


def _read_graph(path: str, entry: bundle.BundleEntry, fd) -> tuple[bytes | None, str | None]:
    try:
        return bundle.read_raw(path, entry, fd=fd), None
    except (ValueError, OSError) as e:  # (BundleError, limits.OverBudget)
        return None, f"the object graph cannot be decoded: {e}"


_REMOTE_GRAPHS: dict[tuple[int, int], bytes] = {}  # (size, checksum) -> object graph bytes
_REMOTE_GRAPHS_LOCK = threading.Lock()


def _decode_graph(index: bundle.BundleIndex, layout: "_V2Layout", raw: bytes
                  ) -> tuple[objgraph.ObjectGraph | None, str | None]:
    try:
        graph = objgraph.decode(bundle.decode_small(raw, index.row(layout.graph_row)).item())
        return graph, None
    except Exception as e:
        return None, f"the object graph cannot be decoded: {e}"


def _attach_slots(variables: list[VariableInfo], graph: objgraph.ObjectGraph | None) -> None:
    """Optimizer slots to their variables, and the display names that follow."""
    if graph is not None:
        _attach_graph(variables, graph)
        varnames.assign_from_graph(variables, graph)
    else:  # optimizer state without an object graph: TF1 slots named after their variable
        attach_name_based_slots(variables)
        varnames.assign(variables, canonical=_name_based(variables))


def _rows_with_slots(info: CheckpointInfo, index: bundle.BundleIndex, layout: "_V2Layout",
                     prefix_dir: str, base: str, fds: dict[int, int]) -> VariableRows:
    """The layout's variables with their optimizer slots attached, worked out once per
    distinct object graph: a training run's checkpoints share theirs, byte for byte."""
    raw = read_problem = None
    if layout.graph_row is not None:
        raw, read_problem = _graph_bytes(index, layout, prefix_dir, base, fds)
    known = layout.with_slots.get(raw)
    if known is None:
        graph, problem = (None, None) if raw is None else _decode_graph(index, layout, raw)
        variables = layout.rows.make()
        _attach_slots(variables, graph)
        known = layout.with_slots[raw] = (VariableRows.of(variables), problem)
    info.problems.extend(p for p in (read_problem, known[1]) if p)
    return known[0]


GAP = 4096  # in a bucket, counters closer than this are fetched in one request


def _span(fd, lo: int, hi: int, shard: int, items: list[tuple]) -> bytes:
    """Bytes lo..hi of an open data file (``shard``), of which only the counter plan's
    ``items`` of that shard are needed: locally one read; in a bucket only those (the ones
    less than GAP apart in one request), the bytes between them left zero. Counters may lie a
    whole model apart."""
    if not storage.is_remote(fd):
        return storage.read_fd(fd, hi - lo, lo)
    buf = bytearray(hi - lo)
    runs: list[list[int]] = []
    for start, size in sorted((it[2], it[3]) for it in items if it[1] == shard):
        if runs and start - runs[-1][1] < GAP:
            runs[-1][1] = max(runs[-1][1], start + size)
        else:
            runs.append([start, start + size])
    for a, b in runs:
        got = storage.read_fd(fd, b - a, lo + a)
        buf[a:a + len(got)] = got
    return bytes(buf)


def _read_v2_counters(info: CheckpointInfo, index: bundle.BundleIndex, layout: "_V2Layout",
                      fds: dict[int, int], base: str) -> None:
    """The counters' values, read from the data files in ``fds`` (shard -> open file), one
    read per file."""
    plan = layout.counter_plan
    if plan is not None and info._rows is not None:  # the common case: plain numbers, all there
        spans, items = plan
        data = {shard: _span(fds[shard], lo, hi, shard, items) for shard, (lo, hi) in spans.items()}
        crcs, masked_crc32c = index.crcs, checksum.masked_crc32c
        values = {}
        for row, shard, start, size, path, unpack in items:
            raw = data[shard][start:start + size]
            if len(raw) != size or masked_crc32c(raw) != crcs[row]:
                break  # damaged: the general way below says how
            values[path] = unpack(raw)[0]
        else:
            info.counters.update(values)
            return
    read: dict[int, tuple[bundle.BundleEntry, bytes | bundle.BundleError]] = {}
    for shard, fd in fds.items():
        rows = [i for i in layout.counters.values() if index.shard_ids[i] == shard]
        entries = [index.row(i) for i in rows]
        fname = bundle.data_file_name(base, shard, index.num_shards)
        read.update(zip(rows, zip(entries, bundle.read_entries(fd, fname, entries))))
    made = info.variables if info._rows is None else None  # damaged: some already unreadable
    damaged: dict[str, str] = {}
    for i in layout.counters.values():  # in the index's order
        if i not in read or made is not None and made[i].readable is False:
            continue
        entry, raw = read[i]
        if isinstance(raw, bundle.BundleError):
            damaged[entry.name] = str(raw)
        else:
            _store_counter(info, roles.semantic_path(entry.name),
                           lambda: bundle.decode_scalar(raw, entry))
    _mark_damaged(info, damaged)


_OUT_OF_RANGE = object()


@dataclass
class _V2Layout:
    """What a V2 index's layout alone decides, kept in its memo (a folder's checkpoints of one
    training run share it): each variable's VariableInfo fields, where each shard's tensors
    end, which variables are counters, whether the object graph is needed."""
    rows: VariableRows             # the variables' fields, as columns
    shard_ends: dict[int, float]   # shard -> end of its last tensor (inf: no such shard)
    counters: dict[str, int]       # counter name -> its row in the index
    data_suffixes: list[str]       # after the prefix, the name of each shard's data file
    shards_to_read: set[int]       # the shards of the counters (and of the object graph, if
                                   # optimizer state needs it): opened once, read with pread
    # When every counter is a plain number: shard -> (start, end) of the bytes that hold them,
    # and (row, shard, start in those bytes, size, path, struct) per counter, in index order
    counter_plan: tuple[dict[int, tuple[int, int]], list[tuple]] | None
    graph_row: int | None          # the object graph's row
    needs_graph: bool              # optimizer state: the graph says which slot is whose;
                                   # Keras wrappers: it says the layers' names
    inconsistent: dict[int, str]   # row -> why its entry cannot be what it says (its size
                                   # is not its shape times its item size, ...)
    keras_layers: bool             # a root named like a Keras layer (layer_with_weights-0)
    # object graph bytes (None: none, or unreadable) -> (rows with slots attached, the
    # problem decoding it)
    with_slots: dict[bytes | None, tuple[VariableRows, str | None]] = field(default_factory=dict)


def _v2_layout(index: bundle.BundleIndex) -> _V2Layout:
    layout = index.memo.get(_V2Layout)
    if layout is not None:
        return layout
    names, shapes, dtypes = index.names, index.shapes, index.dtypes
    role_list = roles.classify_many(names, shapes, dtypes)
    shards, sizes = index.shard_ids, index.sizes
    ends: dict[int, int] = {}
    if index.num_shards == 1 and not index.slices and not any(index.sliced):
        ends[0] = max(map(operator.add, index.offsets, sizes), default=0)
        if any(shards):
            ends[max(shards)] = math.inf  # out of range: never "all there"
    else:
        shards, sizes = list(shards), list(sizes)
        for i, (shard, end) in enumerate(zip(shards, map(operator.add, index.offsets, sizes))):
            if index.sliced[i]:
                # A partitioned variable's data is in its slices' entries, maybe in several
                # shards; it is shown in the first.
                parts = index.slices.get(names[i], [])
                for part in parts:
                    ends[part.shard_id] = max(ends.get(part.shard_id, 0), part.offset + part.size)
                shards[i] = min((p.shard_id for p in parts), default=shard)
                sizes[i] = sum(p.size for p in parts)
            else:
                ends[shard] = max(ends.get(shard, 0), end)
        for shard in ends:
            if not 0 <= shard < index.num_shards:
                ends[shard] = math.inf  # never "all there"
    if 0 in sizes:  # nothing stored (an empty tensor, a partitioned one without slices)
        sizes = [stored or _nbytes(shape, dtype)
                 for stored, shape, dtype in zip(sizes, shapes, dtypes)]
    counters = ({names[i]: i for i, role in enumerate(role_list) if role == COUNTER}
                if COUNTER in role_list else {})
    lines = "\n" + "\n".join(names)  # a key's path is its start
    needs_graph = (OPTIMIZER in role_list or "_trainable_variables" in lines
                   or varnames.has_wrappers(lines))  # (its full names name the layers)
    graph_row = _find(names, roles.OBJECT_GRAPH_KEY)
    to_read = {shards[i] for i in counters.values()}
    if needs_graph and graph_row is not None:
        to_read.add(shards[graph_row])
    layout = index.memo[_V2Layout] = _V2Layout(
        VariableRows(names, shapes, dtypes, sizes, role_list, shards), ends,
        data_suffixes=[bundle.data_file_name("", k, index.num_shards)
                       for k in range(index.num_shards)],
        counters=counters, shards_to_read=to_read, counter_plan=_counter_plan(index, counters),
        graph_row=graph_row, needs_graph=needs_graph,
        keras_layers="\nlayer-" in lines or "\nlayer_with_weights-" in lines,
        inconsistent=_inconsistent_rows(index))
    return layout


def _counter_plan(index: bundle.BundleIndex, counters: dict[str, int]
                  ) -> tuple[dict[int, tuple[int, int]], list[tuple]] | None:
    spans: dict[int, tuple[int, int]] = {}
    found = []
    for i in counters.values():
        shard, offset, size = index.shard_ids[i], index.offsets[i], index.sizes[i]
        packer = bundle.scalar_struct(index.dtypes[i], index.shapes[i], size)
        if packer is None or index.sliced[i]:
            return None
        lo, hi = spans.get(shard, (offset, offset + size))
        spans[shard] = (min(lo, offset), max(hi, offset + size))
        found.append((i, shard, offset, size, roles.semantic_path(index.names[i]),
                      packer.unpack))
    if any(hi - lo > 1 << 16 for lo, hi in spans.values()):
        return None  # counters far apart: not worth one read
    items = [(i, shard, offset - spans[shard][0], size, path, unpack)
             for i, shard, offset, size, path, unpack in found]
    return spans, items


def _find(names: list[str], name: str) -> int | None:
    try:
        return names.index(name)
    except ValueError:
        return None


def _v2_damaged(index: bundle.BundleIndex, layout: _V2Layout, shard_state: dict,
                shard_size: dict, base: str) -> list[VariableInfo]:
    """The variables, each with the problem that makes it unreadable (a data file missing,
    truncated, or a shard number out of range), when some shard is not all there."""
    def problem_of(shard: int, end: int) -> str | None:
        problem = shard_state.get(shard, _OUT_OF_RANGE)
        if problem is _OUT_OF_RANGE:
            return f"shard {shard} is out of range"
        if problem is None and end > shard_size[shard]:
            return f"{bundle.data_file_name(base, shard, index.num_shards)} is truncated"
        return problem

    variables = layout.rows.make()
    for i, v in enumerate(variables):
        if index.sliced[i]:
            parts = index.slices.get(index.names[i], [])
            problem = next((p for p in (problem_of(part.shard_id, part.offset + part.size)
                                        for part in parts) if p), None)
        else:
            problem = layout.inconsistent.get(i) or problem_of(
                index.shard_ids[i], index.offsets[i] + index.sizes[i])
        if problem:
            v.readable, v.problem = False, problem
    return variables


def _inconsistent_rows(index: bundle.BundleIndex) -> dict[int, str]:
    """Row -> the problem of each unsliced entry whose sizes contradict each other (see
    bundle.entry_problem), worked out once per layout: a size is expected from each distinct
    shape and dtype, and only the rows that differ (strings among them: NaN is expected) are
    looked at, in loops that run in C (an index can hold tens of thousands of entries)."""
    count = {shape: math.prod(shape) if min(shape, default=0) >= 0 else math.nan
             for shape in set(index.shapes)}
    item = {dtype: bundle.itemsize(dtype) or math.nan for dtype in set(index.dtypes)}
    expected = map(operator.mul, map(count.__getitem__, index.shapes),
                   map(item.__getitem__, index.dtypes))
    found = {}
    for i in itertools.compress(range(len(index)), map(operator.ne, expected, index.sizes)):
        problem = None if index.sliced[i] else bundle.entry_problem(index.row(i), math.inf, "")
        if problem:
            found[i] = problem
    return found


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    np_dtype = bundle._NUMPY_DTYPE.get(dtype)
    return math.prod(shape) * np.dtype(np_dtype).itemsize if np_dtype else 0


def _v2_writer(graph_writer: str, has_graph: bool, keras_layers: bool) -> str:
    if not has_graph:
        return "TF1 Saver (name-based, V2 format)"
    # a root (first path segment) named like a Keras layer; the prefixes hold no "/"
    if keras_layers:
        return "Keras save_weights / ModelCheckpoint (TF format)"
    return graph_writer


def _summarize_unreadable(info: CheckpointInfo, unreadable: Counter) -> None:
    n = info.n_variables
    total_bad = sum(unreadable.values())
    for problem, count in unreadable.items():
        info.problems.append(f"{problem}: {count} of {n} variables cannot be read")
    if total_bad:
        info.status = status_from_counts(n, total_bad)


def _attach_graph(variables: list[VariableInfo], graph: objgraph.ObjectGraph) -> None:
    by_name = {v.name: v for v in variables}
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
    model_vars = sorted((v for v in variables if v.name in order), key=lambda v: order[v.name])
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


def infer_slots(ordered: list[VariableInfo],
                slot_names: dict[str, str] | None = None) -> bool:
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


def _name_based(variables: list[VariableInfo]) -> dict[str, str]:
    """key -> canonical path of a TF1 Saver's model variables (canonical.name_based)."""
    found = canonical.name_based([v.name for v in variables], [v.path for v in variables],
                                 [v.role for v in variables])
    return {v.name: c for v, c in zip(variables, found) if c}


def _parent_segment(path: str) -> str:
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _read_counters(info: CheckpointInfo, read) -> None:
    """Read every counter variable into info.counters with ``read(variable)``; a counter whose
    data is damaged makes its variable unreadable."""
    damaged: dict[str, str] = {}  # variable name -> problem
    for v in info.variables:
        if v.role != COUNTER or v.readable is False:
            continue
        try:
            _store_counter(info, v.path, lambda: read(v))
        except bundle.BundleError as e:  # damaged data: the variable cannot be read
            damaged[v.name] = str(e)
    _mark_damaged(info, damaged)


def _store_counter(info: CheckpointInfo, path: str, read) -> None:
    """info.counters[path] = read(), as a Python number; BundleError (damaged data) passes."""
    try:
        value = read()
        if type(value) not in (int, float, bool):  # an array: its first element, as Python
            value = np.asarray(value).reshape(-1)[0].item()
    except bundle.BundleError:
        raise
    except Exception as e:
        info.problems.append(f"counter {path} cannot be read: {str(e) or type(e).__name__}")
        return
    info.counters[path] = value


def _mark_damaged(info: CheckpointInfo, damaged: dict[str, str]) -> None:
    """Variables whose data failed its checksum or was cut short (name -> problem)."""
    if not damaged:
        return
    for v in info.variables:
        if v.name in damaged:
            v.readable, v.problem = False, damaged[v.name]
    for problem, count in Counter(damaged.values()).items():
        info.problems.append(f"{problem}: {count} of {info.n_variables} variables cannot be read")
    bad = sum(v.readable is False for v in info.variables)
    info.status = status_from_counts(info.n_variables, bad)


# --- TF V1 single files ------------------------------------------------------------------------

def inspect_v1(info: CheckpointInfo) -> None:
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
    varnames.assign(info.variables, canonical=_name_based(info.variables))
    if any(v.role == COUNTER for v in info.variables):
        from .tfrt import tf

        reader = tf().train.load_checkpoint(info.path)
        _read_counters(info, lambda v: reader.get_tensor(v.name))


def _itemsize(dtype: str) -> int:
    for name, np_dtype in bundle.DTYPES.values():
        if name == dtype and np_dtype:
            return np.dtype(np_dtype).itemsize
    return bundle.ITEMSIZE.get(dtype, 0)


def _config_for_names(config: Callable[[], dict | None]) -> dict | None:
    """A .keras model's config, for naming its weights only: a config too deeply nested to
    decode costs the weights their names, not the checkpoint its health (restore says why it
    cannot build from it)."""
    try:
        return config()
    except RecursionError:
        return None


# --- Keras HDF5 and .keras -------------------------------------------------------------------

def inspect_keras_file(info: CheckpointInfo, open_weights, config: Callable[[], dict | None],
                       settle: Callable[[CheckpointInfo, bool, str], Callable]) -> None:
    """A Keras HDF5 file, or the weights of a .keras archive or directory, opened by
    ``open_weights(info.path)``; ``config()``: the model config it carries, or None. ``settle(
    info, keras3, writer)``: the recognising format sets info's format and writer from the
    layout found inside (a legacy file may be named .weights.h5) and returns how that format
    names the variables: ``display_names(f, variables, config)``."""
    with open_weights(info.path) as f:
        display_names = settle(info, *hdf5.detect_layout(f))
        config = _config_for_names(config)
        fill_keras_variables(info, hdf5.list_datasets(f), hdf5.optimizer_name(f),
                             lambda variables: display_names(f, variables, config),
                             lambda v: hdf5.read_dataset(f, v.name))


def fill_keras_variables(info: CheckpointInfo, datasets, optimizer: str | None,
                         display_names: Callable[[list[VariableInfo]], varnames.KerasNames],
                         read: Callable[[VariableInfo], object]) -> None:
    """Info's variables from a Keras weights layout's ``datasets`` (hdf5.H5Dataset: one file's,
    or a sharded save's), named by ``display_names(variables)``, counters read by ``read``."""
    refused: Counter[str] = Counter()
    for ds in datasets:
        info.variables.append(VariableInfo(
            name=ds.name, shape=ds.shape, dtype=ds.dtype, bytes=ds.bytes,
            role=roles.classify(ds.name, ds.shape, ds.dtype), path=roles.semantic_path(ds.name),
            readable=False if ds.problem else None, problem=ds.problem))
        if ds.problem:
            refused[ds.problem] += 1
    names = display_names(info.variables)
    for v in info.variables:
        if v.name in names.slots:
            (v.slot_of, v.slot_name), v.role = names.slots[v.name], OPTIMIZER
    varnames.assign(info.variables, names.resolved,
                    dict.fromkeys((v.name for v in info.variables if v.slot_of),
                                  optimizer or names.optimizer),
                    names.canonical)
    _summarize_unreadable(info, refused)
    _read_counters(info, read)
