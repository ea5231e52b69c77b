"""Compiled (upb) parsers for the few protobuf messages a checkpoint index and object graph use.

``google.protobuf`` comes with TensorFlow; its upb backend parses a message in C, tens of times
faster than decoding the wire format in Python (protowire.py, which stays the fallback). The
message types are declared here, in a private descriptor pool, so no TensorFlow module (which
would import all of TensorFlow, seconds) is needed. Strings are declared as ``bytes``: a damaged
file must not fail on UTF-8 validation; callers decode with ``errors="replace"``.

Schemas: tensorflow/core/protobuf/tensor_bundle.proto, trackable_object_graph.proto,
tensorflow/core/framework/tensor_shape.proto, tensor_slice.proto.
"""
from __future__ import annotations

PACKAGE = "ckpt_gui_fastproto"

_OPTIONAL, _REPEATED = 1, 3
_INT64, _INT32, _FIXED32, _BOOL, _MESSAGE, _BYTES = 3, 5, 7, 8, 11, 12

# message -> [(field, number, type, label, message type)]
_SCHEMA = {
    "Dim": [("size", 1, _INT64, _OPTIONAL, None), ("name", 2, _BYTES, _OPTIONAL, None)],
    "TensorShapeProto": [("dim", 2, _MESSAGE, _REPEATED, "Dim"),
                         ("unknown_rank", 3, _BOOL, _OPTIONAL, None)],
    "Extent": [("start", 1, _INT64, _OPTIONAL, None), ("length", 2, _INT64, _OPTIONAL, None)],
    "TensorSliceProto": [("extent", 1, _MESSAGE, _REPEATED, "Extent")],
    "BundleHeaderProto": [("num_shards", 1, _INT32, _OPTIONAL, None),
                          ("endianness", 2, _INT32, _OPTIONAL, None)],
    "BundleEntryProto": [("dtype", 1, _INT32, _OPTIONAL, None),
                         ("shape", 2, _MESSAGE, _OPTIONAL, "TensorShapeProto"),
                         ("shard_id", 3, _INT32, _OPTIONAL, None),
                         ("offset", 4, _INT64, _OPTIONAL, None),
                         ("size", 5, _INT64, _OPTIONAL, None),
                         ("crc32c", 6, _FIXED32, _OPTIONAL, None),
                         ("slices", 7, _MESSAGE, _REPEATED, "TensorSliceProto")],
    "ObjectReference": [("node_id", 1, _INT32, _OPTIONAL, None),
                        ("local_name", 2, _BYTES, _OPTIONAL, None)],
    "SerializedTensor": [("name", 1, _BYTES, _OPTIONAL, None),
                         ("full_name", 2, _BYTES, _OPTIONAL, None),
                         ("checkpoint_key", 3, _BYTES, _OPTIONAL, None)],
    "SlotVariableReference": [("original_variable_node_id", 1, _INT32, _OPTIONAL, None),
                              ("slot_name", 2, _BYTES, _OPTIONAL, None),
                              ("slot_variable_node_id", 3, _INT32, _OPTIONAL, None)],
    "TrackableObject": [("children", 1, _MESSAGE, _REPEATED, "ObjectReference"),
                        ("attributes", 2, _MESSAGE, _REPEATED, "SerializedTensor"),
                        ("slot_variables", 3, _MESSAGE, _REPEATED, "SlotVariableReference")],
    "TrackableObjectGraph": [("nodes", 1, _MESSAGE, _REPEATED, "TrackableObject")],
}


def _build() -> dict:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name=f"{PACKAGE}.proto", package=PACKAGE,
                                             syntax="proto2")
    for name, fields in _SCHEMA.items():
        msg = fdp.message_type.add(name=name)
        for field, number, ftype, label, type_name in fields:
            f = msg.field.add(name=field, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".{PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    get = getattr(message_factory, "GetMessageClass", None)
    if get is None:  # protobuf < 4.22
        factory = message_factory.MessageFactory(pool)
        get = factory.GetPrototype
    return {name: get(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in _SCHEMA}


try:
    from google.protobuf.message import DecodeError

    _CLASSES = _build()
except Exception:  # no protobuf package, or one too old: the pure-Python decoder is used
    _CLASSES = {}

    class DecodeError(Exception):  # type: ignore[no-redef]
        pass

AVAILABLE = bool(_CLASSES)
BundleHeaderProto = _CLASSES.get("BundleHeaderProto")
BundleEntryProto = _CLASSES.get("BundleEntryProto")
TensorShapeProto = _CLASSES.get("TensorShapeProto")
TrackableObjectGraph = _CLASSES.get("TrackableObjectGraph")
