"""``ckpt-inspect trajectory DIR VARIABLE [--run ID] [--json]``: one variable along each
training run, one row per checkpoint (core/trajectory.py)."""
from __future__ import annotations

import json
import sys

from ..textfmt import number, safe_name
from .common import EXIT_OK, EXIT_PROBLEMS, UsageError, fail, names


def add_parser(sub) -> None:
    p = sub.add_parser("trajectory", help="one variable's L2 norm, mean, std and change along "
                       "each training run")
    p.add_argument("directory")
    p.add_argument("variable", help="variable: its name as scan shows it (JSON path), its key "
                   "(JSON name) or its object path")
    p.add_argument("--run", help="only this run's checkpoints (a run id)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_trajectory)


def cmd_trajectory(args) -> int:
    from ..core import scan_directory
    from ..core.trajectory import resolve, runs_of, trajectory

    scan = scan_directory(args.directory)
    identity = resolve(scan, args.variable)
    if identity is None:
        raise UsageError(f"no checkpoint in {args.directory} has a variable {args.variable!r} "
                         f"(try: ckpt-inspect scan {args.directory} --json)")
    if args.run is not None and not runs_of(scan, args.run):
        known = names(r.id for r in scan.runs) or "none"
        raise UsageError(f"no run {args.run!r} in {args.directory} (runs: {known})")
    t = trajectory(scan, identity, run=args.run)
    if args.json:
        json.dump({"variable": t.name, "identity": t.identity, "x": t.x_label,
                   "rows": [p.row() for p in t.points], "missing": t.missing},
                  sys.stdout, indent=2)
        print()
    else:
        _print(t)
    for p in t.points:
        if p.problem:
            fail(f"{p.checkpoint}: {t.name} cannot be read: {p.problem}")
    return EXIT_PROBLEMS if any(p.problem for p in t.points) else EXIT_OK


def _print(t) -> None:
    print(f"{safe_name(t.identity)} along {len(t.series())} series, x = {t.x_label}")
    header = ("checkpoint", "run", "step", "number", "shape", "L2", "mean", "std", "change %",
              "flags")
    rows = [header]
    for p in t.points:
        s = p.stats
        rows.append((safe_name(p.checkpoint), safe_name(p.run or "—"), _num(p.step),
                     _num(p.number), "×".join(map(str, p.shape)) or "scalar",
                     _num(s and s.l2), _num(s and s.mean), _num(s and s.std),
                     _num(p.rel_change), "; ".join(f.message for f in p.flags)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    if t.missing:
        print(f"Not in: {names(t.missing)}")


def _num(v) -> str:
    return "" if v is None else number(v, 4)
