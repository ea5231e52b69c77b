"""Orbax checkpoints: what ``keras.callbacks.OrbaxCheckpoint`` (Keras 3.14+) and
``orbax.checkpoint.CheckpointManager`` write, read with tensorstore alone (no jax, no orbax).

A folder of Orbax checkpoints holds one directory per step::

    <dir>/<step>/                         or <prefix>_<step>, zero padded or not
    <dir>/<step>/_CHECKPOINT_METADATA     JSON: item handlers, timestamps (absent in old releases)
    <dir>/<step>/<item>/_METADATA         JSON: the pytree (key paths, value types), use_ocdbt,
                                          use_zarr3 -- no shapes, no dtypes
    <dir>/<step>/<item>/manifest.ocdbt    an OCDBT key-value store holding, per array, its zarr
                                          metadata and chunks under '<k1>.<k2>...'
    <dir>/<step>/<item>/<k1>.<k2>/.zarray older releases: one zarr v2 directory per array
    <dir>/<step>.orbax-checkpoint-tmp/    a step being written (or abandoned): not committed

Keras names its items ``pytree`` (trainable_variables/..., non_trainable_variables/...,
optimizer_variables/..., metrics_variables/...) and ``model_config`` (the model's JSON config as a
string leaf, kept in ``_strings.json``). On a local file system (and in S3) a step is committed
when its directory has its final name (Orbax renames the temporary directory last); in a gs://
bucket, where Orbax does not rename, while the step holds its ``commit_success.txt``. The latest
step is the highest committed step number. Orbax reads with ``fill_missing_data_reads`` off: a
missing chunk is damage, not zeros, and so here. Value bytes carry no checksum: a flipped bit
reads as a value.

This module is plain functions and dataclasses; a format module wraps them for the registry.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from stat import S_ISREG
from dataclasses import dataclass, field

import numpy as np

from . import canonical, storage
from .limits import check_fits
from .model import (BROKEN, COUNTER, METADATA, OK, OPTIMIZER, PARTIAL, FileInfo, VariableInfo)
from .roles import classify

TMP_SUFFIX = ".orbax-checkpoint-tmp"       # orbax/_src/path/atomicity_types.py
STEP_METADATA = "_CHECKPOINT_METADATA"
COMMIT_SUCCESS = "commit_success.txt"      # atomicity_types.py: a GCS step is final iff it is there
ITEM_METADATA = "_METADATA"
STRINGS = "_strings.json"
KERAS_CONFIG_ITEM = "model_config"
KERAS_WRITER = "keras OrbaxCheckpoint"

_STEP_NAME = re.compile(r"^(?:.+_)?(\d+)$")        # orbax step.py, legacy listing too
_TMP_STEP_NAME = re.compile(r"^.*?_*?(\d+)\.orbax-checkpoint-tmp")  # TMP_DIR_STEP_PATTERN
_JSON_LIMIT = 64 << 20          # a _METADATA of a model with 100,000 arrays is ~30 MB
_ERROR_SPEC = re.compile(r"\s*\[tensorstore_spec=.*$", re.DOTALL)
_ERROR_KINDS = {"NOT_FOUND": "a file is missing", "OUT_OF_RANGE": "a file is truncated",
                "DATA_LOSS": "a file is damaged", "PERMISSION_DENIED": "a file cannot be read",
                "INVALID_ARGUMENT": "its metadata is invalid",
                "FAILED_PRECONDITION": "its data is missing or damaged"}
_METRICS_TREE = "metrics_variables"
STEP_COUNTER = "step_number"    # the counter holding the step directory's number


class OrbaxError(ValueError):
    """A step or an array cannot be read; str() is one sentence."""


# ----------------------------------------------------------------------------------------------
# Recognising steps

@dataclass
class OrbaxStep:
    """One step directory of a folder (committed or not)."""
    name: str                 # directory name, e.g. "12", "step_0003", "2.orbax-checkpoint-tmp"
    path: str                 # absolute
    step: int | None          # None: a directory not named like a step, opened on its own
    committed: bool           # final name: Orbax's CheckpointManager lists it


def step_number(name: str) -> tuple[int, bool] | None:
    """(step, committed) a directory name stands for, as Orbax reads names, else None."""
    if TMP_SUFFIX in name:
        m = _TMP_STEP_NAME.match(name)
        return (int(m.group(1)), False) if m else None
    m = _STEP_NAME.match(name)
    return (int(m.group(1)), True) if m else None


def _items(step_dir: str) -> list[tuple[str, str]]:
    """[(item name, item dir)] of the pytree items of a step: subdirectories holding _METADATA
    (or the step itself when it is a bare PyTreeCheckpointer directory: item name "")."""
    if storage.is_file(os.path.join(step_dir, ITEM_METADATA)):
        return [("", step_dir)]
    try:
        _, folders = storage.list_folder(step_dir)
    except OSError:
        return []
    return [(name, os.path.join(step_dir, name)) for name in sorted(folders)
            if storage.is_file(os.path.join(step_dir, name, ITEM_METADATA))]


def is_step_dir(path: str) -> bool:
    """A directory written as one Orbax step: _CHECKPOINT_METADATA, or (older releases, and
    a checkpoint saved without a manager) pytree items holding _METADATA."""
    return storage.is_dir(path) and (storage.is_file(os.path.join(path, STEP_METADATA))
                                     or bool(_items(path)))


def list_steps(directory: str) -> list[OrbaxStep]:
    """The step directories of ``directory`` in step order; temporary ones (being written,
    abandoned, or half deleted) included and flagged; empty when it holds none."""
    steps = []
    try:
        _, folders = storage.list_folder(directory)
    except OSError:
        return []
    for name in folders:
        number = step_number(name)  # a temporary step may hold nothing yet
        path = storage.normalise(os.path.join(directory, name))
        if number is not None and (not number[1] or is_step_dir(path)):
            step, final_name = number
            steps.append(OrbaxStep(name, path, step, final_name and _finalized(path)))
    return sorted(steps, key=lambda s: (s.step, not s.committed, s.name))


def _finalized(path: str) -> bool:
    """Whether a step directory with a final name is a finalized step for Orbax: in a gs://
    bucket only while its commit_success.txt is there (written last, deleted first: Orbax's
    CommitFileTemporaryPath, the default on GCS), elsewhere always (AtomicRenameTemporaryPath:
    the name says it)."""
    return not path.startswith("gs://") or storage.is_file(os.path.join(path, COMMIT_SUCCESS))


def latest_step(steps: list[OrbaxStep]) -> OrbaxStep | None:
    """The highest committed step: what Orbax's ``latest_step()`` and Keras restore."""
    committed = [s for s in steps if s.committed]
    return committed[-1] if committed else None


def recognise(path: str) -> str | None:
    """"folder" (a directory of steps), "step" (one step opened on its own) or None."""
    if list_steps(path):
        return "folder"
    return "step" if is_step_dir(path) else None


def step_of(path: str) -> OrbaxStep:
    """The OrbaxStep of a step directory opened on its own."""
    path = storage.normalise(path)
    name = os.path.basename(path)
    number = step_number(name)
    step, final_name = number if number is not None else (None, TMP_SUFFIX not in name)
    return OrbaxStep(name, path, step, final_name and _finalized(path))


# ----------------------------------------------------------------------------------------------
# The tree of a step

@dataclass(frozen=True)
class ArrayLocation:
    """Where one leaf lives: enough to open it with tensorstore (or read a string leaf)."""
    item_dir: str
    keys: tuple[str, ...]
    value_type: str           # np.ndarray, jax.Array, scalar, string, ...
    use_ocdbt: bool
    use_zarr3: bool
    fill_missing: bool        # the writer skipped chunks equal to the fill value

    @property
    def store_name(self) -> str:
        """The array's name in the item: Orbax joins the keys with '.', unescaped."""
        return ".".join(self.keys)


@dataclass
class StepInfo:
    """What inspecting one step found (plain data for the format module to map)."""
    step: OrbaxStep
    writer: str
    variables: list[VariableInfo]
    locations: dict[str, ArrayLocation]          # variable name -> where it lives
    counters: dict[str, int | float] = field(default_factory=dict)
    files: list[FileInfo] = field(default_factory=list)
    bytes: int = 0
    mtime: float = 0.0
    status: str = OK
    step_problems: list[str] = field(default_factory=list)  # of the step, not of a variable
    problems: list[str] = field(default_factory=list)  # those, then unreadable variables
    model_config: dict | None = None
    model_config_text: str | None = None         # as Keras wrote it (restore builds from text)
    metrics: dict | None = None


def read_json(path: str, limit: int = _JSON_LIMIT):
    """A JSON file of a step, through the storage layer (regular files only, bounded)."""
    data, _ = storage.read_small(path, limit)
    try:
        return json.loads(data)
    except ValueError as e:
        raise OrbaxError(f"{os.path.basename(path)} is not valid JSON ({e})") from None


def tree_leaves(item_dir: str) -> list[ArrayLocation]:
    """The leaves of an item in the order of its _METADATA, no array data read."""
    meta = read_json(os.path.join(item_dir, ITEM_METADATA))
    tree = meta.get("tree_metadata") if isinstance(meta, dict) else None
    if not isinstance(tree, dict):
        raise OrbaxError(f"{ITEM_METADATA} of {os.path.basename(item_dir)} holds no tree")
    flags = (bool(meta.get("use_ocdbt", False)), bool(meta.get("use_zarr3", False)),
             meta.get("store_array_data_equal_to_fill_value") is False)
    leaves = []
    try:
        for entry in tree.values():
            keys = tuple(str(k["key"]) for k in entry["key_metadata"])
            value_type = str((entry.get("value_metadata") or {}).get("value_type", ""))
            if keys:
                leaves.append(ArrayLocation(storage.normalise(item_dir), keys, value_type,
                                            *flags))
    except (KeyError, TypeError, AttributeError):
        raise OrbaxError(f"{ITEM_METADATA} of {os.path.basename(item_dir)} is malformed "
                         f"(an entry without key_metadata)") from None
    return leaves


def _leaf_name(item: str, keys: tuple[str, ...], prefix_items: bool) -> str:
    return "/".join((item, *keys) if prefix_items and item else keys)


def array_spec(loc: ArrayLocation) -> dict:
    """The tensorstore spec of one array leaf."""
    base = storage.kvstore(loc.item_dir)
    if loc.use_ocdbt:
        kvstore = {"driver": "ocdbt", "base": base, "path": loc.store_name + "/"}
    else:
        name = loc.store_name
        if "/" in name or name in (".", ".."):  # its own directory: never outside the item
            raise OrbaxError(f"{'/'.join(loc.keys)} cannot be read: its name {name!r} would "
                             f"lead out of its item's directory")
        kvstore = storage.kvstore(os.path.join(loc.item_dir, name))
    return {"driver": "zarr3" if loc.use_zarr3 else "zarr", "kvstore": kvstore,
            "fill_missing_data_reads": loc.fill_missing,
            "recheck_cached_data": False, "recheck_cached_metadata": False}


def new_context():
    """One tensorstore context per scan or refresh: it caches OCDBT manifests and nodes (one
    read of each per step instead of one per array); a step number can be rewritten later."""
    import tensorstore as ts

    return ts.Context({"cache_pool": {"total_bytes_limit": 32 << 20}})


def _open_future(loc: ArrayLocation, context):
    import tensorstore as ts

    return ts.open(array_spec(loc), open=True, read=True, context=context)


def _result(future, loc: ArrayLocation):
    """A tensorstore future's result; in a bucket within the storage layer's deadline (a
    store that does not answer raises TimeoutError, an OSError, instead of a wait for ever)."""
    if not storage.is_url(loc.item_dir):
        return future.result()
    from .remote import timeout
    return future.result(timeout=timeout())


def open_array(loc: ArrayLocation, context=None):
    """The opened tensorstore array (reads its zarr metadata only), or OrbaxError; refused when
    a file it may read is no regular file (the files may have changed since the inspection)."""
    top = loc.item_dir if loc.use_ocdbt else os.path.join(loc.item_dir, loc.store_name)
    refused = refusals(top)
    if refused:
        raise OrbaxError(f"{'/'.join(loc.keys)} cannot be read: {refused[0]}")
    try:
        return _result(_open_future(loc, context or new_context()), loc)
    except (ValueError, OSError) as e:
        raise OrbaxError(error_sentence("/".join(loc.keys), e, loc.item_dir)) from None


def error_sentence(what: str, error: Exception, item_dir: str) -> str:
    """One sentence out of a tensorstore error: its kind in words, then tensorstore's account
    (which chunk, which file) with paths relative to the folder holding the step. An OCDBT data
    file that is missing reads as an empty stream ("Truncated Zstd-compressed stream")."""
    text = _ERROR_SPEC.sub("", str(error)).strip()
    code, _, rest = text.partition(": ")
    kind = _ERROR_KINDS.get(code)
    if kind is None:
        kind, rest = "it cannot be read", text
    folder = os.path.dirname(os.path.dirname(item_dir.rstrip("/"))) + "/"
    return f"{what} cannot be read ({kind}): {rest.replace(folder, '')}"


def locations(step_path: str, problems: list[str] | None = None
              ) -> tuple[dict[str, ArrayLocation], str | None]:
    """{variable name: where it lives} of a step, from its items' _METADATA alone, and the text
    of Keras' model config item. Names are the tree paths joined with '/', under the item's
    name when a step has several array items. Problems are appended to ``problems``."""
    problems = [] if problems is None else problems
    config_text, array_items = None, []
    for item, item_dir in _items(step_path):
        try:
            leaves = tree_leaves(item_dir)
        except (OrbaxError, OSError) as e:
            problems.append(f"{item or os.path.basename(step_path)}: {e}")
            continue
        if item == KERAS_CONFIG_ITEM:
            config_text = _config_text(item_dir, problems)
        else:
            array_items.append((item, leaves))
    prefix = len(array_items) > 1
    return {_leaf_name(item, loc.keys, prefix): loc
            for item, leaves in array_items for loc in leaves}, config_text


def inspect_step(step: OrbaxStep | str, context=None) -> StepInfo:
    """The variables of a step with shapes and dtypes from the zarr metadata (no chunk read),
    roles, counters, files, size, health and the Keras model config."""
    if isinstance(step, str):
        step = step_of(step)
    context = context or new_context()
    info = StepInfo(step, "", [], {})
    refused = _add_files(info)
    info.step_problems += refused
    if not step.committed:
        why = (f"its directory still has the temporary suffix {TMP_SUFFIX}" if TMP_SUFFIX in
               step.name else f"it has no {COMMIT_SUCCESS}, which Orbax writes last in a gs:// "
               "bucket")
        info.step_problems.append(f"step {step.name} was not committed ({why}): Orbax does not "
                                  "list it")
    if not _items(step.path):
        info.step_problems.append(f"{step.name} holds no Orbax pytree item ({ITEM_METADATA})")
    info.locations, info.model_config_text = locations(step.path, info.step_problems)
    if info.model_config_text is not None:
        info.model_config = json.loads(info.model_config_text)
    strings: dict[str, dict] = {}
    pending = []
    for name, loc in info.locations.items():
        if loc.value_type == "string":
            if loc.item_dir not in strings:
                strings[loc.item_dir] = _strings(loc.item_dir)
            pending.append(strings[loc.item_dir].get(loc.store_name))
        elif refused:  # tensorstore would block on a FIFO or read a device: not opened
            pending.append(OrbaxError(f"{name} cannot be read: {refused[0]}"))
        else:
            pending.append(_try_open(loc, context))
    info.variables = [_variable(name, loc, p)
                      for (name, loc), p in zip(info.locations.items(), pending)]
    _assign_slots(info.variables, info.model_config)
    info.writer = _writer(step.path, info.variables)
    info.metrics = _metrics(step.path)
    _read_counters(info, context)
    _set_status(info)
    return info


def _try_open(loc: ArrayLocation, context):
    try:
        return _open_future(loc, context)
    except (OrbaxError, ValueError) as e:
        return e


def _variable(name: str, loc: ArrayLocation, pending) -> VariableInfo:
    if loc.value_type == "string":
        return VariableInfo(name, (), "string", len(pending or ""), METADATA, name)
    problem = None
    shape, dtype, nbytes = (), "unknown", 0
    try:
        if isinstance(pending, Exception):
            raise pending
        arr = _result(pending, loc)
        shape, numpy_dtype = tuple(int(d) for d in arr.shape), np.dtype(arr.dtype.numpy_dtype)
        dtype, nbytes = numpy_dtype.name, int(np.prod(shape, dtype=np.int64)) * numpy_dtype.itemsize
    except OrbaxError as e:
        problem = str(e)
    except (ValueError, OSError) as e:
        problem = error_sentence(name, e, loc.item_dir)
    role = METADATA if name.startswith(_METRICS_TREE + "/") else classify(name, shape, dtype)
    return VariableInfo(name, shape, dtype, nbytes, role, name,
                        readable=False if problem else None, problem=problem)


def _assign_slots(variables: list[VariableInfo], model_config: dict | None) -> None:
    """Keras names an optimizer slot '<weight path with / as _>_<slot>' (Adam's
    'tiny_hidden_kernel_momentum'): point it at its weight. The model's variables' canonical
    paths are their tree paths without the tree and the model's name (canonical.py)."""
    weights = {}
    for v in variables:
        if v.role not in (OPTIMIZER, COUNTER, METADATA):
            tree, _, rest = v.path.partition("/")
            weights[rest or tree] = v
    slots = {v.name: v.path.rsplit("/", 1)[-1] for v in variables if v.role == OPTIMIZER}
    by_key = {v.name: v for v in variables}
    for key, (owner, slot) in canonical.match_slots(
            weights, slots, {v.name: v.shape for v in variables}).items():
        by_key[key].slot_of, by_key[key].slot_name = owner, slot
    model = [v for v in variables if v.path.split("/", 1)[0] in _MODEL_TREES and "/" in v.path]
    name = model_config.get("config", {}).get("name") if isinstance(model_config, dict) \
        and isinstance(model_config.get("config"), dict) else None
    paths = canonical.without_model_name([v.path.split("/", 1)[1] for v in model],
                                         name if isinstance(name, str) else None)
    for v, path in zip(model, paths):
        v.canonical = path
    canonical.finish(variables)


def _strings(item_dir: str) -> dict:
    path = os.path.join(item_dir, STRINGS)
    try:
        data = read_json(path)
    except (OrbaxError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _config_text(item_dir: str, problems: list[str]) -> str | None:
    """Keras' model_config item, {"config": "<the model's JSON config>"}: the config's text
    when it is a JSON object."""
    text = _strings(item_dir).get("config")
    if not isinstance(text, str):
        problems.append(f"{KERAS_CONFIG_ITEM} holds no config")
        return None
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as e:
        problems.append(f"{KERAS_CONFIG_ITEM}'s config is not valid JSON ({e})")
        return None
    if not isinstance(config, dict):
        problems.append(f"{KERAS_CONFIG_ITEM}'s config is not a JSON object")
        return None
    return text


def checkpoint_config(info: StepInfo):
    """The step's Keras model config as restore's ``--template checkpoint`` takes it (files
    only inside the step, variables no larger than the step's tensors), or None."""
    from .templates import CheckpointConfig

    if info.model_config_text is None:
        return None
    return CheckpointConfig(info.model_config_text, folder=info.step.path,
                            tensor_shapes={v.shape for v in info.variables if v.problem is None},
                            checkpoint_bytes=info.bytes)


def _metrics(step_dir: str) -> dict | None:
    """CheckpointManager's metrics item (metrics/metrics, JSON), when saved."""
    path = os.path.join(step_dir, "metrics", "metrics")
    if not storage.is_file(path):
        return None
    try:
        data = read_json(path, 1 << 20)
    except (OrbaxError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _read_counters(info: StepInfo, context) -> None:
    """The step number and every readable counter scalar (the optimizer's iteration)."""
    if info.step.step is not None:
        info.counters[STEP_COUNTER] = info.step.step
    for v in info.variables:
        if v.role == COUNTER and v.problem is None and v.size == 1:
            try:
                value = read_array(info.locations[v.name], context=context)
            except OrbaxError as e:
                v.readable, v.problem = False, str(e)
                continue
            info.counters[v.name] = value.reshape(-1)[0].item()


_NAMED_PROBLEMS = 5   # unreadable variables named one by one; beyond, counted


def _set_status(info: StepInfo) -> None:
    """Problems (the step's, then its unreadable variables) and the status they make:
    broken when not committed or nothing is readable, partial when something is wrong."""
    broken = [v.problem for v in info.variables if v.readable is False]
    named = broken if len(broken) <= _NAMED_PROBLEMS else broken[:_NAMED_PROBLEMS - 1] + [
        f"{len(broken) - _NAMED_PROBLEMS + 1} more variables cannot be read"]
    info.problems = info.step_problems + named
    if not info.step.committed or len(broken) == len(info.variables):
        info.status = BROKEN
    else:
        info.status = PARTIAL if info.problems else OK


_MODEL_TREES = {"trainable_variables", "non_trainable_variables"}
_KERAS_TREES = _MODEL_TREES | {"optimizer_variables"}


_MODEL_TREES = ("trainable_variables", "non_trainable_variables")


def model_paths(names) -> dict[str, str]:
    """{leaf name: the variable's path in the model} of a Keras step's model trees: the tree
    and the model's name taken off (``trainable_variables/tiny/hidden/kernel`` ->
    ``hidden/kernel``, as a model rebuilt from its config names it). A step without Keras'
    trees (a plain pytree) keeps its names whole: they are its only paths."""
    model = {n: n.split("/", 1)[1] for n in names if n.split("/", 1)[0] in _MODEL_TREES
             and "/" in n}
    if not model:
        return {n: n for n in names}
    heads = {rest.split("/", 1)[0] for rest in model.values()}
    if len(heads) == 1 and all("/" in rest for rest in model.values()):
        return {n: rest.split("/", 1)[1] for n, rest in model.items()}
    return model


def _writer(step_dir: str, variables: list[VariableInfo]) -> str:
    if any(v.path.split("/", 1)[0] in _KERAS_TREES for v in variables):
        return KERAS_WRITER
    if storage.is_file(os.path.join(step_dir, STEP_METADATA)):
        return "orbax CheckpointManager"
    return "orbax"


def _add_files(info: StepInfo) -> list[str]:
    """Every file under the step (relative to the folder holding it), their bytes and the
    newest modification time; returns why files that are no regular files are refused."""
    root = os.path.dirname(info.step.path)
    refused = []
    for path, st in _walk_files(info.step.path):
        name = os.path.relpath(path, root)
        info.files.append(FileInfo(name, st.st_size, _file_kind(path)))
        info.bytes += st.st_size
        info.mtime = max(info.mtime, st.st_mtime)
        if not S_ISREG(st.st_mode):
            refused += _refusal(path, name)
    return refused


def refusals(top: str) -> list[str]:
    """Why files below ``top`` must not be handed to tensorstore (which opens them itself): a
    FIFO blocks its open forever, a link may lead to a device or a directory. Regular files
    (also behind links) pass; the storage layer decides."""
    root = os.path.dirname(os.path.dirname(top.rstrip("/")))
    return [reason for path, st in _walk_files(top) if not S_ISREG(st.st_mode)
            for reason in _refusal(path, os.path.relpath(path, root))]


def _refusal(path: str, name: str) -> list[str]:
    try:
        fd, _ = storage.open_regular(path)
    except storage.UnreadableFile as e:
        return [f"{name} {e.reason}"]
    storage.close(fd)
    return []


def _walk_files(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every file below ``top`` (or of ``top`` itself when it is no
    directory), symbolic links not followed (a bucket has none)."""
    if storage.is_url(top):
        yield from _walk_objects(top)
        return
    try:
        entries = list(os.scandir(top))
    except NotADirectoryError:
        yield top, os.lstat(top)
        return
    except OSError:
        return
    for e in sorted(entries, key=lambda e: e.name):
        if e.is_dir(follow_symlinks=False):
            yield from _walk_files(e.path)
        else:
            yield e.path, e.stat(follow_symlinks=False)


def _walk_objects(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """_walk_files in a bucket: one listing per folder."""
    try:
        files, folders = storage.list_folder(top)
    except OSError:
        if storage.is_file(top):
            yield top, storage.stat_of(top)
        return
    for name in sorted(files + folders):
        path = f"{top}/{name}"
        if name in folders:
            yield from _walk_objects(path)
        else:
            yield path, storage.stat_of(path)


def _file_kind(path: str) -> str:
    name = os.path.basename(path)
    if name in (STEP_METADATA, ITEM_METADATA, STRINGS, "commit_success.txt"):
        return "meta"
    return "index" if name == "manifest.ocdbt" else "data"


def verify_step(info: StepInfo, max_bytes: int = 64 << 20, context=None, progress=None,
                cancelled=None) -> StepInfo | None:
    """Reads every array of the step chunk by chunk (what a missing or truncated OCDBT data file
    breaks is only known by reading: file names do not say which arrays they hold), marking each
    variable readable or not; the step's status follows. ``progress(done, total, name)`` before
    each variable; None when ``cancelled()`` turned true between variables."""
    context = context or new_context()
    for i, v in enumerate(info.variables):
        if cancelled is not None and cancelled():
            return None
        if progress is not None:
            progress(i, len(info.variables), v.name)
        if v.dtype == "string" or v.problem is not None:
            continue
        try:
            for _ in iter_chunks(info.locations[v.name], max_bytes, context=context):
                pass
            v.readable = True
        except OrbaxError as e:
            v.readable, v.problem = False, str(e)
    _set_status(info)
    return info


# ----------------------------------------------------------------------------------------------
# Reading values

def read_array(loc: ArrayLocation, index=None, context=None) -> np.ndarray:
    """The whole array, or the part ``index`` (a tuple of slices) selects -- tensorstore reads
    only the chunks it touches. bfloat16/float8/int4 come as ml_dtypes arrays."""
    arr = open_array(loc, context)
    return _read(arr if index is None else arr[index], loc)


def _read(view, loc: ArrayLocation) -> np.ndarray:
    """A tensorstore view as a numpy array, if it fits the memory budget; OrbaxError else."""
    name = "/".join(loc.keys)
    check_fits(name, int(np.prod(view.shape, dtype=np.int64)) * view.dtype.numpy_dtype.itemsize)
    try:
        return np.asarray(_result(view.read(), loc))
    except (ValueError, OSError) as e:
        raise OrbaxError(error_sentence(name, e, loc.item_dir)) from None


def iter_chunks(loc: ArrayLocation, max_bytes: int, context=None
                ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, rows start:stop) along axis 0, each at most ``max_bytes`` (at least one
    row), aligned to the stored chunks when they fit; a scalar is one piece (0, 1, value)."""
    arr = open_array(loc, context)
    if arr.rank == 0:
        yield 0, 1, _read(arr, loc)
        return
    rows = int(arr.shape[0])
    row_bytes = max(1, int(np.prod(arr.shape[1:], dtype=np.int64))
                    * arr.dtype.numpy_dtype.itemsize)
    step = max(1, max_bytes // row_bytes)
    chunk = arr.chunk_layout.read_chunk.shape
    if chunk is not None and chunk[0] and step >= chunk[0]:
        step -= step % int(chunk[0])
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        yield start, stop, _read(arr[start:stop], loc)  # (one row of a huge array may not fit)


# ----------------------------------------------------------------------------------------------
# Deleting a step

@dataclass
class DeletionPlan:
    """How to delete one step so that Orbax never sees it half deleted: first rename the step to
    a temporary name (Orbax lists only final names; ours lists it as uncommitted, to be pruned
    again), then remove the renamed tree. ``files`` is what the step owns (relative to its folder)."""
    step: OrbaxStep
    files: list[FileInfo]
    bytes: int
    actions: list[tuple[str, ...]]   # ("rename", src, dst) then ("remove_tree", path)


def deletion_plan(step: OrbaxStep) -> DeletionPlan:
    """The plan for deleting ``step``: an uncommitted step is removed in place; a committed one
    is renamed to '<name>.orbax-checkpoint-tmp-deleting' first (a new name, not a writer's)."""
    files = [FileInfo(os.path.relpath(p, os.path.dirname(step.path)), st.st_size,
                      _file_kind(p)) for p, st in _walk_files(step.path)]
    nbytes = sum(f.bytes for f in files)
    if not step.committed:
        return DeletionPlan(step, files, nbytes, [("remove_tree", step.path)])
    target = f"{step.path}{TMP_SUFFIX}-deleting"
    n = 1
    while os.path.lexists(target):
        n += 1
        target = f"{step.path}{TMP_SUFFIX}-deleting-{n}"
    return DeletionPlan(step, files, nbytes, [("rename", step.path, target),
                                             ("remove_tree", target)])


def execute_deletion(plan: DeletionPlan) -> None:
    """Carries out a plan on a local folder; OSError names the step when a step fails."""
    for action, *paths in plan.actions:
        try:
            if action == "rename":
                os.rename(*paths)
            else:
                shutil.rmtree(paths[0])
        except OSError as e:
            raise OSError(e.errno, f"step {plan.step.name} could not be deleted "
                                   f"({e.strerror or e})") from None
