"""Any camera into the nano VLA: a BGR camera gives the actions the RGB one does, a 640x480 camera drives it, and
the 64x64 RGB sim frames reach the model bit for bit as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Frame, RobotState
from agentrt.pixels import fit, to_rgb
from agentrt.testing import MockNode
from policies.vla.model import pixels
from policies.vla.policy import NanoPolicy, PolicyConfig, default_weights

shipped = pytest.mark.skipif(not default_weights("ar").exists(), reason="no shipped weights")


@pytest.fixture(scope="module")
def policy() -> NanoPolicy:
    return NanoPolicy(PolicyConfig(decoding="ar"))


def scene(height: int = 64, width: int = 64) -> np.ndarray:
    """A picture with colours that matter: a red square on grey, a blue one, some noise."""
    image = np.random.default_rng(5).integers(90, 130, (height, width, 3), dtype=np.uint8)
    image[height // 4 : height // 2, width // 3 : width // 2] = (200, 30, 30)
    image[height // 2 : 3 * height // 4, width // 2 : 2 * width // 3] = (30, 30, 200)
    return image


def _state(seq: int, frame_seq: int) -> RobotState:
    pose = np.array([0.45, 0.0, 0.3, 0, 0, 0, 1.0])
    return RobotState("panda", seq, 2, np.zeros(9), np.zeros(9), pose, 0.0, frame_seq,
                      instruction="touch the red cube", episode=0)


def _node_actions(frames: list[Frame]) -> list[np.ndarray]:
    from policies.vla.node import NanoVLANode

    with MockNode(NanoVLANode, params={"decoding": "ar"}) as harness:
        inputs: list[tuple[str, object]] = []
        for i, frame in enumerate(frames):
            inputs += [("state", _state(i + 1, frame.seq)), ("frames", frame)]
        out = harness.run(inputs=inputs)  # type: ignore[arg-type]
    return [m.actions for _, m in out if isinstance(m, ActionChunk)]


@shipped
def test_a_bgr_camera_gives_the_model_what_the_rgb_one_does(policy: NanoPolicy) -> None:
    rgb = scene()
    as_rgb, as_bgr = Frame("cam", 1, 1, rgb), Frame("cam", 1, 1, np.ascontiguousarray(rgb[..., ::-1]), "bgr")
    assert torch.equal(policy.prepare(to_rgb(as_bgr)), policy.prepare(to_rgb(as_rgb)))
    # the colours matter to this model: channels taken as they lie (the old slice) would act otherwise
    state = np.array([0.45, 0.0, 0.3, 0.0], np.float32)
    policy.reset()
    swapped, _ = policy.act(np.ascontiguousarray(as_bgr.image[..., :3]), state, "touch the red cube")
    policy.reset()
    right, _ = policy.act(to_rgb(as_rgb), state, "touch the red cube")
    assert not np.array_equal(swapped, right)
    # end to end through the policy node: the same chunks, to the bit
    rgba = np.concatenate([rgb[..., ::-1], np.full((64, 64, 1), 255, np.uint8)], axis=2)
    chunks = [_node_actions([frame]) for frame in (as_rgb, as_bgr, Frame("cam", 1, 1, rgba, "bgra"))]
    assert len(chunks[0]) == 1
    assert all(np.array_equal(c[0], chunks[0][0]) for c in chunks[1:])


@shipped
def test_a_640x480_camera_drives_the_policy(policy: NanoPolicy) -> None:
    camera = scene(480, 640)
    frame = Frame("cam", 1, 1, np.ascontiguousarray(camera[..., ::-1]), "bgr")
    x = policy.prepare(to_rgb(frame))
    assert x.shape == (1, 3, 64, 64)
    explicit = fit(np.ascontiguousarray(camera[:, 80:560]), 64, "resize")  # the centre square, area-resized
    assert torch.equal(x, pixels(explicit))
    policy.reset()
    chunk, _ = policy.act(to_rgb(frame), np.array([0.45, 0.0, 0.3, 0.0], np.float32), "touch the red cube")
    mc = policy.model.config
    assert chunk.shape == (mc.chunk_steps, mc.action_dims) and np.isfinite(chunk).all()
    [actions] = _node_actions([frame])  # the policy node takes it too
    assert actions.shape[1] == mc.action_dims
    stretched = NanoPolicy(PolicyConfig(decoding="ar", fit="resize"), policy.model).prepare(to_rgb(frame))
    assert torch.equal(stretched, pixels(fit(camera, 64, "resize")))


@shipped
def test_sim_frames_reach_the_model_bit_for_bit_as_before(policy: NanoPolicy) -> None:
    """64x64 RGB(A) sim frames: the model input equals what the node's old ``frame.image[..., :3]`` slice gave."""
    rgb = scene()
    rgba = np.concatenate([rgb, np.full((64, 64, 1), 255, np.uint8)], axis=2)
    for image in (rgb, rgba):
        frame = Frame("scene", 1, 1, image)
        assert torch.equal(policy.prepare(to_rgb(frame)), pixels(np.ascontiguousarray(frame.image[..., :3])))


def test_the_fit_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"PolicyConfig.fit: expected one of center-crop, resize, got 'stretch'"):
        PolicyConfig(fit="stretch")
