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


def strip_suffix(name: str) -> str:
    lower = name.lower()
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
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = _FLOAT.sub(" ", strip_suffix(base))
    number = None
    for token in _TOKEN_SPLIT.split(stem):
        m = _NUMBER_TOKEN.match(token)
        if m:
            number = int(m.group(1))
    return number


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as integers: ckpt_9 < ckpt_20, weights.95 < weights.100."""
    parts = _DIGITS.split(name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def base_name(path: str) -> str:
    """Base name of a POSIX or Windows path, whichever machine wrote it."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
