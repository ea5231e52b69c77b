"""How deleting checkpoints changes the ``checkpoint`` state file: what it says once some are gone,
how entries go back in on undo (merged with what a training process wrote since), and storing it
only when it changes (in a bucket: one PUT of the whole text). Plain functions over
``statefile.RawState``; prune.py decides when."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection

from . import statefile, storage
from .statefile import RawState

# What storing did to the state file.
STATE_NONE = "none"          # there is no state file (and none is made)
STATE_KEEP = "keep"          # it stays as it is
STATE_REWRITE = "rewrite"
STATE_REMOVE = "remove"      # nothing remains for it to name


def _entries(raw: RawState, directory: str) -> list[tuple[str, str | None, float | None]]:
    """(entry as written, name it resolves to on disk or None, its timestamp or None)."""
    ts = raw.all_model_checkpoint_timestamps
    return [(e, statefile.resolve_on_disk(e, directory), ts[i] if i < len(ts) else None)
            for i, e in enumerate(raw.all_model_checkpoint_paths)]


def _build(pairs: list[tuple[str, float | None]], latest: str | None,
           last_preserved: float | None, mtime: Callable[[str], float]) -> RawState | None:
    """A state with relative names, the latest last (as TensorFlow writes it), timestamps only
    when every entry has one; None when there is no latest (the file must then go)."""
    if latest is None:
        return None
    seen: dict[str, float | None] = {}
    for name, t in pairs:          # a repeated entry keeps its last place
        seen.pop(name, None)
        seen[name] = t
    t_latest = seen.pop(latest, None)
    seen[latest] = t_latest
    stamps = list(seen.values())
    if any(t is not None for t in stamps) and seen[latest] is None:
        seen[latest] = stamps[-1] = mtime(latest)
    return RawState(model_checkpoint_path=latest, all_model_checkpoint_paths=list(seen),
                    all_model_checkpoint_timestamps=stamps if all(t is not None for t in stamps)
                    else [], last_preserved_timestamp=last_preserved)


def _mtime(directory: str) -> Callable[[str], float]:
    def get(name: str) -> float:
        for path in (os.path.join(directory, name + ".index"), os.path.join(directory, name)):
            try:
                return storage.stat_of(path).st_mtime
            except OSError:
                continue
        return time.time()
    return get


def state_after_deletion(raw: RawState, directory: str, doomed: set[str], fallback: list[str],
                         not_ok: Collection[str] = ()) -> tuple[RawState | None, list[str]]:
    """The state file once ``doomed`` are gone (None: remove it), and notes on what changed.
    When the latest goes, the newest listed entry that is not in ``not_ok`` takes its place
    (a partial or broken one only when nothing else is listed), else the best of ``fallback``."""
    notes = []
    pairs = []
    for entry, name, t in _entries(raw, directory):
        if name is None:
            notes.append(f"the state file's entry {entry} points at nothing; it is dropped")
        elif name not in doomed:
            pairs.append((name, t))
    latest = None
    if raw.model_checkpoint_path:
        latest = statefile.resolve_on_disk(raw.model_checkpoint_path, directory)
        if latest in doomed:
            latest = None
    if latest is None and pairs:
        latest = next((n for n, _ in reversed(pairs) if n not in not_ok), pairs[-1][0])
    if latest is None:
        latest = next(
            (n for n in fallback if n not in doomed and statefile.checkpoint_exists(directory, n)),
            None)
    return _build(pairs, latest, raw.last_preserved_timestamp, _mtime(directory)), notes


def merge_back(current: RawState | None, original: RawState | None, back: set[str],
               latest_written: str | None, directory: str) -> RawState | None:
    """Put the entries of ``back`` (checkpoints whole again) into the state file as it is now,
    at their original places and with their original timestamps; entries written since stay, and
    the original latest returns only if the latest is still what our deletion wrote."""
    if original is None:
        return current
    orig = [(n, t) for _, n, t in _entries(original, directory) if n is not None]
    cur = [(n, t) for _, n, t in _entries(current, directory) if n is not None] if current else []
    cur_names = {n for n, _ in cur}
    cur_map = dict(cur)
    pairs = []
    for n, t in orig:
        if n in cur_names:
            pairs.append((n, cur_map[n]))
        elif n in back:
            pairs.append((n, t))
    placed = {n for n, _ in pairs}
    pairs += [(n, t) for n, t in cur if n not in placed]
    cur_latest = None
    if current is not None and current.model_checkpoint_path:
        cur_latest = statefile.resolve_on_disk(current.model_checkpoint_path, directory)
    orig_latest = statefile.resolve_on_disk(original.model_checkpoint_path or "", directory) \
        if original.model_checkpoint_path else None
    latest = cur_latest
    if cur_latest is None or cur_latest == latest_written:
        # Nobody saved since our write: the latest is the original one if it is whole again,
        # else the newest entry in the original order (what our write would have chosen had
        # these checkpoints not been deleted).
        names = [n for n, _ in pairs]
        latest = orig_latest if orig_latest in names else (names[-1] if names else None)
    preserved = current.last_preserved_timestamp if current is not None \
        else original.last_preserved_timestamp
    return _build(pairs, latest, preserved, _mtime(directory))


def state_text(raw: RawState) -> str:
    """The state file's text for ``raw``."""
    return statefile.format_state(raw.model_checkpoint_path, raw.all_model_checkpoint_paths,
                                  raw.all_model_checkpoint_timestamps or None,
                                  raw.last_preserved_timestamp)


def same_state(a: RawState | None, b: RawState | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.model_checkpoint_path == b.model_checkpoint_path
            and a.all_model_checkpoint_paths == b.all_model_checkpoint_paths
            and list(a.all_model_checkpoint_timestamps) == list(b.all_model_checkpoint_timestamps)
            and a.last_preserved_timestamp == b.last_preserved_timestamp
            and not a.unparsed_lines)


def store_state(directory: str, new: RawState | None, current: RawState | None) -> str:
    """Write (or remove) the state file unless it already says this. Returns the action."""
    if new is None:
        if current is None and not storage.exists(os.path.join(directory, statefile.STATE_FILE)):
            return STATE_NONE
        statefile.remove_state_file(directory)
        return STATE_REMOVE
    if same_state(current, new):
        return STATE_KEEP
    statefile.write_state_file(directory, state_text(new))
    return STATE_REWRITE
