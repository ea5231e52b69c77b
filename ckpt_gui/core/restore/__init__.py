"""Restore a checkpoint into a model template, and prove what was restored.

The commonest checkpoint pain is a restore that silently restores part of a model: the model code
changed, another API wrote the checkpoint, or Keras 2 wrote it and Keras 3 reads it (Keras 3 names
the variable of ``layer_with_weights-0/kernel`` ``_functional/_operations/1/_kernel``). Here:

1. Where the model sits in the checkpoint (the *root*): at the top (Keras save_weights /
   ModelCheckpoint layout) or under a child such as ``model``, ``net``, ``generator``; chosen
   automatically when it is clear, else the caller names it.
2. A *plan* binds every model variable to a checkpoint tensor, tier by tier:
   ``object path`` (exactly what tf.train.Checkpoint binds: the checkpoint's object graph walked
   against the template's, or Keras 3's own .weights.h5 layout), then ``renamed`` (the same path
   modulo ``kernel``/``_kernel``-style renames), then ``layer order`` (``layer_with_weights-N``,
   ``_operations/N``, a legacy .h5's layer list against the template's layers that have weights),
   then ``order and shape``. The last tier is applied on its own only when names bound nothing at
   all (a checkpoint whose names mean nothing to the template, e.g. TF1 ``h1/w``); otherwise its
   pairings are only *suggested*, for a person to review. A tensor of another shape is never
   assigned. The plan is plain data a user may edit before it is applied.
3. Applying: natively through ``tf.train.Checkpoint`` with the checkpoint's root names when the
   object graph binds, then explicit assignment for the rest; the optimizer's slots and iterations
   are restored by what they belong to (works across Keras 2 / 2.11+ / 3 optimizers). Then every
   restored variable is compared with its checkpoint tensor, exactly.

Everything returned is a plain dataclass; no Qt here. TensorFlow and Keras are imported lazily.

The package: ``report`` (plain data out, errors), ``checkpoint`` and ``template`` (the two sides),
``planning``, ``applying``, ``session`` (one checkpoint, one template; saving, a sample run).
Everything public is importable from ``ckpt_gui.core.restore`` itself.
"""
from __future__ import annotations

from .report import (ATTR_SUFFIX, CONFIG_SUFFIX, EDITED, GRAPH_KEY, LAYER_ORDER, MAPPED, MODEL,
                     NATIVE, OBJECT_PATH, OPTIMIZER, ORDER_SHAPE, PATH_CAP, RENAMED, SUGGESTED,
                     TIERS, KeyInfo, MappingEntry, OptimizerReport, Progress, RestoreError,
                     RestorePlan, RestoreReport, RestoredVariable, RootCandidate, RootError,
                     SampleRun, ShapeMismatch)
from .checkpoint import CheckpointSide
from .template import TemplateSide
from .planning import choose_root, make_plan
from .applying import apply_plan
from .session import SAVE_SUFFIXES, RestoreSession, restore_checkpoint, run_sample, save_model

__all__ = ["ATTR_SUFFIX", "CONFIG_SUFFIX", "CheckpointSide", "EDITED", "GRAPH_KEY", "KeyInfo",
           "LAYER_ORDER", "MAPPED", "MODEL", "MappingEntry", "NATIVE", "OBJECT_PATH", "OPTIMIZER",
           "ORDER_SHAPE", "OptimizerReport", "PATH_CAP", "Progress", "RENAMED", "RestoreError",
           "RestorePlan", "RestoreReport", "RestoreSession", "RestoredVariable", "RootCandidate",
           "RootError", "SAVE_SUFFIXES", "SUGGESTED", "SampleRun", "ShapeMismatch", "TIERS",
           "TemplateSide", "apply_plan", "choose_root", "make_plan", "restore_checkpoint",
           "run_sample", "save_model"]
