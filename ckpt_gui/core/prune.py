"""Delete old checkpoints safely: a plan to read first, then deletion that never breaks the folder.

    plan = plan_prune(scan, policy=Policy(keep_last=3))      # or delete=["ckpt-4", ...]
    plan.files, plan.bytes, plan.kept, plan.state_after      # what will happen, nothing touched
    result = execute_prune(plan, progress=..., cancelled=...)
    undo_prune(result)                                       # from the trash, where possible
    plan_orphans(scan) -> Plan                               # orphan files, offered separately

Everything here is plain Python (no Qt); a GUI runs ``execute_prune`` in a worker thread with its
``progress(done, total, what)`` and ``cancelled()`` callbacks.

Which files go
--------------
Only a checkpoint's own files, matched on the exact prefix ``P``: ``P.index``, ``P.data-K-of-N``,
``P.meta`` (V2); ``P`` and ``P.meta`` (V1); the file itself (HDF5, .keras). ``ckpt_1`` never takes
``ckpt_10``'s files. Every file must sit directly in the scanned directory (no ``..``, no path
through a symlinked folder); a symbolic link is removed as a link and its target, wherever it is,
is never touched. SavedModel folders are refused (they are not checkpoints we can take apart).

Which checkpoints a policy may choose
------------------------------------
``prunepolicy.py``: the rules apply within each training run, never to an unnumbered checkpoint,
and only to ``ok`` ones (a partial or broken checkpoint is listed in ``skipped`` with the reason;
naming it explicitly, ``delete=[...]``, deletes it). When the latest goes, a checkpoint of the run
the state file describes takes its place first (an ``ok`` one before a damaged one), so the
state file keeps describing its run. Planning is linear in files and checkpoints (a folder of
50,000 plans in seconds).

Order of operations (crash safety)
----------------------------------
1. The state file first (what it says afterwards: ``stateedit.py``). Just before writing it we
   read it again (a training process may have saved since the plan was made), drop the entries
   of the checkpoints about to go, move
   ``model_checkpoint_path`` to the newest checkpoint that stays if it named one that goes, and
   write it atomically (temporary file, fsync, rename) with paths relative to the folder; if no
   checkpoint remains for it to name, we remove it (TensorFlow rejects a state file without a
   latest). From this moment on the state file names only checkpoints that stay whole, and every
   later step removes files nobody names. Dying before the rename changes nothing; dying right
   after leaves all checkpoints complete (the doomed ones merely unlisted).
   The other way round (files first) would leave, for a while, a state file that names a deleted
   checkpoint: tf.train.latest_checkpoint returns None and a resuming job starts from scratch.
2. Then the checkpoints one at a time, oldest first, each beginning with the file that makes it a
   checkpoint: ``P.index`` for a V2 bundle (TensorFlow's own test that a checkpoint exists --
   checkpoint_exists, latest_checkpoint -- is a match for ``P.index``, and the engine's scan finds
   V2 checkpoints by their index), the file itself for V1/HDF5; then the data shards; the ``.meta``
   graph last. Whatever an interruption leaves of a half-deleted checkpoint is ``P.data-*`` /
   ``P.meta`` without an index: no reader takes it for a checkpoint, and the scan lists those files
   as orphans (``.data`` without ``.index``, a ``.meta`` without weights), which ``plan_orphans``
   offers to clean. Deleting data first would leave ``P.index`` alone: TensorFlow would still see a
   checkpoint there and fail only when restoring it; the scan would call it broken.
3. A checkpoint whose first file cannot be removed is still whole: its state-file entry (and the
   latest, if it was) is merged back (read again, then written atomically), so the state file stays
   true. Cancelling is honoured between checkpoints only, so it never leaves a half-deleted one.
4. Undo goes backwards: data shards and ``.meta`` back first, the index last, then the entries are
   merged into the state file as it is then (entries a training process wrote since are kept; the
   latest goes back only if nobody changed it since).

In a bucket (``s3://``, ``gs://``, any URL fsspec knows) the plan and the order are the same, one
request each, under the store's deadline (storage.py): the state file first, one PUT of its whole
new text (an object is replaced whole, never seen half written; there is no rename), then each
checkpoint's index, then its data, one DELETE each (a batch delete keeps no order). A checkpoint
that is a folder has no rename in a bucket: each of its objects (listed at any depth) is deleted
in the order its format's ``deletion_rank`` gives, what makes it a checkpoint first. A bucket has
no trash: the plan must be permanent (``to_trash=False``). When the store cannot be reached half
way, the deletion stops there: what is left is what a local interruption leaves (the state file
names only whole checkpoints; at most one checkpoint is data without an index).

Between our reading the state file and renaming the new one there are microseconds in which a
training process could write it; TensorFlow takes no lock, so nothing can close that window
entirely. A running tf.train.CheckpointManager also keeps its list in memory and rewrites the whole
state file at its next save, so it may list again a checkpoint pruned under it; that entry then
points at nothing (its own sweep skips missing files and tf.train.latest_checkpoint still names its
newest save) and the scan reports it.
"""
from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import formats, statefile, storage, trash
from .model import OK, CheckpointInfo, DirectoryScan, StateFileInfo
from .prunepolicy import PlanError, Policy, order_key, select
from .runs import run_of_state_file
from .statefile import RawState
from .stateedit import (STATE_KEEP, STATE_NONE, STATE_REMOVE, STATE_REWRITE,  # noqa: F401
                        merge_back, same_state, state_after_deletion, state_text, store_state)

Progress = Callable[[int, int, str], None]
CHECKPOINTS, ORPHANS = "checkpoints", "orphans"
LEFTOVER = "leftover"        # kind of an orphan an interrupted permanent deletion left
ORPHAN_MIN_AGE = 120.0       # seconds: younger orphans may be a save in progress


@dataclass
class PlannedFile:
    name: str                  # relative to the directory
    bytes: int                 # what removing it frees (0 for a symbolic link)
    checkpoint: str | None     # None for an orphan
    kind: str
    link_target: str | None = None


@dataclass
class Plan:
    directory: str
    kind: str                                  # CHECKPOINTS or ORPHANS
    deleted: list[str]                         # checkpoint (or orphan) names, in deletion order
    files: list[PlannedFile]                   # in deletion order
    kept: list[str]
    reasons: dict[str, str]                    # name -> why it goes / why it stays
    latest_before: str | None
    latest_after: str | None
    state_action: str
    state_before: str | None                   # the state file's text now
    state_after: str | None                    # its text afterwards (None: absent/removed)
    to_trash: bool = True
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # refused name -> why
    fallback_latest: list[str] = field(default_factory=list)  # who may become latest, best first
    not_ok: set[str] = field(default_factory=set)   # partial or broken: never made the latest
    _by_owner: dict[str | None, list[PlannedFile]] | None = field(default=None, repr=False,
                                                                  compare=False)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def empty(self) -> bool:
        return not self.files

    def files_of(self, name: str) -> list[PlannedFile]:
        """The files of one checkpoint (or the orphan ``name``), in deletion order."""
        if self._by_owner is None:   # built once: a plan may hold 100,000 files
            self._by_owner = {}
            for f in self.files:
                owner = f.name.rstrip("/") if self.kind == ORPHANS else f.checkpoint
                self._by_owner.setdefault(owner, []).append(f)
        return self._by_owner.get(name.rstrip("/") if self.kind == ORPHANS else name, [])


@dataclass
class UndoRecord:
    """What undo needs: where each file went and the state file around the deletion."""
    trashed: dict[str, list[trash.TrashedFile]]   # name -> its files, in deletion order
    state_before: RawState | None                # as re-read just before our write
    latest_written: str | None                   # the latest our write named (None: removed)


@dataclass
class PruneResult:
    directory: str
    kind: str
    to_trash: bool
    deleted: list[str] = field(default_factory=list)       # names entirely gone
    partial: dict[str, list[str]] = field(default_factory=dict)  # name -> leftover files
    failed: dict[str, str] = field(default_factory=dict)   # name -> why (still whole)
    not_started: list[str] = field(default_factory=list)   # cancelled before these
    files: list[str] = field(default_factory=list)         # files removed
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False
    state_action: str = STATE_KEEP
    state_after: str | None = None
    latest: str | None = None          # what the state file names afterwards
    undo: UndoRecord | None = None
    undo_problem: str | None = None    # why undo is not possible, when it is not
    scan_after: DirectoryScan | None = None
    stopped: str | None = None         # the store could not be reached half way: one sentence

    @property
    def ok(self) -> bool:
        return not (self.errors or self.partial or self.failed)

    @property
    def can_undo(self) -> bool:
        return self.undo is not None and self.undo_problem is None and bool(self.undo.trashed)


@dataclass
class RestoreResult:
    directory: str
    restored: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    state_after: str | None = None
    latest: str | None = None
    scan_after: DirectoryScan | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


# --- planning ---------------------------------------------------------------------------------

def safe_path(directory: str, rel: str) -> str:
    """The absolute path of ``rel`` inside ``directory``; ValueError when it would leave it
    (``..``, absolute, a path through anything but real folders: a symbolic link may lead
    anywhere). A plain name is its own proof: the file's folder is ``directory`` itself, so no
    realpath (two per file made planning 100,000 files take seconds); a path into a folder a
    format claims whole (an unzipped .keras model) costs one lstat per folder on the way."""
    rel = rel.rstrip("/")
    parts = rel.split("/")
    if (not rel or "\\" in rel or any(p in ("", ".", "..") for p in parts)
            or rel == statefile.STATE_FILE):
        raise ValueError(f"{rel!r} is not a file inside {directory}")
    for i in range(1, len(parts)):
        if not _real_folder(os.path.join(directory, *parts[:i])):
            raise ValueError(f"{rel!r} is not a file inside {directory}: {parts[i - 1]!r} is "
                             "not a folder of it")
    return os.path.join(directory, *parts)


def _real_folder(path: str) -> bool:
    """Whether ``path`` is a folder itself, not a symbolic link to one (a bucket has no links)."""
    if storage.is_url(path):
        return storage.is_dir(path)
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _planned_url(directory: str, rel: str, checkpoint: str, kind: str) -> list[PlannedFile]:
    """The objects of a bucket to delete ([] when gone): ``rel`` itself, or every object under
    it when it is a folder. A bucket has no folder to rename away or remove: a folder is gone
    with its last object, so its format's deletion_rank orders them (an Orbax step stops being a
    committed step with its first DELETE)."""
    path = safe_path(directory, rel)
    try:
        st = storage.stat_of(path)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        return [PlannedFile(rel, st.st_size, checkpoint, kind)]
    found = storage.find_objects(path)
    for name in found:
        safe_path(directory, f"{rel}/{name}")   # (a name with "//" or ".." is refused)
    return [PlannedFile(f"{rel}/{name}", size, checkpoint, kind)
            for name, size in found.items()]


def _planned_file(directory: str, rel: str, checkpoint: str | None, kind: str,
                  warnings: list[str], folder_bytes: int | None = None) -> PlannedFile | None:
    path = safe_path(directory, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        warnings.append(f"{rel} is a symbolic link to {target}: only the link is removed, "
                        "its target is kept")
        return PlannedFile(rel, 0, checkpoint, kind, link_target=target)
    if not stat.S_ISDIR(st.st_mode):
        size = st.st_size
    else:   # a checkpoint's folder weighs what its format says (its files may be listed apart)
        size = _tree_bytes(path) if folder_bytes is None else folder_bytes
    return PlannedFile(rel, size, checkpoint, kind)


def _tree_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _read_raw(directory: str) -> tuple[RawState | None, str | None, str | None]:
    """(parsed state, its text, a problem reading it)."""
    try:
        text = statefile.read_state_text(directory)
    except (OSError, ValueError) as e:
        return None, None, f"the state file cannot be read ({e}); it is left as it is"
    if text is None:
        return None, None, None
    return statefile.parse_state_text(text), text, None


def _fallback_latest(scan: DirectoryScan, doomed: set[str]) -> list[str]:
    """Checkpoints that may become the latest, best first: TensorFlow formats, those of the
    run the state file describes first (it goes on describing that run), ``ok`` first, then the
    highest number, training counter, modification time (the scan's rule)."""
    described = run_of_state_file(scan.runs, scan.state_file)
    rest = [c for c in scan.checkpoints
            if c.name not in doomed and formats.for_name(c.format).named_by_state_file]
    rest.sort(key=lambda c: (described is not None and c.run == described.id, c.status == OK,
                             c.number if c.number is not None else -1,
                             c.training_progress() or -1, c.mtime), reverse=True)
    return [c.name for c in rest]


def plan_prune(scan: DirectoryScan, *, delete: Iterable[str] | None = None,
               policy: Policy | None = None, to_trash: bool = True) -> Plan:
    """What deleting these checkpoints (or applying this policy) does. Touches nothing.

    ``delete`` names checkpoints explicitly (the latest too, if named, and whatever its status;
    pinned ones in ``policy`` are still kept); ``policy`` chooses by rules, keeps the latest
    unless ``include_latest``, and leaves alone every checkpoint that is not ``ok`` (listed in
    ``skipped``). Linear in the number of checkpoints and files.
    """
    directory = scan.directory
    _refuse_trash_in_bucket(directory, to_trash)
    by_name = {c.name: c for c in scan.checkpoints}
    skipped: dict[str, str] = {}
    if delete is not None:
        names = list(dict.fromkeys(delete))
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise PlanError(f"no checkpoint {unknown[0]!r} in {directory} "
                            f"(checkpoints: {_some_names(scan)})")
        pinned = set(policy.pinned) if policy else set()
        reasons = {n: "pinned" for n in names if n in pinned}
        reasons.update({n: "selected" for n in names if n not in pinned})
        doomed = [n for n in names if n not in pinned]
    elif policy is not None:
        doomed, reasons, skipped = select(scan, policy, by_name)
    else:
        raise PlanError("say which checkpoints to delete, or give a policy")

    warnings: list[str] = []
    files: list[PlannedFile] = []
    order = {c.name: i for i, c in enumerate(
        sorted(scan.checkpoints, key=lambda c: order_key(c, "number")))}
    final: list[str] = []
    for name in sorted(doomed, key=order.__getitem__):
        mine, why = _checkpoint_files(directory, by_name[name], warnings)
        if why is not None:
            skipped[name] = why
            continue
        files.extend(mine)
        final.append(name)
    reasons.update(skipped)

    doomed_set = set(final)
    kept = [c.name for c in scan.checkpoints if c.name not in doomed_set and c.name not in skipped]
    for n in kept:
        reasons.setdefault(n, "not selected")
    fallback = _fallback_latest(scan, doomed_set)
    not_ok = {c.name for c in scan.checkpoints if c.status != OK}
    raw, text, problem = _read_raw(directory)
    if problem:
        warnings.append(problem)
    action, after_raw, notes = STATE_NONE, None, []
    if raw is not None and final:
        after_raw, notes = state_after_deletion(raw, directory, doomed_set, fallback, not_ok)
        if after_raw is None:
            action = STATE_REMOVE
        elif same_state(raw, after_raw):
            action, after_raw = STATE_KEEP, raw
        else:
            action = STATE_REWRITE
    elif raw is not None or problem:
        action, after_raw = STATE_KEEP, raw
    warnings.extend(notes)
    after_text = None
    if action == STATE_KEEP:
        after_text = text
    elif action == STATE_REWRITE:
        after_text = state_text(after_raw)
    latest_after = _latest_after(scan, after_raw, action, doomed_set, fallback)
    return Plan(directory=directory, kind=CHECKPOINTS, deleted=final, files=files, kept=kept,
                reasons=reasons, latest_before=scan.latest, latest_after=latest_after,
                state_action=action, state_before=text, state_after=after_text,
                to_trash=to_trash, warnings=warnings, skipped=skipped, fallback_latest=fallback,
                not_ok=not_ok)


NO_TRASH = "a bucket has no trash: use --permanent"


def _refuse_trash_in_bucket(directory: str, to_trash: bool) -> None:
    if to_trash and storage.is_url(directory):
        raise PlanError(f"{directory}: {NO_TRASH}")


def _some_names(scan: DirectoryScan, limit: int = 10) -> str:
    """The first checkpoint names, for an error message about a folder of any size."""
    names = [c.name for c in scan.checkpoints[:limit]]
    more = len(scan.checkpoints) - len(names)
    return (", ".join(names) or "none") + (f" and {more} more" if more > 0 else "")


def _checkpoint_files(directory: str, c: CheckpointInfo, warnings: list[str]
                      ) -> tuple[list[PlannedFile], str | None]:
    """(checkpoint ``c``'s files as they are on disk now, in deletion order; why it is refused,
    or None)."""
    fmt = formats.for_name(c.format)
    if not fmt.prunable:
        return [], fmt.refusal
    bad = [f.name for f in c.files if not fmt.owns(f.name, c)]
    try:
        for f in c.files:
            safe_path(directory, f.name)
    except ValueError as e:
        bad.append(str(e))
    if bad:
        return [], f"refused: {bad[0]} is not one of its own files in the folder"
    mine = []
    try:
        for f in c.files:
            if storage.is_url(directory):
                mine += _planned_url(directory, f.name, c.name, f.kind)
            elif (pf := _planned_file(directory, f.name, c.name, f.kind, warnings,
                                      f.bytes)) is not None:
                mine.append(pf)
        mine.sort(key=lambda pf: fmt.deletion_rank(pf.name, c))
    except (OSError, ValueError) as e:
        return [], f"its files cannot be examined: {e}"
    if not mine:
        return [], "its files are already gone"
    return mine, None


def _latest_after(scan, after_raw, action, doomed, fallback) -> str | None:
    if action in (STATE_REWRITE, STATE_KEEP) and after_raw is not None and \
            after_raw.model_checkpoint_path:
        name = statefile.resolve_on_disk(after_raw.model_checkpoint_path, scan.directory)
        if name is not None and name not in doomed:
            return name
    if scan.latest and scan.latest not in doomed and action == STATE_NONE:
        return scan.latest
    rest = [c for c in scan.checkpoints if c.name not in doomed]
    if not rest:
        return None
    from .scan import choose_latest

    return choose_latest(rest, StateFileInfo(False))


def plan_orphans(scan: DirectoryScan, names: Iterable[str] | None = None, *,
                 to_trash: bool = True, min_age: float = ORPHAN_MIN_AGE,
                 now: float | None = None) -> Plan:
    """Removing orphan files (checkpoint parts that belong to no checkpoint). The state file is
    not touched. Orphans modified in the last ``min_age`` seconds are skipped: a data shard or a
    ``_temp`` folder that young may be a save in progress, whose index is not written yet."""
    directory = scan.directory
    if storage.is_url(directory):   # their age (a save in progress?) is not checked there yet
        raise PlanError(f"{directory}: removing orphan files in a bucket is not supported yet")
    wanted = list(scan.orphans if names is None else names)
    unknown = [n for n in wanted if n not in scan.orphans]
    if unknown:
        raise PlanError(f"{unknown[0]!r} is not an orphan file of {directory}")
    now = time.time() if now is None else now
    files, warnings, skipped, reasons, final = [], [], {}, {}, []
    for name in wanted:
        why = _orphan_refusal(directory, name, now, min_age)
        if why is None:
            try:
                pf = _planned_file(directory, name, None, _orphan_kind(name), warnings)
            except (OSError, ValueError) as e:
                why = f"refused: {e}"
            else:
                if pf is None:
                    why = "already gone"
        if why is not None:
            skipped[name] = reasons[name] = why
            continue
        files.append(pf)
        final.append(name)
        reasons[name] = _orphan_reason(name)
    kept = [c.name for c in scan.checkpoints]
    raw, text, _ = _read_raw(directory)
    return Plan(directory=directory, kind=ORPHANS, deleted=final, files=files, kept=kept,
                reasons=reasons, latest_before=scan.latest, latest_after=scan.latest,
                state_action=STATE_KEEP if raw is not None else STATE_NONE, state_before=text,
                state_after=text, to_trash=to_trash, warnings=warnings, skipped=skipped)


def _orphan_kind(name: str) -> str:
    return LEFTOVER if trash.interrupted_deletion(name.rstrip("/")) else "orphan"


def _orphan_reason(name: str) -> str:
    was = trash.interrupted_deletion(name.rstrip("/"))
    if was is None:
        return "belongs to no checkpoint"
    return (f"left by an interrupted permanent deletion of {was}: removing it finishes that "
            "deletion (for good, never to the trash)")


def _orphan_refusal(directory: str, name: str, now: float, min_age: float) -> str | None:
    rel = name.rstrip("/")
    owner = formats.owner_of_orphan(directory, rel)
    if owner is not None:
        return f"{owner} exists now: it belongs to a checkpoint"
    if rel.endswith(".meta") and statefile.checkpoint_exists(directory, rel[:-5]):
        return f"{rel[:-5]} exists now: it belongs to a checkpoint"
    try:
        age = now - os.lstat(os.path.join(directory, rel)).st_mtime
    except OSError:
        return None
    if age < min_age:
        return (f"modified {max(age, 0):.0f} s ago: a save may be in progress "
                f"(orphans younger than {min_age:.0f} s are left alone)")
    return None


# --- execution --------------------------------------------------------------------------------

def _remove_one(path: str, to_trash: bool) -> trash.TrashedFile | None:
    """Remove one file (or an orphan folder): to the trash, or for good. A symbolic link is only
    unlinked. FileNotFoundError when it is already gone."""
    if storage.is_url(path):
        storage.remove_object(path)   # (the plan of a bucket is permanent)
        return None
    if to_trash:
        return trash.send_to_trash(path)
    if os.path.islink(path):
        target = os.readlink(path)
        os.unlink(path)
        return trash.TrashedFile(path, link_target=target)
    if os.path.isdir(path):
        leftover = trash.interrupted_deletion(os.path.basename(path)) is not None
        shutil.rmtree(path if leftover else trash.rename_away(path))
    else:
        os.unlink(path)
    return None


def execute_prune(plan: Plan, *, permanent: bool | None = None, progress: Progress | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  close_readers: Callable[[list[str]], None] | None = None,
                  rescan: bool = False) -> PruneResult:
    """Carry out ``plan`` in the order the module docstring explains. Never raises for a file
    that cannot be removed: the result says what went, what failed and what is left."""
    to_trash = plan.to_trash if permanent is None else not permanent
    directory = plan.directory
    result = PruneResult(directory, plan.kind, to_trash, state_action=STATE_KEEP,
                         state_after=plan.state_before, latest=plan.latest_before)
    progress = progress or (lambda d, t, w: None)
    cancelled = cancelled or (lambda: False)
    total = len(plan.files) + (1 if plan.kind == CHECKPOINTS else 0)
    supported, why = trash.undo_support()
    if not to_trash:
        result.undo_problem = "the files were deleted permanently"
    elif not supported:
        result.undo_problem = why
    undo = UndoRecord({}, None, None)
    storage.begin(directory)   # a bucket is listed again: what is there now, not at the scan
    if close_readers is not None:
        close_readers(list(plan.deleted))
    done = 0
    if plan.kind == CHECKPOINTS and plan.deleted:
        progress(0, total, "the checkpoint state file")
        if cancelled():
            result.cancelled, result.not_started = True, list(plan.deleted)
            return _finish(result, rescan)
        try:
            current, _text, problem = _read_raw(directory)
            if problem is None and current is not None:
                new, notes = state_after_deletion(current, directory, set(plan.deleted),
                                                  plan.fallback_latest, plan.not_ok)
                result.warnings.extend(notes)
                result.state_action = store_state(directory, new, current)
                undo.state_before, undo.latest_written = current, \
                    new.model_checkpoint_path if new else None
            elif problem is not None:
                result.warnings.append(problem)
        except OSError as e:
            result.errors.append(f"the state file cannot be updated ({e}); nothing was deleted")
            result.failed = {n: "the state file cannot be updated" for n in plan.deleted}
            return _finish(result, rescan)
        done = 1
    whole_again: list[str] = []
    for i, name in enumerate(plan.deleted):
        if cancelled() or storage.outage(directory):
            result.cancelled = not storage.outage(directory)
            result.not_started = plan.deleted[i:]
            whole_again += result.not_started
            break
        removed: list[trash.TrashedFile] = []
        error = None
        mine = plan.files_of(name)
        gone = 0
        for f in mine:
            progress(done, total, f.name)
            try:
                path = safe_path(directory, f.name)
                entry = _remove_one(path, to_trash and f.kind != LEFTOVER)
                if entry is not None:
                    removed.append(entry)
                    if to_trash and not entry.restorable and result.undo_problem is None:
                        result.undo_problem = (
                            f"where {f.name} went in the trash could not be found (this trash "
                            "is not a freedesktop.org trash this tool can read)")
                result.files.append(f.name)
                result.bytes += f.bytes
                gone += 1
            except FileNotFoundError:
                result.warnings.append(f"{f.name} had already disappeared")
            except (OSError, ValueError) as e:
                error = f"{f.name}: {_why(e)}"
                break
            finally:
                done += 1
        if removed:
            undo.trashed[name] = removed
        if error is None:
            result.deleted.append(name)
            continue
        result.errors.append(error)
        left = _left_of(directory, mine, set(result.files))
        if gone:
            result.partial[name] = left
            result.warnings.append(
                f"{name} is half deleted: {', '.join(left)} remain and no longer form a "
                "checkpoint (the scan lists them as orphans)")
        else:
            result.failed[name] = error
            whole_again.append(name)
    if plan.kind == CHECKPOINTS and whole_again and undo.state_before is not None \
            and not storage.outage(directory):
        try:
            current, _t, problem = _read_raw(directory)
            if problem is None:
                merged = merge_back(current, undo.state_before, set(whole_again),
                                    undo.latest_written, directory)
                action = store_state(directory, merged, current)
                if action != STATE_KEEP:
                    result.state_action = action
        except OSError as e:
            result.errors.append(f"the state file could not list again "
                                 f"{', '.join(whole_again)}: {e}")
    progress(total, total, "")
    result.undo = undo
    return _finish(result, rescan)


def _left_of(directory: str, mine: list[PlannedFile], removed: set[str]) -> list[str]:
    """The files of a checkpoint still there after a failure (in a bucket: those not removed;
    asking the store again may be what just failed)."""
    if storage.is_url(directory):
        return [f.name for f in mine if f.name not in removed]
    return [f.name for f in mine if os.path.lexists(os.path.join(directory, f.name))]


def _why(e: Exception) -> str:
    if isinstance(e, storage.UnreadableFile):
        return e.reason
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _finish(result, rescan: bool):
    gone = storage.outage(result.directory)
    if gone:   # the store cannot be reached: nothing more can be read of it
        result.state_after, result.latest = None, None
        if isinstance(result, PruneResult):
            result.stopped = _stopped(result, gone)
        return result
    raw, text, _ = _read_raw(result.directory)
    result.state_after = text
    result.latest = (statefile.resolve_on_disk(raw.model_checkpoint_path, result.directory)
                     if raw is not None and raw.model_checkpoint_path else None)
    if rescan:
        from .scan import scan_directory

        result.scan_after = scan_directory(result.directory)
    return result


def _stopped(result: PruneResult, reason: str) -> str:
    """One sentence: the store went away in the middle, what was deleted, what was not."""
    rest = [*result.partial, *result.failed, *result.not_started]
    done = ", ".join(result.deleted) or "nothing"
    return (f"{result.directory}: {reason}; the deletion stopped (deleted: {done}; not deleted: "
            f"{', '.join(rest) or 'none'}; the state file names only whole checkpoints)")


def undo_prune(result: PruneResult, *, progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None, rescan: bool = False) -> RestoreResult:
    """Bring the last deletion back from the trash: each checkpoint's data and .meta first, its
    index last, then its state-file entries. A file whose place is taken again is not overwritten
    (that checkpoint stays in the trash and the error says why)."""
    out = RestoreResult(result.directory)
    if not result.can_undo:
        out.errors.append(result.undo_problem or "there is nothing to undo")
        return _finish(out, rescan)
    progress = progress or (lambda d, t, w: None)
    cancelled = cancelled or (lambda: False)
    record = result.undo
    total = sum(len(v) for v in record.trashed.values())
    done = 0
    back: set[str] = set()
    for name, entries in record.trashed.items():
        if cancelled():
            break
        blocked = [e for e in entries if not e.restorable or os.path.lexists(e.original)
                   or (e.link_target is None and not os.path.lexists(e.trashed))]
        if blocked:
            e = blocked[0]
            why = ("its place is taken again" if os.path.lexists(e.original) else
                   "it is no longer in the trash" if e.restorable else
                   "where it went in the trash is not known")
            out.errors.append(f"{name} not restored: {os.path.basename(e.original)}: {why}")
            done += len(entries)
            continue
        ok = True
        for e in reversed(entries):      # data and .meta first, the index last
            progress(done, total, os.path.basename(e.original))
            try:
                trash.restore(e)
                out.files.append(os.path.relpath(e.original, result.directory))
            except OSError as err:
                out.errors.append(f"{name}: {os.path.basename(e.original)}: {_why(err)}")
                ok = False
                break
            finally:
                done += 1
        if ok:
            back.add(name)
            out.restored.append(name)
    if result.kind == CHECKPOINTS and back and record.state_before is not None:
        try:
            current, _t, problem = _read_raw(result.directory)
            if problem is None:
                merged = merge_back(current, record.state_before, back, record.latest_written,
                                    result.directory)
                store_state(result.directory, merged, current)
        except OSError as e:
            out.errors.append(f"the state file could not list the restored checkpoints: {e}")
    for name in back:
        record.trashed.pop(name, None)
    progress(total, total, "")
    return _finish(out, rescan)
