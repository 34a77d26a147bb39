"""Wire protocol v1: round trips, and every kind of bad input gives ProtocolError and nothing else."""

from __future__ import annotations

import struct
import tracemalloc

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrt import wire
from agentrt.errors import ProtocolError
from agentrt.messages import (
    ActionChunk,
    Answer,
    Frame,
    FrameRef,
    Heartbeat,
    Query,
    RobotState,
    ShmRef,
    Telemetry,
)


def sample_messages() -> list:
    rng = np.random.default_rng(0)
    return [
        Frame("cam", 7, 123_456_789, rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), hops=[("cam", 1), ("core", 2)]),
        Frame("depth", 1, 5, rng.random((4, 5, 1), dtype=np.float32), pixel_format="depth"),
        Frame("ir", 2, 6, rng.integers(0, 65535, (3, 3, 1), dtype=np.uint16)),
        FrameRef("cam", 3, 9, 640, 480, 3, "uint8", "rgb", ShmRef("agentrt-1-cam-0123abcd", 2, 17)),
        RobotState("panda", 3, 99, np.arange(7.0), np.zeros(7), np.array([0.5, 0, 0.2, 0, 0, 0, 1.0]), 0.25, 7),
        ActionChunk("panda", 4, 7, 123_456_789, "ee_delta", rng.standard_normal((8, 7)).astype(np.float32), 50.0, 200),
        Query("q-1", 0, 10, "what is the robot holding?", "cam"),
        Answer("q-1", 2, 11, " a red cube", done=True),
        Telemetry("policy", 5, 12, {"control_hz": 19.8, "latency_p50_ms": 41.0}),
        Heartbeat("policy", 6, 13, "ready", 4242),
    ]


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    for key, value in vars(a).items():
        other = getattr(b, key)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(np.asarray(other), value)
        else:
            assert other == value, key


@pytest.mark.parametrize("message", sample_messages(), ids=lambda m: type(m).__name__)
def test_round_trip_every_kind(message) -> None:
    buffer = wire.encode(message)
    decoded = wire.decode(bytes(buffer))
    assert_same(message, decoded)


def test_robot_state_carries_the_instruction_and_episode_optionally() -> None:
    pose = np.array([0.5, 0, 0.2, 0, 0, 0, 1.0])
    told = RobotState("panda", 3, 99, np.zeros(7), np.zeros(7), pose, 0.0, 7, instruction="touch the red cube", episode=2)
    assert_same(told, wire.decode(bytes(wire.encode(told))))
    plain = RobotState("panda", 3, 99, np.zeros(7), np.zeros(7), pose, 0.0, 7)
    decoded = wire.decode(bytes(wire.encode(plain)))
    assert isinstance(decoded, RobotState) and decoded.instruction == "" and decoded.episode == -1
    assert b"instruction" not in bytes(wire.encode(plain))  # unset optional fields are not sent: old bytes unchanged
    buffer = bytes(wire.encode(told))
    _, _, _, _, header_len, _ = struct.unpack_from("<4sBBHII", buffer)
    header = msgpack.unpackb(buffer[16 : 16 + header_len])
    for field, value in (("instruction", 5), ("episode", -2), ("episode", "one")):
        with pytest.raises(ProtocolError, match=field):
            wire.decode(_with_header({**header, field: value}, kind=2))


def test_prefix_layout_and_alignment() -> None:
    buffer = wire.encode(sample_messages()[0])
    magic, version, kind, flags, header_len, payload_len = struct.unpack_from("<4sBBHII", buffer)
    assert (magic, version, kind, flags) == (b"AGRT", 1, 1, 0)
    start = wire.payload_offset(header_len)
    assert start % 8 == 0 and len(buffer) == start + payload_len == start + 6 * 8 * 3


def test_raw_frame_is_a_view_not_a_copy() -> None:
    buffer = bytes(wire.encode(sample_messages()[0]))
    frame = wire.decode(buffer)
    assert isinstance(frame, Frame)
    assert not frame.image.flags.writeable
    assert frame.image.base is not None


def test_jpeg_frame_round_trip_is_close() -> None:
    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    frame = wire.decode(wire.encode(Frame("cam", 1, 2, image), encoding="jpeg", jpeg_quality=95))
    assert isinstance(frame, Frame) and frame.image.shape == image.shape
    assert np.abs(frame.image.astype(int) - image).mean() < 4  # colour order kept (rgb), little loss


def _valid(kind_index: int = 0) -> bytes:
    return bytes(wire.encode(sample_messages()[kind_index]))


def _with_header(header: dict, payload: bytes = b"", kind: int = 1, version: int = 1) -> bytes:
    header_bytes = msgpack.packb(header)
    start = wire.payload_offset(len(header_bytes))
    out = bytearray(start + len(payload))
    struct.pack_into("<4sBBHII", out, 0, b"AGRT", version, kind, 0, len(header_bytes), len(payload))
    out[16 : 16 + len(header_bytes)] = header_bytes
    out[start:] = payload
    return bytes(out)


FRAME_HEADER = {"stream": "cam", "seq": 1, "t_capture_ns": 5, "width": 4, "height": 2, "channels": 3,
                "dtype": "uint8", "encoding": "raw"}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "truncated"),
        (_valid()[:10], "truncated"),
        (_valid()[:-1], "does not match its prefix"),
        (_valid() + b"\0", "does not match its prefix"),
        (b"XXXX" + _valid()[4:], "bad magic"),
        (_valid()[:4] + b"\x02" + _valid()[5:], "unsupported protocol version 2"),
        (_valid()[:5] + b"\x63" + _valid()[6:], "unknown message kind 99"),
        (_with_header(FRAME_HEADER, b"\0" * 23), "needs 24"),
        (_with_header({**FRAME_HEADER, "dtype": "float64"}, b"\0" * 24), "'dtype' must be one of"),
        (_with_header({**FRAME_HEADER, "width": -4}, b"\0" * 24), "'width' must be an integer"),
        (_with_header({**FRAME_HEADER, "width": True}, b"\0" * 24), "'width' must be an integer"),
        (_with_header({k: v for k, v in FRAME_HEADER.items() if k != "seq"}, b"\0" * 24), "lacks the required field 'seq'"),
        (_with_header({**FRAME_HEADER, "encoding": "h265"}, b"\0" * 24), "'encoding' must be one of"),
        (_with_header({**FRAME_HEADER, "encoding": "jpeg"}, b"\xff\xd8\xff\xd9"), "no frame header"),
        (_with_header({**FRAME_HEADER, "encoding": "shm"}), "lacks the 'shm' field"),
        (_with_header([1, 2, 3]), "must be a msgpack map"),  # type: ignore[arg-type]
    ],
)
def test_bad_messages_raise_one_clear_error(data: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        wire.decode(data)


def test_huge_declared_lengths_are_refused_before_allocating() -> None:
    data = bytearray(_valid())
    struct.pack_into("<I", data, 12, 0xFFFFFFFF)  # payload_len: 4 GiB
    with pytest.raises(ProtocolError):
        wire.decode(bytes(data))
    struct.pack_into("<I", data, 8, 0xFFFFFFFF)  # header_len too
    with pytest.raises(ProtocolError, match="header length"):
        wire.decode(bytes(data))
    with pytest.raises(ProtocolError, match="receiver's limit"):
        wire.decode(_valid(), max_payload_bytes=10)


def test_huge_declared_frame_size_with_small_payload_is_refused() -> None:
    header = {**FRAME_HEADER, "width": 16384, "height": 16384}
    with pytest.raises(ProtocolError, match="needs"):
        wire.decode(_with_header(header, b"\0" * 24))


def test_action_chunk_with_nan_is_refused() -> None:
    chunk = sample_messages()[5]
    chunk.actions[0, 0] = np.nan
    with pytest.raises(ProtocolError, match="NaN"):
        wire.decode(wire.encode(chunk))


def test_nonzero_padding_is_refused() -> None:
    data = bytearray(_valid())
    header_len = struct.unpack_from("<I", data, 8)[0]
    if wire.payload_offset(header_len) == 16 + header_len:
        pytest.skip("this header needs no padding")
    data[16 + header_len] = 1
    with pytest.raises(ProtocolError, match="padding"):
        wire.decode(bytes(data))


def _decode_only_protocol_errors(data: bytes) -> None:
    try:
        wire.decode(data)
    except ProtocolError:
        pass


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = [bytes(wire.encode(m)) for m in sample_messages()]


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_only_protocol_errors(data)


@FUZZ
@given(st.binary(max_size=256))
def test_fuzz_random_bytes_behind_a_valid_prefix(tail: bytes) -> None:
    _decode_only_protocol_errors(b"AGRT\x01\x01\x00\x00" + struct.pack("<II", len(tail), 0) + tail)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_fuzz_truncations(message: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(message) - 1))
    with pytest.raises(ProtocolError):
        wire.decode(message[:cut])


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_fuzz_bit_flips(message: bytes, data: st.DataObject) -> None:
    flipped = bytearray(message)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(flipped) - 1))
        flipped[position] ^= 1 << data.draw(st.integers(0, 7))
    _decode_only_protocol_errors(bytes(flipped))


@FUZZ
@given(st.sampled_from(VALID), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_fuzz_declared_lengths(message: bytes, header_len: int, payload_len: int) -> None:
    data = bytearray(message)
    struct.pack_into("<II", data, 8, header_len, payload_len)
    _decode_only_protocol_errors(bytes(data))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(sorted(FRAME_HEADER) + ["shm", "hops", "pixel_format", "junk"]),
        st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=8), st.booleans(), st.none(),
                  st.floats(), st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3), st.binary(max_size=4)),
    ),
    st.binary(max_size=64),
    st.integers(1, 7),
)
def test_fuzz_header_fields(header: dict, payload: bytes, kind: int) -> None:
    _decode_only_protocol_errors(_with_header({**FRAME_HEADER, **header}, payload, kind=kind))


def test_decoding_allocates_no_more_than_the_message() -> None:
    # A message that lies about its sizes must not make the decoder allocate by the lie.
    lies = []
    for message in VALID:
        data = bytearray(message)
        struct.pack_into("<I", data, 12, 0x7FFFFFFF)
        lies.append(bytes(data))
    lies.append(_with_header({**FRAME_HEADER, "width": 16384, "height": 16384, "channels": 4, "dtype": "float32"}))
    lies.append(_with_header({**FRAME_HEADER, "encoding": "jpeg", "width": 16384, "height": 16384},
                             b"\xff\xd8\xff\xc0\x00\x11\x08\x40\x00\x40\x00\x03" + b"\0" * 64))
    tracemalloc.start()
    try:
        for data in lies:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            with pytest.raises(ProtocolError):
                wire.decode(data)
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak < len(data) + 64 * 1024, (peak, len(data))
    finally:
        tracemalloc.stop()


def test_unknown_header_keys_are_ignored_for_forward_compatibility() -> None:
    frame = wire.decode(_with_header({**FRAME_HEADER, "added_in_v1_1": [1, 2]}, b"\0" * 24))
    assert isinstance(frame, Frame) and frame.image.shape == (2, 4, 3)


def test_encode_refuses_what_it_cannot_send() -> None:
    with pytest.raises(ProtocolError, match="Frame image"):
        wire.encode(Frame("cam", 0, 0, np.zeros((2, 2, 3), dtype=np.float64)))
    with pytest.raises(ProtocolError, match="cannot encode"):
        wire.encode("hello")  # type: ignore[arg-type]


def test_decoded_defaults_are_fresh_per_message() -> None:
    # Node.send appends its hop to message.hops: a hop-less message must not get a list
    # shared with every other hop-less message decoded in the process.
    first, second = (wire.decode(_with_header(FRAME_HEADER, b"\0" * 24)) for _ in range(2))
    assert isinstance(first, Frame) and isinstance(second, Frame)
    first.hops.append(("relay", 1))
    assert second.hops == []
    assert wire.decode(_with_header(FRAME_HEADER, b"\0" * 24)).hops == []  # type: ignore[union-attr]


def test_each_kind_has_one_schema_aligned_with_its_dataclass() -> None:
    import dataclasses

    from agentrt.messages import Kind

    wire_only = {Kind.FRAME: {"width", "height", "channels", "dtype", "encoding"},
                 Kind.ACTION_CHUNK: {"steps", "dims", "dtype"}}
    in_payload = {Kind.FRAME: {"image"}, Kind.ACTION_CHUNK: {"actions"}}
    assert set(wire.SCHEMAS) == set(Kind)
    for kind, schema in wire.SCHEMAS.items():
        assert schema.cls.kind is kind
        keys = [field.key for field in schema.fields]
        declared = {f.name: f for f in dataclasses.fields(schema.cls) if not f.metadata.get("local")}
        # every attribute but the receiver's own (metadata "local") travels in the header or the payload; every other key is derived from it
        assert set(declared) == set(keys) - wire_only.get(kind, set()) | in_payload.get(kind, set())
        for field in schema.fields:
            if field.optional:  # an absent optional key decodes to the dataclass default: it must have one
                spec = declared[field.key]
                assert (spec.default, spec.default_factory) != (dataclasses.MISSING, dataclasses.MISSING), field.key


def test_action_kinds_have_one_home() -> None:
    import sims.robot

    assert sims.robot.ACTION_KINDS is wire.ACTION_KINDS
    bad = sample_messages()[5]
    bad.action_kind = "torque"
    with pytest.raises(ProtocolError, match="'action_kind' must be one of ee_delta, joint_target, got 'torque'"):
        wire.decode(wire.encode(bad))
