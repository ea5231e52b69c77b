"""``ckpt-inspect scan DIR [--verify] [--json]``: list the checkpoints of a directory."""
from __future__ import annotations

import json
import sys

from ..textfmt import counters_text, human_bytes, plural, safe_name
from .common import EXIT_OK, EXIT_PROBLEMS, names


def add_parser(sub) -> None:
    p = sub.add_parser("scan", help="list the checkpoints of a directory")
    p.add_argument("directory")
    p.add_argument("--verify", action="store_true",
                   help="read every tensor (checks TensorFlow's checksums); exit 1 on problems")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_scan)


def _print_scan(scan, verify: bool) -> None:
    from ..core import health
    from ..core.model import OK

    print(f"Directory: {safe_name(scan.directory)}")
    print(f"Latest:    {safe_name(scan.latest or '(none)')}")
    s = scan.state_file
    if s.present:
        print(f"State file: latest {safe_name(s.latest or '(none)')}; "
              f"lists {names(s.listed) or 'nothing'}")
    else:
        print("State file: none")
    for p in s.problems:
        print(f"  ! {safe_name(p)}")
    print()
    rows = [("", "name", "run", "number", "format", "size", "vars", "counters", "status")]
    for c in scan.checkpoints:
        counters = safe_name(counters_text(c))
        vars_text = f"{c.n_readable}/{c.n_variables}" if verify and c.verified else str(c.n_variables)
        rows.append(("*" if c.is_latest else "", safe_name(c.name), safe_name(c.run or "-"),
                     "" if c.number is None else str(c.number),
                     c.format, human_bytes(c.bytes), vars_text, counters, c.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    for c in scan.checkpoints:
        if c.status != OK or c.problems:
            for p in c.problems:
                print(f"  ! {safe_name(c.name)}: {safe_name(p)}")
        if c.flagged():
            flags = health.summary_text(health.summary(v.flags for v in c.variables))
            print(f"  ⚑ {safe_name(c.name)}: {flags}")
    if not scan.checkpoints:
        print("(no checkpoints in this directory)")
    _print_runs(scan)
    if scan.orphans:
        print(f"\nOrphan files (belong to no checkpoint): {names(scan.orphans)}")
    if scan.subdirectories:
        print(f"Subfolders with checkpoints: {names(scan.subdirectories)}")
    for p in scan.problems:
        print(f"  ! {safe_name(p)}")


def _print_runs(scan) -> None:
    """One line per training run (the table's "run" column; "-": unnumbered, in no run)."""
    if not scan.runs:
        return
    print("\nRuns (oldest first in each):")
    for r in scan.runs:
        restart = f"; restarted after {safe_name(r.restarted_from)}" if r.restarted_from else ""
        print(f"  {safe_name(r.id)}: {plural(len(r.checkpoints), 'checkpoint')} "
              f"({names(r.checkpoints[:1] + r.checkpoints[-1:][len(r.checkpoints) < 2:])}), "
              f"{safe_name(r.writer)}{restart}")


def cmd_scan(args) -> int:
    from ..core import scan_directory
    from ..core.model import OK
    from ..core.serialize import scan_dict

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
