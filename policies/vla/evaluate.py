"""Closed-loop evaluation of the nano VLA in the PyBullet tasks, in-process.

Seeds: training demonstrations use seeds 0 .. episodes-1; evaluation uses
``HELD_OUT_SEED`` (100000) and up, scenes the model never saw. Reworded
instructions (``reword``) replace the task's verb phrase with wording absent
from training (``tap``, ``shove``, ``place ... into``); the words the model does
not know become ``unk``, and each row reports their share of the words the
policy was told (``unknown_word_share``: 0 for the tasks' own wording) and
which they were.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrt.scheduler import ChunkSchedule
from policies.vla.model import NanoVLA
from policies.vla.policy import NanoPolicy, PolicyConfig, PolicySource
from policies.vocabulary import unknown_share
from sims.tasks import TASK_NAMES

__all__ = ["HELD_OUT_SEED", "REWORDINGS", "reword", "EvalRow", "evaluate_policy", "quick_eval"]

log = logging.getLogger(__name__)

HELD_OUT_SEED = 100_000
REWORDINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "reach": (("touch the", "tap the"),),
    "push": (("push the", "shove the"),),
    "pick_place": (("put the", "place the"), (" in the tray", " into the tray")),
}


def reword(task: str, instruction: str) -> str:
    """The held-out wording of a task instruction ("touch the red cube" -> "tap the red cube")."""
    for old, new in REWORDINGS.get(task, ()):
        instruction = instruction.replace(old, new)
    return instruction


@dataclass
class EvalRow:
    task: str
    decoding: str
    clock: str
    episodes: int
    success_rate: float
    control_hz: float
    latency_p50_ms: float
    latency_p99_ms: float
    decode_ms: float
    iterations: float
    split: str = "held-out seeds"
    unknown_word_share: float = 0.0  # of the instructions' words, the share the model does not know (read as unk)
    unknown_words: list[str] = field(default_factory=list)  # which, each once
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "decoding": self.decoding, "clock": self.clock, "split": self.split,
            "episodes": self.episodes, "success_rate": round(self.success_rate, 3),
            "control_hz": round(self.control_hz, 1), "latency_p50_ms": round(self.latency_p50_ms, 1),
            "latency_p99_ms": round(self.latency_p99_ms, 1), "decode_ms": round(self.decode_ms, 2),
            "iterations": round(self.iterations, 2), "unknown_word_share": round(self.unknown_word_share, 3),
            "unknown_words": self.unknown_words, **self.details,
        }


def evaluate_policy(
    policy: NanoPolicy,
    task: str,
    *,
    decoding: str,
    clock: str = "lockstep",
    episodes: int = 10,
    seed: int = HELD_OUT_SEED,
    reworded: bool = False,
    control_hz: float = 20.0,
    frame_every: int = 2,
    video: str | None = None,
    image_size: int | None = None,
    execute_steps: int = 4,
    stop: threading.Event | None = None,
    on_episode: Callable[[int, bool], None] | None = None,
) -> EvalRow:
    """Run ``episodes`` episodes (seeds ``seed`` ..) and aggregate success, rate, latency and decoding cost.

    ``on_episode(index, success)`` is called after each episode (progress for long evaluations).
    """
    from sims.camera import SceneCameraConfig
    from sims.clock import make_clock
    from sims.env import SimEnv, SimEnvConfig
    from sims.loop import episode_video_path, run_episode
    from sims.robot import RobotConfig
    from sims.viewer import Viewer

    size = image_size or policy.model.config.image_size
    env = SimEnv(SimEnvConfig(task=task, robot=RobotConfig(control_hz=control_hz),
                              camera=SceneCameraConfig(width=size, height=size, renderer="tiny")))
    source = PolicySource(policy, env=env, reword=(lambda s: reword(task, s)) if reworded else None,
                          schedule=ChunkSchedule(clock, control_hz, execute_steps=execute_steps))
    successes, rates = 0, []
    viewer = Viewer()  # videos from a 384x288 viewer camera in its own process (sims.viewer)
    try:
        for i in range(episodes):
            writer = viewer.episode(episode_video_path(video, i, episodes), fps=control_hz / frame_every) if video else None
            try:
                result = run_episode(env, make_clock(clock, control_hz), source, seed=seed + i,
                                     frame_every=frame_every, stop=stop, video=writer)
            finally:
                if writer is not None:
                    writer.close()
            successes += int(result.success)
            rates.append(result.steps / max(result.time_s, 1e-9))
            log.info("%s %s %s seed %d: %s in %d steps", task, decoding, clock, seed + i,
                     "success" if result.success else "fail", result.steps)
            if on_episode is not None:
                on_episode(i, bool(result.success))
            if stop is not None and stop.is_set():
                break
    finally:
        viewer.close()  # waits for the videos
        source.close()
        env.close()
    infos, lat = source.infos, source.latencies_ms
    checks = [policy.text.check(told) for told in source.told]
    return EvalRow(
        task=task, decoding=decoding, clock=clock, episodes=len(rates), success_rate=successes / max(len(rates), 1),
        control_hz=statistics.median(rates) if rates else 0.0,
        latency_p50_ms=float(np.percentile(lat, 50)) if lat else 0.0,
        latency_p99_ms=float(np.percentile(lat, 99)) if lat else 0.0,
        decode_ms=statistics.median(i.decode_ms for i in infos) if infos else 0.0,
        iterations=statistics.fmean(i.iterations for i in infos) if infos else 0.0,
        split="reworded" if reworded else "held-out seeds",
        unknown_word_share=unknown_share(checks), unknown_words=sorted({w for c in checks for w in c.unknown}),
        details={"inference_ms_p50": round(statistics.median(i.total_ms for i in infos), 2) if infos else 0.0},
    )


def quick_eval(model: NanoVLA, *, episodes: int = 5, tasks: tuple[str, ...] | None = None) -> dict[str, float]:
    """Lockstep AR success per task on held-out seeds (used during training)."""
    policy = NanoPolicy(PolicyConfig(decoding="ar"), model=model)
    names = tasks or tuple(t for t in TASK_NAMES if _trained_on(model, t))
    return {t: evaluate_policy(policy, t, decoding="ar", episodes=episodes).success_rate for t in names}


def _trained_on(model: NanoVLA, task: str) -> bool:
    verbs = {"reach": "touch", "push": "push", "pick_place": "put"}
    return verbs[task] in model.config.words
