"""A checkpoint's variables as the model's object tree, optimizer state apart.

Plain data for any face: the GUI's tree model is an adapter over ``VariableTree``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import (BIAS, COUNTER, METADATA, NORMALIZATION, OPTIMIZER, OTHER, WEIGHT,
                    CheckpointInfo, VariableInfo)
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

    def child(self, name: str) -> "TreeNode":
        for c in self.children:
            if c.name == name and c.variable is None:
                return c
        node = TreeNode(name, f"{self.path}/{name}" if self.path else name, parent=self)
        self.children.append(node)
        return node

    def add(self, node: "TreeNode") -> "TreeNode":
        node.parent = self
        self.children.append(node)
        return node

    def row(self) -> int:
        return self.parent.children.index(self) if self.parent else 0

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
    """Where a variable sits in the tree: the model's own path for a model variable saved
    through its optimizer, and ``<optimizer>/<owner path>/<slot name>`` for optimizer slots
    (``.OPTIMIZER_SLOT`` keys and Keras 3's anonymous ``optimizer/_variables/N`` alike)."""
    if v.slot_of and v.slot_name:
        owner = by_name.get(v.slot_of)
        owner_path = (owner.model_path or owner.path) if owner else v.slot_of
        if SLOT_MARKER in v.name:
            optimizer = v.name.split(SLOT_MARKER, 1)[1].split("/", 1)[0]
        else:  # net/optimizer/_variables/3 -> net/optimizer
            optimizer = v.path.rsplit("/", 2)[0] if v.path.count("/") >= 2 else "optimizer"
        return f"{optimizer}/{owner_path}/{v.slot_name}"
    return v.model_path or v.path


def build_tree(ckpt: CheckpointInfo) -> VariableTree:
    root = TreeNode("")
    sections = {name: root.add(TreeNode(name, name)) for name in SECTIONS}
    by_name = {v.name: v for v in ckpt.variables}
    for v in ckpt.variables:
        section = sections[SECTION_OF_ROLE.get(v.role, MODEL)]
        parts = [p for p in display_path(v, by_name).split("/") if p]
        node = section
        for part in parts[:-1]:
            node = node.child(part)
        leaf = node.add(TreeNode(parts[-1] if parts else v.name, v.path, v))
        for other in ckpt.variables:  # the variable's optimizer slots, shown again beside it
            if other.slot_of == v.name:
                leaf.add(TreeNode(f"[{other.slot_name}]", other.path, other))
    root.children = [s for s in root.children if s.children]
    _totals(root)
    by_section = {s.name: s.params for s in root.children}
    return VariableTree(root, by_section.get(MODEL, 0), by_section.get(OPTIMIZER_SECTION, 0))


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
