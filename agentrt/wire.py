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
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

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

__all__ = [
    "MAGIC",
    "VERSION",
    "PREFIX",
    "MAX_HEADER_BYTES",
    "DTYPES",
    "ENCODINGS",
    "encode",
    "encode_frame_header",
    "decode",
    "payload_offset",
]

MAGIC = b"AGRT"
VERSION = 1
PREFIX = struct.Struct("<4sBBHII")  # magic, version, kind, flags, header_len, payload_len
MAX_HEADER_BYTES = 64 * 1024
MAX_SIDE = 16384
MAX_STR = 4096
MAX_LIST = 1024
DTYPES: dict[str, np.dtype] = {"uint8": np.dtype(np.uint8), "uint16": np.dtype("<u2"), "float32": np.dtype("<f4")}
ENCODINGS = ("raw", "jpeg", "shm")
ACTION_KINDS = ("ee_delta", "joint_target")
NODE_STATES = ("starting", "ready", "running", "stopping", "failed")
_U63 = 2**63 - 1


def payload_offset(header_len: int) -> int:
    """Where the payload starts: after prefix and header, rounded up to a multiple of 8."""
    return (PREFIX.size + header_len + 7) & ~7


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


def _hops(hops: list[tuple[str, int]]) -> list[list[Any]]:
    return [[name, int(t)] for name, t in hops]


def encode_frame_header(frame: Frame | FrameRef, encoding: str, shm: ShmRef | None = None) -> dict[str, Any]:
    """The Frame header map, for callers that place the pixels themselves (shared-memory ring)."""
    if isinstance(frame, Frame):
        height, width, channels, dtype = frame.height, frame.width, frame.channels, frame.image.dtype.name
    else:
        height, width, channels, dtype = frame.height, frame.width, frame.channels, frame.dtype
    header: dict[str, Any] = {
        "stream": frame.stream,
        "seq": int(frame.seq),
        "t_capture_ns": int(frame.t_capture_ns),
        "width": width,
        "height": height,
        "channels": channels,
        "dtype": dtype,
        "encoding": encoding,
        "pixel_format": frame.pixel_format,
    }
    if frame.hops:
        header["hops"] = _hops(frame.hops)
    if shm is not None:
        header["shm"] = {"name": shm.name, "slot": shm.slot, "generation": shm.generation}
    return header


def encode(message: Message, *, encoding: str = "raw", jpeg_quality: int = 80) -> bytearray:
    """Encode a message into one buffer. Frames may be sent ``encoding="jpeg"`` (uint8, 1 or 3 channels)."""
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
    if isinstance(message, RobotState):
        header = {
            "robot": message.robot,
            "seq": int(message.seq),
            "t_ns": int(message.t_ns),
            "joint_positions": [float(v) for v in message.joint_positions],
            "joint_velocities": [float(v) for v in message.joint_velocities],
            "ee_pose": [float(v) for v in message.ee_pose],
            "gripper": float(message.gripper),
            "frame_seq": int(message.frame_seq),
        }
        if message.instruction:  # optional fields: sent only when set, so v1 readers of old senders see no change
            header["instruction"] = message.instruction
        if message.episode >= 0:
            header["episode"] = int(message.episode)
        return _pack(Kind.ROBOT_STATE, header)
    if isinstance(message, ActionChunk):
        actions = np.ascontiguousarray(message.actions, dtype="<f4")
        if actions.ndim != 2:
            raise ProtocolError(f"ActionChunk actions must be 2-D (steps, dims), got shape {actions.shape}")
        header = {
            "robot": message.robot,
            "seq": int(message.seq),
            "frame_seq": int(message.frame_seq),
            "t_capture_ns": int(message.t_capture_ns),
            "t_sent_ns": int(message.t_sent_ns),
            "action_kind": message.action_kind,
            "steps": int(actions.shape[0]),
            "dims": int(actions.shape[1]),
            "dtype": "float32",
            "dt_ms": float(message.dt_ms),
        }
        if message.hops:
            header["hops"] = _hops(message.hops)
        return _pack(Kind.ACTION_CHUNK, header, actions)
    if isinstance(message, Query):
        header = {"id": message.id, "seq": message.seq, "t_ns": message.t_ns, "text": message.text, "stream": message.stream}
        return _pack(Kind.QUERY, header)
    if isinstance(message, Answer):
        header = {
            "query_id": message.query_id,
            "seq": message.seq,
            "t_ns": message.t_ns,
            "text": message.text,
            "done": bool(message.done),
            "error": message.error,
        }
        return _pack(Kind.ANSWER, header)
    if isinstance(message, Telemetry):
        metrics = {str(k): float(v) for k, v in message.metrics.items()}
        return _pack(Kind.TELEMETRY, {"node": message.node, "seq": message.seq, "t_ns": message.t_ns, "metrics": metrics})
    if isinstance(message, Heartbeat):
        header = {"node": message.node, "seq": message.seq, "t_ns": message.t_ns, "state": message.state, "pid": message.pid}
        return _pack(Kind.HEARTBEAT, header)
    raise ProtocolError(f"cannot encode {type(message).__name__}: expected one of the agentrt.messages kinds")


# ---------------------------------------------------------------- decoding

# A field check returns the (possibly converted) value or raises ProtocolError.
Check = Callable[[str, str, Any], Any]


def _fail(kind: str, name: str, expected: str, value: Any) -> ProtocolError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ProtocolError(f"{kind} header field '{name}' must be {expected}, got {shown}")


def _int(low: int, high: int) -> Check:
    def check(kind: str, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(kind, name, f"an integer in {low}..{high}", value)
        return value

    return check


def _float(kind: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(kind, name, "a finite number", value)
    return float(value)


def _positive_float(kind: str, name: str, value: Any) -> float:
    number = _float(kind, name, value)
    if number <= 0:
        raise _fail(kind, name, "a number > 0", value)
    return number


def _str(min_len: int = 0, max_len: int = MAX_STR) -> Check:
    def check(kind: str, name: str, value: Any) -> str:
        if not isinstance(value, str) or not min_len <= len(value) <= max_len:
            raise _fail(kind, name, f"a string of {min_len}..{max_len} characters", value)
        return value

    return check


def _enum(choices: tuple[str, ...]) -> Check:
    def check(kind: str, name: str, value: Any) -> str:
        if value not in choices:
            raise _fail(kind, name, f"one of {', '.join(choices)}", value)
        return str(value)

    return check


def _bool(kind: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(kind, name, "true or false", value)
    return value


def _floats(min_len: int, max_len: int) -> Check:
    def check(kind: str, name: str, value: Any) -> np.ndarray:
        if not isinstance(value, list) or not min_len <= len(value) <= max_len:
            raise _fail(kind, name, f"a list of {min_len}..{max_len} numbers", value)
        return np.array([_float(kind, name, v) for v in value], dtype=np.float64)

    return check


def _hop_list(kind: str, name: str, value: Any) -> list[tuple[str, int]]:
    if not isinstance(value, list) or len(value) > 64:
        raise _fail(kind, name, "a list of at most 64 [name, t_ns] pairs", value)
    hops = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and len(item[0]) <= 64):
            raise _fail(kind, name, "a list of [name, t_ns] pairs", item)
        hops.append((item[0], _int(0, _U63)(kind, name, item[1])))
    return hops


def _shm(kind: str, name: str, value: Any) -> ShmRef:
    if not isinstance(value, dict):
        raise _fail(kind, name, "a map {name, slot, generation}", value)
    return ShmRef(
        name=_str(1, 255)(kind, "shm.name", value.get("name")),
        slot=_int(0, 65535)(kind, "shm.slot", value.get("slot")),
        generation=_int(0, _U63)(kind, "shm.generation", value.get("generation")),
    )


def _metrics(kind: str, name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > 256:
        raise _fail(kind, name, "a map of at most 256 name -> number", value)
    return {_str(1, 128)(kind, name, k): _float(kind, name, v) for k, v in value.items()}


_SEQ = _int(0, _U63)
_TIME = _int(0, _U63)
_NAME = _str(1, 128)

# kind -> {field: (check, required, default)}
_SCHEMAS: dict[Kind, dict[str, tuple[Check, bool, Any]]] = {
    Kind.FRAME: {
        "stream": (_NAME, True, None),
        "seq": (_SEQ, True, None),
        "t_capture_ns": (_TIME, True, None),
        "width": (_int(1, MAX_SIDE), True, None),
        "height": (_int(1, MAX_SIDE), True, None),
        "channels": (_int(1, 4), True, None),
        "dtype": (_enum(tuple(DTYPES)), True, None),
        "encoding": (_enum(ENCODINGS), True, None),
        "pixel_format": (_enum(PIXEL_FORMATS + ("",)), False, ""),
        "hops": (_hop_list, False, []),
        "shm": (_shm, False, None),
    },
    Kind.ROBOT_STATE: {
        "robot": (_NAME, True, None),
        "seq": (_SEQ, True, None),
        "t_ns": (_TIME, True, None),
        "joint_positions": (_floats(0, 64), True, None),
        "joint_velocities": (_floats(0, 64), True, None),
        "ee_pose": (_floats(7, 7), True, None),
        "gripper": (_float, True, None),
        "frame_seq": (_int(-1, _U63), False, -1),
        "instruction": (_str(), False, ""),
        "episode": (_int(-1, _U63), False, -1),
    },
    Kind.ACTION_CHUNK: {
        "robot": (_NAME, True, None),
        "seq": (_SEQ, True, None),
        "frame_seq": (_int(-1, _U63), True, None),
        "t_capture_ns": (_TIME, True, None),
        "t_sent_ns": (_TIME, False, 0),
        "action_kind": (_enum(ACTION_KINDS), True, None),
        "steps": (_int(1, 1024), True, None),
        "dims": (_int(1, 64), True, None),
        "dtype": (_enum(("float32",)), True, None),
        "dt_ms": (_positive_float, True, None),
        "hops": (_hop_list, False, []),
    },
    Kind.QUERY: {
        "id": (_NAME, True, None),
        "seq": (_SEQ, True, None),
        "t_ns": (_TIME, True, None),
        "text": (_str(0, MAX_STR), True, None),
        "stream": (_str(0, 128), False, ""),
    },
    Kind.ANSWER: {
        "query_id": (_NAME, True, None),
        "seq": (_SEQ, True, None),
        "t_ns": (_TIME, True, None),
        "text": (_str(0, MAX_STR), True, None),
        "done": (_bool, False, False),
        "error": (_str(0, MAX_STR), False, ""),
    },
    Kind.TELEMETRY: {
        "node": (_NAME, True, None),
        "seq": (_SEQ, True, None),
        "t_ns": (_TIME, True, None),
        "metrics": (_metrics, True, None),
    },
    Kind.HEARTBEAT: {
        "node": (_NAME, True, None),
        "seq": (_SEQ, True, None),
        "t_ns": (_TIME, True, None),
        "state": (_enum(NODE_STATES), True, None),
        "pid": (_int(0, 2**31 - 1), False, 0),
    },
}

_KIND_NAMES = {Kind.FRAME: "Frame", Kind.ROBOT_STATE: "RobotState", Kind.ACTION_CHUNK: "ActionChunk",
               Kind.QUERY: "Query", Kind.ANSWER: "Answer", Kind.TELEMETRY: "Telemetry", Kind.HEARTBEAT: "Heartbeat"}


def _validated(kind: Kind, header: Any) -> dict[str, Any]:
    name = _KIND_NAMES[kind]
    if not isinstance(header, dict):
        raise ProtocolError(f"{name} header must be a msgpack map, got {type(header).__name__}")
    fields: dict[str, Any] = {}
    for key, (check, required, default) in _SCHEMAS[kind].items():
        if key in header:
            fields[key] = check(name, key, header[key])
        elif required:
            raise ProtocolError(f"{name} header lacks the required field '{key}'")
        else:
            fields[key] = default
    return fields  # unknown keys are ignored: v1 senders may add optional fields


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
    fields = _validated(kind, header)
    payload = view[start:]
    return _BUILDERS[kind](fields, payload)


def _no_payload(name: str, payload: memoryview) -> None:
    if payload.nbytes:
        raise ProtocolError(f"{name} carries no payload, got {payload.nbytes} bytes")


def _build_frame(f: dict[str, Any], payload: memoryview) -> Frame | FrameRef:
    height, width, channels, dtype = f["height"], f["width"], f["channels"], DTYPES[f["dtype"]]
    pixel_format = f["pixel_format"]
    if f["encoding"] == "shm":
        if f["shm"] is None:
            raise ProtocolError("Frame with encoding 'shm' lacks the 'shm' field {name, slot, generation}")
        _no_payload("a shared-memory Frame", payload)
        return FrameRef(f["stream"], f["seq"], f["t_capture_ns"], width, height, channels, f["dtype"],
                        pixel_format, f["shm"], f["hops"])
    if f["encoding"] == "jpeg":
        if f["dtype"] != "uint8" or channels not in (1, 3):
            raise ProtocolError(f"a jpeg Frame must be uint8 with 1 or 3 channels, got {f['dtype']} x {channels}")
        from agentrt.codecs import jpeg_decode

        image = jpeg_decode(payload, width, height, channels, pixel_format)
    else:
        expected = height * width * channels * dtype.itemsize
        if payload.nbytes != expected:
            raise ProtocolError(
                f"Frame payload is {payload.nbytes} bytes but {height}x{width}x{channels} {f['dtype']} needs {expected}"
            )
        image = np.frombuffer(payload, dtype=dtype).reshape(height, width, channels)
    return Frame(f["stream"], f["seq"], f["t_capture_ns"], image, pixel_format, f["hops"])


def _build_state(f: dict[str, Any], payload: memoryview) -> RobotState:
    _no_payload("RobotState", payload)
    if len(f["joint_positions"]) != len(f["joint_velocities"]):
        raise ProtocolError(
            f"RobotState has {len(f['joint_positions'])} joint positions but {len(f['joint_velocities'])} velocities"
        )
    return RobotState(f["robot"], f["seq"], f["t_ns"], f["joint_positions"], f["joint_velocities"], f["ee_pose"],
                      f["gripper"], f["frame_seq"], f["instruction"], f["episode"])


def _build_chunk(f: dict[str, Any], payload: memoryview) -> ActionChunk:
    expected = f["steps"] * f["dims"] * 4
    if payload.nbytes != expected:
        raise ProtocolError(f"ActionChunk payload is {payload.nbytes} bytes but {f['steps']}x{f['dims']} float32 needs {expected}")
    actions = np.frombuffer(payload, dtype="<f4").reshape(f["steps"], f["dims"])
    if not np.isfinite(actions).all():
        raise ProtocolError("ActionChunk actions contain NaN or infinity")
    return ActionChunk(f["robot"], f["seq"], f["frame_seq"], f["t_capture_ns"], f["action_kind"], actions,
                       f["dt_ms"], f["t_sent_ns"], f["hops"])


def _build_query(f: dict[str, Any], payload: memoryview) -> Query:
    _no_payload("Query", payload)
    return Query(f["id"], f["seq"], f["t_ns"], f["text"], f["stream"])


def _build_answer(f: dict[str, Any], payload: memoryview) -> Answer:
    _no_payload("Answer", payload)
    return Answer(f["query_id"], f["seq"], f["t_ns"], f["text"], f["done"], f["error"])


def _build_telemetry(f: dict[str, Any], payload: memoryview) -> Telemetry:
    _no_payload("Telemetry", payload)
    return Telemetry(f["node"], f["seq"], f["t_ns"], f["metrics"])


def _build_heartbeat(f: dict[str, Any], payload: memoryview) -> Heartbeat:
    _no_payload("Heartbeat", payload)
    return Heartbeat(f["node"], f["seq"], f["t_ns"], f["state"], f["pid"])


_BUILDERS: dict[Kind, Callable[[dict[str, Any], memoryview], Message]] = {
    Kind.FRAME: _build_frame,
    Kind.ROBOT_STATE: _build_state,
    Kind.ACTION_CHUNK: _build_chunk,
    Kind.QUERY: _build_query,
    Kind.ANSWER: _build_answer,
    Kind.TELEMETRY: _build_telemetry,
    Kind.HEARTBEAT: _build_heartbeat,
}
