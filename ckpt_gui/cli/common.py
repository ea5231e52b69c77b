"""What every ``ckpt-inspect`` verb shares: exit codes, one-line errors, escaped names, finding
a checkpoint by the name the user typed."""
from __future__ import annotations

import os
import sys

from ..textfmt import safe_name

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def names(items) -> str:
    """Names from disk, escaped, joined for one line of output."""
    return ", ".join(safe_name(n) for n in items)


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


class EscapingStream:
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
