"""Why the dataset videos are H.264: the same sim frames through both codecs, side by side.

    python -m policies.lerobot.codec_bench                 # 200 pick_place frames at 64 px, 3 encodes each

or ``compare_codecs(frames=100, size=32)`` from Python. One line per codec: the median encode
time, the decode time, the file size and the PSNR of the decoded frames against the originals
(min and median). libx264 with agentrt's settings (`DatasetVideoConfig`), SVT-AV1 with
LeRobot's (crf 30, g 2).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from policies.lerobot.video import DatasetVideoConfig, decode_video

__all__ = ["sim_frames", "encode", "compare_codecs"]


def sim_frames(count: int, size: int) -> list[np.ndarray]:
    """``count`` scene-camera frames of the pick_place expert at work (new seeds as episodes end)."""
    from sims.camera import SceneCameraConfig
    from sims.env import SimEnv, SimEnvConfig
    from sims.robot import Action

    env = SimEnv(SimEnvConfig(task="pick_place", camera=SceneCameraConfig(width=size, height=size, renderer="tiny")))
    frames: list[np.ndarray] = []
    try:
        obs, _ = env.reset(seed=0)
        expert = env.expert()
        while len(frames) < count:
            frames.append(env.render("scene"))
            result = env.step(Action("ee_delta", expert.act(obs)))
            obs = result.observation
            if result.terminated or result.truncated:
                obs, _ = env.reset(seed=len(frames))
                expert = env.expert()
    finally:
        env.close()
    return frames


def encode(frames: list[np.ndarray], path: Path, codec: str, options: dict[str, str], fps: int = 20) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=fps)  # a video stream (the stubs type a union)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = options
        for k, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def compare_codecs(frames: int = 200, size: int = 64, repeats: int = 3) -> list[str]:
    """The measurement above, one line per codec."""
    images = sim_frames(frames, size)
    ours = DatasetVideoConfig()
    codecs = [(f"libx264 crf {ours.crf} g {ours.gop} {ours.preset}", ours.codec,
               {"crf": str(ours.crf), "g": str(ours.gop), "preset": ours.preset}),
              ("libsvtav1 crf 30 g 2 (LeRobot's)", "libsvtav1", {"crf": "30", "g": "2"})]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, codec, options in codecs:
            path = Path(tmp) / f"{codec}.mp4"
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                encode(images, path, codec, options)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            _, decoded = decode_video(path)
            decode_s = time.perf_counter() - start
            psnr = [10 * np.log10(255.0**2 / max(float(np.mean((a.astype(float) - b.astype(float)) ** 2)), 1e-12))
                    for a, b in zip(images, decoded, strict=True)]
            lines.append(f"{name}: encode {statistics.median(times) * 1000:.0f} ms (median of {repeats}), decode "
                         f"{decode_s * 1000:.0f} ms, {path.stat().st_size / 1024:.1f} KiB for {len(images)} frames at "
                         f"{size} px, PSNR min {min(psnr):.1f} median {statistics.median(psnr):.1f} dB")
    return lines


if __name__ == "__main__":
    print("\n".join(compare_codecs()))
