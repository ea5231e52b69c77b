"""``ckpt-inspect restore DIR CHECKPOINT --template TEMPLATE [--root NAME] [--save PATH] [--json]``

Restores one checkpoint into a model template and proves what was restored (see
ckpt_gui/core/restore/). TEMPLATE is a built-in template's name (``ckpt-inspect restore --list``
shows them), ``checkpoint`` (the Keras config the checkpoint carries), or a path to a ``.py`` file
with ``build_model()`` [+ ``build_optimizer()``] or to a ``.keras`` file.

JSON: {"checkpoint", "template", "root", "mode": "native"|"mapped",
       "restored": [{"variable", "key", "shape"}], "missing_in_checkpoint": [variable names],
       "unused_in_checkpoint": [keys], "shape_mismatch": [{"variable", "key", "variable_shape",
       "checkpoint_shape"}], "optimizer_restored": bool, "verified": bool, "saved": path|null}
Exit codes: 0 every model variable restored and verified, 1 some were not, 2 bad usage (also a
template that fails to import or build, a checkpoint's own config that is refused -- a file
outside the checkpoint's folder, more memory than the checkpoint or the budget allow, code -- or
a root that must be chosen with --root). Every error is one line on stderr.
"""
from __future__ import annotations

import json
import sys

from .common import EXIT_OK, EXIT_USAGE, UsageError, find_checkpoint

EXIT_INCOMPLETE = 1


def add_parser(sub) -> None:
    p = sub.add_parser(
        "restore", help="restore a checkpoint into a model template and verify it",
        description="Restore a checkpoint into a model template (a built-in name, 'checkpoint' "
                    "for the Keras config the checkpoint carries, a .py file with build_model() "
                    "[and build_optimizer()], or a .keras file), report every variable's key, and "
                    "verify the restored values equal the checkpoint's exactly.")
    p.add_argument("directory")
    p.add_argument("checkpoint", help="checkpoint name (as scan lists it) or 'latest'")
    p.add_argument("--template", required=True, metavar="TEMPLATE",
                   help="built-in template name, 'checkpoint', or a path (.py / .keras)")
    p.add_argument("--root", metavar="NAME",
                   help="where the model sits in the checkpoint (e.g. model, net, generator; "
                        "'.' for the top level) when it is not clear")
    p.add_argument("--save", metavar="PATH",
                   help="save the restored model as PATH (.weights.h5 or .keras)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_restore)


def _short(key: str) -> str:
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    return key[: -len(suffix)] if key.endswith(suffix) else key


def _print_report(report, template_desc: str) -> None:
    root = report.root or "(top level)"
    print(f"Checkpoint: {report.checkpoint}")
    print(f"Template:   {template_desc}")
    print(f"Root:       {root}    mode: {report.mode}")
    print()
    rows = [("model variable", "shape", "checkpoint key", "how", "verified")]
    for r in report.restored:
        rows.append((r.variable, str(list(r.shape)), _short(r.key), r.how,
                     "yes" if r.verified else "NO"))
    for name in report.missing_in_checkpoint:
        rows.append((name, "", "missing in checkpoint", "", ""))
    for m in report.shape_mismatch:
        rows.append((m.variable, str(m.variable_shape),
                     f"{_short(m.key)} has {m.checkpoint_shape}", "shape mismatch", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    print()
    n, ok = report.n_model_variables, len(report.restored)
    print(f"Model variables restored: {ok} of {n}"
          + (f"; missing {len(report.missing_in_checkpoint)}" if report.missing_in_checkpoint
             else "")
          + (f"; shape mismatch {len(report.shape_mismatch)}" if report.shape_mismatch else ""))
    for var, key in report.suggestions:
        print(f"  ? {var} could take {_short(key)} (same order and shape); not applied: a "
              f"pairing by order and shape needs a person to confirm (the Restore dialog)")
    o = report.optimizer
    if not o.in_template:
        print("Optimizer: the template has none (define build_optimizer() to restore its state)")
    elif o.restored:
        print(f"Optimizer: restored (iterations {o.iterations}, {o.slots_restored} of "
              f"{o.slots_expected} slots)")
    else:
        print(f"Optimizer: not restored: {o.reason}"
              + (f" (restored {len(o.entries)} of its variables)" if o.entries else ""))
    if report.unused_in_checkpoint:
        print(f"Unused in checkpoint ({len(report.unused_in_checkpoint)}): "
              + ", ".join(_short(k) for k in report.unused_in_checkpoint[:12])
              + (" ..." if len(report.unused_in_checkpoint) > 12 else ""))
    print("Verified: " + ("yes, every restored variable equals its checkpoint tensor exactly"
                          if report.verified else "nothing was restored" if not report.restored
                          else "NO: " + ", ".join(r.variable for r in report.restored
                                                  if not r.verified)))
    s = report.sample
    if s is not None:
        if s.skipped:
            print(f"Sample run: not run: {s.skipped}")
        elif s.error:
            print(f"Sample run: failed: {s.error}")
        else:
            values = ", ".join(f"{v:.6g}" for v in s.first_values)
            print(f"Sample run: input {s.input_shape} -> output {s.output_shape}"
                  f"{'' if s.finite else ' (NOT all finite)'}: {values}")
    for note in report.notes:
        print(f"  ! {note}")
    if report.saved:
        print(f"Saved: {report.saved}")


def _usage(message: str) -> int:
    print(f"ckpt-inspect: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_restore(args) -> int:
    from ..core import scan_directory
    from ..core.restore import SAVE_SUFFIXES, RestoreError, RootError, restore_checkpoint
    from ..core.scan import ScanError
    from ..core.templates import TemplateError, resolve

    if args.save and not args.save.endswith(SAVE_SUFFIXES):
        return _usage(f"--save {args.save}: the file name must end in .weights.h5 or .keras")
    try:
        ref = resolve(args.template)
        scan = scan_directory(args.directory)
        ckpt = find_checkpoint(scan, args.checkpoint)
        report = restore_checkpoint(ckpt, ref, root=args.root, save=args.save)
    except (TemplateError, RootError, ScanError) as e:
        return _usage(str(e))
    except RestoreError as e:
        print(f"ckpt-inspect: {e}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except UsageError as e:   # find_checkpoint's
        return _usage(str(e))
    report.template = args.template
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
        for note in report.notes:
            print(f"ckpt-inspect: {note}", file=sys.stderr)
    else:
        desc = ref.name if not ref.path else f"{ref.name} ({ref.path})" if ref.builtin \
            else ref.path
        _print_report(report, desc)
    return EXIT_OK if report.complete else EXIT_INCOMPLETE
