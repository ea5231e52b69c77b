"""Verify several checkpoints (read every tensor of each), one after another in the work thread;
each checkpoint's result is handed to the GUI as soon as it is known."""
from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

from ..core.model import OK, CheckpointInfo
from ..textfmt import plural


@dataclass(frozen=True)
class Started:
    """Handed over (TaskState.partial) when the verification of checkpoint ``name`` begins;
    the verified CheckpointInfo is handed over when it ends."""
    name: str


def verify_job(checkpoints: list[CheckpointInfo], *, state) -> list[CheckpointInfo]:
    """Verify each checkpoint (a copy: the GUI's objects are never touched from here)."""
    from ..core.reading import verify_checkpoint

    total = sum(c.n_variables for c in checkpoints)
    done, verified = 0, []
    for number, ckpt in enumerate(checkpoints, 1):
        state.check()
        state.partial(Started(ckpt.name))

        def progress(i, n, _what, name=ckpt.name, number=number, before=done):
            state.progress(before + i, total, f"Verifying {number} of {len(checkpoints)}: "
                                              f"{name}, tensor {i + 1} of {n}")
        result = verify_checkpoint(copy.deepcopy(ckpt), progress=progress,
                                   cancelled=state.cancelled)
        state.check()
        verified.append(result)
        state.partial(result)
        done += ckpt.n_variables
    state.progress(total, total, "")
    return verified


def summary(verified: list[CheckpointInfo], asked: int, cancelled: bool = False) -> str:
    """'Verified 3 checkpoints: 2 ok, 1 partial (ckpt-2: 1 of 30 tensors read).'"""
    counts = Counter(c.status for c in verified)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(
        counts.items(), key=lambda kv: (kv[0] != OK, kv[0])))
    bad = [f"{c.name}: {c.n_readable} of {plural(c.n_variables, 'tensor')} read"
           for c in verified if c.status != OK]
    head = (f"Verification cancelled: {len(verified)} of {plural(asked, 'checkpoint')} verified"
            if cancelled else f"Verified {plural(len(verified), 'checkpoint')}")
    return head + (f": {tally}" if tally else "") + (f" ({'; '.join(bad)})" if bad else "") + "."
