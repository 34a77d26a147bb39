"""`agentrt bench sim`: physics rate, camera cost per renderer, and real-time loop jitter.

    agentrt bench sim --quick
    agentrt bench sim --json runs/bench-sim.json

Figures (the issue's field names):

- ``physics_steps_per_s``: PyBullet steps per second with a Panda, the floor and a
  task scene (pick_place: tray and two objects), no rendering;
- ``render_ms``: median milliseconds per scene-camera image at 128 and 224 px with
  the renderer the sim uses (EGL where it loads, else TinyRenderer); the other
  renderer is measured beside it (``render_ms_by_renderer``) for comparison;
- ``loop_jitter_p99_ms``: p99 of how late a 20 Hz real-time control tick starts,
  while the loop runs the pick_place expert, steps physics and renders a 128 px
  frame every other tick (the sim node's defaults: control 20 Hz, frames 10 Hz);
  ``loop_frame_every_tick`` repeats it with a frame on every tick (a 20 Hz policy);
- ``viewer_*``: what a 384x288 episode video costs the loop, viewer off / in its own process /
  rendered in the loop (`agentrt.bench.sim_viewer`).
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from agentrt.bench.report import percentile, print_rows
from agentrt.bench.sim_viewer import measure_viewer, print_viewer_table

__all__ = ["run", "print_table", "measure"]

log = logging.getLogger(__name__)


def run(quick: bool) -> dict[str, Any]:
    """The benchmark's figures; ``quick`` finishes within about 60 s on 2 cores."""
    if quick:
        return measure(physics_steps=2000, renders=8, loop_seconds=6.0) | measure_viewer(rounds=1)
    return measure(physics_steps=20000, renders=40, loop_seconds=30.0) | measure_viewer(rounds=5)


def measure(*, physics_steps: int, renders: int, loop_seconds: float, sizes: tuple[int, ...] = (128, 224)) -> dict[str, Any]:
    from sims.camera import SceneCameraConfig
    from sims.env import SimEnv, SimEnvConfig

    result: dict[str, Any] = {}
    with SimEnv(SimEnvConfig(task="pick_place")) as env:
        env.reset(seed=0)
        start = time.perf_counter()
        env.world.step(physics_steps)
        result["physics_steps_per_s"] = physics_steps / (time.perf_counter() - start)
        result["renderer"] = env.renderer

    by_renderer: dict[str, dict[str, float]] = {}
    for renderer in ("egl", "tiny") if result["renderer"] == "egl" else ("tiny",):
        by_renderer[renderer] = {}
        for size in sizes:
            camera = SceneCameraConfig(width=size, height=size, renderer=renderer)
            with SimEnv(SimEnvConfig(task="pick_place", camera=camera)) as env:
                env.reset(seed=0)
                for _ in range(3):
                    env.render()  # warm-up: the first EGL images set up the GL context and upload meshes
                samples = []
                for _ in range(renders):
                    t0 = time.perf_counter()
                    env.render()
                    samples.append((time.perf_counter() - t0) * 1e3)
                by_renderer[renderer][str(size)] = statistics.median(samples)
    result["render_ms"] = by_renderer[result["renderer"]]
    result["render_ms_by_renderer"] = by_renderer
    result.update(_loop_jitter(loop_seconds, frame_every=2))
    result["loop_frame_every_tick"] = _loop_jitter(loop_seconds, frame_every=1)
    return result


def _loop_jitter(seconds: float, *, frame_every: int) -> dict[str, Any]:
    """Run the expert at 20 Hz in real time with a 128 px frame every ``frame_every`` ticks; tick lateness."""
    from sims.camera import SceneCameraConfig
    from sims.clock import RealTimeClock
    from sims.env import SimEnv, SimEnvConfig
    from sims.loop import ExpertSource, run_episode

    hz = 20.0
    clock = RealTimeClock(hz)
    frames = [0]

    def count(_image: object) -> None:
        frames[0] += 1

    episodes = 0
    with SimEnv(SimEnvConfig(task="pick_place", camera=SceneCameraConfig(width=128, height=128))) as env:
        source = ExpertSource(env)
        env.reset(seed=10_000)
        for _ in range(3):
            env.render()  # warm-up outside the measurement: the first EGL images set up GL and upload meshes
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            run_episode(env, clock, source, seed=episodes, frame_every=frame_every, on_frame=count)
            episodes += 1
    late = clock.lateness_ms
    return {
        "loop_jitter_p99_ms": percentile(late, 99),
        "loop_jitter_p50_ms": percentile(late, 50),
        "loop_hz": hz,
        "loop_ticks": len(late),
        "loop_overruns": clock.overruns,
        "loop_frames": frames[0],
        "loop_frame_hz": hz / frame_every,
        "loop_episodes": episodes,
    }


def print_table(result: dict[str, Any]) -> None:
    by = result.get("render_ms_by_renderer", {})
    sizes = sorted({size for figures in by.values() for size in figures}, key=int)
    rows = [[f"{name}{' (used)' if name == result['renderer'] else ''}"] + [by[name].get(s, float("nan")) for s in sizes] for name in by]
    print_rows("sim: camera image, ms (median)", ["renderer"] + [f"{s} px" for s in sizes], rows)
    every = result.get("loop_frame_every_tick", {})
    loops = [("frames 10 Hz", result), ("frames 20 Hz", every)] if every else [("frames 10 Hz", result)]
    print_rows("sim: physics", ["figure", "value"], [["physics steps / s", result["physics_steps_per_s"]]])
    print_rows(
        "sim: 20 Hz real-time loop (expert + physics + 128 px scene frames)",
        ["loop", "lateness p50, ms", "lateness p99, ms", "ticks", "overruns", "frames"],
        [
            [name, r["loop_jitter_p50_ms"], r["loop_jitter_p99_ms"], r["loop_ticks"], r["loop_overruns"], r["loop_frames"]]
            for name, r in loops
        ],
    )
    print_viewer_table(result)
