"""``ckpt-inspect prune DIR (--keep-last N [--keep-every K] [--run ID] | --delete NAME... | --orphans)
[--dry-run] [--permanent] [--json]``

Deletes old checkpoints the safe way (see ckpt_gui/core/prune.py): the state file is updated first,
each checkpoint's index goes before its data, files go to the desktop trash unless --permanent.
--dry-run prints the plan and changes nothing on disk.
In a bucket (a URL) the same plan and order, one request each (the state file is one PUT of its
whole text); a bucket has no trash: --permanent is required (exit 2 without it). A store that
cannot be reached half way stops the deletion: one line, exit 2.

JSON: {"deleted": [names], "files": [file names], "bytes": int, "kept": [names],
       "latest": name|null, "to_trash": bool, "dry_run": bool, "skipped": {name: why}}
"skipped": checkpoints left as they are although the request covered them: refused (a file
outside the folder, a SavedModel) or, under --keep-last, not ok (partial, broken, unreadable: a
policy never counts nor deletes those; --delete NAME does).
--keep-last and --keep-every apply within each training run (as ``scan`` lists them); --run
limits them to one run; a checkpoint without a number is in no run and never chosen by them.
--orphans removes the orphan files ``scan`` lists (those modified in the last two minutes stay:
a save may be in progress), and finishes what an interrupted permanent deletion left.
Exit codes: 0 done (or planned), 1 something could not be deleted or was skipped, 2 bad usage.
Text output shows names from disk escaped (textfmt.safe_name).
"""
from __future__ import annotations

import json
import sys

from ..textfmt import human_bytes, plural, safe_name
from .common import EXIT_OK, EXIT_PROBLEMS, UsageError, fail, find_checkpoint, names


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prune", help="delete old checkpoints, keeping the state file true",
        description="Delete checkpoints safely: files go to the trash (unless --permanent), the "
                    "state file is rewritten so tf.train.latest_checkpoint stays right, and the "
                    "latest checkpoint is kept unless named with --delete.")
    p.add_argument("directory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--keep-last", type=int, metavar="N",
                       help="keep the N newest checkpoints of each run (by the number in their "
                            "name, natural order) and the latest; delete the others")
    which.add_argument("--delete", nargs="+", metavar="NAME",
                       help="delete these checkpoints (names as scan lists them, or 'latest')")
    which.add_argument("--orphans", action="store_true",
                       help="delete the orphan files (parts of no checkpoint) scan lists")
    p.add_argument("--keep-every", type=int, metavar="K",
                   help="with --keep-last: keep too those whose number is a multiple of K")
    p.add_argument("--run", metavar="ID",
                   help="with --keep-last: apply to this run only (an id as scan lists it)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--permanent", action="store_true",
                   help="delete for good instead of moving to the trash")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args) -> int:
    from ..core import scan_directory
    from ..core.prune import PlanError, execute_prune

    if args.keep_last is not None and args.keep_last < 0:
        raise UsageError("--keep-last must be 0 or more")
    if args.keep_last is None and (args.keep_every is not None or args.run is not None):
        raise UsageError("--keep-every and --run go with --keep-last")
    scan = scan_directory(args.directory)
    try:
        plan = _plan(args, scan)
    except PlanError as e:
        raise UsageError(str(e)) from None

    if args.dry_run:
        out = {"deleted": plan.deleted, "files": [f.name for f in plan.files],
               "bytes": plan.bytes, "kept": plan.kept, "latest": plan.latest_after,
               "to_trash": plan.to_trash, "dry_run": True, "skipped": plan.skipped}
        _report(args, out, plan.state_after, plan.state_action, plan.warnings,
                [f"{n}: {why}" for n, why in plan.skipped.items()], plan)
        return EXIT_PROBLEMS if plan.skipped else EXIT_OK

    result = execute_prune(plan, rescan=True)
    if result.stopped:   # the store went away half way: one line, as a scan that cannot list
        raise UsageError(result.stopped)
    after = result.scan_after
    kept = [c.name for c in after.checkpoints if c.name not in plan.skipped] \
        if after is not None else plan.kept
    latest = after.latest if after is not None else result.latest
    out = {"deleted": result.deleted, "files": result.files, "bytes": result.bytes,
           "kept": kept, "latest": latest, "to_trash": result.to_trash, "dry_run": False,
           "skipped": plan.skipped}
    errors = list(result.errors) + [f"{n}: {why}" for n, why in plan.skipped.items()]
    _report(args, out, result.state_after, result.state_action,
            plan.warnings + result.warnings, errors, plan)
    return EXIT_OK if not errors and result.ok else EXIT_PROBLEMS


def _plan(args, scan):
    from ..core.prune import Policy, plan_orphans, plan_prune

    to_trash = not args.permanent
    if args.orphans:
        return plan_orphans(scan, to_trash=to_trash)
    if args.delete is not None:
        known = {c.name for c in scan.checkpoints}   # many names: one look-up each
        doomed = [n if n in known else find_checkpoint(scan, n).name for n in args.delete]
        return plan_prune(scan, delete=doomed, to_trash=to_trash)
    policy = Policy(keep_last=args.keep_last, keep_every=args.keep_every, run=args.run)
    return plan_prune(scan, policy=policy, to_trash=to_trash)


def _report(args, out: dict, state_text, state_action, warnings, errors, plan) -> None:
    from ..core.prune import ORPHANS

    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        for e in errors:
            fail(e)
        return
    dry = out["dry_run"]
    where = "to the trash" if out["to_trash"] else "permanently"
    if not out["deleted"]:
        print("Nothing to delete." if dry else "Nothing was deleted.")
    else:
        verb = f"Would delete ({where})" if dry else f"Deleted ({where})"
        what = "orphan file" if plan.kind == ORPHANS else "checkpoint"
        print(f"{verb}: {plural(len(out['deleted']), what)}, "
              f"{plural(len(out['files']), 'file')}, {human_bytes(out['bytes'])}")
        files = set(out["files"])
        for name in out["deleted"]:
            mine = [f.name for f in plan.files_of(name) if f.name in files]
            print(f"  - {safe_name(name)} ({plan.reasons.get(name, '')}): {names(mine)}")
    print(f"Kept: {names(out['kept']) or '(none)'}")
    if out["skipped"]:
        print(f"Left as they are: {names(out['skipped'])} (why: below)")
    print(f"Latest afterwards: {safe_name(out['latest'] or '(none)')}")
    action = {"rewrite": "rewritten", "remove": "removed (nothing left to name)",
              "keep": "unchanged", "none": "none"}.get(state_action, state_action)
    print(f"State file {'would be ' if dry and state_action in ('rewrite', 'remove') else ''}"
          f"{action}" + (":" if state_text and state_action == "rewrite" else ""))
    if state_text and state_action == "rewrite":
        for line in state_text.splitlines():
            print(f"    {line}")
    for w in warnings:
        print(f"  note: {safe_name(w)}")
    for e in errors:
        fail(e)
