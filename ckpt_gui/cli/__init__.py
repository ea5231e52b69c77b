"""``ckpt-inspect``: the engine for scripts and machines without a display.

Exit codes: 0 fine, 1 problems found (``scan --verify``) or an operation failed, 2 bad usage or an
unreadable directory. Every error is one line on stderr, never a traceback (``--debug`` or
``CKPT_GUI_DEBUG=1`` lets an unexpected one through, for developers). Names read from disk are
printed through ``textfmt.safe_name``; whatever else reaches the terminal passes a filter that
escapes control characters, so no file name can send escape sequences to the terminal.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import diff, prune, restore, scan, show, trajectory
from .common import (EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, UsageError, EscapingStream,
                     describe_error, fail)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ckpt-inspect",
        description="Inspect TensorFlow/Keras checkpoint directories.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an unexpected error (also CKPT_GUI_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in (scan, show, diff, trajectory, prune, restore):
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..core.scan import ScanError

    parser = build_parser()
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingStream(out), EscapingStream(err)
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
