"""Decode ``_CHECKPOINTABLE_OBJECT_GRAPH``: the tree tf.train.Checkpoint saved its objects as.

Schema (tensorflow/core/protobuf/trackable_object_graph.proto):
  TrackableObjectGraph { repeated TrackableObject nodes = 1; }
  TrackableObject { repeated ObjectReference children = 1; repeated SerializedTensor attributes = 2;
                    repeated SlotVariableReference slot_variables = 3; }
  ObjectReference { int32 node_id = 1; string local_name = 2; }
  SerializedTensor { string name = 1; string full_name = 2; string checkpoint_key = 3; }
  SlotVariableReference { int32 original_variable_node_id = 1; string slot_name = 2;
                          int32 slot_variable_node_id = 3; }
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from . import fastproto, protowire as pw
from .model import ObjectNode


@dataclass
class ObjectGraph:
    root: ObjectNode
    nodes: dict[int, ObjectNode]
    key_to_node: dict[str, int]               # checkpoint key -> node id owning it
    slot_owner: dict[str, tuple[str, str]]    # slot key -> (original variable key, slot name)
    order: list[str]                          # variable keys in depth-first object order
    full_names: dict[str, str]                # checkpoint key -> the variable's own name
                                              # (Keras: <layer>/<weight>, e.g. dense/kernel)


def _text(b: bytes | None) -> str:
    return (b or b"").decode("utf-8", "replace")


def _raw_nodes_fast(data: bytes, full_names: bool = False) -> list:
    try:
        graph = fastproto.TrackableObjectGraph.FromString(bytes(data))
    except fastproto.DecodeError as e:
        raise pw.WireError(str(e) or "not a TrackableObjectGraph") from None
    return [([(c.node_id, _text(c.local_name)) for c in node.children],
             [(_text(a.name), _text(a.checkpoint_key), _text(a.full_name)) if full_names
              else (_text(a.name), _text(a.checkpoint_key)) for a in node.attributes],
             [(sv.original_variable_node_id, _text(sv.slot_name), sv.slot_variable_node_id)
              for sv in node.slot_variables])
            for node in graph.nodes]


def _raw_nodes_wire(data: bytes, full_names: bool = False) -> list:
    raw_nodes = []
    for node_bytes in pw.fields(data).get(1, []):
        node = pw.fields(node_bytes)
        children = []
        for ref in node.get(1, []):
            r = pw.fields(ref)
            children.append((pw.first(r, 1, 0), _text(pw.first(r, 2))))
        attributes = []
        for attr in node.get(2, []):
            a = pw.fields(attr)
            attribute = (_text(pw.first(a, 1)), _text(pw.first(a, 3)))
            attributes.append(attribute + (_text(pw.first(a, 2)),) if full_names else attribute)
        slots = []
        for slot in node.get(3, []):
            s = pw.fields(slot)
            slots.append((pw.first(s, 1, 0), _text(pw.first(s, 2)), pw.first(s, 3, 0)))
        raw_nodes.append((children, attributes, slots))
    return raw_nodes


def raw_nodes(data: bytes, full_names: bool = False) -> list:
    """Every node with every edge, as stored: ([(child id, local name)], [(attribute name,
    checkpoint key)], [(original id, slot name, slot id)]); ``full_names``: each attribute
    with the variable's full name as a third item. WireError if malformed or empty."""
    read = _raw_nodes_fast if fastproto.AVAILABLE else _raw_nodes_wire
    nodes = read(data, full_names)
    if not nodes:
        raise pw.WireError("the object graph has no nodes")
    return nodes


def decode(data: bytes) -> ObjectGraph:
    return _build(raw_nodes(data, full_names=True))


def _build(raw_nodes: list) -> ObjectGraph:
    nodes: dict[int, ObjectNode] = {0: ObjectNode(0, "", "")}
    queue = deque([0])
    while queue:  # breadth first: each node gets its shortest path; later paths are aliases
        nid = queue.popleft()
        parent = nodes[nid]
        for child_id, local_name in raw_nodes[nid][0]:
            if not 0 <= child_id < len(raw_nodes):
                continue
            path = f"{parent.path}/{local_name}" if parent.path else local_name
            if child_id in nodes:
                nodes[child_id].aliases.append(path)
                continue
            child = ObjectNode(child_id, local_name, path)
            nodes[child_id] = child
            parent.children.append(child)
            queue.append(child_id)

    key_to_node: dict[str, int] = {}
    full_names: dict[str, str] = {}
    for nid, (_, attributes, _) in enumerate(raw_nodes):
        node = nodes.get(nid)
        if node is None:
            node = nodes[nid] = ObjectNode(nid, f"(node {nid})", f"(unreachable)/{nid}")
        for _, key, full_name in attributes:
            if key:
                node.variables.append(key)
                key_to_node[key] = nid
                if full_name:
                    full_names[key] = full_name

    slot_owner: dict[str, tuple[str, str]] = {}
    for nid, (_, _, slots) in enumerate(raw_nodes):
        for original_id, slot_name, slot_id in slots:
            original, slot_node = nodes.get(original_id), nodes.get(slot_id)
            if original is None or slot_node is None:
                continue
            for slot_key in slot_node.variables:
                original.slots.append((slot_name, slot_key))
                if original.variables:
                    slot_owner[slot_key] = (original.variables[0], slot_name)

    order: list[str] = []
    stack = [nodes[0]]
    while stack:
        node = stack.pop()
        order.extend(node.variables)
        stack.extend(reversed(node.children))
    return ObjectGraph(nodes[0], nodes, key_to_node, slot_owner, order, full_names)
