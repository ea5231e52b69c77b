"""``ckpt-inspect diff DIR A B [--other-dir DIR_B] [--json]``: what changed between two
checkpoints, of any formats. Exit 0 when every variable is the same (counters and metadata
aside), 1 when some differ, 2 on bad usage."""
from __future__ import annotations

import json
import sys

from ..textfmt import number, safe_name
from .common import EXIT_OK, EXIT_PROBLEMS, find_checkpoint


def add_parser(sub) -> None:
    p = sub.add_parser("diff", help="what changed between two checkpoints (any formats)")
    p.add_argument("directory")
    p.add_argument("a", help="the first checkpoint (as scan lists it, or 'latest')")
    p.add_argument("b", help="the second checkpoint, in DIR or in --other-dir")
    p.add_argument("--other-dir", metavar="DIR_B", help="the folder of B (default: DIR)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--all", action="store_true", help="list the variables that are the same too")
    p.set_defaults(func=cmd_diff)


def cmd_diff(args) -> int:
    from ..core import scan_directory
    from ..core.diff import diff_checkpoints, result_dict

    scan_a = scan_directory(args.directory)
    scan_b = scan_directory(args.other_dir) if args.other_dir else scan_a
    a, b = find_checkpoint(scan_a, args.a), find_checkpoint(scan_b, args.b)
    result = diff_checkpoints(a, b)
    if args.json:
        json.dump(result_dict(result), sys.stdout, indent=2)
        print()
    else:
        _print(result, args.all)
    return EXIT_OK if result.identical else EXIT_PROBLEMS


def _print(result, show_same: bool) -> None:
    from ..core.diff import SAME

    print(f"A: {safe_name(result.a)}  ({safe_name(result.a_directory)})")
    print(f"B: {safe_name(result.b)}  ({safe_name(result.b_directory)})")
    print("; ".join(f"{n} {status}" for status, n in result.counts().items()) or "no variables")
    shown = [v for v in result.variables if show_same or v.status != SAME]
    _table(shown)
    hidden = len(result.variables) - len(shown)
    if hidden:
        print(f"({hidden} the same not listed; --all lists them)")
    counters = [v for v in result.counters if show_same or v.status != SAME]
    if counters:
        print("\nCounters and metadata (they differ between any two saves; not counted above):")
        _table(counters)


def _table(diffs) -> None:
    """Variables by change, most first: status, name, max|a-b|, L2(a-b), relative change."""
    if not diffs:
        return
    rows = [("status", "variable", "max|a-b|", "L2(a-b)", "rel change")]
    rows += [(v.status, _name(v), _num(v.max_abs_diff), _num(v.l2_diff), _num(v.rel_change))
             for v in diffs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(r, widths))).rstrip())


def _name(v) -> str:
    from ..core.diff import SHAPE_CHANGED

    text = safe_name(v.name)
    if v.name_b:
        text += f" ↔ {safe_name(v.name_b)}"
    if v.status == SHAPE_CHANGED:
        text += f"  {list(v.shape_a)} → {list(v.shape_b)}"
    if v.nan_mismatch:
        text += f"  (NaN on one side at {v.nan_mismatch})"
    if v.problem:
        text += f"  ({safe_name(v.problem)})"
    return text


def _num(x) -> str:
    return "" if x is None else number(x, 4)
