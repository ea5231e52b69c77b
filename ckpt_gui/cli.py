"""``ckpt-inspect``: the engine for scripts and machines without a display.

Exit codes: 0 fine, 1 problems found (``scan --verify``), 2 bad usage or an unreadable directory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .textfmt import counters_text, human_bytes

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _print_scan(scan, verify: bool) -> None:
    from .core.model import OK

    print(f"Directory: {scan.directory}")
    print(f"Latest:    {scan.latest or '(none)'}")
    s = scan.state_file
    if s.present:
        print(f"State file: latest {s.latest or '(none)'}; lists {', '.join(s.listed) or 'nothing'}")
    else:
        print("State file: none")
    for p in s.problems:
        print(f"  ! {p}")
    print()
    rows = [("", "name", "number", "format", "size", "vars", "counters", "status")]
    for c in scan.checkpoints:
        counters = counters_text(c)
        vars_text = f"{c.n_readable}/{c.n_variables}" if verify and c.verified else str(c.n_variables)
        rows.append(("*" if c.is_latest else "", c.name, "" if c.number is None else str(c.number),
                     c.format, human_bytes(c.bytes), vars_text, counters, c.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    for c in scan.checkpoints:
        if c.status != OK or c.problems:
            for p in c.problems:
                print(f"  ! {c.name}: {p}")
    if not scan.checkpoints:
        print("(no checkpoints in this directory)")
    if scan.orphans:
        print(f"\nOrphan files (belong to no checkpoint): {', '.join(scan.orphans)}")
    if scan.subdirectories:
        print(f"Subfolders with checkpoints: {', '.join(scan.subdirectories)}")


def cmd_scan(args) -> int:
    from .core import scan_directory
    from .core.model import OK
    from .core.serialize import scan_dict

    scan = scan_directory(args.directory, verify=args.verify)
    if args.json:
        json.dump(scan_dict(scan), sys.stdout, indent=2)
        print()
    else:
        _print_scan(scan, args.verify)
    if args.verify:
        bad = any(c.status != OK for c in scan.checkpoints) or scan.state_file.problems or scan.orphans
        return EXIT_PROBLEMS if bad else EXIT_OK
    return EXIT_OK


def find_checkpoint(scan, name: str):
    if name == "latest":
        name = scan.latest or ""
    c = scan.checkpoint(name)
    if c is None:
        for cand in scan.checkpoints:  # accept a file name of the checkpoint too
            if any(os.path.basename(f.name) == name for f in cand.files):
                return cand
        names = ", ".join(c.name for c in scan.checkpoints) or "none"
        raise UsageError(f"no checkpoint {name!r} in {scan.directory} (checkpoints: {names})")
    return c


def cmd_show(args) -> int:
    from .core import scan_directory
    from .core.reading import ReadError, read_tensor
    from .core.serialize import first_values, variable_dict
    from .core.stats import tensor_stats

    scan = scan_directory(args.directory)
    ckpt = find_checkpoint(scan, args.checkpoint)
    var = ckpt.variable(args.variable)
    if var is None:
        raise UsageError(f"{ckpt.name} has no variable {args.variable!r} "
                         f"(try: ckpt-inspect scan {args.directory} --json)")
    try:
        t0 = time.perf_counter()
        value = read_tensor(ckpt, var.name)
        t1 = time.perf_counter()
        stats = tensor_stats(value, bins=args.bins)
        t2 = time.perf_counter()
    except ReadError as e:
        print(f"ckpt-inspect: {ckpt.name}: {var.display_name} cannot be read: {e}",
              file=sys.stderr)
        return EXIT_PROBLEMS
    values = first_values(value, args.values)
    if args.json:
        out = {"checkpoint": ckpt.name, "variable": variable_dict(var), "stats": stats.to_dict(),
               "values": values, "seconds": {"read": t1 - t0, "stats": t2 - t1}}
        json.dump(out, sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"{ckpt.name}: {var.display_name}")
    print(f"  key {var.name}")
    print(f"  shape {list(var.shape)}  dtype {var.dtype}  role {var.role}  {human_bytes(var.bytes)}")
    if var.slot_of:
        owner = ckpt.variable(var.slot_of)
        print(f"  optimizer slot {var.slot_name!r} of {owner.display_name if owner else var.slot_of}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ckpt-inspect",
        description="Inspect TensorFlow/Keras checkpoint directories.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scan", help="list the checkpoints of a directory")
    p.add_argument("directory")
    p.add_argument("--verify", action="store_true",
                   help="read every tensor (checks TensorFlow's checksums); exit 1 on problems")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_scan)
    p = sub.add_parser("show", help="statistics, histogram and first values of one variable")
    p.add_argument("directory")
    p.add_argument("checkpoint", help="checkpoint name (as scan lists it) or 'latest'")
    p.add_argument("variable", help="variable: its name as scan shows it (JSON path), its key "
                   "(JSON name) or its object path")
    p.add_argument("--json", action="store_true")
    p.add_argument("--bins", type=int, default=50)
    p.add_argument("--values", type=int, default=20, help="how many first values to print")
    p.set_defaults(func=cmd_show)
    from .prune_cli import add_prune_parser

    add_prune_parser(sub)
    from .restore_cli import add_restore_parser

    add_restore_parser(sub)
    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


_EXTRA_COMMANDS: list = []  # restore and prune register themselves here


def main(argv: list[str] | None = None) -> int:
    from .core.scan import ScanError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ScanError, UsageError) as e:
        print(f"ckpt-inspect: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy, so that UsageError raised by the
    # subcommands (which import ckpt_gui.cli) is the class main() catches.
    from ckpt_gui.cli import main as _main

    sys.exit(_main())
