"""A checkpoint's variables as the model's object tree, optimizer state apart.

Plain data for any face: the GUI's tree model is an adapter over ``VariableTree``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .model import (BIAS, COUNTER, METADATA, NORMALIZATION, OPTIMIZER, OTHER, WEIGHT,
                    CheckpointInfo, VariableInfo)
from .naming import natural_key
from .roles import SLOT_MARKER

MODEL = "Model"
OPTIMIZER_SECTION = "Optimizer state"
COUNTERS = "Counters"
METADATA_SECTION = "Metadata"
SECTION_OF_ROLE = {WEIGHT: MODEL, BIAS: MODEL, NORMALIZATION: MODEL, OTHER: MODEL,
                   OPTIMIZER: OPTIMIZER_SECTION, COUNTER: COUNTERS, METADATA: METADATA_SECTION}
SECTIONS = (MODEL, OPTIMIZER_SECTION, COUNTERS, METADATA_SECTION)


@dataclass
class TreeNode:
    name: str
    path: str = ""
    variable: VariableInfo | None = None
    children: list["TreeNode"] = field(default_factory=list)
    parent: "TreeNode | None" = field(default=None, repr=False, compare=False)
    params: int = 0     # elements below (or of) this node
    bytes: int = 0
    index: int = 0      # position among its parent's children (item models ask for it a lot)
    _groups: dict = field(default_factory=dict, repr=False, compare=False)

    def child(self, name: str) -> "TreeNode":
        """The group child called ``name``, made on first use (a dict: trees of 10k variables)."""
        node = self._groups.get(name)
        if node is None:
            node = self.add(TreeNode(name, f"{self.path}/{name}" if self.path else name))
            self._groups[name] = node
        return node

    def add(self, node: "TreeNode") -> "TreeNode":
        node.parent = self
        node.index = len(self.children)
        self.children.append(node)
        return node

    def row(self) -> int:
        return self.index

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class VariableTree:
    root: TreeNode
    model_params: int
    optimizer_params: int


def display_path(v: VariableInfo, by_name: dict[str, VariableInfo]) -> str:
    """Where a variable sits in the tree: its display name (the model's own path, see
    core/varnames.py), and ``<optimizer>/<owner's display name>/<slot name>`` for optimizer
    slots (``.OPTIMIZER_SLOT`` keys and Keras 3's anonymous ``optimizer/_variables/N`` alike)."""
    if v.slot_of and v.slot_name:
        owner = by_name.get(v.slot_of)
        owner_path = owner.display_name if owner else v.slot_of
        if SLOT_MARKER in v.name:
            optimizer = v.name.split(SLOT_MARKER, 1)[1].split("/", 1)[0]
        else:  # net/optimizer/_variables/3 -> net/optimizer
            optimizer = v.path.rsplit("/", 2)[0] if v.path.count("/") >= 2 else "optimizer"
        return f"{optimizer}/{owner_path}/{v.slot_name}"
    return v.display_name


def build_tree(ckpt: CheckpointInfo) -> VariableTree:
    root = TreeNode("")
    sections = {name: root.add(TreeNode(name, name)) for name in SECTIONS}
    by_name = {v.name: v for v in ckpt.variables}
    slots_of: dict[str, list[VariableInfo]] = {}
    for v in ckpt.variables:
        if v.slot_of:
            slots_of.setdefault(v.slot_of, []).append(v)
    for v in ckpt.variables:
        section = sections[SECTION_OF_ROLE.get(v.role, MODEL)]
        parts = [p for p in display_path(v, by_name).split("/") if p]
        node = section
        for part in parts[:-1]:
            node = node.child(part)
        leaf = node.add(TreeNode(parts[-1] if parts else v.name, v.display_name, v))
        for slot in slots_of.get(v.name, ()):  # its optimizer slots, shown again beside it
            leaf.add(TreeNode(f"[{slot.slot_name}]", slot.display_name, slot))
    root.children = [s for s in root.children if s.children]
    for i, section in enumerate(root.children):
        section.index = i
        _natural_order(section)
    _totals(root)
    by_section = {s.name: s.params for s in root.children}
    return VariableTree(root, by_section.get(MODEL, 0), by_section.get(OPTIMIZER_SECTION, 0))


def _natural_order(group: TreeNode) -> None:
    """Numbered children in natural order, as a model numbers them (layers/2 before
    layers/10: the checkpoint's keys are sorted as text); children named without digits keep
    the checkpoint's order, and a variable's own children (its slots) stay as they are."""
    children = group.children
    if len(children) > 1 and _DIGIT("".join([c.name for c in children])):
        children.sort(key=lambda c: natural_key(c.name))
        for i, child in enumerate(children):
            child.index = i
    for child in children:
        if child.variable is None:
            _natural_order(child)


_DIGIT = re.compile(r"\d").search


def _totals(node: TreeNode) -> tuple[int, int]:
    if node.variable is not None:
        node.params, node.bytes = node.variable.size, node.variable.bytes
        for c in node.children:  # slot copies: not counted twice
            _totals(c)
        return node.params, node.bytes
    params = size = 0
    for c in node.children:
        p, b = _totals(c)
        params += p
        size += b
    node.params, node.bytes = params, size
    return params, size
