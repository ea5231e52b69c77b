"""Training runs: which checkpoints of a folder were saved by one training, in order.

A folder often holds more than one series: a CheckpointManager's ``ckpt-N`` beside Keras
ModelCheckpoint's ``weights.NN.weights.h5``, or a training restarted in the same folder whose
fresh ``save_counter`` wrote ``ckpt-1`` again over an older run's. History draws one line per
run and prune keeps "the last N" of each run, so the scan tells them apart, from what it
already has (names, writers, variable names and shapes, counters, modification times, the state
file): no TensorFlow, no tensor read.

How checkpoints are grouped
---------------------------
1. By naming pattern: the name with its number replaced by ``{N}`` (and a metric in it by
   ``{F}``): ``ckpt-{N}``, ``weights.{N}.weights.h5``, ``model.ckpt-{N}``, ``{N}`` (Orbax steps).
   A checkpoint without a number (``best.keras``, ``final.h5``, ``cp.ckpt``) is an entry of its
   own (``run = None``), never part of a numbered run.
2. By writer: the API that wrote it, its format variant aside (``TF1 Saver (V1 format)`` and
   ``TF1 Saver (name-based, V2 format)`` are one Saver); a checkpoint whose writer could not be
   told (its index unreadable) goes with the pattern's usual writer.
3. By model: checkpoints whose variable names (counters aside) share less than half of the
   smaller set are different models. Shapes do not split a run: a layer that grows along a run
   is shown as a change, not as another model. A checkpoint with no variables to compare (its
   index unreadable) stays with its neighbours.
4. Split where training restarted. Along the numbers, a checkpoint starts a new run when
   - a training counter (``save_counter``, ``step``, ``iterations``...) goes backwards;
   - it was saved before the previous one: listed earlier in the state file (TensorFlow lists in
     save order; when it lists both, its order is taken over their times: a file touched later,
     by a copy without times or a repair, says nothing), or else modified more than
     TIME_SLACK seconds earlier (copies and checkouts write
     a folder's files within moments of each other, in any order: a smaller difference says
     nothing; nor does the time of a checkpoint that is not ``ok``: a damaged file was changed
     after it was saved);
   - the previous one is the state file's latest and the state file does not list it: a
     CheckpointManager's latest is its highest number, so a higher one it does not know comes
     from another run (a restart overwrote the lower numbers of an older run).

Which run restarted which: the run holding the state file's latest is the newest (the state
file is rewritten at every save); otherwise the later state-file entries, then the later
modification times (beyond TIME_SLACK), then the higher numbers are newer.

Ids
---
A run's id is its pattern; runs sharing a pattern are told apart by ``#2``, ``#3``... in the
order they were written (the oldest keeps the bare pattern). Ids are unique in a scan and the
same on every rescan of the same folder; saving more checkpoints, or a new restart, leaves
the ids of the existing runs as they were.
"""
from __future__ import annotations

import functools
import itertools
import operator
from collections import Counter
from dataclasses import dataclass, field

from .model import OK, CheckpointInfo, Run, StateFileInfo
from .naming import name_pattern, natural_key

TIME_SLACK = 2.0          # seconds: modification times closer than this do not order two saves
SAME_MODEL_SHARE = 0.5    # of the smaller variable-name set that two checkpoints of one model share
_WRITER = operator.attrgetter("writer")


@dataclass
class _Segment:
    """Checkpoints of one pattern, writer and model between two restarts, by number."""
    pattern: str
    cluster: int              # which (writer, model) group of its pattern
    members: list[CheckpointInfo] = field(default_factory=list)
    id: str = ""
    restarted_from: str | None = None


def find_runs(checkpoints: list[CheckpointInfo], state: StateFileInfo) -> list[Run]:
    """The runs of a scanned folder (the checkpoints are not changed: see ``run_ids``)."""
    by_pattern: dict[str, list[CheckpointInfo]] = {}
    for c in checkpoints:
        pattern = _pattern(c)
        if pattern is not None:
            by_pattern.setdefault(pattern, []).append(c)
    saved_at = {name: i for i, name in enumerate(state.listed)}   # the state file's save order
    newest_first = functools.cmp_to_key(functools.partial(_compare, saved_at, state.latest))
    runs: list[Run] = []
    for pattern, members in sorted(by_pattern.items(), key=lambda kv: natural_key(kv[0])):
        members.sort(key=lambda c: (c.number, c.name))
        segments = [segment for cluster, group in enumerate(_by_writer_and_model(members))
                    for segment in _split_at_restarts(group, pattern, cluster, saved_at, state)]
        segments.sort(key=newest_first)          # oldest first
        _name(segments)
        runs += [_run(s) for s in segments]
    return runs


def run_ids(runs: list[Run]) -> dict[str, str]:
    """Checkpoint name -> the id of its run (``CheckpointInfo.run``; unnumbered ones absent)."""
    return {name: r.id for r in runs for name in r.checkpoints}


def run_of_state_file(runs: list[Run], state: StateFileInfo) -> Run | None:
    """The run the state file describes: the one holding its latest, else the one it lists
    most of (a state file lists one CheckpointManager's checkpoints)."""
    if state.latest is not None:
        for r in runs:
            if state.latest in r.checkpoints:
                return r
    listed = set(state.listed)
    counts = [(len(listed.intersection(r.checkpoints)), i) for i, r in enumerate(runs)]
    best = max(counts, default=(0, -1))
    return runs[best[1]] if best[0] else None


# --- grouping ---------------------------------------------------------------------------------

def _pattern(c: CheckpointInfo) -> str | None:
    """The naming pattern of a numbered checkpoint; a number the format found elsewhere than
    in the name makes the name a pattern of its own."""
    if c.number is None:
        return None
    return name_pattern(c.name) or c.name


def _writer_kind(writer: str) -> str:
    """The API, its format variant aside: ``TF1 Saver (V1 format)`` -> ``TF1 Saver``."""
    return (writer or "").split(" (", 1)[0].strip()


def _by_writer_and_model(members: list[CheckpointInfo]) -> list[list[CheckpointInfo]]:
    """``members`` (one pattern, by number) grouped by writer kind and model."""
    writers = Counter(map(_WRITER, members))                  # a few writers
    known = Counter()
    for writer, count in writers.items():
        kind = _writer_kind(writer)
        if kind and not kind.startswith("unknown"):
            known[kind] += count
    usual = known.most_common(1)[0][0] if known else ""
    kinds = {w: k if k in known else usual for w, k in zip(writers, map(_writer_kind, writers))}
    names = _NameSets()
    groups: list[tuple[str, frozenset, list[CheckpointInfo]]] = []
    for c in members:
        kind = kinds[c.writer]
        family = c.family() if len(members) > 1 else frozenset()
        for i, (g_kind, g_family, g_members) in enumerate(groups):
            if g_kind == kind and (g_family is family or names.same_model(g_family, family)):
                g_members.append(c)
                if family:
                    groups[i] = (g_kind, family, g_members)
                break
        else:
            groups.append((kind, family, [c]))
    return [g[2] for g in groups]


class _NameSets:
    """Whether two families (sets of (name, shape)) are one model, by their names; the name
    sets are made once per family object (checkpoints of one layout share theirs)."""

    def __init__(self):
        self._names: dict[int, tuple[frozenset, frozenset]] = {}

    def _of(self, family: frozenset) -> frozenset:
        key = id(family)
        if key not in self._names:       # (the family is kept too: its id stays its own)
            self._names[key] = (family, frozenset(name for name, _shape in family))
        return self._names[key][1]

    def same_model(self, a: frozenset, b: frozenset) -> bool:
        if not a or not b or a is b or a == b:
            return True
        na, nb = self._of(a), self._of(b)
        return len(na & nb) >= SAME_MODEL_SHARE * min(len(na), len(nb))


# --- restarts ---------------------------------------------------------------------------------

def _split_at_restarts(members: list[CheckpointInfo], pattern: str, cluster: int,
                       saved_at: dict[str, int], state: StateFileInfo) -> list[_Segment]:
    """One writer's and model's checkpoints of ``pattern`` (by number), cut where a
    checkpoint belongs to another run than the one numbered before it."""
    segments = [_Segment(pattern, cluster, [members[0]])]
    seen = dict(members[0].counters)      # each counter's last value along the run
    for a, b in itertools.pairwise(members):
        if _restarts(a, b, seen, saved_at, state.latest):
            segments.append(_Segment(pattern, cluster, [b]))
            seen = dict(b.counters)
        else:
            segments[-1].members.append(b)
            seen.update(b.counters)
    return segments


def _restarts(a: CheckpointInfo, b: CheckpointInfo, seen: dict, saved_at: dict[str, int],
              latest: str | None) -> bool:
    """Whether ``b``, numbered next after ``a``, belongs to another run than ``a``'s."""
    if a.name in saved_at and b.name in saved_at:   # the state file's order, over the times
        if saved_at[b.name] < saved_at[a.name]:
            return True                               # saved before a, by the state file
    elif b.mtime < a.mtime - TIME_SLACK and a.status == b.status == OK:
        return True                                   # written clearly before a
    if a.name == latest and b.name not in saved_at:
        return True                                   # above the state file's latest, unknown to it
    for k, v in b.counters.items():
        if v < seen.get(k, v):
            return True                               # a counter went backwards
    return False


def _compare(saved_at: dict[str, int], latest: str | None, x: _Segment, y: _Segment) -> int:
    """-1 when ``x`` was written before ``y`` (see the module's docstring), 1 after."""
    for key in (lambda s: any(c.name == latest for c in s.members),
                lambda s: max((saved_at.get(c.name, -1) for c in s.members), default=-1)):
        kx, ky = key(x), key(y)
        if kx != ky:
            return -1 if kx < ky else 1
    tx, ty = (max(c.mtime for c in s.members) for s in (x, y))
    if abs(tx - ty) > TIME_SLACK:
        return -1 if tx < ty else 1
    nx, ny = x.members[-1].number, y.members[-1].number
    return (nx > ny) - (nx < ny)


def _name(segments: list[_Segment]) -> None:
    """Ids (pattern, then #2, #3 in the order written) and which run each restart followed."""
    previous: dict[int, str] = {}       # cluster -> its latest segment's id so far
    for i, s in enumerate(segments):
        s.id = s.pattern if i == 0 else f"{s.pattern}#{i + 1}"
        s.restarted_from = previous.get(s.cluster)
        previous[s.cluster] = s.id


def _run(s: _Segment) -> Run:
    writers = Counter(c.writer for c in s.members)
    top = max(writers.values())
    writer = next(c.writer for c in reversed(s.members) if writers[c.writer] == top)
    return Run(id=s.id, pattern=s.pattern, writer=writer,
               checkpoints=[c.name for c in s.members], restarted_from=s.restarted_from)
