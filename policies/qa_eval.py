"""Held-out accuracy of a video-QA model on unseen sim scenes, through the streaming interface.

Each scene (seeds from ``HELD_OUT_SEED`` = 1000000 on; training used 0 ..) is played to the
model as a stream: ``reset()``, 1-3 frames before the move (moved scenes only) and 1-3
after, one second apart on the frame clock, ``ingest()``-ed one by one; then up to
``per_scene`` questions of distinct kinds are asked with ``answer()`` and the joined text
is compared with the answer from sim state (case and spaces ignored, a leading "the"
dropped). Any ``VideoQAModel`` can be measured, not only the nano one.

Splits: ``unseen scenes`` (training wording) and, with ``reworded``, the same scenes asked
in wording never trained on (``qa_data.REWORDED``), reported as a separate row.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.qa_data import HELD_OUT_SEED, KINDS, Question, SceneConfig, iter_scenes, questions_for
from policies.videoqa import VideoQAModel

__all__ = ["QAEvalResult", "evaluate_qa", "normalise"]


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

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0

    def add(self, q: Question, said: str, ms: float) -> None:
        ok = normalise(said) == normalise(q.answer)
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
            "split": self.split, "accuracy": round(self.accuracy, 4), "questions": self.questions,
            "per_kind": {k: {"accuracy": round(c / n, 4), "questions": n} for k, (c, n) in sorted(self.per_kind.items())},
            "answer_ms_p50": round(statistics.median(self.answer_ms), 2) if self.answer_ms else None,
            "mistakes": self.mistakes,
        }


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
                result.add(q, said, (time.perf_counter() - t0) * 1e3)
        scenes += 1
        if on_scene is not None:
            on_scene(results[0].questions)
    timing = {
        "ingest_ms_p50": round(float(np.percentile(ingest_ms, 50)), 2) if ingest_ms else 0.0,
        "ingest_ms_p90": round(float(np.percentile(ingest_ms, 90)), 2) if ingest_ms else 0.0,
        "scenes": float(scenes),
    }
    return results, timing


def run_cli(args: Any) -> int:
    """`agentrt eval qa`: the table per question kind, overall, and --json (see agentrt/cli/eval.py)."""
    import sys

    from agentrt.bench.report import check_writable, print_rows, write_json
    from policies.videoqa import load_videoqa

    if args.json:
        check_writable(args.json)
    seed = HELD_OUT_SEED if args.seed is None else args.seed
    spec = args.model if args.model != "nano" or not args.weights else f"nano:{args.weights}"
    model = load_videoqa(spec)
    size = int(getattr(getattr(model, "config", None), "image_size", 96))
    tty = sys.stdout.isatty()
    print(f"eval qa: model {spec}, {args.questions} questions on unseen scenes from seed {seed}"
          + (" (+ reworded)" if args.reworded else ""), flush=True)

    def progress(done: int) -> None:
        if tty:
            print(f"\r{done}/{args.questions} questions", end="", flush=True)

    results, timing = evaluate_qa(model, questions=args.questions, seed=seed, reworded=args.reworded,
                                  image_size=size, on_scene=progress)
    if tty:
        print()
    columns = ["kind", *(r.split for r in results)]
    rows: list[list[Any]] = []
    for kind in KINDS:
        cells = [f"{r.per_kind[kind][0] / r.per_kind[kind][1]:.3f} ({r.per_kind[kind][1]})" if kind in r.per_kind else "-"
                 for r in results]
        rows.append([kind, *cells])
    rows.append(["all", *(f"{r.accuracy:.3f} ({r.questions})" for r in results)])
    print_rows("nano video QA: accuracy (questions)", columns, rows)
    main = results[0].as_dict()
    print(f"ingest {timing['ingest_ms_p50']:.1f} ms/frame (p50), answer {main['answer_ms_p50']} ms (p50), "
          f"{int(timing['scenes'])} scenes")
    if args.json:
        doc = {"model": spec, "seed": seed, "accuracy": main["accuracy"], "questions": main["questions"],
               "per_kind": main["per_kind"], "answer_ms_p50": main["answer_ms_p50"], **timing,
               "splits": [r.as_dict() for r in results]}
        out = write_json(args.json, "eval qa", doc, quick=False)
        print(f"wrote {out}")
    return 0
