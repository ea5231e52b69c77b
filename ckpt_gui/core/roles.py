"""What a variable is for, from its name, shape and dtype, whoever wrote it."""
from __future__ import annotations

import re

# Roles a variable can play (VariableInfo.role).
WEIGHT = "weight"
BIAS = "bias"
NORMALIZATION = "normalization"
OPTIMIZER = "optimizer state"
COUNTER = "counter"
METADATA = "metadata"
OTHER = "other"
ROLES = (WEIGHT, BIAS, NORMALIZATION, OPTIMIZER, COUNTER, METADATA, OTHER)

ATTRIBUTE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
SLOT_MARKER = "/.OPTIMIZER_SLOT/"

_COUNTER_NAMES = {"global_step", "save_counter", "iter", "iterations", "_iterations", "step",
                  "steps", "epoch", "epochs", "current_epoch", "train_step", "global_steps",
                  "num_steps", "step_counter", "counter"}
_TF1_SLOT_SUFFIX = re.compile(
    r"/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|AdagradDA|Adadelta|Adadelta_\d+|"
    r"Ftrl|Ftrl_\d+|ProximalAdagrad|Nadam|Nadam_\d+|Adamax|Adamax_\d+|LARS|accumulator)$")
_OPTIMIZER_SCALARS = {"beta1_power", "beta2_power", "learning_rate", "lr", "decay", "rho",
                      "momentum", "beta_1", "beta_2", "epsilon"}
_NORM_NAMES = {"gamma", "beta", "moving_mean", "moving_variance", "moving_var", "mean",
               "variance", "scale", "offset"}
_NORM_LAYER = re.compile(r"(batch_?norm|layer_?norm|group_?norm|normaliz|(^|[_/])bn\d*($|[_/])|"
                         r"instance_?norm)", re.IGNORECASE)
_BIAS_NAMES = {"bias", "_bias", "b", "biases", "beta_bias", "bias_hh", "bias_ih", "recurrent_bias"}
_WEIGHT_NAMES = {"kernel", "_kernel", "w", "weights", "weight", "embeddings", "_embeddings",
                 "recurrent_kernel", "_recurrent_kernel", "depthwise_kernel", "pointwise_kernel",
                 "filter", "filters", "u", "embedding", "table", "weights_hh", "weights_ih"}


def semantic_path(key: str) -> str:
    """The object path of a key: without TF's ``/.ATTRIBUTES/VARIABLE_VALUE`` and ``:0``."""
    if key.endswith(ATTRIBUTE_SUFFIX):
        key = key[: -len(ATTRIBUTE_SUFFIX)]
    return _OUTPUT_INDEX.sub("", key) if ":" in key else key


_OUTPUT_INDEX = re.compile(r":\d+$")


# TF1 optimizers name a slot after the optimizer, numbered in the order the slots are created.
_TF1_SLOT_NAMES = {"Adam": "m", "Adam_1": "v", "RMSProp": "rms", "RMSProp_1": "momentum",
                   "Momentum": "momentum", "Adagrad": "accumulator", "Ftrl": "accum",
                   "Ftrl_1": "linear", "Adadelta": "accum", "Adadelta_1": "accum_update",
                   "Nadam": "m", "Nadam_1": "v", "Adamax": "m", "Adamax_1": "v"}


def tf1_slot(path: str) -> tuple[str, str] | None:
    """(owner path, slot name) of a TF1 name-based slot such as ``fc/w/Adam_1``, else None."""
    m = _TF1_SLOT_SUFFIX.search(path)
    if not m or m.start() == 0:
        return None
    suffix = m.group(1)
    return path[: m.start()], _TF1_SLOT_NAMES.get(suffix, suffix)


def is_optimizer_segment(segment: str) -> bool:
    """Optimizers (optimizer, generator_optimizer, optimizer_weights) and gradient machinery."""
    s = segment.lower()
    return "optimizer" in s or s in _SHORT_OPTIMIZER or "gradients" in s


_SHORT_OPTIMIZER = frozenset({"opt", "optim"})


def _any_optimizer_segment(segments: list[str]) -> bool:
    """any(is_optimizer_segment(s) for s in segments), on one lowered string: neither word
    holds a "/", so a match in the joined path is a match in one segment."""
    head = "/".join(segments).lower()
    if "optimizer" in head or "gradients" in head:
        return True
    return "opt" in head and not _SHORT_OPTIMIZER.isdisjoint(head.split("/"))


def classify(key: str, shape: tuple[int, ...], dtype: str) -> str:
    """One of the roles in model.ROLES."""
    if key == OBJECT_GRAPH_KEY or "/.ATTRIBUTES/" in key and not key.endswith(ATTRIBUTE_SUFFIX):
        return METADATA
    if dtype == "string":
        return METADATA
    path = semantic_path(key)
    segments = [s for s in path.split("/") if s]
    last = segments[-1].lower() if segments else ""
    token = last.rsplit("_", 1)[-1]  # Keras 1 names: dense_1_W, batchnormalization_1_gamma
    is_scalar = len(shape) == 0 or (len(shape) == 1 and shape[0] == 1)
    integer = dtype.startswith(("int", "uint"))
    if SLOT_MARKER in key or _TF1_SLOT_SUFFIX.search(path):
        return OPTIMIZER
    if is_scalar and (last in _COUNTER_NAMES and (integer or "step" in last or "epoch" in last
                                                  or last.startswith("iter"))
                      or last.endswith(("_step", "_steps", "_epoch"))):
        return COUNTER
    in_optimizer = _any_optimizer_segment(segments[:-1])
    if in_optimizer and "_trainable_variables" in segments[:-1]:
        # Keras 3 optimizers track the model's own variables (optimizer/_trainable_variables/N);
        # when the checkpoint reaches them that way first, that is their key. They are weights.
        return WEIGHT if len(shape) >= 2 else BIAS if len(shape) == 1 else OTHER
    if in_optimizer and is_scalar and integer:
        return COUNTER  # the only integer scalar an optimizer keeps is its iteration count
    if in_optimizer or last in {"beta1_power", "beta2_power"}:
        return OPTIMIZER
    if last.endswith("exponentialmovingaverage"):
        owner = segments[-2].lower() if len(segments) > 1 else ""
        return classify_name_only(owner, shape)
    if (last in _NORM_NAMES or token in _NORM_NAMES or last.startswith(("moving_", "running_"))) \
            and (last.startswith(("moving", "running")) or _NORM_LAYER.search(path)
                 or token in {"gamma", "beta"}):
        return NORMALIZATION
    if last in _BIAS_NAMES or token in _BIAS_NAMES:
        return BIAS
    if last in _WEIGHT_NAMES or token in _WEIGHT_NAMES or last.endswith("_kernel"):
        return WEIGHT
    if is_scalar and last in _OPTIMIZER_SCALARS:
        return OPTIMIZER
    # Anonymous Keras 3 layout: layers/<name>/vars/<i>.
    if len(segments) >= 2 and segments[-2] == "vars" and last.isdigit():
        if _NORM_LAYER.search(path):
            return NORMALIZATION
        if len(shape) >= 2:
            return WEIGHT
        if len(shape) == 1:
            return BIAS
    if dtype.startswith(("float", "bfloat", "complex")) and len(shape) >= 2:
        return WEIGHT
    return OTHER


def classify_name_only(last: str, shape: tuple[int, ...]) -> str:
    if last in _BIAS_NAMES:
        return BIAS
    if last in _NORM_NAMES:
        return NORMALIZATION
    if last in _WEIGHT_NAMES or len(shape) >= 2:
        return WEIGHT
    return OTHER


# The role of a key never depends on the value of its digits, only on where digits are
# (layers/12, layer_with_weights-3, dense_1_W, Adam_1, bn2, vars/<i>: classify() asks
# isdigit() or \\d, never a value), except in the few names of its sets that hold a digit
# (beta_1, beta1_power: beta_3 is no optimizer scalar). So keys are remembered with every digit
# made 0, unless they hold such a name's stem: a model's thousands of keys share a few patterns.
_DIGIT_NAMES = {w for w in (_COUNTER_NAMES | _OPTIMIZER_SCALARS | _NORM_NAMES | _BIAS_NAMES
                            | _WEIGHT_NAMES | {"beta1_power", "beta2_power"})
                if any(c.isdigit() for c in w)}
_DIGIT_STEMS = tuple(sorted({re.split(r"\d", w, maxsplit=1)[0].rstrip("_")
                             for w in _DIGIT_NAMES}))
_HAS_DIGIT_STEM = re.compile("|".join(map(re.escape, _DIGIT_STEMS))).search  # in lower case
_ZERO_DIGITS = str.maketrans("123456789", "000000000")


def _pattern(key: str) -> str:
    return key if _HAS_DIGIT_STEM(key.lower()) else key.translate(_ZERO_DIGITS)


# Plain dicts (not lru_cache: its bookkeeping costs more than a cold scan's misses save),
# emptied when they grow past a bound.
_ROLES: dict[tuple, str] = {}
_MEMO_LIMIT = 1 << 16


# What classify() asks of a shape -- scalar, one element, rank 1, rank >= 2 -- as a small int,
# and a shape standing in for each.
_STAND_IN = ((), (1,), (2,), (2, 2))


def _shape_class(shape: tuple[int, ...]) -> int:
    rank = len(shape)
    return 0 if rank == 0 else 3 if rank > 1 else 1 if shape[0] == 1 else 2


def _classify_key(key: tuple[str, int, str]) -> str:
    pattern, shape_class, dtype = key
    return classify(pattern, _STAND_IN[shape_class], dtype)


def _remembered(pattern: str, shape_class: int, dtype: str) -> str:
    memo_key = (pattern, shape_class, dtype)
    role = _ROLES.get(memo_key)
    if role is None:
        if len(_ROLES) >= _MEMO_LIMIT:
            _ROLES.clear()
        role = _ROLES[memo_key] = _classify_key(memo_key)
    return role


def classify_cached(key: str, shape: tuple[int, ...], dtype: str) -> str:
    """classify(), remembered per key pattern: a folder's checkpoints repeat the same keys and a
    big model repeats the same names under numbered layers."""
    return _remembered(_pattern(key), _shape_class(shape), dtype)


# Over many keys joined by newlines ("$" then ends each key).
_OUTPUT_INDEX_LINES = re.compile(_OUTPUT_INDEX.pattern, re.MULTILINE)


def classify_many(names: list[str], shapes: list[tuple[int, ...]],
                  dtypes: list[str]) -> list[str]:
    """[classify_cached(n, s, d) ...] for a whole checkpoint's keys (10,000 in a big model):
    the patterns come from one pass over the joined keys, and each distinct (pattern, shape
    class, dtype) is classified once; the rest is dictionary lookups done in C."""
    text = "\n".join(names)
    patterns = text.translate(_ZERO_DIGITS).split("\n")
    if len(patterns) != len(names):  # a key holding a newline
        return [classify_cached(n, s, d) for n, s, d in zip(names, shapes, dtypes)]
    lowered = text.lower()
    if _HAS_DIGIT_STEM(lowered):
        patterns = [name if _HAS_DIGIT_STEM(low) else pattern
                    for name, low, pattern in zip(names, lowered.split("\n"), patterns)]
    classes = {shape: _shape_class(shape) for shape in set(shapes)}
    memo_keys = list(zip(patterns, map(classes.__getitem__, shapes), dtypes))
    missing = set(memo_keys).difference(_ROLES)
    if missing:
        if len(_ROLES) + len(missing) > _MEMO_LIMIT:
            _ROLES.clear()
            missing = set(memo_keys)
        _ROLES.update({key: _classify_key(key) for key in missing})
    return list(map(_ROLES.get, memo_keys))


def semantic_paths(names: list[str]) -> list[str]:
    """[semantic_path(n) ...] for a whole checkpoint's keys."""
    def strip(text: str) -> str:
        text = (text + "\n").replace(ATTRIBUTE_SUFFIX + "\n", "\n")[:-1]
        return _OUTPUT_INDEX_LINES.sub("", text) if ":" in text else text

    paths = strip("\n".join(names)).split("\n")  # one pass over all keys, in C
    return paths if len(paths) == len(names) else [semantic_path(n) for n in names]


def clear_caches() -> None:
    """Forget what earlier scans taught (benchmarks time cold scans): role patterns, decoded
    shapes and index layouts, and the digit patterns of checkpoint names."""
    from . import bundle, naming

    _ROLES.clear()
    naming.clear_caches()
    bundle.clear_caches()
