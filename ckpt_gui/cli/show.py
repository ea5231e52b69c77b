"""``ckpt-inspect show DIR CHECKPOINT VARIABLE``: statistics, histogram and first values of one
variable. A tensor above core.chunked's threshold (or the memory budget) is read in pieces,
twice, and never held whole."""
from __future__ import annotations

import json
import sys
import time
from contextlib import closing

from ..textfmt import human_bytes, safe_name
from .common import EXIT_OK, EXIT_PROBLEMS, UsageError, fail, find_checkpoint


def add_parser(sub) -> None:
    p = sub.add_parser("show", help="statistics, histogram and first values of one variable")
    p.add_argument("directory")
    p.add_argument("checkpoint", help="checkpoint name (as scan lists it) or 'latest'")
    p.add_argument("variable", help="variable: its name as scan shows it (JSON path), its key "
                   "(JSON name) or its object path")
    p.add_argument("--json", action="store_true")
    p.add_argument("--bins", type=int, default=50)
    p.add_argument("--values", type=int, default=20, help="how many first values to print")
    p.set_defaults(func=cmd_show)


def cmd_show(args) -> int:
    from ..core import scan_directory
    from ..core.reading import ReadError
    from ..core.serialize import variable_dict

    scan = scan_directory(args.directory)
    ckpt = find_checkpoint(scan, args.checkpoint)
    var = ckpt.variable(args.variable)
    if var is None:
        raise UsageError(f"{safe_name(ckpt.name)} has no variable {args.variable!r} "
                         f"(try: ckpt-inspect scan {args.directory} --json)")
    try:
        stats, values, seconds, streamed = _read_stats(ckpt, var, args.bins, args.values)
    except ReadError as e:
        fail(f"{ckpt.name}: {var.display_name} cannot be read: {e}")
        return EXIT_PROBLEMS
    if args.json:
        out = {"checkpoint": ckpt.name, "variable": variable_dict(var), "stats": stats.to_dict(),
               "values": values, "seconds": seconds, "read_in_chunks": streamed}
        json.dump(out, sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"{safe_name(ckpt.name)}: {safe_name(var.display_name)}")
    print(f"  key {safe_name(var.name)}")
    print(f"  shape {list(var.shape)}  dtype {var.dtype}  role {var.role}  {human_bytes(var.bytes)}"
          + ("  (read in chunks)" if streamed else ""))
    if var.slot_of:
        owner = ckpt.variable(var.slot_of)
        print(f"  optimizer slot {safe_name(var.slot_name)!r} of "
              f"{safe_name(owner.display_name if owner else var.slot_of)}")
    if stats.min is not None:
        print(f"  min {stats.min:.6g}  max {stats.max:.6g}  mean {stats.mean:.6g}  "
              f"std {stats.std:.6g}  L2 {stats.l2:.6g}")
    print(f"  NaN {stats.nan}  Inf {stats.inf}  zeros {stats.zeros} "
          f"({100 * stats.zero_fraction:.1f}%)  elements {stats.count}")
    if stats.histogram:
        peak = max(stats.histogram) or 1
        print("  histogram:")
        for count, lo, hi in zip(stats.histogram, stats.bin_edges, stats.bin_edges[1:]):
            if count:
                print(f"    [{lo:>11.4g}, {hi:>11.4g})  {'#' * max(1, round(40 * count / peak))} {count}")
    print(f"  first values: {values}")
    return EXIT_OK


def _read_stats(ckpt, var, bins: int, n_values: int):
    """(statistics, the first values, seconds taken, whether it was read in pieces)."""
    from ..core import chunked
    from ..core.reading import read_tensor
    from ..core.serialize import first_values
    from ..core.stats import tensor_stats

    t0 = time.perf_counter()
    if chunked.streams(ckpt, var):
        stats = chunked.stream_stats(ckpt, var, bins)
        t1 = time.perf_counter()
        with closing(chunked.pieces(ckpt, var, max_bytes=max(n_values, 1) * 16)) as pieces:
            first = next(pieces)
        return stats, first_values(first, n_values), {"read and stats": t1 - t0}, True
    value = read_tensor(ckpt, var.name)
    t1 = time.perf_counter()
    stats = tensor_stats(value, bins=bins)
    t2 = time.perf_counter()
    return stats, first_values(value, n_values), {"read": t1 - t0, "stats": t2 - t1}, False
