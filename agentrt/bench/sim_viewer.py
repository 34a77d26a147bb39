"""The viewer camera's cost to the control loop (part of `agentrt bench sim`).

The pick_place expert runs with a 64 px policy camera every 2nd step (the eval default) and a
384x288 episode video, three ways, side by side in one run (episodes interleaved):

- ``off``: no video;
- ``process``: the viewer in its own process (`sims.viewer`, what the sim ships): the loop sends
  the scene's state;
- ``inline``: the same camera rendered in the loop (`ViewerConfig(process=False)`), the reference.

Figures: ``viewer_lockstep_step_ms`` (median ms per control step in lockstep, as fast as it goes:
what an evaluation pays) and ``viewer_realtime_hz`` (median achieved control rate of a 20 Hz
real-time loop per episode), each by mode; ``viewer_frames`` and ``viewer_dropped`` (video
frames written and dropped per mode) and ``viewer_drain_s`` (how long the separate process took,
after the last episode, to finish its videos).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agentrt.bench.report import print_rows

__all__ = ["measure_viewer", "print_viewer_table", "VIEWER_MODES"]

VIEWER_MODES = ("off", "process", "inline")
HZ = 20.0
FRAME_EVERY = 2


def measure_viewer(*, rounds: int, task: str = "pick_place") -> dict[str, Any]:
    """``rounds`` episodes per mode and clock, interleaved; see the module docstring."""
    from sims.camera import SceneCameraConfig
    from sims.clock import make_clock
    from sims.env import SimEnv, SimEnvConfig
    from sims.loop import ExpertSource, run_episode
    from sims.viewer import Viewer, ViewerConfig

    step_ms: dict[str, list[float]] = {m: [] for m in VIEWER_MODES}
    rate_hz: dict[str, list[float]] = {m: [] for m in VIEWER_MODES}
    viewers = {"process": Viewer(ViewerConfig()), "inline": Viewer(ViewerConfig(process=False))}
    config = SimEnvConfig(task=task, camera=SceneCameraConfig(width=64, height=64, renderer="tiny"))
    with tempfile.TemporaryDirectory() as folder, SimEnv(config) as env:
        source = ExpertSource(env)
        for index in range(rounds):
            for clock_name, figures in (("lockstep", step_ms), ("realtime", rate_hz)):
                for mode in VIEWER_MODES:
                    viewer = viewers.get(mode)
                    path = str(Path(folder) / f"{mode}-{clock_name}-{index}.mp4")
                    video = viewer.episode(path, fps=HZ / FRAME_EVERY) if viewer else None
                    result = run_episode(env, make_clock(clock_name, HZ), source, seed=index, frame_every=FRAME_EVERY,
                                         on_frame=_discard, video=video)
                    if video is not None:
                        video.close()
                    steps = max(result.steps, 1)
                    figures[mode].append(result.time_s * 1e3 / steps if clock_name == "lockstep"
                                         else steps / max(result.time_s, 1e-9))
        started = time.monotonic()
        viewers["process"].close()
        drain_s = time.monotonic() - started
        viewers["inline"].close()
    return {
        "viewer_lockstep_step_ms": {m: statistics.median(v) for m, v in step_ms.items()},
        "viewer_realtime_hz": {m: statistics.median(v) for m, v in rate_hz.items()},
        "viewer_realtime_target_hz": HZ,
        "viewer_frames": {m: sum(f for _, f in viewers[m].written) for m in viewers},
        "viewer_dropped": {m: viewers[m].dropped for m in viewers},
        "viewer_drain_s": drain_s,
        "viewer_size": [ViewerConfig().width, ViewerConfig().height],
        "viewer_rounds": rounds,
        "viewer_task": task,
    }


def _discard(_image: object) -> None:
    """The policy camera's frame, rendered as for a policy (every 2nd step) and not used."""


def print_viewer_table(result: dict[str, Any]) -> None:
    if "viewer_lockstep_step_ms" not in result:
        return
    width, height = result["viewer_size"]
    step, rate = result["viewer_lockstep_step_ms"], result["viewer_realtime_hz"]
    frames, dropped = result["viewer_frames"], result["viewer_dropped"]
    print_rows(
        f"sim: {width}x{height} episode video, {result['viewer_task']} expert, 64 px policy camera every 2nd step "
        f"(median of {result['viewer_rounds']} episodes)",
        ["video", "lockstep ms / step", f"real time Hz (target {result['viewer_realtime_target_hz']:g})",
         "frames", "dropped"],
        [[mode, step[mode], rate[mode], frames.get(mode, 0), dropped.get(mode, 0)] for mode in VIEWER_MODES],
    )
    print(f"the viewer process finished its videos {result['viewer_drain_s']:.2f} s after the last episode")
