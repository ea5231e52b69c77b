"""Plain dicts of the engine's results, in the documented JSON schema."""
from __future__ import annotations

import numpy as np

from . import dtypes, health
from .model import CheckpointInfo, DirectoryScan, Run, TensorStats, VariableInfo


def variable_dict(v: VariableInfo) -> dict:
    d = {"name": v.name, "shape": list(v.shape), "dtype": v.dtype, "bytes": v.bytes,
         "role": v.role, "path": v.display_name, "canonical": v.canonical}
    if v.slot_of:
        d["slot_of"], d["slot_name"] = v.slot_of, v.slot_name
    if v.readable is not None:
        d["readable"] = v.readable
    if v.problem:
        d["problem"] = v.problem
    d["flags"] = [f.to_dict() for f in v.flags]
    return d


def checkpoint_dict(c: CheckpointInfo) -> dict:
    return {
        "name": c.name, "format": c.format, "writer": c.writer,
        "files": [f.name for f in c.files], "bytes": c.bytes, "mtime": c.mtime,
        "number": c.number, "counters": dict(c.counters), "status": c.status,
        "problems": list(c.problems), "latest": c.is_latest, "run": c.run,
        "n_variables": c.n_variables, "n_readable": c.n_readable if c.verified else None,
        "flags": health.summary(v.flags for v in c.variables),
        "variables": [variable_dict(v) for v in c.variables],
    }


def scan_dict(scan: DirectoryScan) -> dict:
    s = scan.state_file
    return {
        "directory": scan.directory,
        "latest": scan.latest,
        "state_file": {"present": s.present, "latest": s.latest, "listed": list(s.listed),
                       "problems": list(s.problems)},
        "checkpoints": [checkpoint_dict(c) for c in scan.checkpoints],
        "runs": [run_dict(r) for r in scan.runs],
        "orphans": list(scan.orphans),
        "subdirectories": list(scan.subdirectories),
        "problems": list(scan.problems),
    }


def run_dict(r: Run) -> dict:
    d = {"id": r.id, "pattern": r.pattern, "writer": r.writer, "checkpoints": list(r.checkpoints)}
    if r.restarted_from is not None:
        d["restarted_from"] = r.restarted_from
    return d


def first_values(array: np.ndarray, n: int = 20) -> list:
    flat = dtypes.widened(np.asarray(array).reshape(-1)[:n])
    out = []
    for x in flat:
        if isinstance(x, bytes):
            out.append(x.decode("utf-8", "replace"))
        elif isinstance(x, (np.floating, float)):
            out.append(float(x))
        elif isinstance(x, (np.integer, int, np.bool_, bool)):
            out.append(x.item() if hasattr(x, "item") else x)
        elif isinstance(x, (np.complexfloating, complex)):
            out.append(str(x))
        else:
            out.append(str(x))
    return out


def stats_dict(stats: TensorStats) -> dict:
    return stats.to_dict()
