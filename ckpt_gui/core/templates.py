"""Model templates: what a checkpoint is restored into.

A template is one of
  * a Python file defining ``build_model()`` (a Keras model, built or buildable) and optionally
    ``build_optimizer()`` (a Keras optimizer, so its slots and iterations are restored too),
    ``sample_input()`` (an input to run the restored model on) or ``INPUT_SHAPE`` (without batch);
  * a Keras ``.keras`` file (or a whole-model Keras ``.h5``): its architecture, and its optimizer
    when it was saved compiled;
  * ``checkpoint``: the Keras model config a checkpoint carries itself (Keras 2 era TF-format
    checkpoints store ``.ATTRIBUTES/OBJECT_CONFIG_JSON``).

Built-in templates are the files of ``resources/templates`` (see ``ckpt_gui/paths.py`` for
where that folder is in a source checkout and in an installed wheel).

A template that fails to import or build raises ``TemplateError`` whose text is the template's own
error (type, message, and the line of the template file), never a traceback of ours.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
                       "the Keras model config the checkpoint carries (OBJECT_CONFIG_JSON)")


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
        return f" (line {exc.lineno})"
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


def _error(ref: TemplateRef, what: str, exc: BaseException) -> TemplateError:
    text = str(exc).strip()
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return TemplateError(f"template {ref.name}: {what} failed: {text}{_location(ref, exc)}")


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


def load(ref: TemplateRef, *, config_json: str | None = None,
         input_hints: list[tuple] | None = None) -> LoadedTemplate:
    """Import/build the template. ``config_json`` is the checkpoint's own config (for
    ``checkpoint``); ``input_hints`` are input shapes (with batch) to try on an unbuilt model."""
    from .tfrt import tf

    tf()  # Keras picks its backend on import; TensorFlow must be the one
    module = None
    optimizer = None
    sample = None
    shape_hint = None
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
            shape_hint = (1, *tuple(shape))
    elif ref.kind == KERAS_FILE:
        import keras

        try:
            model = keras.saving.load_model(ref.path, compile=True)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            raise _error(ref, "loading the model file", e) from None
    elif ref.kind == CHECKPOINT_CONFIG:
        if not config_json:
            raise TemplateError("template checkpoint: this checkpoint carries no Keras model "
                                "config (.ATTRIBUTES/OBJECT_CONFIG_JSON); choose a template")
        model = _call(ref, lambda: model_from_config_json(config_json), "building from the "
                                                                         "checkpoint's config")
    else:
        raise TemplateError(f"template {ref.name}: unknown kind {ref.kind}")

    from_model = optimizer is None and _is_optimizer(getattr(model, "optimizer", None))
    if from_model:
        optimizer = model.optimizer
    loaded = LoadedTemplate(ref, model, optimizer, sample)
    rebuild = None
    if ref.kind == PYTHON:
        rebuild = module.build_model
    elif ref.kind == CHECKPOINT_CONFIG:
        rebuild = lambda: model_from_config_json(config_json)  # noqa: E731
    _ensure_built(loaded, ([shape_hint] if shape_hint else []) + list(input_hints or []),
                  rebuild)
    if from_model and loaded.model is not model:   # the compiled optimizer of the rebuilt model
        new = getattr(loaded.model, "optimizer", None)
        optimizer = loaded.optimizer = new if _is_optimizer(new) else None
    if optimizer is not None and not getattr(optimizer, "built", True):
        _call(ref, lambda: optimizer.build(loaded.model.trainable_variables),
              "building the optimizer")
    return loaded


def model_from_config_json(text: str):
    """A Keras model from a config JSON as Keras 2 or 3 wrote it: a whole model's config, or
    a list of layer configs (built as a Sequential)."""
    import keras

    config = json.loads(text) if isinstance(text, str) else text

    def build(cfg):
        if isinstance(cfg, dict) and "module" in cfg:   # Keras 3 serialization
            return keras.saving.deserialize_keras_object(cfg)
        from keras.src.legacy.saving import saving_utils   # Keras 2 configs

        return saving_utils.model_from_config(cfg)

    if isinstance(config, list):
        return keras.Sequential([build(c) for c in config])
    return build(config)


def _ensure_built(loaded: LoadedTemplate, hints: list[tuple], rebuild=None) -> None:
    import numpy as np

    model, ref = loaded.model, loaded.ref
    if getattr(model, "built", False) and model.weights:
        return
    tries = []
    if loaded.sample_input is not None:
        tries.append(("sample_input()", loaded.sample_input))
    for shape in hints:
        tries.append((f"an input of shape {tuple(shape)}", np.zeros(shape, dtype="float32")))
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
            loaded.input_shape = tuple(np.shape(x)) if not isinstance(x, (dict, list, tuple)) \
                else None
            loaded.notes.append(f"the template's model was built by calling it on {what}")
            return
    detail = f" (tried {'; '.join(errors[:3])})" if errors else ""
    raise TemplateError(f"template {ref.name}: build_model() returned a model that is not built "
                        f"and could not be built from the checkpoint's shapes{detail}; give it "
                        f"keras.Input(...) or define sample_input() in the template")


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
