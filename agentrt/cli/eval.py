"""`agentrt eval`: closed-loop success and speed of the nano VLA, tasks x decoding x clock, one table.

    agentrt eval --episodes 10
    agentrt eval --tasks reach --decodings ar consistency --clocks lockstep --episodes 20 --json runs/eval.json
    agentrt eval --tasks reach --episodes 10 --seed 200000 --reworded       # unseen seeds and unseen wording
    agentrt eval --tasks reach --weights policies/weights/nano_vla.safetensors --cd-weights runs/cd.safetensors
    agentrt eval --tasks reach --clocks lockstep --device cuda --dtype bfloat16   # the policy on a GPU
    agentrt eval --tasks reach --clocks lockstep --episodes 100 --workers 2       # 2 processes, one queue of seeds
    agentrt eval --decodings consistency --clocks lockstep --seed 100000 --max-iterations 3 4 6 --tolerance 0 3
                                                             # a row per early-exit setting (cap x tolerance)
    agentrt eval --tasks reach --episodes 1000 --engine ray --address auto --workers 16   # Ray actors
    agentrt eval qa --questions 500 --reworded --json runs/eval_qa.json       # the nano video-QA model
    agentrt eval qa --model nano:runs/qa/train/nano_qa.safetensors --questions 200
    agentrt eval qa --questions 100 --sim-episodes 20 --tasks pick_place       # questions about running episodes

Seeds start at --seed (default 500000: the test range, read by no training,
distillation or model selection; training used 0 .., selection 100000 ..). Decoding:
ar (greedy, AR weights), jacobi (exact Jacobi, AR weights), consistency
(early-exit Jacobi on the consistency-distilled weights). --reworded adds rows
with instructions in wording the model never saw. Several --max-iterations or
--tolerance values give consistency a row per (cap, tolerance) pair, labelled
``consistency c4 t3``: what early exit costs in success, side by side. Rows: task, decoding, clock,
split, episodes, success_rate, success_ci95 (the 95 % Wilson interval of the
rate: 20 episodes cannot tell 0.9 from 1.0), control_hz, latency_p50_ms / p99 (frame capture
to chunk ready), decode_ms (the action block, median), iterations (passes per
chunk, mean), unknown_word_share (of the words the policy was told, the share
not in its vocabulary, read as unk: 0 for the tasks' own wording; --json also
lists them as unknown_words). Progress goes to stderr: episodes done of the
whole run and an estimate of the time left (a line every 10 s when not on a
terminal). --workers N runs the episodes N at a time (processes; Ray actors with --engine ray), each
worker taking the next (row, seed) when done; on the lockstep clock every episode's success, steps
and passes per chunk are those of a one-process run (--json lists them per row: per_episode); the
timings, and everything on the realtime clock, depend on the machine's load as always. --json
also says how each episode ended (per_episode: outcome; per row: outcomes, counted), as the task
tells it: pick_place says "not lifted", "held at the end", "released outside the tray" or
"released above the tray"; reach and push say "success" or "not done".

`eval qa` measures a video-QA model (`run_qa` here, the measuring in policies/qa/evaluate.py): templated questions
on unseen sim scenes (seeds from 1000000), accuracy per question type and
overall; then (--sim-episodes per task, 0 to skip) the same kinds of questions
about running task episodes, the scripted expert at work and the camera at
1 frame/s, as launch/sim_qa.yaml shows them; a last row gives the share of the
questions' words the model does not know; --json writes {"accuracy",
"questions", "per_kind", "unknown_word_share", "splits", "sim_tasks", ...}. A
split or task nobody asked about (every moment had an object hidden) shows
"n/a (no questions)", null in the JSON, never an accuracy of 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from agentrt.cli.common import add_device, add_seed, add_sweep, sweep_config
from policies.qa.videoqa import MODEL_SPECS
from sims.tasks import TASK_NAMES

__all__ = ["add_arguments", "run"]

COLUMNS = ("task", "decoding", "clock", "split", "episodes", "success_rate", "success_ci95", "control_hz",
           "latency_p50_ms", "latency_p99_ms", "decode_ms", "iterations", "unknown_word_share")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=("vla", "qa"), default="vla", help="vla (default) or qa")
    parser.add_argument("--tasks", nargs="+", default=list(TASK_NAMES),
                        help=f"sim tasks (default: {' '.join(TASK_NAMES)})")
    parser.add_argument("--decodings", nargs="+", default=["ar", "jacobi", "consistency"],
                        help="vla: ar, jacobi, consistency (default: all three)")
    parser.add_argument("--clocks", nargs="+", default=["lockstep", "realtime"],
                        help="vla: lockstep, realtime (default: both)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per row (default 10)")
    add_seed(parser, None, "first seed (default: the test range, 500000 for vla, 1000000 for qa)")
    parser.add_argument("--reworded", action="store_true", help="also rows with reworded instructions (lockstep)")
    parser.add_argument("--weights", default="", help="AR weights (default: the shipped ones; hf:FOLDER: a Hugging Face VLA)")
    parser.add_argument("--cd-weights", default="",
                        help="consistency-distilled weights (default: the shipped ones; hf:FOLDER: a Hugging Face VLA)")
    parser.add_argument("--max-iterations", type=int, nargs="+", default=[3], metavar="CAP",
                        help="consistency: cap on Jacobi passes (default 3; several: a row per setting)")
    parser.add_argument("--tolerance", type=int, nargs="+", default=[3], metavar="BINS",
                        help="consistency: early exit tolerance in bins (default 3; several: a row per setting)")
    parser.add_argument("--execute-steps", type=int, default=4,
                        help="lockstep: steps of each chunk run before planning again, 0 = all (default 4, as real time)")
    parser.add_argument("--json", metavar="PATH", help="write the rows, the machine and versions as JSON")
    parser.add_argument("--questions", type=int, default=500, help="qa: questions asked (default 500)")
    parser.add_argument("--model", default="nano", help=f"qa: {MODEL_SPECS} (default nano)")
    parser.add_argument("--sim-episodes", type=int, default=5,
                        help="qa: also ask about running task episodes (as launch/sim_qa.yaml), this many per task "
                             "of --tasks (default 5; 0: off)")
    parser.add_argument("--camera-size", type=int, default=64,
                        help="qa: the sim episodes' scene camera in pixels, square (default 64, as the sim node)")
    add_device(parser)
    add_sweep(parser)


def run(args: argparse.Namespace) -> int:
    if args.what == "qa":
        return run_qa(args)
    if args.seed is None:
        from policies.vla.evaluate import TEST_SEED

        args.seed = TEST_SEED
    import torch

    from agentrt.engine.device import Placement
    from agentrt.errors import ConfigError
    from agentrt.progress import ProgressLine, duration
    from policies.hfvla.policy import load_policy  # hf:FOLDER weights: a Hugging Face VLA, else the nano VLA
    from policies.vla.evaluate import EvalSpec, evaluate_policy, sweep_rows
    from policies.vla.policy import DECODINGS, PolicyConfig

    for d in args.decodings:
        if d not in DECODINGS:
            raise ConfigError(f"--decodings: expected some of {', '.join(DECODINGS)}, got {d!r}")
    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected >= 1, got {args.episodes}")
    placement = Placement.parse(args.device, args.dtype)
    sweep = sweep_config(args)
    rows: list[dict[str, Any]] = []
    plans = [(clock, False) for clock in args.clocks] + ([("lockstep", True)] if args.reworded else [])
    configs = {label: PolicyConfig(weights=args.cd_weights if decoding == "consistency" else args.weights,
                                   decoding=decoding, max_iterations=cap, tolerance_bins=tolerance,
                                   device=args.device, dtype=args.dtype)
               for decoding in args.decodings
               for label, cap, tolerance in early_exit_settings(decoding, args.max_iterations, args.tolerance)}
    # every model loads before the table starts: a bad --weights is one line, not half a table
    policies = {label: load_policy(config) for label, config in configs.items()}
    # every episode counts on stderr, with an estimate of the time left: 20 episodes a row run for minutes
    progress = ProgressLine("eval", total=len(configs) * len(args.tasks) * len(plans) * args.episodes, unit="episodes")
    finished = 0

    def episode_done(spec: EvalSpec) -> None:
        nonlocal finished
        finished += 1
        progress.update(finished, note=f"{spec.task} {spec.decoding} {spec.clock}{' reworded' if spec.reworded else ''}")

    print(_line(COLUMNS), flush=True)
    progress.update(0)
    specs = [EvalSpec(task=task, decoding=decoding, clock=clock, reworded=reworded, execute_steps=args.execute_steps)
             for decoding in configs for task in args.tasks for clock, reworded in plans]

    def show(row: dict[str, Any]) -> None:
        rows.append(row)
        progress.done()  # a live line on a terminal gives way to the row
        print(_line(tuple(_cell(row, c) for c in COLUMNS)), flush=True)

    if sweep.engine == "local" and sweep.workers == 1:  # in this process, row after row
        for spec in specs:
            def one_done(_index: int, _success: bool, spec: EvalSpec = spec) -> None:
                episode_done(spec)

            show(evaluate_policy(policies[spec.decoding], spec.task, decoding=spec.decoding, clock=spec.clock,
                                 episodes=args.episodes, seed=args.seed, reworded=spec.reworded,
                                 execute_steps=spec.execute_steps, on_episode=one_done).as_dict())
    else:  # one queue of (row, seed) over the workers for the whole table; the rows once all are in
        for row in sweep_rows(configs, specs, episodes=args.episodes, seed=args.seed, config=sweep,
                              on_episode=lambda spec, _outcome: episode_done(spec)):
            show(row.as_dict())
    progress.done(f"eval: {finished} episodes in {duration(time.monotonic() - progress.started)}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"rows": rows, "machine": {"platform": platform.platform(), "processor": platform.processor(),
                                         "threads": torch.get_num_threads()},
               "versions": {"python": sys.version.split()[0], "torch": torch.__version__}, **placement.record(),
               "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


def early_exit_settings(decoding: str, caps: list[int], tolerances: list[int]) -> list[tuple[str, int, int]]:
    """(row label, cap, tolerance) per setting of a decoding: consistency gets one per (cap, tolerance) pair,
    labelled ``consistency c4 t3`` when there are several; the others one (the cap and tolerance unused)."""
    pairs = [(cap, tolerance) for cap in caps for tolerance in tolerances]
    if decoding != "consistency" or len(pairs) == 1:
        return [(decoding, *pairs[0])]
    return [(f"{decoding} c{cap} t{tolerance}", cap, tolerance) for cap, tolerance in pairs]


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "success_ci95":  # a [low, high] pair: printed as low-high
        low, high = row["success_ci95"]
        return f"{low:.2f}-{high:.2f}"
    return str(row[column])


def _line(cells: tuple[str, ...]) -> str:
    widths = (10, 11, 9, 14, 8, 12, 12, 10, 14, 14, 9, 10, 18)
    return " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))


def run_qa(args: argparse.Namespace) -> int:
    """`agentrt eval qa`: the table per question kind, overall, and --json (the module docstring says what)."""
    from agentrt.bench.report import check_writable, print_rows, write_json
    from agentrt.engine.device import Placement
    from agentrt.errors import ConfigError
    from agentrt.progress import ProgressLine
    from policies.qa import evaluate as qa_eval  # by module: a test stands in for its evaluate_qa_sim
    from policies.qa.data import HELD_OUT_SEED
    from policies.qa.videoqa import load_videoqa

    if args.workers != 1 or args.engine != "local":
        raise ConfigError("eval qa: --workers and --engine are for `agentrt eval` (vla) only; leave them out")
    if args.json:
        check_writable(args.json)
    seed = HELD_OUT_SEED if args.seed is None else args.seed
    spec = args.model if args.model != "nano" or not args.weights else f"nano:{args.weights}"
    model = load_videoqa(spec, args.device, args.dtype)
    size = int(getattr(getattr(model, "config", None), "image_size", 96))
    print(f"eval qa: model {spec}, {args.questions} questions on unseen scenes from seed {seed}"
          + (" (+ reworded)" if args.reworded else ""), flush=True)
    asking = ProgressLine("eval qa", total=args.questions, unit="questions")  # on stderr, terminal or not
    results, timing = qa_eval.evaluate_qa(model, questions=args.questions, seed=seed, reworded=args.reworded,
                                          image_size=size, on_scene=asking.update)
    asking.done()
    per_task: dict[str, list[int]] = {}
    if args.sim_episodes:
        tasks = tuple(args.tasks)
        print(f"sim episodes: {args.sim_episodes} per task ({', '.join(tasks)}), seeds from {seed}, "
              f"{args.camera_size} px camera", flush=True)
        watching = ProgressLine("eval qa, sim episodes", total=args.sim_episodes * len(tasks), unit="episodes")
        finished = 0

        def episode_done(task: str, _episode: int) -> None:
            nonlocal finished
            finished += 1
            watching.update(finished, note=task)

        sim, per_task = qa_eval.evaluate_qa_sim(model, episodes=args.sim_episodes, seed=seed, tasks=tasks,
                                                camera_size=args.camera_size, on_episode=episode_done)
        results.append(sim)
        watching.done()
    columns = ["kind", *(r.split for r in results)]
    print_rows("nano video QA: accuracy (questions)", columns, qa_eval.table_rows(results))
    main = results[0].as_dict()
    print(f"ingest {timing['ingest_ms_p50']:.1f} ms/frame (p50), answer {main['answer_ms_p50']} ms (p50), "
          f"{int(timing['scenes'])} scenes")
    asked = {task: per_task.get(task, [0, 0]) for task in args.tasks} if args.sim_episodes else {}  # none asked: n/a
    sim_tasks = {task: {"accuracy": round(c / n, 4) if n else None, "questions": n} for task, (c, n) in asked.items()}
    if asked:
        print("sim episodes by task: " + ", ".join(f"{t} {qa_eval.accuracy_cell(c, n)}" for t, (c, n) in asked.items()))
    if args.json:
        doc = {"model": spec, "seed": seed, "accuracy": main["accuracy"], "questions": main["questions"],
               "per_kind": main["per_kind"], "answer_ms_p50": main["answer_ms_p50"],
               "unknown_word_share": main["unknown_word_share"], **timing,
               "splits": [r.as_dict() for r in results], "sim_tasks": sim_tasks}
        out = write_json(args.json, "eval qa", doc, quick=False, placement=Placement.parse(args.device, args.dtype))
        print(f"wrote {out}")
    return 0
