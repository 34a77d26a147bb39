"""Held-out accuracy of a video-QA model on unseen sim scenes, through the streaming interface.

Each scene (seeds from ``HELD_OUT_SEED`` = 1000000 on; training used 0 ..) is played to the
model as a stream: ``reset()``, 1-3 frames before the move (moved scenes only) and 1-3
after, one second apart on the frame clock, ``ingest()``-ed one by one; then up to
``per_scene`` questions of distinct kinds are asked with ``answer()`` and the joined text
is compared with the answer from sim state (case and spaces ignored, a leading "the"
dropped). Any ``VideoQAModel`` can be measured, not only the nano one.

Splits: ``unseen scenes`` (training wording) and, with ``reworded``, the same scenes asked
in wording never trained on (``policies.qa.data.REWORDED``), reported as a separate row. Each split
reports the share of its questions' words the model does not know (``unknown_word_share``;
None for a model that reads any text).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.qa.data import (
    HELD_OUT_SEED,
    KINDS,
    QAObject,
    Question,
    Scene,
    SceneConfig,
    iter_scenes,
    questions_for,
)
from policies.qa.data.scenes import MIN_MOVE_M, TASK_CONTROL_HZ
from policies.qa.data.sim_view import all_visible, held_object, image_pixel
from policies.qa.videoqa import VideoQAModel, word_check
from policies.vocabulary import WordCheck
from sims.tasks import TASK_NAMES

__all__ = ["QAEvalResult", "evaluate_qa", "normalise", "accuracy_cell", "table_rows"]


def normalise(text: str) -> str:
    words = text.lower().replace("?", " ").replace(".", " ").split()
    if words and words[0] == "the":
        words = words[1:]
    return " ".join(words)


@dataclass
class QAEvalResult:
    split: str
    questions: int = 0
    correct: int = 0
    per_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [correct, asked]
    answer_ms: list[float] = field(default_factory=list)
    mistakes: list[dict[str, str]] = field(default_factory=list)  # the first few, for the report
    words: int = 0  # the questions' words, for a model with a closed vocabulary (none counted for another)
    unknown_words: int = 0  # of them, those the model does not know (read as <unk>)

    @property
    def unknown_word_share(self) -> float | None:
        """None: the model reads any text (or no word was counted)."""
        return self.unknown_words / self.words if self.words else None

    @property
    def accuracy(self) -> float | None:
        """Share answered right; None when nothing was asked (no accuracy, rather than a false 0)."""
        return self.correct / self.questions if self.questions else None

    def add(self, q: Question, said: str, ms: float, check: WordCheck | None = None) -> None:
        ok = normalise(said) == normalise(q.answer)
        if check is not None:
            self.words += len(check.words)
            self.unknown_words += check.unknown_count
        self.questions += 1
        self.correct += ok
        tally = self.per_kind.setdefault(q.kind, [0, 0])
        tally[0] += ok
        tally[1] += 1
        self.answer_ms.append(ms)
        if not ok and len(self.mistakes) < 20:
            self.mistakes.append({"kind": q.kind, "question": q.text, "expected": q.answer, "said": said})

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split, "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "questions": self.questions,
            "per_kind": {k: {"accuracy": round(c / n, 4), "questions": n} for k, (c, n) in sorted(self.per_kind.items())},
            "answer_ms_p50": round(statistics.median(self.answer_ms), 2) if self.answer_ms else None,
            "unknown_word_share": None if self.unknown_word_share is None else round(self.unknown_word_share, 4),
            "mistakes": self.mistakes,
        }


def accuracy_cell(correct: int, asked: int) -> str:
    """``0.950 (40)``: accuracy (questions); ``n/a (no questions)`` for a split nobody asked about."""
    return f"{correct / asked:.3f} ({asked})" if asked else "n/a (no questions)"


def table_rows(results: list[QAEvalResult]) -> list[list[str]]:
    """The accuracy table: one row per question kind, then "all" and the share of unknown words; a column per split."""
    rows = [[kind, *(accuracy_cell(*r.per_kind[kind]) if kind in r.per_kind else "-" for r in results)]
            for kind in KINDS]
    rows.append(["all", *(accuracy_cell(r.correct, r.questions) for r in results)])
    rows.append(["unknown words", *("-" if r.unknown_word_share is None else f"{r.unknown_word_share:.3f}" for r in results)])
    return rows


def evaluate_qa(
    model: VideoQAModel,
    *,
    questions: int = 500,
    seed: int = HELD_OUT_SEED,
    per_scene: int = 5,
    reworded: bool = False,
    image_size: int = 96,
    on_scene: Any = None,
) -> tuple[list[QAEvalResult], dict[str, float]]:
    """-> (results: unseen scenes [, reworded], timing {ingest_ms_p50, ingest_ms_p90, scenes})."""
    if questions < 1 or not 1 <= per_scene <= len(KINDS):
        raise ConfigError(f"evaluate_qa: expected questions >= 1 and per_scene in 1..{len(KINDS)}, got {questions}, {per_scene}")
    results = [QAEvalResult("unseen scenes")] + ([QAEvalResult("reworded")] if reworded else [])
    ingest_ms: list[float] = []
    scenes = 0
    rng = np.random.default_rng(seed)
    for scene, (before, after) in iter_scenes(seed, 10 * questions, SceneConfig(image_size=image_size)):
        if results[0].questions >= questions:
            break
        k = int(rng.integers(1, 4)) if scene.moved is not None else 0
        frames = [before] * k + [after] * int(rng.integers(1, 4))
        model.reset()
        for i, image in enumerate(frames):
            t0 = time.perf_counter()
            model.ingest(image, i * 1_000_000_000)
            ingest_ms.append((time.perf_counter() - t0) * 1e3)
        shown = scene if k else replace(scene, moved=None)
        n = min(per_scene, questions - results[0].questions)
        for result in results:  # the same draw in both wordings: same kinds, same objects
            asked = questions_for(shown, np.random.default_rng(scene.seed), n, reworded=result.split == "reworded")
            for q in asked:
                t0 = time.perf_counter()
                said = "".join(model.answer(q.text))
                result.add(q, said, (time.perf_counter() - t0) * 1e3, word_check(model, q.text))
        scenes += 1
        if on_scene is not None:
            on_scene(results[0].questions)
    timing = {
        "ingest_ms_p50": round(float(np.percentile(ingest_ms, 50)), 2) if ingest_ms else 0.0,
        "ingest_ms_p90": round(float(np.percentile(ingest_ms, 90)), 2) if ingest_ms else 0.0,
        "scenes": float(scenes),
    }
    return results, timing


def evaluate_qa_sim(
    model: VideoQAModel,
    *,
    episodes: int = 10,
    seed: int = HELD_OUT_SEED,
    tasks: tuple[str, ...] = TASK_NAMES,
    per_moment: int = 5,
    camera_size: int = 64,
    on_episode: Any = None,
) -> tuple[QAEvalResult, dict[str, list[int]]]:
    """Questions about running task episodes, as ``launch/sim_qa.yaml`` asks them: the scripted expert
    runs each task (seeds from ``seed``, at 20 Hz), the scene camera (``camera_size`` px, as the sim node
    publishes it) goes into the model at 1 frame a second of sim time, and every 2 s up to ``per_moment``
    questions of distinct kinds are asked about that moment, answers from sim state: "what moved?" is the
    one object displaced ``MIN_MOVE_M`` or more in the last 10 s (not asked when several were), "what is
    the robot holding?" what the gripper lifted. Moments where the arm hides an object are skipped.
    -> (the result, {task: [correct, asked]})."""
    from sims.camera import SceneCameraConfig
    from sims.env import SimEnv, SimEnvConfig
    from sims.robot import Action, RobotConfig

    if episodes < 1 or not 1 <= per_moment <= len(KINDS):
        raise ConfigError(f"evaluate_qa_sim: expected episodes >= 1 and per_moment in 1..{len(KINDS)}, got {episodes}, {per_moment}")
    result = QAEvalResult("sim episodes")
    per_task: dict[str, list[int]] = {}
    frame_steps = TASK_CONTROL_HZ  # a frame a second
    for task in tasks:
        camera = SceneCameraConfig(width=camera_size, height=camera_size, renderer="tiny")
        with SimEnv(SimEnvConfig(task=task, camera=camera, robot=RobotConfig(control_hz=TASK_CONTROL_HZ))) as env:
            for episode in range(episodes):
                env.reset(seed=seed + episode)
                model.reset()
                expert = env.expert()
                rng = np.random.default_rng([seed + episode, 3])
                obs = env.robot.get_observation()
                seen: list[tuple[int, list[tuple[float, float, float]]]] = []  # (t_ns, positions) per frame
                for step in range(env.task.max_steps + 2 * frame_steps):
                    if step % frame_steps == 0:
                        now = [env.world.position(o.body) for o in env.task.objects]
                        model.ingest(env.render("scene"), env.world.time_ns)
                        seen.append((env.world.time_ns, now))
                        if len(seen) % 2 == 1 and len(seen) > 1:  # every 2 s, from the 3rd frame on
                            correct, asked = result.correct, result.questions
                            _ask_about_moment(model, env, seen, rng, per_moment, result)
                            tally = per_task.setdefault(task, [0, 0])
                            tally[0] += result.correct - correct
                            tally[1] += result.questions - asked
                    obs = env.step(Action("ee_delta", expert.act(obs))).observation
                if on_episode is not None:
                    on_episode(task, episode)
    return result, per_task


def _ask_about_moment(model: VideoQAModel, env: Any, seen: list[tuple[int, list[tuple[float, float, float]]]],
                      rng: np.random.Generator, n: int, result: QAEvalResult) -> None:
    bodies = [o.body for o in env.task.objects]
    if not all_visible(env.world, env.config.camera.scene_eye_m, bodies):
        return
    t_now, now = seen[-1]
    window = [pos for t, pos in seen[:-1] if t_now - t <= 10_000_000_000]  # "in the last ten seconds"
    far = {i for pos in window for i, (a, b) in enumerate(zip(pos, now, strict=True))
           if np.linalg.norm(np.subtract(a[:2], b[:2])) >= MIN_MOVE_M}
    kinds = KINDS if len(far) <= 1 else tuple(k for k in KINDS if k != "moved")
    size = 96  # pixel units for left / right (the margin is a share of the width)
    objects = [QAObject(o.colour, o.shape, p, p, image_pixel(p, size), image_pixel(p, size))
               for o, p in zip(env.task.objects, now, strict=True)]
    scene = Scene(seed=-1, objects=objects, moved=next(iter(far)) if far else None, held=held_object(env),
                  arm=f"task:{env.task.name}", image_size=size)
    for q in questions_for(scene, rng, n, kinds=kinds):
        t0 = time.perf_counter()
        said = "".join(model.answer(q.text))
        result.add(q, said, (time.perf_counter() - t0) * 1e3, word_check(model, q.text))
