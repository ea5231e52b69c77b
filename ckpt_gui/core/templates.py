"""Model templates: what a checkpoint is restored into.

A template is one of
  * a Python file defining ``build_model()`` (a Keras model, built or buildable) and optionally
    ``build_optimizer()`` (a Keras optimizer, so its slots and iterations are restored too),
    ``sample_input()`` (an input to run the restored model on) or ``INPUT_SHAPE`` (without batch);
  * a Keras ``.keras`` file (or a whole-model Keras ``.h5``): its architecture, and its optimizer
    when it was saved compiled;
  * ``checkpoint``: the Keras model config a checkpoint carries itself (Keras 2 era TF-format
    checkpoints store ``.ATTRIBUTES/OBJECT_CONFIG_JSON``, a whole-model .h5 its
    ``model_config``, a .keras archive or an unzipped .keras folder its config.json, a step of
    Keras' OrbaxCheckpoint its ``model_config`` item). That config came with the download,
    so it is built only in Keras's safe mode (no lambda's code runs), may name files only
    inside the checkpoint's folder (refused before Keras sees it otherwise), and its variables
    are sized on an abstract build (nothing allocated) against the checkpoint's shapes and the
    memory budget before the real build.

Built-in templates are the files of ``resources/templates`` (see ``ckpt_gui/paths.py`` for
where that folder is in a source checkout and in an installed wheel).

A template that fails to import or build raises ``TemplateError`` whose text is one line: the
template's own error (type, message, and the line of the template file), never a traceback.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..textfmt import human_bytes
from .limits import memory_budget

PYTHON, KERAS_FILE, CHECKPOINT_CONFIG = "python", "keras", "checkpoint"
CHECKPOINT_TEMPLATE = "checkpoint"   # the template name that means "the checkpoint's own config"
TEMPLATE_SUFFIXES = {".py": PYTHON, ".keras": KERAS_FILE, ".h5": KERAS_FILE, ".hdf5": KERAS_FILE}


class TemplateError(Exception):
    """A template cannot be found, imported or built. The text is for the user, as is."""


@dataclass
class TemplateRef:
    name: str
    path: str | None
    kind: str
    description: str = ""
    builtin: bool = False


@dataclass
class LoadedTemplate:
    ref: TemplateRef
    model: Any
    optimizer: Any | None = None
    sample_input: Any | None = None     # what sample_input() returned, if the template has it
    input_shape: tuple | None = None    # the shape the model was built with, when we built it
    notes: list[str] = field(default_factory=list)


# --- finding templates -----------------------------------------------------------------------

def builtin_dir() -> Path | None:
    try:
        from ..paths import resource_dir
    except ImportError:  # pragma: no cover - the module is part of the package
        return None
    try:
        d = resource_dir() / "templates"
    except FileNotFoundError:
        return None
    return d if d.is_dir() else None


def _docstring_summary(path: Path) -> str:
    if path.suffix != ".py":
        return f"Keras model file {path.name}"
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return ""
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def describe(path: str | os.PathLike, builtin: bool = False) -> TemplateRef:
    p = Path(path)
    kind = TEMPLATE_SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise TemplateError(f"{p.name}: a template is a .py file with build_model(), a .keras "
                            f"file or a whole-model .h5 file")
    name = p.stem if builtin else str(p)
    return TemplateRef(name=name, path=str(p.resolve()), kind=kind,
                       description=_docstring_summary(p), builtin=builtin)


def builtin_templates() -> list[TemplateRef]:
    d = builtin_dir()
    if d is None:
        return []
    refs = []
    for p in sorted(d.iterdir()):
        if p.is_file() and p.suffix.lower() in TEMPLATE_SUFFIXES and not p.name.startswith("_"):
            refs.append(describe(p, builtin=True))
    return refs


def checkpoint_template_ref() -> TemplateRef:
    return TemplateRef(CHECKPOINT_TEMPLATE, None, CHECKPOINT_CONFIG,
                       "the Keras model config saved with the checkpoint")


def resolve(spec: str) -> TemplateRef:
    """A built-in template's name, ``checkpoint``, or a path to a template file."""
    if spec == CHECKPOINT_TEMPLATE:
        return checkpoint_template_ref()
    for ref in builtin_templates():
        if spec in (ref.name, ref.name + Path(ref.path).suffix):
            return ref
    p = Path(os.path.expanduser(spec))
    if p.is_file():
        return describe(p)
    if p.exists():
        raise TemplateError(f"template {spec}: is not a file")
    names = ", ".join([r.name for r in builtin_templates()] + [CHECKPOINT_TEMPLATE])
    raise TemplateError(f"template {spec}: no such file and no built-in template of that name "
                        f"(built-in: {names})")


# --- loading ---------------------------------------------------------------------------------

def _location(ref: TemplateRef, exc: BaseException) -> str:
    if ref.path is None:
        return ""
    if isinstance(exc, SyntaxError) and exc.filename and _same(exc.filename, ref.path):
        text = (exc.text or "").strip()
        return f" (line {exc.lineno}: {text})" if text else f" (line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _same(f.filename, ref.path)]
    if not frames:
        return ""
    f = frames[-1]
    return f" (line {f.lineno}: {f.line.strip()})" if f.line else f" (line {f.lineno})"


def _same(a: str, b: str) -> bool:
    try:
        return os.path.abspath(a) == os.path.abspath(b) or os.path.samefile(a, b)
    except OSError:
        return False


def _message(exc: BaseException, limit: int = 300) -> str:
    """One line: the exception's type and the first line of its text (a SyntaxError's text
    without its own "(file, line N)", which _location says once)."""
    if _caused_by(exc, RecursionError):   # Keras re-raises it as a TypeError of one layer
        return "nested too deeply (maximum recursion depth exceeded)"
    text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    end = first.find(". ", 20)
    if len(first) > 120 and end > 0:   # Keras's long messages say it in their first sentence
        first = first[:end + 1]
    if len(first) > limit:
        first = first[:limit].rstrip() + " ..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _caused_by(exc: BaseException, kind: type) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _error(ref: TemplateRef, what: str, exc: BaseException) -> TemplateError:
    return TemplateError(f"template {ref.name}: {what} failed: {_message(exc)}"
                         f"{_location(ref, exc)}")


def _import_python(ref: TemplateRef):
    digest = hashlib.sha1(ref.path.encode()).hexdigest()[:12]
    mod_name = f"ckpt_gui_template_{Path(ref.path).stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, ref.path)
    if spec is None or spec.loader is None:
        raise TemplateError(f"template {ref.name}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # SystemExit and KeyboardInterrupt in a template too
        sys.modules.pop(mod_name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise _error(ref, "import", e) from None
    return module


def _call(ref: TemplateRef, fn, what: str):
    try:
        return fn()
    except TemplateError:
        raise
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise _error(ref, what, e) from None


def _is_model(obj) -> bool:
    import keras

    return isinstance(obj, keras.Model) or isinstance(obj, keras.layers.Layer)


def _is_optimizer(obj) -> bool:
    import keras

    return isinstance(obj, keras.optimizers.Optimizer)


def load(ref: TemplateRef, *, config: CheckpointConfig | None = None,
         input_hints: list[tuple] | None = None) -> LoadedTemplate:
    """Import/build the template. ``config`` is the checkpoint's own config (for
    ``checkpoint``); ``input_hints`` are input shapes (with batch) to try on an unbuilt model."""
    from .tfrt import tf

    tf()  # Keras picks its backend on import; TensorFlow must be the one
    module = None
    optimizer = None
    sample = None
    hints = list(input_hints or [])
    rebuild = None
    if ref.kind == PYTHON:
        module = _import_python(ref)
        build = getattr(module, "build_model", None)
        if not callable(build):
            raise TemplateError(f"template {ref.name}: defines no build_model() function")
        model = _call(ref, build, "build_model()")
        if not _is_model(model):
            raise TemplateError(f"template {ref.name}: build_model() returned "
                                f"{type(model).__name__}, not a Keras model")
        if callable(getattr(module, "build_optimizer", None)):
            optimizer = _call(ref, module.build_optimizer, "build_optimizer()")
            if optimizer is not None and not _is_optimizer(optimizer):
                raise TemplateError(f"template {ref.name}: build_optimizer() returned "
                                    f"{type(optimizer).__name__}, not a Keras optimizer")
        if callable(getattr(module, "sample_input", None)):
            sample = _call(ref, module.sample_input, "sample_input()")
        shape = getattr(module, "INPUT_SHAPE", None)
        if shape is not None:
            hints.insert(0, (1, *tuple(shape)))
        rebuild = build
    elif ref.kind == KERAS_FILE:
        import keras

        _call(ref, lambda: _check_model_file(ref), "loading the model file")
        try:   # safe mode: a lambda's pickled code, a vocabulary file, a SavedModel are refused
            model = keras.saving.load_model(ref.path, compile=True, safe_mode=True)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            raise _error(ref, "loading the model file", e) from None
    elif ref.kind == CHECKPOINT_CONFIG:
        if config is None or not config.text:
            raise TemplateError("template checkpoint: this checkpoint carries no Keras model "
                                "config (no OBJECT_CONFIG_JSON, config.json or model_config "
                                "item); choose a template")
        what = "building from the checkpoint's config"
        text = _call(ref, lambda: vetted_config(config), what)
        hint = _call(ref, lambda: check_before_allocating(text, config, hints), what)
        hints = [hint] if hint else []
        rebuild = lambda: model_from_config_json(text)   # noqa: E731
        model = _call(ref, rebuild, what)
    else:
        raise TemplateError(f"template {ref.name}: unknown kind {ref.kind}")

    from_model = optimizer is None and _is_optimizer(getattr(model, "optimizer", None))
    if from_model:
        optimizer = model.optimizer
    loaded = LoadedTemplate(ref, model, optimizer, sample)
    _ensure_built(loaded, hints, rebuild)
    if ref.kind == CHECKPOINT_CONFIG and config.assets:
        _call(ref, lambda: load_assets(loaded.model, config.assets), "loading its assets")
    if from_model and loaded.model is not model:   # the compiled optimizer of the rebuilt model
        new = getattr(loaded.model, "optimizer", None)
        optimizer = loaded.optimizer = new if _is_optimizer(new) else None
    if optimizer is not None and not getattr(optimizer, "built", True):
        _call(ref, lambda: optimizer.build(loaded.model.trainable_variables),
              "building the optimizer")
    return loaded


# --- the checkpoint's own config: a template that comes with the download ---------------------

@dataclass
class CheckpointConfig:
    """The Keras model config a checkpoint carries, and what a model built from it may use:
    files only inside ``folder`` (the checkpoint's own), variables only as large as the
    checkpoint's tensors and the memory budget allow."""
    text: str
    folder: str
    tensor_shapes: set[tuple[int, ...]]   # the shape of every tensor the checkpoint holds
    checkpoint_bytes: int                 # its files' size on disk
    assets: str | None = None             # the layers' files: a .keras archive, or a folder


# Arguments that name a file: the lookups' and TextVectorization's vocabulary (and idf_weights
# beside it), and any argument named like a path. A string written as a path (absolute, ~, a
# URL, a ".." segment) counts too, whatever its argument.
VOCABULARY_ARGUMENTS = frozenset({"vocabulary"})
PATH_ARGUMENTS = VOCABULARY_ARGUMENTS | {"idf_weights", "filepath", "file_path", "vocab_file",
                                         "vocabulary_file", "merges_file", "spm_proto", "proto"}
_PATH_ARGUMENT_SUFFIXES = ("_file", "_path", "_filepath", "_filename", "_dir")
_WRITTEN_AS_PATH = re.compile(r"^(/|~|\\\\|[A-Za-z]:[\\/]|[A-Za-z][A-Za-z0-9+.-]*://)"
                              r"|(^|[\\/])\.\.([\\/]|$)")
# Variables of shapes the checkpoint does not hold may take this much beyond its size on disk.
UNHELD_ALLOWANCE = 16 << 20


def _parse_config(text: str):
    try:
        return json.loads(text)
    except RecursionError:
        raise TemplateError("the checkpoint's model config is nested too deeply to read; "
                            "refused") from None
    except ValueError as e:
        raise TemplateError(f"the checkpoint's model config is not valid JSON ({e}); "
                            f"refused") from None


def _names_a_path(argument: str, value: str) -> bool:
    if not value:
        return False
    if argument in PATH_ARGUMENTS or argument.endswith(_PATH_ARGUMENT_SUFFIXES):
        return True
    return _WRITTEN_AS_PATH.search(value) is not None


def _file_inside(folder: str, argument, value: str) -> str:
    """The real path of ``value`` when it is a regular file inside ``folder``; else refused,
    deciding "outside" from the text alone, so that nothing outside is ever touched."""
    what = "a vocabulary file" if argument in VOCABULARY_ARGUMENTS else "a file"
    outside = TemplateError(f"the checkpoint's model config names {what} outside the "
                            f"checkpoint ({value}); refused")
    if value.startswith("~") or "://" in value:
        raise outside
    root = os.path.normpath(os.path.abspath(folder))
    candidate = os.path.normpath(os.path.join(root, value))
    if os.path.commonpath([root, candidate]) != root:
        raise outside
    real_root, real = os.path.realpath(root), os.path.realpath(candidate)
    if os.path.commonpath([real_root, real]) != real_root:   # a link inside that leads out
        raise outside
    if not os.path.isfile(real):
        raise TemplateError(f"the checkpoint's model config names {what} that is not a file "
                            f"in the checkpoint's folder ({value}); refused")
    return real


def _vocabulary_lines(path: str, layer_config: dict, budget: int) -> list:
    """The file's lines, as Keras reads a vocabulary file (ints for an integer lookup)."""
    size = os.path.getsize(path)
    if size > budget:
        raise TemplateError(f"the vocabulary file {path} is {human_bytes(size)}, over the "
                            f"memory budget of {human_bytes(budget)}; refused")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    if "int" not in str(layer_config.get("vocabulary_dtype", "")):
        return lines
    try:
        return [int(line) for line in lines]
    except ValueError:
        raise TemplateError(f"the vocabulary file {path} of an integer lookup holds a line "
                            f"that is not an integer; refused") from None


def vet_paths(config, folder: str, budget: int):
    """Refuse every file the config names outside ``folder``, before Keras sees the config.
    A vocabulary file inside it is replaced by its lines (Keras's safe mode refuses every
    vocabulary file, inside or not). The strings of a list are data (a vocabulary's "/" token
    names no file). Walks without recursion: the config may be deep."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
            continue
        if not isinstance(node, dict):
            continue
        for argument, value in list(node.items()):
            if isinstance(value, (dict, list)):
                stack.append(value)
            elif isinstance(value, str) and _names_a_path(str(argument), value):
                path = _file_inside(folder, argument, value)
                if argument in VOCABULARY_ARGUMENTS:
                    node[argument] = _vocabulary_lines(path, node, budget)
    return config


def vetted_config(config: CheckpointConfig) -> str:
    """The checkpoint's config as JSON text to build from (each build parses its own copy:
    Keras 2's loader edits it), its paths vetted."""
    return json.dumps(vet_paths(_parse_config(config.text), config.folder, memory_budget()))


def model_from_config_json(text: str, compile: bool = True):
    """A Keras model from a config JSON as Keras 2 or 3 wrote it: a whole model's config, or
    a list of layer configs (built as a Sequential); without its optimizer unless
    ``compile``. In safe mode: no lambda's code runs, no vocabulary file or SavedModel is
    read."""
    import keras
    from keras.src.legacy.saving import saving_utils   # Keras 2 configs
    from keras.src.saving.serialization_lib import SafeModeScope

    config = json.loads(text) if isinstance(text, str) else text
    if not compile and isinstance(config, dict):
        config.pop("compile_config", None)

    def build(cfg):
        if isinstance(cfg, dict) and "module" in cfg:   # Keras 3 serialization
            return keras.saving.deserialize_keras_object(cfg, safe_mode=True)
        return saving_utils.model_from_config(cfg)

    with SafeModeScope(True):
        if isinstance(config, list):
            return keras.Sequential([build(c) for c in config])
        return build(config)


def load_assets(model, source: str) -> None:
    """Load the files a saved model keeps for its layers (an adapted lookup's vocabulary) into
    the model built from its config, as keras.saving.load_model does. ``source``: a .keras
    archive (its ``assets/`` members) or an unzipped model's assets folder (its regular files;
    links are not followed). They are copied to a temporary folder once their size is within
    the memory budget."""
    import tempfile

    from keras.src.saving import saving_lib

    members = _asset_members(source)
    if not members:
        return
    size, budget = sum(n for _, n, _ in members), memory_budget()
    if size > budget:
        raise TemplateError(f"its assets are {human_bytes(size)}, over the memory budget of "
                            f"{human_bytes(budget)}; refused")
    with tempfile.TemporaryDirectory(prefix="ckpt_gui_assets_") as tmp:
        for rel, _, copy in members:
            target = os.path.join(tmp, "assets", rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            copy(target)
        store = saving_lib.DiskIOStore(os.path.join(tmp, "assets"), mode="r")
        saving_lib._load_state(model, weights_store=None, assets_store=store, inner_path="",
                               visited_saveables=set())


def _asset_members(source: str) -> list[tuple[str, int, Any]]:
    """(path under assets/, size, copy(to)) of each asset file of an archive or a folder."""
    import shutil
    import zipfile

    if os.path.isdir(source):
        out = []
        for top, dirs, files in os.walk(source):   # os.walk follows no link to a folder
            for name in files:
                path = os.path.join(top, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                out.append((os.path.relpath(path, source), os.path.getsize(path),
                            lambda to, path=path: shutil.copyfile(path, to)))
        return out

    def extract(info, to):
        with zipfile.ZipFile(source) as zf, zf.open(info) as src, open(to, "wb") as dst:
            shutil.copyfileobj(src, dst)

    with zipfile.ZipFile(source) as zf:
        return [(os.path.normpath(i.filename[len("assets/"):]), i.file_size,
                 lambda to, i=i: extract(i, to))
                for i in zf.infolist() if i.filename.startswith("assets/") and not i.is_dir()
                and ".." not in i.filename.split("/") and not i.filename.startswith("/")]


def _abstract_variables(build, hints: list[tuple]) -> tuple[list[tuple[str, tuple, str]],
                                                            tuple | None]:
    """The variables the model would have, and the input shape that built it (None: built
    already), from a model built in a StatelessScope: Keras defers every variable's
    initializer there, and a symbolic input computes nothing, so nothing is allocated."""
    import keras
    from keras.src.backend.common import global_state

    pending = "uninitialized_variables"
    before = list(global_state.get_global_attribute(pending, [], set_to_default=True))
    try:
        with keras.StatelessScope(initialize_variables=False):
            model, used = build(), None
            if not (model.built and model.weights):
                for shape in hints:
                    try:
                        model(keras.KerasTensor(shape))
                    except Exception:
                        model = build()
                        continue
                    if model.weights:
                        used = shape
                        break
            return [(v.path, tuple(int(d) for d in v.shape), _dtype_name(v.dtype))
                    for v in model.weights], used
    finally:   # the deferred variables are dropped, never initialized
        global_state.set_global_attribute(pending, before)


def _dtype_name(dtype) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _nbytes(shape: tuple, dtype: str) -> int:
    import numpy as np

    try:
        size = np.dtype(dtype).itemsize
    except TypeError:
        size = 8
    return int(np.prod(shape, dtype=np.float64)) * size


def _variable_sizes(build, hints: list[tuple]) -> tuple[list[tuple[str, tuple, int]],
                                                        tuple | None]:
    variables, used = _abstract_variables(build, hints)
    return [(path, shape, _nbytes(shape, dtype)) for path, shape, dtype in variables], used


def _within_budget(sizes: list[tuple[str, tuple, int]], whose: str) -> None:
    total, budget = sum(n for _, _, n in sizes), memory_budget()
    if total > budget:
        path, shape, n = max(sizes, key=lambda v: v[2])
        raise TemplateError(f"{whose} asks for {human_bytes(total)} of variables, over the "
                            f"memory budget of {human_bytes(budget)} (the largest: {path} of "
                            f"shape {list(shape)}, {human_bytes(n)}); refused before "
                            f"allocating them")


def check_before_allocating(text: str, config: CheckpointConfig,
                            hints: list[tuple]) -> tuple | None:
    """Refuse a model whose variables would exceed the memory budget, or whose variables of
    shapes the checkpoint does not hold would outweigh the checkpoint itself: a few bytes of
    config can ask for gigabytes. Returns the input shape that builds the model."""
    sizes, used = _variable_sizes(lambda: model_from_config_json(text, compile=False), hints)
    _within_budget(sizes, "the checkpoint's model config")
    unheld = [v for v in sizes if v[1] not in config.tensor_shapes]
    if sum(n for _, _, n in unheld) > config.checkpoint_bytes + UNHELD_ALLOWANCE:
        path, shape, n = max(unheld, key=lambda v: v[2])
        raise TemplateError(f"the checkpoint's model config asks for {path} of shape "
                            f"{list(shape)} ({human_bytes(n)}), and the checkpoint holds no "
                            f"tensor of that shape; refused before allocating it")
    return used


def _model_file_config(path: str) -> str | None:
    """The model config a .keras archive (config.json) or a whole-model .h5 (model_config)
    carries; None when it has none."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo("config.json")
            except KeyError:
                return None
            if info.file_size > memory_budget():
                raise TemplateError(f"template {path}: its config.json is "
                                    f"{human_bytes(info.file_size)}, over the memory budget; "
                                    f"refused")
            return zf.read(info).decode("utf-8", "replace")
    import h5py

    with h5py.File(path, "r") as f:
        config = f.attrs.get("model_config")
    return config.decode("utf-8", "replace") if isinstance(config, bytes) else config


def _check_model_file(ref: TemplateRef) -> None:
    """A model file's variables, sized on an abstract build, within the memory budget before
    Keras loads it (a template picked from a downloaded folder is as hostile as the folder)."""
    text = _model_file_config(ref.path)
    if text:
        sizes, _ = _variable_sizes(lambda: model_from_config_json(text, compile=False), [])
        _within_budget(sizes, f"template {ref.name}: its model config")


def _ensure_built(loaded: LoadedTemplate, hints: list[tuple], rebuild=None) -> None:
    import keras
    import numpy as np

    model, ref = loaded.model, loaded.ref
    if getattr(model, "built", False) and model.weights:
        return
    symbolic = ref.kind == CHECKPOINT_CONFIG   # a downloaded config is not run on data here
    tries = []
    if loaded.sample_input is not None:
        tries.append(("sample_input()", loaded.sample_input))
    for shape in hints:
        x = keras.KerasTensor(shape) if symbolic else np.zeros(shape, dtype="float32")
        tries.append((f"an input of shape {tuple(shape)}", x))
    errors = []
    for i, (what, x) in enumerate(tries):
        if i and rebuild is not None:   # a failed call may have fixed the model's input shape
            try:
                model = loaded.model = rebuild()
            except Exception:
                break
        try:
            model(x)
        except Exception as e:
            errors.append(f"{what}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
                          if str(e).strip() else f"{what}: {type(e).__name__}")
            continue
        if model.weights:
            loaded.input_shape = tuple(x.shape) if hasattr(x, "shape") else None
            loaded.notes.append(f"the template's model was built by calling it on {what}")
            return
    detail = f" (tried {'; '.join(errors[:3])})" if errors else ""
    if ref.kind == CHECKPOINT_CONFIG:
        raise TemplateError(f"template checkpoint: the model the checkpoint's config describes "
                            f"is not built and could not be built from the checkpoint's "
                            f"shapes{detail}; choose a template")
    raise TemplateError(f"template {ref.name}: build_model() returned a model that is not built "
                        f"and could not be built from the checkpoint's shapes{detail}; give it "
                        f"keras.Input(...) or define sample_input() in the template")


def activation_bytes(model, batch: int = 2) -> int | None:
    """What the outputs of the model's layers take in one run on ``batch`` examples, from their
    symbolic shapes (unknown dimensions 1), summed over nested models; None when a layer's
    output is not known before running it (a subclassed model)."""
    import keras

    total, stack = 0, list(getattr(model, "layers", None) or [])
    if not stack:
        return None
    while stack:
        layer = stack.pop()
        if isinstance(getattr(layer, "layers", None), list):
            stack.extend(layer.layers)
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):
            return None
        for t in outputs:
            shape = tuple(batch if i == 0 else (d if d is not None else 1)
                          for i, d in enumerate(t.shape))
            total += _nbytes(shape, _dtype_name(t.dtype))
    return total


def sample_input_for(loaded: LoadedTemplate, seed: int = 0):
    """An input to run the model on once: the template's own, or random values of the shape the
    model takes (unknown dimensions 1, batch 2)."""
    import numpy as np

    if loaded.sample_input is not None:
        return loaded.sample_input
    rng = np.random.default_rng(seed)
    model = loaded.model

    def make(shape, dtype):
        shape = tuple(2 if i == 0 else (d if d is not None else 1) for i, d in enumerate(shape))
        dtype = str(dtype or "float32")
        if "int" in dtype:
            return np.zeros(shape, dtype=dtype)
        if dtype == "bool":
            return np.zeros(shape, dtype=bool)
        if dtype == "string":   # a lookup's input: empty strings (the out-of-vocabulary token)
            return np.full(shape, "", dtype=object)
        return rng.standard_normal(shape).astype(dtype if "float" in dtype else "float32")

    inputs = None
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs:
        xs = [make(tuple(t.shape), getattr(t, "dtype", "float32")) for t in inputs]
        return xs[0] if len(xs) == 1 else xs
    if loaded.input_shape is not None:
        return make(loaded.input_shape, "float32")
    shape = getattr(model, "_build_shapes_dict", None) or {}
    if len(shape) == 1:
        (only,) = shape.values()
        if isinstance(only, (tuple, list)) and all(isinstance(d, (int, type(None))) for d in only):
            return make(tuple(only), "float32")
    return None
