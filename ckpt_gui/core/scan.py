"""Scan a directory: every checkpoint, the state file read without trusting it, the latest,
orphans and subfolders. The one entry point the CLI and the GUI call."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable

from . import formats, statefile, storage, trash
from .discover import list_directory
from .runs import find_runs, run_ids
from .model import BROKEN, CheckpointInfo, DirectoryScan, Run, StateFileInfo
from .naming import natural_key

Progress = Callable[[int, int, str], None]


class ScanError(OSError):
    """The directory itself cannot be scanned (missing, not a directory, no permission)."""


def check_directory(directory: str) -> str:
    """The absolute directory (or the URL), or ScanError with one clear sentence."""
    path = storage.normalise(directory)
    if storage.is_url(path):
        return _check_url(path, directory)
    if not os.path.exists(path):
        raise ScanError(f"{directory}: no such directory")
    if not os.path.isdir(path):
        raise ScanError(f"{directory}: is a file, not a directory (open the folder that holds it)")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ScanError(f"{directory}: permission denied")
    return path


def _check_url(url: str, directory: str) -> str:
    """``url`` if it is a folder or an object that can be listed; ScanError otherwise."""
    storage.begin(url)
    try:
        storage.list_folder(url)
    except OSError as e:
        if storage.is_file(url):
            raise ScanError(f"{directory}: is a file, not a directory (open the folder that "
                            "holds it)") from None
        raise ScanError(f"{directory}: {e.strerror or e}") from None
    return url


def scan_directory(directory: str, *, verify: bool = False, progress: Progress | None = None,
                   cancelled: Callable[[], bool] | None = None) -> DirectoryScan:
    """Scan ``directory`` (a local folder or a URL). Reads only indexes and counters unless
    ``verify`` (reads every tensor).

    ``progress(done, total, what)`` is called between checkpoints; when ``cancelled()`` turns
    true the scan stops between checkpoints and returns what it has. In a bucket the
    checkpoints are inspected concurrently (each costs a round trip or two); if the store
    cannot be reached midway, ScanError says why.
    """
    path = check_directory(directory)
    path, only = checkpoint_location(path)
    listing = _list(path, directory)
    candidates = [c for c in listing.candidates if only is None or c.name == only]
    if not candidates and only is not None:   # its folder does not list it after all
        path, only = os.path.join(path, only), None
        listing = _list(path, directory)
        candidates = listing.candidates
    orphans = list(listing.orphans) if only is None else []
    checkpoints: list[CheckpointInfo] = []
    total = len(candidates)
    for i, (cand, inspected) in enumerate(zip(candidates, _inspected(path, candidates))):
        if cancelled is not None and cancelled():
            break
        if progress is not None:
            progress(i, total, cand.name)
        info, stale = inspected()
        orphans.extend(stale)
        if verify:
            from .reading import verify_checkpoint

            verify_checkpoint(info, cancelled=cancelled)
        checkpoints.append(info)
    if progress is not None:
        progress(len(checkpoints), total, "")
    if (down := storage.outage(path)) is not None:
        raise ScanError(f"{directory}: {down}")

    # one checkpoint opened on its own: its folder's state file and subfolders are not its
    state = read_state(path, checkpoints) if only is None else StateFileInfo(False)
    latest = choose_latest(checkpoints, state)
    runs, run_of = _runs(checkpoints, state)
    for c in checkpoints:
        c.is_latest, c.run = c.name == latest, run_of.get(c.name)
    orphans = sorted(set(orphans), key=natural_key)
    return DirectoryScan(
        directory=path, checkpoints=checkpoints, latest=latest, state_file=state,
        orphans=orphans, subdirectories=listing.subdirectories if only is None else [],
        runs=runs, problems=leftover_notes(orphans))


REMOTE_WORKERS = 16  # checkpoints of a bucket inspected at once


def _inspected(path: str, candidates) -> Iterable[Callable[[], tuple[CheckpointInfo, list]]]:
    """For each candidate, a call giving (its CheckpointInfo, its stale data files): inspected
    when called for a local folder; for a URL all started at once in a thread pool, so that
    their requests overlap (the pool's threads stop with the generator)."""
    def one(cand):
        stale: list[str] = []
        return formats.inspect(path, cand, stale), stale

    if not storage.is_url(path) or len(candidates) < 2:
        for cand in candidates:
            yield lambda cand=cand: one(cand)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(REMOTE_WORKERS) as pool:
        futures = [pool.submit(one, cand) for cand in candidates]
        try:
            for future in futures:
                yield future.result
        finally:
            for future in futures:
                future.cancel()


def checkpoint_location(path: str) -> tuple[str, str | None]:
    """(the folder to scan, the checkpoint in it that ``path`` is, or None): a checkpoint file,
    or a folder that is itself one checkpoint (an unzipped .keras model), is opened as its
    folder lists it; any other folder is itself."""
    if storage.is_file(path) or formats.is_checkpoint_folder(path):
        if storage.is_url(path):
            parent, name = path.rstrip("/").rsplit("/", 1)
            return parent, name
        parent, name = os.path.split(os.path.normpath(path))
        return parent, name
    return path, None


def _list(path: str, directory: str):
    try:
        return list_directory(path)
    except OSError as e:
        raise ScanError(f"{directory}: cannot be listed: {e.strerror or e}") from None


def reinspect_checkpoints(scan: DirectoryScan, names: Iterable[str], *,
                          progress: Progress | None = None,
                          cancelled: Callable[[], bool] | None = None) -> DirectoryScan:
    """``scan`` again with only the checkpoints ``names`` inspected anew: their files changed
    in place (a data file truncated, an HDF5 file rewritten) while the folder still holds the
    same checkpoints. The others are kept as they were (their verification too); the state
    file is read again and the latest chosen again, since both weigh each checkpoint's health.
    When the folder no longer lists the same checkpoints, this is a full scan."""
    path = check_directory(scan.directory)
    try:
        listing = list_directory(path)
    except OSError as e:
        raise ScanError(f"{scan.directory}: cannot be listed: {e.strerror or e}") from None
    if [c.name for c in listing.candidates] != [c.name for c in scan.checkpoints]:
        return scan_directory(path, progress=progress, cancelled=cancelled)
    wanted = set(names)
    # stale data files (an earlier save's shards) are found by inspecting their checkpoint
    orphans = set(listing.orphans) | {o for o in scan.orphans
                                      if not any(o.startswith(f"{n}.data-") for n in wanted)}
    checkpoints: list[CheckpointInfo] = []
    for cand, old in zip(listing.candidates, scan.checkpoints):
        if cand.name not in wanted:
            checkpoints.append(old)
            continue
        if progress is not None:
            progress(len(checkpoints), len(listing.candidates), cand.name)
        stale: list[str] = []
        checkpoints.append(formats.inspect(path, cand, stale))
        orphans.update(stale)
    state = read_state(path, checkpoints)
    latest = choose_latest(checkpoints, state)
    runs, run_of = _runs(checkpoints, state)
    for i, c in enumerate(checkpoints):
        now = (c.name == latest, run_of.get(c.name))
        if (c.is_latest, c.run) != now:
            if c.name not in wanted:  # the caller's object stays as it was
                c = checkpoints[i] = copy.copy(c)
            c.is_latest, c.run = now
    orphans = sorted(orphans, key=natural_key)
    return DirectoryScan(
        directory=path, checkpoints=checkpoints, latest=latest, state_file=state,
        orphans=orphans, subdirectories=listing.subdirectories, runs=runs,
        problems=leftover_notes(orphans))


def leftover_notes(orphans: list[str]) -> list[str]:
    """A note on each orphan an interrupted permanent deletion left (core/trash.py)."""
    notes = []
    for o in orphans:
        was = trash.interrupted_deletion(o)
        if was is not None:
            notes.append(f"{o} is what an interrupted permanent deletion left of {was}; "
                         "deleting the orphan files finishes it")
    return notes


def _runs(checkpoints: list[CheckpointInfo], state: StateFileInfo
          ) -> tuple[list[Run], dict[str, str]]:
    """The training runs, and checkpoint name -> run id; the state file's latest is then
    weighed against the other checkpoints of its own run."""
    runs = find_runs(checkpoints, state)
    run_of = run_ids(runs)
    _check_latest_is_most_trained(state, checkpoints, run_of)
    return runs, run_of


def read_state(directory: str, checkpoints: list[CheckpointInfo]) -> StateFileInfo:
    state_path = os.path.join(directory, statefile.STATE_FILE)
    try:
        raw = statefile.read_state_file(directory)
    except (OSError, ValueError) as e:
        return StateFileInfo(True, state_path, problems=[f"the state file cannot be read: {e}"])
    if raw is None:
        return StateFileInfo(False)
    known = {c.name for c in checkpoints}
    info = StateFileInfo(True, state_path, latest_raw=raw.model_checkpoint_path,
                         listed_raw=list(raw.all_model_checkpoint_paths),
                         timestamps=list(raw.all_model_checkpoint_timestamps),
                         last_preserved_timestamp=raw.last_preserved_timestamp)
    foreign = [p for p in [raw.model_checkpoint_path, *raw.all_model_checkpoint_paths]
               if p and _is_foreign(p, directory)]
    if foreign:
        info.problems.append(
            f"the state file holds absolute paths from another place ({foreign[0]}); "
            "tf.train.latest_checkpoint will not find them, so entries were matched by base name")
    for entry in raw.all_model_checkpoint_paths:
        resolved = statefile.resolve_entry(entry, directory, known)
        if resolved is None:
            info.problems.append(f"the state file lists {entry}, which does not exist")
        elif resolved not in info.listed:
            info.listed.append(resolved)
    if raw.model_checkpoint_path:
        info.latest = statefile.resolve_entry(raw.model_checkpoint_path, directory, known)
        if info.latest is None:
            info.problems.append(
                f"the state file names {raw.model_checkpoint_path} as latest, which does not exist")
    elif raw.model_checkpoint_path is None:
        info.problems.append("the state file names no latest checkpoint")
    if (raw.all_model_checkpoint_paths or raw.model_checkpoint_path) and not info.listed \
            and info.latest is None:
        info.problems.append("the state file lists nothing that exists")
    if raw.unparsed_lines:
        info.problems.append(f"the state file has {len(raw.unparsed_lines)} line(s) that are not "
                             f"CheckpointState fields, e.g. {raw.unparsed_lines[0][:80]!r}")
    return info


def _is_foreign(path: str, directory: str) -> bool:
    if "\\" in path and (len(path) > 2 and path[1] == ":" or path.startswith("\\\\")):
        return True
    if os.path.isabs(path):
        return os.path.dirname(os.path.abspath(path)) != directory
    return False


def _progress_key(c: CheckpointInfo):
    p = c.training_progress()
    return (p if p is not None else -1, c.number if c.number is not None else -1)


def _check_latest_is_most_trained(info: StateFileInfo, checkpoints: list[CheckpointInfo],
                                  run_of: dict[str, str]) -> None:
    """A problem when another checkpoint of the latest's model (and of its run, when it has
    one: an older run numbered higher is no better) is more trained or numbered higher."""
    latest = next((c for c in checkpoints if c.name == info.latest), None)
    if latest is None:
        return
    if latest.status == BROKEN:
        readable = [c for c in checkpoints if c.status != BROKEN]
        info.problems.append(
            f"the state file's latest, {latest.name}, is broken: it cannot be restored"
            + (f" (the newest readable one is {choose_latest(readable, StateFileInfo(False))})"
               if readable else ""))
        return
    family, run = latest.family(), run_of.get(latest.name)
    peers = [c for c in checkpoints if c is not latest and c.status != BROKEN
             and (run is None or run_of.get(c.name) == run) and c.family() == family]
    mine = latest.training_progress()
    better = [c for c in peers if (c.training_progress() or -1) > (mine if mine is not None else -1)]
    if better:
        best = max(better, key=_progress_key)
        counter = max((k for k in best.counters if "save_counter" not in k),
                      key=lambda k: best.counters[k])
        info.problems.append(
            f"the state file's latest, {latest.name}, is not the most trained checkpoint: "
            f"{best.name} has {counter} = {best.counters[counter]}"
            + (f" (vs {mine})" if mine is not None else ""))
    elif latest.number is not None:
        higher = [c for c in peers if c.number is not None and c.number > latest.number]
        if higher:
            top = max(higher, key=lambda c: c.number)
            info.problems.append(
                f"the state file's latest, {latest.name}, is not the highest-numbered checkpoint "
                f"({top.name}); by training counters it is the most trained")


def choose_latest(checkpoints: list[CheckpointInfo], state: StateFileInfo) -> str | None:
    """What the state file names (resolved), else the highest number, then counter, then time."""
    if state.latest is not None:
        return state.latest
    usable = [c for c in checkpoints if c.status != BROKEN] or checkpoints
    if not usable:
        return None
    return max(usable, key=lambda c: (c.number if c.number is not None else -1,
                                      c.training_progress() or -1, c.mtime)).name
