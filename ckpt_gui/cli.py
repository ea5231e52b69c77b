"""``ckpt-inspect``: the engine for scripts and machines without a display.

Exit codes: 0 fine, 1 problems found (``scan --verify``) or an operation failed, 2 bad usage or an
unreadable directory. Every error is one line on stderr, never a traceback (``--debug`` or
``CKPT_GUI_DEBUG=1`` lets an unexpected one through, for developers). Names read from disk are
printed through ``textfmt.safe_name``; whatever else reaches the terminal passes a filter that
escapes control characters, so no file name can send escape sequences to the terminal.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .textfmt import counters_text, human_bytes, safe_name

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def names(items) -> str:
    """Names from disk, escaped, joined for one line of output."""
    return ", ".join(safe_name(n) for n in items)


def _print_scan(scan, verify: bool) -> None:
    from .core.model import OK

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
    rows = [("", "name", "number", "format", "size", "vars", "counters", "status")]
    for c in scan.checkpoints:
        counters = safe_name(counters_text(c))
        vars_text = f"{c.n_readable}/{c.n_variables}" if verify and c.verified else str(c.n_variables)
        rows.append(("*" if c.is_latest else "", safe_name(c.name),
                     "" if c.number is None else str(c.number),
                     c.format, human_bytes(c.bytes), vars_text, counters, c.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    for c in scan.checkpoints:
        if c.status != OK or c.problems:
            for p in c.problems:
                print(f"  ! {safe_name(c.name)}: {safe_name(p)}")
    if not scan.checkpoints:
        print("(no checkpoints in this directory)")
    if scan.orphans:
        print(f"\nOrphan files (belong to no checkpoint): {names(scan.orphans)}")
    if scan.subdirectories:
        print(f"Subfolders with checkpoints: {names(scan.subdirectories)}")


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
    """The checkpoint called ``name`` (or ``latest``), one of its file names, or a name as the
    text output shows it escaped (``ckpt\\n-1`` for a name with a newline); else UsageError."""
    if name == "latest":
        name = scan.latest or ""
    c = scan.checkpoint(name)
    if c is not None:
        return c
    for cand in scan.checkpoints:
        if safe_name(cand.name) == name or any(
                os.path.basename(f.name) in (name, safe_name(name)) for f in cand.files):
            return cand
    shown = names(c.name for c in scan.checkpoints[:10]) or "none"
    if len(scan.checkpoints) > 10:
        shown += f" and {len(scan.checkpoints) - 10} more"
    raise UsageError(f"no checkpoint {name!r} in {scan.directory} (checkpoints: {shown})")


def cmd_show(args) -> int:
    from .core import scan_directory
    from .core.reading import ReadError, read_tensor
    from .core.serialize import first_values, variable_dict
    from .core.stats import tensor_stats

    scan = scan_directory(args.directory)
    ckpt = find_checkpoint(scan, args.checkpoint)
    var = ckpt.variable(args.variable)
    if var is None:
        raise UsageError(f"{safe_name(ckpt.name)} has no variable {args.variable!r} "
                         f"(try: ckpt-inspect scan {args.directory} --json)")
    try:
        t0 = time.perf_counter()
        value = read_tensor(ckpt, var.name)
        t1 = time.perf_counter()
        stats = tensor_stats(value, bins=args.bins)
        t2 = time.perf_counter()
    except ReadError as e:
        fail(f"{ckpt.name}: {var.display_name} cannot be read: {e}")
        return EXIT_PROBLEMS
    values = first_values(value, args.values)
    if args.json:
        out = {"checkpoint": ckpt.name, "variable": variable_dict(var), "stats": stats.to_dict(),
               "values": values, "seconds": {"read": t1 - t0, "stats": t2 - t1}}
        json.dump(out, sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"{safe_name(ckpt.name)}: {safe_name(var.display_name)}")
    print(f"  key {safe_name(var.name)}")
    print(f"  shape {list(var.shape)}  dtype {var.dtype}  role {var.role}  {human_bytes(var.bytes)}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ckpt-inspect",
        description="Inspect TensorFlow/Keras checkpoint directories.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an unexpected error (also CKPT_GUI_DEBUG=1)")
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


def fail(message: str) -> None:
    """One line on stderr: ``ckpt-inspect: message``, names in it escaped."""
    print(f"ckpt-inspect: {safe_name(message)}", file=sys.stderr)


def describe_error(e: BaseException) -> str:
    """An unexpected exception as one sentence: its own first line, or what it is."""
    if isinstance(e, MemoryError):
        return "ran out of memory"
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename is not None else ""
        return f"{e.strerror}{where}"
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first[:300]}" if first else type(e).__name__


class _EscapingStream:
    """A text stream that writes control characters other than newline and tab escaped: the
    last guard between a file name and the terminal (output code escapes names itself, with
    ``safe_name``, which also escapes their newlines). JSON is unaffected: json.dumps escapes
    every control character already."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(safe_name(text, keep="\n\t"))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    from .core.scan import ScanError

    parser = build_parser()
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _EscapingStream(out), _EscapingStream(err)
    try:
        args = parser.parse_args(argv)
        return _run(args, args.debug or bool(os.environ.get("CKPT_GUI_DEBUG")), ScanError)
    finally:
        sys.stdout, sys.stderr = out, err


def _run(args, debug: bool, scan_error: type) -> int:
    """The command, its errors as one line each: bad usage or folder 2, a failure 1."""
    try:
        return args.func(args)
    except (scan_error, UsageError) as e:
        fail(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        if debug:
            raise
        fail(f"{args.command} failed: {describe_error(e)} (--debug shows where)")
        return EXIT_PROBLEMS


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy, so that UsageError raised by the
    # subcommands (which import ckpt_gui.cli) is the class main() catches.
    from ckpt_gui.cli import main as _main

    sys.exit(_main())
