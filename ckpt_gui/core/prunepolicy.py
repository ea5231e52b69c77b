"""Which checkpoints a prune policy deletes. The rules apply within each training run
(``DirectoryScan.runs``, core/runs.py): "keep the last 3" keeps the last 3 of every run, so a
CheckpointManager's ``ckpt-N`` and a ModelCheckpoint's ``weights.NN.weights.h5`` in one folder
each keep theirs, and a restart does not make an older run's checkpoints "older than the last 3"
of the new one.

- A checkpoint without a number (``best.keras``, ``final.h5``) is in no run: no policy deletes
  it (name it to delete it).
- Only ``ok`` checkpoints count. A partial or broken one (a shard missing, truncated, or one we
  are not allowed to read) is neither counted among the kept nor deleted by a policy: counting
  it would delete an intact checkpoint in its place, and deleting it could destroy the only copy
  of weights we merely cannot read. It is listed as left alone, with the reason; naming it
  deletes it.
- ``Policy.run`` limits the policy to one run: every other checkpoint stays.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import OK, CheckpointInfo, DirectoryScan
from .naming import natural_key


class PlanError(ValueError):
    """The request cannot be planned (unknown checkpoint, bad policy); says why in one line."""


@dataclass
class Policy:
    """Which checkpoints to keep. A checkpoint is kept when any rule keeps it."""
    keep_last: int | None = None      # the newest N usable (ok) checkpoints of each run
    keep_every: int | None = None     # those whose number is a multiple of K
    order: str = "number"             # "number": number in the name, natural order; "counter"
    pinned: list[str] = field(default_factory=list)
    include_latest: bool = False      # the latest is kept unless this is set
    run: str | None = None            # apply to this run only (its id); None: every run


def order_key(c: CheckpointInfo, order: str):
    named = (c.number is not None, c.number if c.number is not None else 0)
    if order == "counter":
        p = c.training_progress()
        return (p is not None, p if p is not None else 0) + named + (natural_key(c.name),)
    return named + (natural_key(c.name),)


def _unusable_reason(c: CheckpointInfo) -> str:
    problem = f": {c.problems[0]}" if c.problems else ""
    return (f"left alone: it is {c.status}{problem}; a policy never keeps nor deletes a "
            "checkpoint that is not ok (name it explicitly to delete it)")


def _check(scan: DirectoryScan, policy: Policy, by_name: dict[str, CheckpointInfo]) -> None:
    if policy.order not in ("number", "counter"):
        raise PlanError(f"unknown order {policy.order!r} (number or counter)")
    if policy.keep_last is not None and policy.keep_last < 0:
        raise PlanError("keep-last must be 0 or more")
    if policy.keep_every is not None and policy.keep_every < 1:
        raise PlanError("keep-every must be 1 or more")
    unknown = [n for n in policy.pinned if n not in by_name]
    if unknown:
        raise PlanError(f"no checkpoint {unknown[0]!r} to pin in {scan.directory}")
    if policy.run is not None and policy.run not in {r.id for r in scan.runs}:
        runs = ", ".join(r.id for r in scan.runs) or "none"
        raise PlanError(f"no run {policy.run!r} in {scan.directory} (runs: {runs})")


def select(scan: DirectoryScan, policy: Policy, by_name: dict[str, CheckpointInfo]
           ) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(checkpoints the rules delete, why each checkpoint goes or stays, the checkpoints left
    alone because they are not ``ok``, with why)."""
    _check(scan, policy, by_name)
    pinned = set(policy.pinned)
    in_scope = [c for c in scan.checkpoints if policy.run is None or c.run == policy.run]
    left_alone = {c.name: _unusable_reason(c) for c in in_scope
                  if c.status != OK and c.name not in pinned}
    reasons: dict[str, str] = dict(left_alone)
    for c in scan.checkpoints:
        if c.name in left_alone:
            continue
        if c.run is None:
            reasons[c.name] = "has no number, so is in no training run: a policy never deletes it"
        elif policy.run is not None and c.run != policy.run:
            reasons[c.name] = f"in another run ({c.run})"
    candidates: list[str] = []
    keep: set[str] = set()
    for run in scan.runs:
        if policy.run is not None and run.id != policy.run:
            continue
        usable = sorted((by_name[n] for n in run.checkpoints if n not in left_alone),
                        key=lambda c: order_key(c, policy.order))
        keep.update(_kept_in_run(run.id, usable, policy, reasons))
        candidates += [c.name for c in usable]
    for n in pinned:
        keep.add(n)
        reasons[n] = "pinned"
    if scan.latest in by_name and scan.latest not in left_alone and not policy.include_latest:
        keep.add(scan.latest)
        reasons[scan.latest] = "the latest checkpoint"
    if policy.keep_last is None and policy.keep_every is None:
        return [], reasons, left_alone      # no rule that lets anything go
    doomed = [n for n in candidates if n not in keep]
    for n in doomed:
        reasons[n] = _why_it_goes(n, scan.latest, policy, by_name[n].run)
    return doomed, reasons, left_alone


def _kept_in_run(run: str, usable: list[CheckpointInfo], policy: Policy,
                 reasons: dict[str, str]) -> set[str]:
    """The names the rules keep among one run's usable checkpoints (in policy order)."""
    keep = set()
    if policy.keep_last:
        for c in usable[-policy.keep_last:]:
            keep.add(c.name)
            reasons[c.name] = f"one of the last {policy.keep_last} of run {run}"
    if policy.keep_every is not None:
        for c in usable:
            if c.number is not None and c.number % policy.keep_every == 0:
                keep.add(c.name)
                reasons.setdefault(c.name, f"its number is a multiple of {policy.keep_every}")
    return keep


def _why_it_goes(name: str, latest: str | None, policy: Policy, run: str | None) -> str:
    why = []
    if name == latest:
        why.append("the latest, explicitly included")
    if policy.keep_last is not None:
        why.append(f"older than the last {policy.keep_last} of run {run}")
    if policy.keep_every is not None:
        why.append(f"its number is not a multiple of {policy.keep_every}")
    return "; ".join(why)
