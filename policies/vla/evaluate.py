"""Closed-loop evaluation of the nano VLA in the PyBullet tasks, in-process.

Seeds, three ranges that never meet: training demonstrations use 0 .. episodes-1 (below
``VALIDATION_SEED``); model selection during training (``quick_eval``, ``train --eval-every``) uses
``VALIDATION_SEED`` (100000) and up; ``agentrt eval`` defaults to ``TEST_SEED`` (500000) and up, scenes that
no training, distillation or selection has read. Every success rate comes with its 95 % Wilson interval
(``EvalRow.success_ci95``): 20 episodes cannot tell 0.9 from 1.0. Reworded
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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrt.scheduler import ChunkSchedule
from policies.intervals import wilson_interval
from policies.sweep import SweepConfig
from policies.vla.model import NanoVLA
from policies.vla.policy import NanoPolicy, PolicyConfig, PolicySource
from policies.vocabulary import WordCheck, unknown_share
from sims.tasks import TASK_NAMES

__all__ = ["VALIDATION_SEED", "TEST_SEED", "REWORDINGS", "reword", "EvalRow", "EvalSpec", "EpisodeOutcome", "EpisodeRunner", "summarize",
           "evaluate_policy", "EvalWorkerSpec", "sweep_rows", "quick_eval"]

log = logging.getLogger(__name__)

VALIDATION_SEED = 100_000  # selection during training (quick_eval); the demo's scenes
TEST_SEED = 500_000  # eval's default: read by nothing that trains or chooses (the fleet launch uses 200000..)
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
    successes: int
    control_hz: float
    latency_p50_ms: float
    latency_p99_ms: float
    decode_ms: float
    iterations: float
    split: str = "held-out seeds"
    unknown_word_share: float = 0.0  # of the instructions' words, the share the model does not know (read as unk)
    unknown_words: list[str] = field(default_factory=list)  # which, each once
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.episodes, 1)

    @property
    def success_ci95(self) -> tuple[float, float]:
        """The 95 % Wilson interval of ``success_rate`` over ``episodes``."""
        return wilson_interval(self.successes, self.episodes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "decoding": self.decoding, "clock": self.clock, "split": self.split,
            "episodes": self.episodes, "success_rate": round(self.success_rate, 3),
            "success_ci95": [round(x, 3) for x in self.success_ci95],
            "control_hz": round(self.control_hz, 1), "latency_p50_ms": round(self.latency_p50_ms, 1),
            "latency_p99_ms": round(self.latency_p99_ms, 1), "decode_ms": round(self.decode_ms, 2),
            "iterations": round(self.iterations, 2), "unknown_word_share": round(self.unknown_word_share, 3),
            "unknown_words": self.unknown_words, **self.details,
        }


@dataclass(frozen=True)
class EvalSpec:
    """One row of the table: what every episode of it runs (a sweep worker keeps one runner per spec)."""

    task: str
    decoding: str
    clock: str = "lockstep"
    reworded: bool = False
    execute_steps: int = 4
    control_hz: float = 20.0
    frame_every: int = 2
    image_size: int | None = None


@dataclass
class EpisodeOutcome:
    """One evaluated episode, what its row aggregates. On the lockstep clock every field but the timings
    (``time_s`` and the ``_ms`` lists, measured on the wall clock) is the same on every run of its seed."""

    seed: int
    success: bool
    steps: int
    sim_time_s: float
    time_s: float
    told: str  # the instruction as the policy was told it
    check: WordCheck
    iterations: list[int] = field(default_factory=list)  # per chunk
    decode_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # capture -> chunk ready
    outcome: str = ""  # how it ended, as the task tells it (``Task.outcome``: "success", "not lifted", ...)

    def figures(self) -> dict[str, Any]:
        """What does not depend on the wall clock (lockstep): success, how it ended, steps, sim time, passes
        per chunk."""
        return {"seed": self.seed, "success": self.success, "outcome": self.outcome, "steps": self.steps,
                "sim_time_s": self.sim_time_s, "told": self.told, "iterations": list(self.iterations)}


class EpisodeRunner:
    """A row's simulator and policy source, for episode after episode (``run(seed)``)."""

    def __init__(self, policy: NanoPolicy, spec: EvalSpec) -> None:
        from sims.camera import SceneCameraConfig
        from sims.env import SimEnv, SimEnvConfig
        from sims.robot import RobotConfig

        size = spec.image_size or policy.model.config.image_size
        self.spec, self.policy = spec, policy
        self.env = SimEnv(SimEnvConfig(task=spec.task, robot=RobotConfig(control_hz=spec.control_hz),
                                       camera=SceneCameraConfig(width=size, height=size, renderer="tiny")))
        self.source = PolicySource(policy, env=self.env, reword=(lambda s: reword(spec.task, s)) if spec.reworded else None,
                                   schedule=ChunkSchedule(spec.clock, spec.control_hz, execute_steps=spec.execute_steps))

    def run(self, seed: int, *, stop: threading.Event | None = None, video: Any = None) -> EpisodeOutcome:
        from sims.clock import make_clock
        from sims.loop import run_episode

        spec, source = self.spec, self.source
        first = len(source.infos), len(source.latencies_ms)
        result = run_episode(self.env, make_clock(spec.clock, spec.control_hz), source, seed=seed,
                             frame_every=spec.frame_every, stop=stop, video=video)
        infos = source.infos[first[0]:]
        told = source.told[-1] if source.told else ""
        log.info("%s %s %s seed %d: %s in %d steps", spec.task, spec.decoding, spec.clock, seed,
                 "success" if result.success else "fail", result.steps)
        return EpisodeOutcome(seed=seed, success=bool(result.success), steps=result.steps,
                              sim_time_s=result.sim_time_s, time_s=result.time_s, told=told,
                              check=self.policy.text.check(told), iterations=[i.iterations for i in infos],
                              decode_ms=[i.decode_ms for i in infos], total_ms=[i.total_ms for i in infos],
                              latencies_ms=source.latencies_ms[first[1]:], outcome=self.env.task.outcome())

    def close(self) -> None:
        self.source.close()
        self.env.close()


def summarize(spec: EvalSpec, outcomes: list[EpisodeOutcome]) -> EvalRow:
    """A row from its episodes (in seed order): success rate, median control rate, latency percentiles, ..."""
    rates = [o.steps / max(o.time_s, 1e-9) for o in outcomes]
    lat = [x for o in outcomes for x in o.latencies_ms]
    decode = [x for o in outcomes for x in o.decode_ms]
    total = [x for o in outcomes for x in o.total_ms]
    iterations = [x for o in outcomes for x in o.iterations]
    checks = [o.check for o in outcomes]
    return EvalRow(
        task=spec.task, decoding=spec.decoding, clock=spec.clock, episodes=len(outcomes),
        successes=sum(o.success for o in outcomes),
        control_hz=statistics.median(rates) if rates else 0.0,
        latency_p50_ms=float(np.percentile(lat, 50)) if lat else 0.0,
        latency_p99_ms=float(np.percentile(lat, 99)) if lat else 0.0,
        decode_ms=statistics.median(decode) if decode else 0.0,
        iterations=statistics.fmean(iterations) if iterations else 0.0,
        split="reworded" if spec.reworded else "held-out seeds",
        unknown_word_share=unknown_share(checks), unknown_words=sorted({w for c in checks for w in c.unknown}),
        details={"inference_ms_p50": round(statistics.median(total), 2) if total else 0.0,
                 "outcomes": dict(Counter(o.outcome for o in outcomes).most_common()),
                 "per_episode": [o.figures() for o in outcomes]},
    )


def evaluate_policy(
    policy: NanoPolicy,
    task: str,
    *,
    decoding: str,
    clock: str = "lockstep",
    episodes: int = 10,
    seed: int = TEST_SEED,
    reworded: bool = False,
    control_hz: float = 20.0,
    frame_every: int = 2,
    video: str | None = None,
    image_size: int | None = None,
    execute_steps: int = 4,
    stop: threading.Event | None = None,
    on_episode: Callable[[int, bool], None] | None = None,
) -> EvalRow:
    """Run ``episodes`` episodes (seeds ``seed`` ..) in this process and aggregate success, rate, latency and
    decoding cost. ``on_episode(index, success)`` is called after each episode (progress for long evaluations).
    """
    from sims.loop import episode_video_path
    from sims.viewer import Viewer

    spec = EvalSpec(task=task, decoding=decoding, clock=clock, reworded=reworded, execute_steps=execute_steps,
                    control_hz=control_hz, frame_every=frame_every, image_size=image_size)
    runner = EpisodeRunner(policy, spec)
    outcomes: list[EpisodeOutcome] = []
    viewer = Viewer()  # videos from a 384x288 viewer camera in its own process (sims.viewer)
    try:
        for i in range(episodes):
            writer = viewer.episode(episode_video_path(video, i, episodes), fps=control_hz / frame_every) if video else None
            try:
                outcomes.append(runner.run(seed + i, stop=stop, video=writer))
            finally:
                if writer is not None:
                    writer.close()
            if on_episode is not None:
                on_episode(i, outcomes[-1].success)
            if stop is not None and stop.is_set():
                break
    finally:
        viewer.close()  # waits for the videos
        runner.close()
    return summarize(spec, outcomes)


@dataclass(frozen=True)
class EvalWorkerSpec:
    """A sweep worker (`policies.sweep`) running ``(EvalSpec, seed)`` episodes; ``policies``: (decoding, config)
    pairs, each loaded when a row first needs it."""

    policies: tuple[tuple[str, PolicyConfig], ...]

    def open(self, threads: int) -> EvalWorker:
        if threads:  # the worker's share of the cores: more threads than that only contend
            import torch

            torch.set_num_threads(threads)
        return EvalWorker(dict(self.policies))


class EvalWorker:
    """Keeps a policy per decoding and a runner per row, so a row's episodes reuse its simulator."""

    def __init__(self, configs: dict[str, PolicyConfig]) -> None:
        self.configs = configs
        self.policies: dict[str, NanoPolicy] = {}
        self.runners: dict[EvalSpec, EpisodeRunner] = {}

    def run(self, job: tuple[EvalSpec, int]) -> EpisodeOutcome:
        spec, seed = job
        if spec not in self.runners:
            if spec.decoding not in self.policies:
                from policies.hfvla.policy import load_policy  # hf:FOLDER weights: a Hugging Face VLA

                self.policies[spec.decoding] = load_policy(self.configs[spec.decoding])
            self.runners[spec] = EpisodeRunner(self.policies[spec.decoding], spec)
        return self.runners[spec].run(seed)

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()
        self.runners.clear()


def sweep_rows(policies: dict[str, PolicyConfig], specs: list[EvalSpec], *, episodes: int, seed: int,
               config: SweepConfig, on_episode: Callable[[EvalSpec, EpisodeOutcome], None] | None = None) -> list[EvalRow]:
    """Every row's episodes (seeds ``seed`` ..) on ``config``'s workers, one queue for the whole table; the
    rows as `evaluate_policy` makes them in one process (lockstep: the same per episode, see `EpisodeOutcome`)."""
    from policies.sweep import sweep

    jobs = [(spec, seed + i) for spec in specs for i in range(episodes)]
    outcomes: dict[int, EpisodeOutcome] = {}

    def done(index: int, outcome: EpisodeOutcome) -> None:
        outcomes[index] = outcome
        if on_episode is not None:
            on_episode(jobs[index][0], outcome)

    sweep(config, EvalWorkerSpec(tuple(policies.items())), jobs, done)
    return [summarize(spec, [outcomes[r * episodes + i] for i in range(episodes)]) for r, spec in enumerate(specs)]


def quick_eval(model: NanoVLA, *, episodes: int = 5, tasks: tuple[str, ...] | None = None) -> dict[str, float]:
    """Lockstep AR success per task on validation seeds (model selection during training: not the test seeds)."""
    policy = NanoPolicy(PolicyConfig(decoding="ar"), model=model)
    names = tasks or tuple(t for t in TASK_NAMES if _trained_on(model, t))
    return {t: evaluate_policy(policy, t, decoding="ar", episodes=episodes, seed=VALIDATION_SEED).success_rate for t in names}


def _trained_on(model: NanoVLA, task: str) -> bool:
    verbs = {"reach": "touch", "push": "push", "pick_place": "put"}
    return verbs[task] in model.config.words
