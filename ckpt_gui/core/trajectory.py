"""A run's history: one variable (or many, for small multiples) along the checkpoints of each
training run: L2 norm, mean, std, relative change since the run's previous checkpoint, health
flags.

- Variables are matched across checkpoints and formats by ``VariableInfo.identity`` (else by
  a key the identity has elsewhere: see ``_finder``); a shape that changes along a run is a
  point with its own shape (its change is not computed), never "absent".
- Checkpoints are grouped by ``CheckpointInfo.run`` and ordered as ``DirectoryScan.runs``
  lists them (else by training step, number, name). A run is one series: nothing is ever
  compared or drawn across two runs, a restart included. A checkpoint with no run (an
  unnumbered ``best.keras``) is a series of its own, one point with no change.
- Streamed: one checkpoint's tensor is read at a time, in pieces, each counted (as
  ``stats.tensor_stats`` would) and compared with the run's previous tensor while it is in
  cache; only that previous tensor is kept, so memory is bounded by two tensors of one
  variable (in two arrays reused in turns), never the folder. Flags come from ``health``.
- The x axis is one unit for the whole result (plot and table alike): the training step when
  every point has one, else the checkpoint number when every point has one, else the order.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from . import chunked, dtypes, health
from .health import Flag
from .model import BIAS, WEIGHT, CheckpointInfo, DirectoryScan, TensorStats, VariableInfo
from .naming import natural_key
from .reading import read_tensor
from .stats import KERNELS_FROM, StatsAccumulator, tensor_stats

STEP, NUMBER, ORDER = "training step", "checkpoint number", "order"
_CHUNK = 1 << 18  # elements per step of the change's sum: its float64 buffer stays 2 MiB
_PIECE_BYTES = 4 << 20   # read at a time: counted and compared while in cache

Progress = Callable[[int, int, str], None]


@dataclass
class TrajectoryPoint:
    checkpoint: str
    run: str | None
    step: int | float | None        # the checkpoint's training progress (its largest counter)
    number: int | None
    order: int                      # position among the checkpoints, runs one after another
    shape: tuple[int, ...]
    dtype: str
    stats: TensorStats | None       # None when the tensor could not be read
    rel_change: float | None = None  # percent: 100·‖this − previous‖ / ‖previous‖,
                                     # previous in the same run with the same shape and a
                                     # norm above 0; None through NaN/Inf
    flags: tuple[Flag, ...] = ()
    problem: str | None = None      # why the tensor could not be read
    x: float = 0.0                  # on the trajectory's x axis (Trajectory.x_label)
    key: str = ""                   # the variable's key in this checkpoint

    @property
    def series(self) -> str:
        """The series (line) it belongs to: its run, or itself when it has none."""
        return self.run if self.run is not None else self.checkpoint

    def row(self) -> dict:
        """One JSON row (``ckpt-inspect trajectory --json``)."""
        s = self.stats
        row = {"checkpoint": self.checkpoint, "run": self.run, "step": self.step,
               "number": self.number, "shape": list(self.shape),
               "l2": _finite(s and s.l2), "mean": _finite(s and s.mean),
               "std": _finite(s and s.std), "rel_change": _finite(self.rel_change),
               "flags": [f.to_dict() for f in self.flags]}
        if self.problem:
            row["problem"] = self.problem
        return row


@dataclass
class Trajectory:
    identity: str
    name: str                        # the display name, as the first checkpoint holding it says
    role: str
    x_label: str                     # STEP, NUMBER or ORDER
    points: list[TrajectoryPoint] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # checkpoints asked for without it
    cancelled: bool = False

    def series(self) -> list[tuple[str, list[TrajectoryPoint]]]:
        """(series label, its points in run order): one line each, never joined."""
        groups: dict[str, list[TrajectoryPoint]] = {}
        for p in self.points:
            groups.setdefault(p.series, []).append(p)
        return list(groups.items())

    def flags(self) -> tuple[Flag, ...]:
        """Every flag of its points, each (kind, message) once."""
        seen = {}
        for p in self.points:
            for f in p.flags:
                seen.setdefault((f.kind, f.message), f)
        return tuple(seen.values())


def runs_of(scan: DirectoryScan, run: str | None = None) -> list[tuple[str, list[CheckpointInfo]]]:
    """The checkpoints grouped by run, each group in training order: ``scan.runs``' order
    when it lists them, else by step, number and name; a checkpoint without a run is a group of
    its own (keyed by its name). ``run``: only that run's group."""
    listed = {name: (i, j) for i, r in enumerate(scan.runs) for j, name in enumerate(r.checkpoints)}
    ordered = sorted(scan.checkpoints, key=lambda c: (listed.get(c.name, (math.inf, 0)),
                                                       _training_key(c)))
    groups: dict[str, list[CheckpointInfo]] = {}
    for c in ordered:
        groups.setdefault(c.run if c.run is not None else c.name, []).append(c)
    if run is not None:
        return [(run, groups[run])] if run in groups and groups[run][0].run == run else []
    return list(groups.items())


def _training_key(c: CheckpointInfo) -> tuple:
    step = c.training_progress()
    return (step is None, step or 0, c.number is None, c.number or 0, natural_key(c.name))


def weights_and_biases(scan: DirectoryScan, run: str | None = None) -> list[str]:
    """The identities of every weight and bias of the checkpoints, in the order they first
    appear (the small multiples' order); one whose key an earlier one had is the same variable
    (see ``_finder``) and not listed again."""
    seen: dict[str, None] = {}
    keys: set[str] = set()
    for _, members in runs_of(scan, run):
        for c in members:
            for v in c.variables:
                if v.role in (WEIGHT, BIAS) and v.identity not in seen and v.name not in keys:
                    seen[v.identity] = None
                keys.add(v.name)
    return list(seen)


def resolve(scan: DirectoryScan, name: str) -> str | None:
    """The identity of the variable the user named: by identity, display name, key or path."""
    for attr in ("identity", "display_name", "name", "path", "model_path"):
        for c in scan.checkpoints:
            for v in c.variables:
                if getattr(v, attr) == name:
                    return v.identity
    return None


def trajectories(scan: DirectoryScan, identities: Iterable[str], *, run: str | None = None,
                 progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
                 each: Callable[[Trajectory], None] | None = None) -> list[Trajectory]:
    """The trajectory of each identity, one variable after the other (each checkpoint's tensor
    read once per variable); ``each`` receives each one as soon as it is complete. Stops early
    when ``cancelled()``; the last trajectory is then marked ``cancelled``."""
    identities = list(identities)
    groups = runs_of(scan, run)
    index = {c.name: _Lookup(c) for _, members in groups for c in members}
    finders = {identity: _finder(index, identity) for identity in identities}
    total = sum(finders[identity](name) is not None for identity in identities for name in index)
    counter = _Counter(total, progress, cancelled)
    done = []
    for identity in identities:
        t = _follow(groups, finders[identity], identity, counter)
        done.append(t)
        if each is not None:
            each(t)
        if t.cancelled:
            break
    counter.finish()
    return done


def trajectory(scan: DirectoryScan, identity: str, **kwargs) -> Trajectory:
    """One variable's trajectory (see ``trajectories``)."""
    return trajectories(scan, [identity], **kwargs)[0]


class _Counter:
    def __init__(self, total: int, progress: Progress | None, cancelled):
        self.total, self.done = total, 0
        self._progress, self._cancelled = progress, cancelled

    def tick(self, what: str) -> bool:
        """Report one more tensor about to be read; False when cancelled."""
        if self._cancelled is not None and self._cancelled():
            return False
        if self._progress is not None:
            self._progress(self.done, self.total, what)
        self.done += 1
        return True

    def finish(self) -> None:
        if self._progress is not None:
            self._progress(self.total, self.total, "")


class _Lookup:
    """A checkpoint's variables by identity, and by key."""

    def __init__(self, c: CheckpointInfo):
        self.by_identity: dict[str, VariableInfo] = {}
        self.by_key: dict[str, VariableInfo] = {}
        for v in c.variables:
            self.by_identity.setdefault(v.identity, v)
            self.by_key[v.name] = v

    def __contains__(self, identity: str) -> bool:
        return identity in self.by_identity


def _finder(index: dict[str, _Lookup], identity: str) -> Callable[[str], VariableInfo | None]:
    """checkpoint name -> its variable of this identity; else the variable with a key the
    identity has in other checkpoints (models whose layers Keras numbered apart, ``dense`` and
    ``dense_5``, keep the key ``layer_with_weights-1/kernel/...``)."""
    keys = {look.by_identity[identity].name for look in index.values() if identity in look}

    def find(name: str) -> VariableInfo | None:
        look = index[name]
        v = look.by_identity.get(identity)
        if v is None:
            v = next((look.by_key[k] for k in keys if k in look.by_key), None)
        return v
    return find


def _follow(groups, find, identity: str, counter: _Counter) -> Trajectory:
    t = Trajectory(identity, identity, "", ORDER)
    order = 0
    for _, members in groups:
        held = []
        for c in members:
            order += 1
            v = find(c.name)
            if v is None:
                t.missing.append(c.name)
            else:
                held.append((c, v, order))
        if not _follow_run(t, members[0].run, held, counter):
            t.cancelled = True
            break
    return _finish(t)


def _follow_run(t: Trajectory, run: str | None, held: list, counter: _Counter) -> bool:
    """The points of one run (``held``: its (checkpoint, variable, order) in run order) onto
    ``t``; False when cancelled. Each tensor is read in pieces, counted and compared with the
    run's previous one as they pass, into one of two arrays taken in turns: two tensors in
    memory at most."""
    points: list[TrajectoryPoint] = []
    previous: tuple[np.ndarray, TrajectoryPoint] | None = None
    spare = None     # the array of the tensor before the previous one, to be read into
    unchanged = True
    for c, v, order in held:
        if not t.points:
            t.name, t.role = v.display_name, v.role
        if not counter.tick(f"{v.display_name} in {c.name}"):
            return False
        point = TrajectoryPoint(c.name, c.run, c.training_progress(), c.number, order,
                                tuple(v.shape), v.dtype, None, key=v.name)
        t.points.append(point)
        points.append(point)
        got = _Reading(c, v, previous[0] if previous else None, spare)
        point.problem = got.problem
        if got.value is None:
            unchanged = False
            previous = spare = None
            continue
        point.stats = got.stats
        point.flags = health.tensor_flags(got.value, v.role, point.stats)
        if previous is not None:
            unchanged &= _change(got, point, previous[1])
            jump = health.jump_flag(point.stats.l2, previous[1].stats.l2, previous[1].checkpoint)
            point.flags += (jump,) if jump is not None else ()
        spare = previous[0] if previous is not None else None
        previous = (got.value, point)
    if run is not None and unchanged and len(points) >= 2:
        frozen = health.frozen_flag(len(points), run)
        for p in points:
            p.flags += (frozen,)
    return True


class _Reading:
    """One checkpoint's tensor read in pieces (chunked.pieces: checksums checked), each
    counted (statistics, no histogram) and compared with ``previous`` (Σ(value − previous)²)
    while it is in cache, and kept in ``into`` when that has the tensor's size and type
    (else in a new array). ``value`` None: ``problem`` says why it could not be read."""

    def __init__(self, c: CheckpointInfo, v: VariableInfo, previous: np.ndarray | None,
                 into: np.ndarray | None):
        self.value: np.ndarray | None = None
        self.stats: TensorStats | None = None
        self.squared: float | None = None    # Σ(value − previous)², when comparable
        self.problem: str | None = None
        if v.readable is False:
            self.problem = v.problem or "cannot be read"
            return
        try:
            self._read(c, v, previous, into)
        except Exception as e:  # a damaged checkpoint's error is a point's problem, not the end
            self.value = None
            self.problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__

    def _read(self, c, v, previous, into) -> None:
        dtype = chunked.numeric_dtype(v)
        if dtype is None:   # strings: whole, the same as the previous one or not
            self.value = np.asarray(read_tensor(c, v.name))
            self.stats = tensor_stats(self.value, bins=0)
            if previous is not None and previous.shape == self.value.shape \
                    and previous.dtype == self.value.dtype:
                self.squared = 0.0 if np.array_equal(self.value, previous) else math.nan
            return
        shape = tuple(v.shape)
        value = into if into is not None and (into.shape, into.dtype) == (shape, dtype) \
            else np.empty(shape, dtype)
        flat = value.reshape(-1)
        before = _comparable(previous, value)
        per = before.size // max(flat.size, 1) if before is not None else 1  # complex: 2
        kernels = flat.size >= KERNELS_FROM   # (as tensor_stats: numba for large tensors)
        acc = StatsAccumulator(dtype, bins=0, workers=1, kernels=kernels)
        at, squared = 0, 0.0
        for piece in chunked.pieces(c, v, _PIECE_BYTES, into=flat):
            acc.add(piece)
            if before is not None:
                squared += _squared_distance(_flat_real(piece),
                                             before[at * per:(at + piece.size) * per], kernels)
            at += piece.size
        self.value, self.stats = value, acc.result()
        self.squared = squared if before is not None else None


def _comparable(previous: np.ndarray | None, value: np.ndarray) -> np.ndarray | None:
    """``previous`` flat, as real numbers (see _flat_real), when its shape and numeric type
    are those of ``value``: the change is measured between them."""
    if previous is None or previous.shape != value.shape or previous.dtype != value.dtype:
        return None
    if value.dtype.kind not in "fciub" and not dtypes.is_low_precision(value.dtype):
        return None
    return _flat_real(previous)


def _change(got: _Reading, point: TrajectoryPoint, before: TrajectoryPoint) -> bool:
    """Set the point's change since ``before`` in percent of its norm; True when the values
    did not change at all."""
    if got.squared is None:
        return False   # another shape or type
    distance = math.sqrt(got.squared) if got.squared >= 0 else math.nan
    base = before.stats.l2
    if math.isfinite(distance) and base and math.isfinite(base) and base > 0:
        point.rel_change = 100.0 * distance / base
    return distance == 0.0


def _squared_distance(fa: np.ndarray, fb: np.ndarray, kernels: bool) -> float:
    """Σ(fa − fb)² in float64: one compiled loop (kernels.py) for float32 and float64 (when
    ``kernels``), else in chunks widened to float64, squares summed by multiply and sum (not
    np.dot: a BLAS call per chunk is ten times slower here)."""
    if kernels and fa.dtype in (np.float32, np.float64) and fa.dtype == fb.dtype:
        from .kernels import squared_distance
        return float(squared_distance(fa, fb))
    buf = np.empty(min(_CHUNK, fa.size), np.float64)
    total = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(0, fa.size, _CHUNK):
            d = buf[: min(_CHUNK, fa.size - i)]
            d[...] = fa[i:i + d.size]   # (casts any dtype, the low-precision ones included)
            np.subtract(d, fb[i:i + d.size], out=d)
            np.multiply(d, d, out=d)
            total += float(d.sum())
    return total


def _flat_real(a: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(a).reshape(-1)
    if flat.dtype.kind == "c":
        return flat.view(flat.real.dtype)
    return flat.view(np.uint8) if flat.dtype.kind == "b" else flat


def flag_variables(scan: DirectoryScan, found: Iterable[Trajectory]) -> set[str]:
    """Put each read point's flags on its checkpoint's variable, where the checkpoints and
    variables panels (and the JSON) show them; the names of the checkpoints changed."""
    changed = set()
    for t in found:
        for p in t.points:
            c = scan.checkpoint(p.checkpoint)
            v = c.variable(p.key) if c is not None and p.stats is not None else None
            if v is not None and v.flags != p.flags:
                v.flags = p.flags
                changed.add(c.name)
    return changed


def _finish(t: Trajectory) -> Trajectory:
    """Put every point on the one x axis its points allow."""
    pts = t.points
    if pts and all(p.step is not None for p in pts):
        t.x_label, x_of = STEP, (lambda p: float(p.step))
    elif pts and all(p.number is not None for p in pts):
        t.x_label, x_of = NUMBER, (lambda p: float(p.number))
    else:
        t.x_label, x_of = ORDER, (lambda p: float(p.order))
    t.points = [replace(p, x=x_of(p)) for p in pts]
    return t


def _finite(v) -> float | None:
    """A number for JSON: None for missing, NaN or infinite."""
    return float(v) if v is not None and math.isfinite(v) else None
