"""The template side of a restore: the model's (and optimizer's) variables and their object
paths, as tf.train.Checkpoint and Keras 3 would name them."""
from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from ..templates import LoadedTemplate
from .checkpoint import is_optimizer_name, local_name
from .report import PATH_CAP


@dataclass
class TemplateVar:
    index: int
    var: Any
    name: str
    shape: tuple[int, ...]
    dtype: str
    local: str
    struct: tuple | None = None
    flat_struct: tuple | None = None
    layer_name: str | None = None
    auto_named: bool = False     # its layer's name is Keras's automatic one (dense_3): no identity


def var_dtype(v) -> str:
    d = getattr(v, "dtype", "float32")
    return getattr(d, "name", None) or str(d)


def _template_vars(model) -> list[TemplateVar]:
    out, seen_names = [], defaultdict(int)
    for i, v in enumerate(model.weights):
        name = getattr(v, "path", None) or getattr(v, "name", f"variable_{i}")
        seen_names[name] += 1
        if seen_names[name] > 1:
            name = f"{name}#{seen_names[name]}"
        out.append(TemplateVar(i, v, name, tuple(int(d) for d in v.shape), var_dtype(v),
                         local_name(getattr(v, "name", name))))
    by_id = {id(t.var): t for t in out}

    def sublayers(layer):
        layers = getattr(layer, "layers", None)
        return layers if isinstance(layers, (list, tuple)) else None

    def visit(layer, prefix, top):
        weighted = [l for l in (sublayers(layer) or []) if getattr(l, "weights", None)]
        for i, l in enumerate(weighted):
            t_top = (i,) if top is None else top
            if sublayers(l) is not None and l is not layer:
                visit(l, prefix + (i,), t_top)
            else:
                auto = _is_auto_name(l)
                for v in l.weights:
                    t = by_id.get(id(v))
                    if t is not None and t.struct is None:
                        t.struct = prefix + (i, t.local)
                        t.layer_name, t.auto_named = l.name, auto
            for v in l.weights:
                t = by_id.get(id(v))
                if t is not None and t.flat_struct is None:
                    t.flat_struct = (t_top[0], t.local)

    visit(model, (), None)
    return out


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _is_auto_name(layer) -> bool:
    name = str(getattr(layer, "name", ""))
    return re.fullmatch(re.escape(_snake(type(layer).__name__)) + r"(_\d+)?", name) is not None


def template_children(obj) -> dict:
    from ..tfrt import tf

    try:
        return dict(tf().train.TrackableView.children(obj))
    except Exception:
        return {}


def _template_paths(model) -> dict[int, list[str]]:
    """id(object) -> object paths from the model (not through optimizers), as TF would see them."""
    paths: dict[int, list[str]] = {id(model): [""]}
    objs = {id(model): model}
    queue = deque([(model, "", 0)])
    while queue:
        obj, path, depth = queue.popleft()
        if depth > 64:
            continue
        for name, child in template_children(obj).items():
            if is_optimizer_name(name):
                continue
            p = f"{path}/{name}" if path else name
            got = paths.setdefault(id(child), [])
            objs[id(child)] = child
            if len(got) < PATH_CAP and p not in got:
                first = not got
                got.append(p)
                if first:
                    queue.append((child, p, depth + 1))
    return paths


def _keras3_paths(model) -> dict[int, str]:
    """id(variable) -> its key in a Keras 3 .weights.h5 of this model (layers/dense_1/vars/0),
    recorded by walking the model the way Keras saves it."""
    try:
        from keras.src.saving import saving_lib
    except ImportError:
        return {}
    recorded: dict[int, str] = {}

    class _Entry(dict):
        def __init__(self, path):
            super().__init__()
            self._path = path

        def __setitem__(self, k, v):
            super().__setitem__(k, v)
            key = f"{self._path}/vars/{k}" if self._path else f"vars/{k}"
            recorded.setdefault(id(v), key)

    class _Recorder(saving_lib.H5IOStore):
        def __init__(self):  # no file
            self.mode = "w"

        def __bool__(self):
            return True

        def make(self, path, metadata=None):
            return _Entry(path)

        def close(self):
            pass

    try:
        saving_lib._save_state(model, weights_store=_Recorder(), assets_store=None,
                               inner_path="", visited_saveables=set())
    except Exception:
        return {}
    return recorded


class TemplateSide:
    def __init__(self, loaded: LoadedTemplate):
        self.loaded = loaded
        self.model = loaded.model
        self.optimizer = loaded.optimizer
        self.vars = _template_vars(self.model)
        self.by_id = {id(t.var): t for t in self.vars}
        self._paths = None
        self._k3 = None

    def model_path(self, t: TemplateVar) -> str:
        """The variable's path in the model without the model's name (hidden/kernel), as a
        model rebuilt from its config names it and a pytree checkpoint binds it."""
        prefix = f"{getattr(self.model, 'name', '')}/"
        return t.name[len(prefix):] if t.name.startswith(prefix) else t.name

    def paths(self) -> dict[int, list[str]]:
        if self._paths is None:
            self._paths = _template_paths(self.model)
        return self._paths

    def keras3_paths(self) -> dict[int, str]:
        if self._k3 is None:
            self._k3 = _keras3_paths(self.model)
        return self._k3

    # optimizer
    def optimizer_variables(self) -> list:
        return list(self.optimizer.variables) if self.optimizer is not None else []

    def slot_lists(self) -> dict[str, list]:
        opt = self.optimizer
        if opt is None:
            return {}
        trainable = list(getattr(opt, "_trainable_variables", []) or [])
        out = {}
        for attr, value in vars(opt).items():
            if attr in ("_variables", "_trainable_variables") or not isinstance(value, (list,
                                                                                          tuple)):
                continue
            if value and len(value) == len(trainable) and all(
                    hasattr(x, "assign") or x is None for x in value):
                out[attr.lstrip("_")] = list(value)
        return out

    def trainable_index(self) -> dict[int, int]:
        opt = self.optimizer
        trainable = list(getattr(opt, "_trainable_variables", []) or []) if opt else []
        return {id(v): i for i, v in enumerate(trainable)}
