"""Golden bytes: every message kind, encoded by the v1 encoder, byte for byte.

The hex in wire_golden.json was written by the encoder before wire.py was derived
from one schema per kind (issue 14); it pins what every sender puts on the wire.
A change here is a change of protocol v1: it needs a new version, not a new golden.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from agentrt import wire
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

GOLDEN = json.loads((Path(__file__).parent / "wire_golden.json").read_text())
POSE = np.array([0.5, 0.0, 0.2, 0.0, 0.0, 0.0, 1.0])


def _pixels(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)


def golden_messages() -> dict:
    """Fixed messages (no randomness): one or more per kind and per optional field."""
    return {
        "frame_raw_rgb_hops": Frame("cam", 7, 123_456_789, _pixels((2, 3, 3), "uint8"), hops=[("cam", 1), ("core", 2)]),
        "frame_raw_bgr": Frame("cam", 8, 5, _pixels((2, 2, 3), "uint8"), pixel_format="bgr"),
        "frame_raw_gray": Frame("mono", 0, 0, _pixels((3, 2, 1), "uint8")),
        "frame_raw_rgba": Frame("cam", 1, 2, _pixels((1, 2, 4), "uint8")),
        "frame_raw_uint16": Frame("ir", 2, 6, _pixels((2, 2, 1), "uint16") * 257),
        "frame_raw_depth_float32": Frame("depth", 1, 5, _pixels((2, 3, 1), "float32") / 7, pixel_format="depth"),
        "frame_shm_ref": FrameRef("cam", 3, 9, 640, 480, 3, "uint8", "rgb", ShmRef("agentrt-1-cam-0123abcd", 2, 17)),
        "frame_shm_ref_hops": FrameRef("cam", 4, 10, 64, 48, 4, "uint8", "bgra", ShmRef("seg", 0, 1), [("cam", 3)]),
        "robot_state_plain": RobotState("panda", 3, 99, np.arange(7.0), np.zeros(7), POSE, 0.25, 7),
        "robot_state_no_frame": RobotState("arm", 0, 1, np.array([0.5]), np.array([-0.5]), POSE, 1.0),
        "robot_state_told": RobotState("panda", 3, 99, np.zeros(7), np.zeros(7), POSE, 0.0, 7,
                                       instruction="touch the red cube", episode=2),
        "robot_state_episode_zero": RobotState("panda", 4, 100, np.zeros(2), np.zeros(2), POSE, 0.5, -1, episode=0),
        "robot_state_instruction_only": RobotState("panda", 5, 101, np.zeros(1), np.zeros(1), POSE, 0.5,
                                                   instruction="push"),
        "action_chunk_ee_delta_hops": ActionChunk("panda", 4, 7, 123_456_789, "ee_delta",
                                                  _pixels((3, 7), "float32") / 100, 50.0, 200, [("policy", 5)]),
        "action_chunk_joint_target": ActionChunk("panda", 5, -1, 0, "joint_target", _pixels((2, 8), "float32"), 33.5),
        "query": Query("q-1", 0, 10, "what is the robot holding?", "cam"),
        "query_default_stream": Query("q-2", 1, 11, ""),
        "answer_done": Answer("q-1", 2, 11, " a red cube", done=True),
        "answer_error": Answer("q-2", 0, 12, "", done=True, error="no frame yet"),
        "answer_delta": Answer("q-3", 1, 13, " red"),
        "telemetry": Telemetry("policy", 5, 12, {"control_hz": 19.8, "latency_p50_ms": 41.0}),
        "telemetry_empty": Telemetry("sim", 0, 0),
        "heartbeat": Heartbeat("policy", 6, 13, "ready", 4242),
        "heartbeat_no_pid": Heartbeat("sim", 0, 0, "starting"),
    }


MESSAGES = golden_messages()


def test_every_kind_and_every_optional_field_has_a_golden() -> None:
    assert set(GOLDEN) == set(MESSAGES) | {"frame_jpeg"}
    kinds = {bytes.fromhex(GOLDEN[name])[5] for name in GOLDEN}
    assert kinds == set(range(1, 8))


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_encode_writes_the_golden_bytes(name: str) -> None:
    assert bytes(wire.encode(MESSAGES[name])).hex() == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_decode_of_the_golden_bytes_gives_the_message(name: str) -> None:
    message, decoded = MESSAGES[name], wire.decode(bytes.fromhex(GOLDEN[name]))
    assert type(decoded) is type(message)
    for key, value in vars(message).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(np.asarray(getattr(decoded, key)), value)
            assert key != "image" or getattr(decoded, key).dtype == value.dtype, key
        else:
            assert getattr(decoded, key) == value, key


def test_a_two_dimensional_image_goes_out_as_one_channel() -> None:
    flat = Frame("mono", 0, 0, _pixels((3, 2), "uint8"))
    assert bytes(wire.encode(flat)).hex() == GOLDEN["frame_raw_gray"]


def _jpeg_frame() -> Frame:
    y, x = np.mgrid[0:16, 0:16]
    return Frame("cam", 9, 77, np.stack([x * 16, y * 16, (x + y) * 8], axis=-1).astype(np.uint8), hops=[("cam", 1)])


def test_jpeg_frame_header_is_golden() -> None:
    # The JPEG payload is OpenCV's (its bytes may change between OpenCV versions);
    # everything wire.py writes (prefix but payload_len, header, padding) is pinned.
    golden = bytes.fromhex(GOLDEN["frame_jpeg"])
    encoded = bytes(wire.encode(_jpeg_frame(), encoding="jpeg", jpeg_quality=90))
    header_len = struct.unpack_from("<I", golden, 8)[0]
    start = wire.payload_offset(header_len)
    assert encoded[:12] + encoded[16:start] == golden[:12] + golden[16:start]


def test_jpeg_golden_decodes_to_the_frame() -> None:
    frame, expected = wire.decode(bytes.fromhex(GOLDEN["frame_jpeg"])), _jpeg_frame()
    assert isinstance(frame, Frame)
    assert (frame.stream, frame.seq, frame.t_capture_ns, frame.pixel_format, frame.hops) == ("cam", 9, 77, "rgb", [("cam", 1)])
    assert frame.image.shape == expected.image.shape
    assert np.abs(frame.image.astype(int) - expected.image).mean() < 6
