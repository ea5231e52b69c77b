"""Numbers in checkpoint names and natural ordering (ckpt_20 after ckpt_9)."""
from __future__ import annotations

import re

_FILE_SUFFIXES = (".weights.h5", ".weights.hdf5", ".h5", ".hdf5", ".keras", ".index", ".meta")
_FLOAT = re.compile(r"\d+\.\d+(?:e[-+]?\d+)?", re.IGNORECASE)
_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9]+")
# A number stands alone ("ckpt-19", "weights.100") or follows a word that names a step or an
# epoch ("epoch03", "ckpt20"); "fc2" or "30LSTM" name a layer or a width, not a checkpoint.
_NUMBER_TOKEN = re.compile(
    r"^(?:epoch|epochs|ep|e|step|steps|s|iter|iters|iteration|it|ckpt|checkpoint|cp|model|"
    r"weights|w|batch|save|snapshot|gen|round|version|v|run|chkpt|chk)?(\d+)$", re.IGNORECASE)
_DIGITS = re.compile(r"(\d+)")
_ASCII_DIGITS = re.compile(r"[0-9]+")  # the digits _TOKEN_SPLIT keeps in a token


def strip_suffix(name: str) -> str:
    lower = name.lower()
    if not lower.endswith(_FILE_SUFFIXES):
        return name
    for suffix in _FILE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def checkpoint_number(name: str) -> int | None:
    """The checkpoint's number: the last standalone integer of its name.

    ``ckpt-19`` -> 19, ``weights.100.hd5f`` -> 100, ``model.ckpt-5000`` -> 5000,
    ``weights-improvement-05-0.42.hdf5`` -> 5 (the metric is a float, not a number),
    ``model_epoch03.weights.h5`` -> 3; ``cp.ckpt`` and ``30LSTM_Neurons5Epochs.ckpt`` -> None
    (digits glued to letters on both sides name an architecture, not a step).
    """
    span = number_span(name)
    return None if span is None else int(name[span[0]:span[1]])


def number_span(name: str) -> tuple[int, int] | None:
    """Where ``name`` holds its checkpoint number (see checkpoint_number), as a slice."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = strip_suffix(base)
    runs = list(_ASCII_DIGITS.finditer(stem))
    if not runs:
        return None
    # Which digit run is the number depends on where digits are, not on their values: a
    # folder's names (ckpt-1 ... ckpt-1000) share a few patterns, each worked out once.
    pattern = _ASCII_DIGITS.sub("0", stem)
    which = _WHICH_RUN.get(pattern)
    if which is None:
        if len(_WHICH_RUN) > 4096:
            _WHICH_RUN.clear()
        numbered = iter(range(1, len(runs) + 1))
        found = _number_in(_ASCII_DIGITS.sub(lambda m: str(next(numbered)), stem))
        which = _WHICH_RUN[pattern] = found - 1 if found is not None else -1
    if which < 0:
        return None
    offset = len(name) - len(base)
    return offset + runs[which].start(), offset + runs[which].end()


def name_pattern(name: str) -> str | None:
    """The naming pattern of a numbered checkpoint: its number replaced by ``{N}`` and a
    metric in it (a float) by ``{F}``: ``ckpt-{N}``, ``weights.{N}.weights.h5``,
    ``weights-improvement-{N}-{F}.hdf5``. None when the name holds no number."""
    # Where the number and the metrics are depends on where digits are, not on their values:
    # a pattern without other digits (most) is worked out once per digit layout.
    layout = _ASCII_DIGITS.sub("0", name)
    if layout in _PATTERNS:
        return _PATTERNS[layout]
    span = number_span(name)
    pattern = None
    if span is not None:
        before, after = (_FLOAT.sub("{F}", part) for part in (name[:span[0]], name[span[1]:]))
        pattern = before + "{N}" + after
    if pattern is None or not _ASCII_DIGITS.search(pattern):   # (else: digits of its own)
        if len(_PATTERNS) > 4096:
            _PATTERNS.clear()
        _PATTERNS[layout] = pattern
    return pattern


_PATTERNS: dict[str, str | None] = {}   # digit layout of a name -> its pattern


_WHICH_RUN: dict[str, int] = {}  # digit pattern of a stem -> index of its number's digit run


def clear_caches() -> None:
    _WHICH_RUN.clear()
    _PATTERNS.clear()


def _number_in(stem: str) -> int | None:
    number = None
    for token in _TOKEN_SPLIT.split(_FLOAT.sub(" ", stem)):
        m = _NUMBER_TOKEN.match(token)
        if m:
            number = int(m.group(1))
    return number


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as integers: ckpt_9 < ckpt_20, weights.95 < weights.100."""
    parts = _DIGITS.split(name.lower())  # text, digits, text, digits, ..., text
    parts[1::2] = map(int, parts[1::2])  # texts and numbers alternate: two keys always compare
    return tuple(parts)


def base_name(path: str) -> str:
    """Base name of a POSIX or Windows path, whichever machine wrote it."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
