"""Where the files under the repository's ``resources/`` folder are."""
from __future__ import annotations

from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parent / "resources",          # an installed wheel bundles them here
    Path(__file__).resolve().parent.parent / "resources",   # a source checkout / editable install
)


def resource_dir() -> Path:
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the ckpt_gui resources folder is missing from this installation")


def resource(name: str) -> Path:
    return resource_dir() / name
