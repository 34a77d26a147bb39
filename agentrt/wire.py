"""Wire protocol v1: bytes <-> messages. The specification is docs/protocol.md.

One message is one contiguous buffer (one ZeroMQ frame, so CONFLATE can keep
only the newest):

    offset 0   4s   magic        b"AGRT"
    offset 4   u8   version      1
    offset 5   u8   kind         1..7 (messages.Kind)
    offset 6   u16  flags        0 in v1
    offset 8   u32  header_len   bytes of the msgpack header
    offset 12  u32  payload_len  bytes of the raw payload
    offset 16       header       a msgpack map with string keys
    ...             zero padding to the next multiple of 8 (so payload views are aligned)
    payload_offset  payload      raw bytes (pixels, float32 actions)

All integers little-endian. Decoding validates everything before it allocates
anything and raises ``ProtocolError`` with one clear line. Never pickle.

Each kind's header is written once, in ``SCHEMAS``: its keys in wire order, each
with its type (checked on arrival, converted on departure) and whether it is
optional; a key is the name of the message dataclass's attribute, and an
optional key's default is that dataclass field's default. Encoding, decoding
and building the message all read that one table.

Over 450 lines: the protocol is one contract read beside docs/protocol.md; the schema table, its value
types and the codec that reads them are split only at the cost of following one field across files.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import struct
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

import msgpack
import numpy as np

from agentrt.errors import ProtocolError
from agentrt.messages import (
    ActionChunk,
    Answer,
    Frame,
    FrameRef,
    Heartbeat,
    Kind,
    Message,
    Query,
    RobotState,
    ShmRef,
    Telemetry,
)
from agentrt.pixels import PIXEL_FORMATS  # the formats and what each means live with the conversion

__all__ = ["MAGIC", "VERSION", "PREFIX", "MAX_HEADER_BYTES", "DTYPES", "ENCODINGS", "ACTION_KINDS", "SCHEMAS",
           "Field", "Schema", "encode", "encode_frame_header", "decode", "payload_offset"]

MAGIC = b"AGRT"
VERSION = 1
PREFIX = struct.Struct("<4sBBHII")  # magic, version, kind, flags, header_len, payload_len
MAX_HEADER_BYTES = 64 * 1024
MAX_SIDE = 16384
MAX_STR = 4096
DTYPES: dict[str, np.dtype] = {"uint8": np.dtype(np.uint8), "uint16": np.dtype("<u2"), "float32": np.dtype("<f4")}
ENCODINGS = ("raw", "jpeg", "shm")
ACTION_KINDS = ("ee_delta", "joint_target")  # the one list: sims and the robot bridge import it from here
NODE_STATES = ("starting", "ready", "running", "stopping", "failed")
_U63 = 2**63 - 1


def payload_offset(header_len: int) -> int:
    """Where the payload starts: after prefix and header, rounded up to a multiple of 8."""
    return (PREFIX.size + header_len + 7) & ~7


# ---------------------------------------------------------------- field types

# A check takes (kind name, key, value) and returns the (possibly converted) value or raises ProtocolError.
Check = Callable[[str, str, Any], Any]


class Type(NamedTuple):
    """A header value's type: ``check`` on arrival, ``put`` (to a msgpack value) on departure."""

    check: Check
    put: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _fail(kind: str, name: str, expected: str, value: Any) -> ProtocolError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ProtocolError(f"{kind} header field '{name}' must be {expected}, got {shown}")


def _int(low: int, high: int) -> Type:
    def check(kind: str, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(kind, name, f"an integer in {low}..{high}", value)
        return value

    return Type(check, int)


def _check_float(kind: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(kind, name, "a finite number", value)
    return float(value)


def _check_positive(kind: str, name: str, value: Any) -> float:
    number = _check_float(kind, name, value)
    if number <= 0:
        raise _fail(kind, name, "a number > 0", value)
    return number


def _str(min_len: int = 0, max_len: int = MAX_STR) -> Type:
    def check(kind: str, name: str, value: Any) -> str:
        if not isinstance(value, str) or not min_len <= len(value) <= max_len:
            raise _fail(kind, name, f"a string of {min_len}..{max_len} characters", value)
        return value

    return Type(check, _same)


def _enum(choices: tuple[str, ...]) -> Type:
    def check(kind: str, name: str, value: Any) -> str:
        if value not in choices:
            raise _fail(kind, name, f"one of {', '.join(choices)}", value)
        return str(value)

    return Type(check, _same)


def _check_bool(kind: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(kind, name, "true or false", value)
    return value


def _floats(min_len: int, max_len: int) -> Type:
    def check(kind: str, name: str, value: Any) -> np.ndarray:
        if not isinstance(value, list) or not min_len <= len(value) <= max_len:
            raise _fail(kind, name, f"a list of {min_len}..{max_len} numbers", value)
        return np.array([_check_float(kind, name, v) for v in value], dtype=np.float64)

    return Type(check, lambda values: [float(v) for v in values])


_SEQ = _TIME = _int(0, _U63)
_NAME = _str(1, 128)
_FLOAT = Type(_check_float, float)


def _check_hops(kind: str, name: str, value: Any) -> list[tuple[str, int]]:
    if not isinstance(value, list) or len(value) > 64:
        raise _fail(kind, name, "a list of at most 64 [name, t_ns] pairs", value)
    hops = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and len(item[0]) <= 64):
            raise _fail(kind, name, "a list of [name, t_ns] pairs", item)
        hops.append((item[0], _TIME.check(kind, name, item[1])))
    return hops


def _check_shm(kind: str, name: str, value: Any) -> ShmRef:
    if not isinstance(value, dict):
        raise _fail(kind, name, "a map {name, slot, generation}", value)
    return ShmRef(
        name=_str(1, 255).check(kind, "shm.name", value.get("name")),
        slot=_int(0, 65535).check(kind, "shm.slot", value.get("slot")),
        generation=_int(0, _U63).check(kind, "shm.generation", value.get("generation")),
    )


def _check_metrics(kind: str, name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > 256:
        raise _fail(kind, name, "a map of at most 256 name -> number", value)
    return {_NAME.check(kind, name, k): _check_float(kind, name, v) for k, v in value.items()}


_HOPS = Type(_check_hops, lambda hops: [[name, int(t)] for name, t in hops])
_SHM = Type(_check_shm, lambda shm: {"name": shm.name, "slot": shm.slot, "generation": shm.generation})
_METRICS = Type(_check_metrics, lambda metrics: {str(k): float(v) for k, v in metrics.items()})


# ---------------------------------------------------------------- one schema per kind


class Field(NamedTuple):
    """One header key: the message attribute of that name (or a wire-only value, such as ``encoding``)."""

    key: str
    type: Type
    optional: bool = False  # may be absent on arrival: then the dataclass field's default (written only there)
    skip: Callable[[Any], bool] | None = None  # not sent when true: keys added within v1 leave old bytes as they were


class Schema(NamedTuple):
    """A kind's header: its dataclass (whose name the errors use) and its keys in wire order."""

    cls: type
    fields: tuple[Field, ...]


def _empty(value: Any) -> bool:
    return not value


SCHEMAS: dict[Kind, Schema] = {
    Kind.FRAME: Schema(Frame, (
        Field("stream", _NAME), Field("seq", _SEQ), Field("t_capture_ns", _TIME),
        Field("width", _int(1, MAX_SIDE)), Field("height", _int(1, MAX_SIDE)), Field("channels", _int(1, 4)),
        Field("dtype", _enum(tuple(DTYPES))), Field("encoding", _enum(ENCODINGS)),
        Field("pixel_format", _enum(PIXEL_FORMATS + ("",)), optional=True),
        Field("hops", _HOPS, optional=True, skip=_empty),
        Field("shm", _SHM, optional=True, skip=lambda shm: shm is None),  # required with encoding "shm"
    )),
    Kind.ROBOT_STATE: Schema(RobotState, (
        Field("robot", _NAME), Field("seq", _SEQ), Field("t_ns", _TIME),
        Field("joint_positions", _floats(0, 64)), Field("joint_velocities", _floats(0, 64)),
        Field("ee_pose", _floats(7, 7)), Field("gripper", _FLOAT),
        Field("frame_seq", _int(-1, _U63), optional=True),
        Field("instruction", _str(), optional=True, skip=_empty),
        Field("episode", _int(-1, _U63), optional=True, skip=lambda episode: episode < 0),
    )),
    Kind.ACTION_CHUNK: Schema(ActionChunk, (
        Field("robot", _NAME), Field("seq", _SEQ), Field("frame_seq", _int(-1, _U63)),
        Field("t_capture_ns", _TIME), Field("t_sent_ns", _TIME, optional=True),
        Field("action_kind", _enum(ACTION_KINDS)),
        Field("steps", _int(1, 1024)), Field("dims", _int(1, 64)), Field("dtype", _enum(("float32",))),
        Field("dt_ms", Type(_check_positive, float)),
        Field("hops", _HOPS, optional=True, skip=_empty),
    )),
    Kind.QUERY: Schema(Query, (
        Field("id", _NAME), Field("seq", _SEQ), Field("t_ns", _TIME), Field("text", _str(0, MAX_STR)),
        Field("stream", _str(0, 128), optional=True),
    )),
    Kind.ANSWER: Schema(Answer, (
        Field("query_id", _NAME), Field("seq", _SEQ), Field("t_ns", _TIME), Field("text", _str(0, MAX_STR)),
        Field("done", Type(_check_bool, bool), optional=True), Field("error", _str(0, MAX_STR), optional=True),
    )),
    Kind.TELEMETRY: Schema(Telemetry, (
        Field("node", _NAME), Field("seq", _SEQ), Field("t_ns", _TIME),
        Field("metrics", _METRICS),  # required on the wire, though the dataclass defaults it
    )),
    Kind.HEARTBEAT: Schema(Heartbeat, (
        Field("node", _NAME), Field("seq", _SEQ), Field("t_ns", _TIME), Field("state", _enum(NODE_STATES)),
        Field("pid", _int(0, 2**31 - 1), optional=True),
    )),
}
_MESSAGE_TYPES = typing.get_args(Message)


# ---------------------------------------------------------------- encoding


def _pack(kind: Kind, header: dict[str, Any], payload: Any = b"") -> bytearray:
    header_bytes = msgpack.packb(header, use_bin_type=True)
    view = memoryview(payload).cast("B") if payload is not None else memoryview(b"")
    start = payload_offset(len(header_bytes))
    buffer = bytearray(start + view.nbytes)  # zero-filled, so the padding is zero
    PREFIX.pack_into(buffer, 0, MAGIC, VERSION, int(kind), 0, len(header_bytes), view.nbytes)
    buffer[PREFIX.size : PREFIX.size + len(header_bytes)] = header_bytes
    if view.nbytes:
        # The one copy of the payload. np.copyto runs at memcpy speed; bytearray slice
        # assignment from a memoryview was 20x slower for a 1080p frame.
        np.copyto(np.frombuffer(buffer, dtype=np.uint8, offset=start), np.frombuffer(view, dtype=np.uint8))
    return buffer


def _header(kind: Kind, message: Any, wire_only: dict[str, Any]) -> dict[str, Any]:
    """The header map of ``message``, in schema order; ``wire_only`` holds values that are not attributes."""
    header: dict[str, Any] = {}
    for field in SCHEMAS[kind].fields:
        value = wire_only[field.key] if field.key in wire_only else getattr(message, field.key)
        if field.skip is None or not field.skip(value):
            header[field.key] = field.type.put(value)
    return header


def encode_frame_header(frame: Frame | FrameRef, encoding: str, shm: ShmRef | None = None) -> dict[str, Any]:
    """The Frame header map, for callers that place the pixels themselves (shared-memory ring)."""
    dtype = frame.image.dtype.name if isinstance(frame, Frame) else frame.dtype
    return _header(Kind.FRAME, frame, {"dtype": dtype, "encoding": encoding, "shm": shm})


def encode(message: Message, *, encoding: str = "raw", jpeg_quality: int = 80) -> bytearray:
    """Encode a message into one buffer. Frames may be sent ``encoding="jpeg"`` (uint8, 1 or 3 channels)."""
    if not isinstance(message, _MESSAGE_TYPES):
        raise ProtocolError(f"cannot encode {type(message).__name__}: expected one of the agentrt.messages kinds")
    if isinstance(message, Frame):
        image = message.image
        if image.dtype.name not in DTYPES or image.ndim not in (2, 3):
            raise ProtocolError(
                f"Frame image must be HxW or HxWxC of {', '.join(DTYPES)}, got shape {image.shape} dtype {image.dtype}"
            )
        if encoding == "jpeg":
            from agentrt.codecs import jpeg_encode

            payload: Any = jpeg_encode(image, message.pixel_format, jpeg_quality)
        elif encoding == "raw":
            payload = np.ascontiguousarray(image, dtype=DTYPES[image.dtype.name])  # little-endian on the wire
        else:
            raise ProtocolError(f"Frame encoding must be 'raw' or 'jpeg' when encoding a Frame, got {encoding!r}")
        return _pack(Kind.FRAME, encode_frame_header(message, encoding), payload)
    if isinstance(message, FrameRef):
        return _pack(Kind.FRAME, encode_frame_header(message, "shm", message.shm))
    if isinstance(message, ActionChunk):
        actions = np.ascontiguousarray(message.actions, dtype="<f4")
        if actions.ndim != 2:
            raise ProtocolError(f"ActionChunk actions must be 2-D (steps, dims), got shape {actions.shape}")
        wire_only = {"steps": actions.shape[0], "dims": actions.shape[1], "dtype": "float32"}
        return _pack(Kind.ACTION_CHUNK, _header(Kind.ACTION_CHUNK, message, wire_only), actions)
    return _pack(message.kind, _header(message.kind, message, {}))


# ---------------------------------------------------------------- decoding


def _validated(schema: Schema, header: Any) -> dict[str, Any]:
    if not isinstance(header, dict):
        raise ProtocolError(f"{schema.cls.__name__} header must be a msgpack map, got {type(header).__name__}")
    values: dict[str, Any] = {}
    for field in schema.fields:
        if field.key in header:
            values[field.key] = field.type.check(schema.cls.__name__, field.key, header[field.key])
        elif field.optional:
            values[field.key] = _default(schema.cls, field.key)
        else:
            sent = ", ".join(sorted(str(k) for k in header))[:120] or "no fields"
            raise ProtocolError(f"{schema.cls.__name__} header lacks the required field '{field.key}', got {sent}")
    return values  # unknown keys are ignored: v1 senders may add optional fields


def decode(buffer: Any, *, max_payload_bytes: int = 1 << 30) -> Message:
    """Decode and validate one message. Raises ProtocolError, and nothing else, on any bad input.

    Accepts bytes, bytearray, memoryview or a zmq.Frame; raw payloads come back as
    read-only numpy views of ``buffer`` (no copy).
    """
    try:
        view = memoryview(getattr(buffer, "buffer", buffer)).cast("B")
    except TypeError as exc:
        raise ProtocolError(f"a message must be a bytes-like buffer, got {type(buffer).__name__}") from exc
    total = view.nbytes
    if total < PREFIX.size:
        raise ProtocolError(f"message truncated: {total} bytes, shorter than the {PREFIX.size}-byte prefix")
    magic, version, kind_byte, flags, header_len, payload_len = PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {bytes(magic)!r}: expected {MAGIC!r} (not an agentrt message)")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version}: this receiver speaks version {VERSION}; upgrade the older side")
    try:
        kind = Kind(kind_byte)
    except ValueError:
        raise ProtocolError(f"unknown message kind {kind_byte}: expected 1..{max(Kind)}") from None
    if flags != 0:
        raise ProtocolError(f"flags must be 0 in protocol v1, got {flags:#06x}")
    if header_len == 0 or header_len > MAX_HEADER_BYTES:
        raise ProtocolError(f"header length {header_len} out of range 1..{MAX_HEADER_BYTES}")
    if payload_len > max_payload_bytes:
        raise ProtocolError(f"payload length {payload_len} exceeds the receiver's limit of {max_payload_bytes} bytes")
    start = payload_offset(header_len)
    if total != start + payload_len:
        raise ProtocolError(
            f"message length {total} does not match its prefix: expected {start + payload_len} "
            f"(header {header_len}, payload {payload_len}); truncated or corrupt"
        )
    if any(view[PREFIX.size + header_len : start]):
        raise ProtocolError("padding between header and payload must be zero")
    try:
        header = msgpack.unpackb(view[PREFIX.size : PREFIX.size + header_len], raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types (ExtraData, FormatError, ValueError, ...)
        raise ProtocolError(f"header is not valid msgpack: {exc}") from None
    values = _validated(SCHEMAS[kind], header)
    return _BUILDERS.get(kind, _build_plain)(kind, values, view[start:])


@functools.cache
def _declared(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _default(cls: type, key: str) -> Any:
    """The dataclass default of an optional key that was not sent; a fresh list or dict each time."""
    spec = _declared(cls)[key]
    factory: Any = spec.default_factory
    return spec.default if factory is dataclasses.MISSING else factory()


def _make(cls: type, values: dict[str, Any]) -> Any:
    """The dataclass from the validated values: every init field it declares, by name (wire-only keys stay out)."""
    return cls(**{name: values[name] for name in _declared(cls) if name in values})


def _no_payload(name: str, payload: memoryview) -> None:
    if payload.nbytes:
        raise ProtocolError(f"{name} carries no payload, got {payload.nbytes} bytes")


def _build_plain(kind: Kind, values: dict[str, Any], payload: memoryview) -> Message:
    schema = SCHEMAS[kind]
    _no_payload(schema.cls.__name__, payload)
    return _make(schema.cls, values)


def _build_frame(kind: Kind, f: dict[str, Any], payload: memoryview) -> Frame | FrameRef:
    height, width, channels, dtype = f["height"], f["width"], f["channels"], DTYPES[f["dtype"]]
    if f["encoding"] == "shm":
        if f["shm"] is None:
            raise ProtocolError("Frame with encoding 'shm' lacks the 'shm' field {name, slot, generation}")
        _no_payload("a shared-memory Frame", payload)
        return _make(FrameRef, f)
    if f["encoding"] == "jpeg":
        if f["dtype"] != "uint8" or channels not in (1, 3):
            raise ProtocolError(f"a jpeg Frame must be uint8 with 1 or 3 channels, got {f['dtype']} x {channels}")
        from agentrt.codecs import jpeg_decode

        image = jpeg_decode(payload, width, height, channels, f["pixel_format"])
    else:
        expected = height * width * channels * dtype.itemsize
        if payload.nbytes != expected:
            raise ProtocolError(
                f"Frame payload is {payload.nbytes} bytes but {height}x{width}x{channels} {f['dtype']} needs {expected}"
            )
        image = np.frombuffer(payload, dtype=dtype).reshape(height, width, channels)
    return _make(Frame, {**f, "image": image, "shm": None})  # pixels in the message, not in a ring


def _build_state(kind: Kind, f: dict[str, Any], payload: memoryview) -> Message:
    if len(f["joint_positions"]) != len(f["joint_velocities"]):
        raise ProtocolError(
            f"RobotState has {len(f['joint_positions'])} joint positions but {len(f['joint_velocities'])} velocities"
        )
    return _build_plain(kind, f, payload)


def _build_chunk(kind: Kind, f: dict[str, Any], payload: memoryview) -> ActionChunk:
    expected = f["steps"] * f["dims"] * 4
    if payload.nbytes != expected:
        raise ProtocolError(f"ActionChunk payload is {payload.nbytes} bytes but {f['steps']}x{f['dims']} float32 needs {expected}")
    actions = np.frombuffer(payload, dtype="<f4").reshape(f["steps"], f["dims"])
    if not np.isfinite(actions).all():
        raise ProtocolError("ActionChunk actions contain NaN or infinity")
    return _make(ActionChunk, {**f, "actions": actions})


# Kinds whose payload or cross-field rules need more than the schema; the rest are built by _build_plain.
_BUILDERS: dict[Kind, Callable[[Kind, dict[str, Any], memoryview], Message]] = {
    Kind.FRAME: _build_frame, Kind.ROBOT_STATE: _build_state, Kind.ACTION_CHUNK: _build_chunk}
