"""`agentrt bench vla`: the shipped nano VLA's action block, every decoding side by side.

    agentrt bench vla --quick --threads 1
    agentrt bench vla --json runs/bench-vla.json
    agentrt bench vla --quick --device cuda --dtype bfloat16

Observations come from closed-loop lockstep episodes of the AR policy on
held-out scenes of each task (image, state, instruction at every plan). They
are then replayed, in episode order, through one policy per decoding mode,
the modes taking turns on each observation, so load on a shared machine hits
them alike. Each mode keeps its own previous chunk (Jacobi's initial guess),
as it would in an episode. The episodes are played on the CPU, so every device
replays the same observations; the replay runs on ``--device`` in ``--dtype``,
the GPU synchronised around every timing. Without PyBullet (a GPU machine may
lack it) the observations come from ``RECORDED``: the full run's episodes
(220 plans), recorded by ``record_observations`` (``observations`` in the
result says which; re-record after retraining the shipped weights).

Figures per mode: ``decode_ms`` (median, the 32-token action block after the
prefill), ``mean_ms``, ``passes`` (mean model passes), ``pass_share`` (share
of chunks per pass count), ``speedup`` (AR's median decode_ms / the mode's),
``speedup_mean`` (the same of the means: total decoding time, what a robot
spends), ``same_as_ar`` (share of chunks token-identical to AR: 1.0 for exact
Jacobi), ``bins_from_ar`` (mean |bin difference| of the xyz tokens).

Early exit makes consistency decoding's times bimodal (one pass when the
first guess is already within tolerance, the cap of three otherwise), so its
median sits in one mode or the other as the share of capped chunks crosses
one half: a few chunks more or fewer move the median ratio by 20 %, the mean
ratio by a few %. ``pass_share`` shows where it sits. ``cd_weights`` adds
the consistency default on other weights (a candidate student) as a further
mode, so students compare side by side in one run rather than across runs of
a noisy machine.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.bench.report import print_rows
from sims.tasks import TASK_NAMES

__all__ = ["run", "measure", "candidate_modes", "print_table", "MODES", "RECORDED", "record_observations", "load_observations"]

log = logging.getLogger(__name__)

RECORDED = Path(__file__).with_name("data") / "vla_observations.npz"  # the full run's episodes, recorded
Observation = tuple[np.ndarray, np.ndarray, str]  # (image (H, W, 3) uint8, state (4,), instruction)


@dataclass(frozen=True)
class Mode:
    name: str
    decoding: str
    max_iterations: int = 3
    tolerance_bins: int = 3
    weights: str = ""  # empty: the shipped weights for the decoding


MODES = (
    Mode("ar", "ar"),
    Mode("jacobi", "jacobi"),
    Mode("consistency", "consistency"),  # the shipped default: cap 3 passes, tolerance 3 bins
    Mode("consistency-cap4", "consistency", max_iterations=4),  # the default before 2026-12-06
)


def run(quick: bool, device: str = "cpu", dtype: str = "float32", cd_weights: tuple[str, ...] = ()) -> dict[str, Any]:
    return measure(episodes=1 if quick else 4, max_plans=12 if quick else 40, device=device, dtype=dtype,
                   modes=MODES + candidate_modes(cd_weights))


def candidate_modes(cd_weights: tuple[str, ...]) -> tuple[Mode, ...]:
    """The consistency default on each of ``cd_weights``, named ``consistency:<file stem>`` (with the folder,
    ``consistency:<folder>/<stem>``, where two files share a stem)."""
    from agentrt.errors import ConfigError

    paths = [Path(p) for p in cd_weights]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"bench vla --cd-weights: no weights file at {path}; give the path of a distilled student")
    stems = [p.stem for p in paths]
    names = [s if stems.count(s) == 1 else f"{p.parent.name}/{s}" for p, s in zip(paths, stems, strict=True)]
    if len(set(names)) < len(names):
        raise ConfigError(f"bench vla --cd-weights: two files share a folder and name ({', '.join(cd_weights)}); give each once")
    return tuple(Mode(f"consistency:{n}", "consistency", weights=str(p)) for n, p in zip(names, paths, strict=True))


def _observations(task: str, episodes: int, max_plans: int) -> list[list[Observation]]:
    """Per episode, the (image, state, instruction) of every plan of the AR policy in lockstep (on the CPU)."""
    from policies.vla.evaluate import VALIDATION_SEED
    from policies.vla.policy import NanoPolicy, PolicyConfig, PolicySource
    from sims.camera import SceneCameraConfig
    from sims.clock import make_clock
    from sims.env import SimEnv, SimEnvConfig
    from sims.loop import run_episode

    policy = NanoPolicy(PolicyConfig(decoding="jacobi", device="cpu"))  # exact: the AR policy's actions, faster
    seen: list[list[Observation]] = []

    class Recording(PolicySource):
        def _plan(self) -> tuple[np.ndarray, int] | None:
            with self._lock:
                frame = self._frame
            if frame is not None and len(seen[-1]) < max_plans:
                seen[-1].append((frame[0].copy(), frame[1].copy(), self.instruction))
            return super()._plan()

    size = policy.model.config.image_size
    with SimEnv(SimEnvConfig(task=task, camera=SceneCameraConfig(width=size, height=size, renderer="tiny"))) as env:
        source = Recording(policy, env=env)
        for i in range(episodes):
            seen.append([])
            run_episode(env, make_clock("lockstep", 20.0), source, seed=VALIDATION_SEED + 500 + i, frame_every=2)
    return seen


def record_observations(path: Path = RECORDED, *, episodes: int = 4, max_plans: int = 40) -> Path:
    """Play the episodes in the simulator and save their observations (``RECORDED``: the full run's, which
    hold the quick run's: its episodes are the first ones, cut shorter)."""
    images, states, instructions, tasks, episode_ids = [], [], [], [], []
    for task in TASK_NAMES:
        for e, episode in enumerate(_observations(task, episodes, max_plans)):
            for image, state, instruction in episode:
                images.append(image)
                states.append(state)
                instructions.append(instruction)
                tasks.append(task)
                episode_ids.append(e)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=np.stack(images), states=np.stack(states).astype(np.float32),
                        instructions=np.array(instructions), tasks=np.array(tasks), episodes=np.array(episode_ids))
    return path


def load_observations(path: Path, episodes: int, max_plans: int) -> dict[str, list[list[Observation]]]:
    """Per task, per episode (at most ``episodes`` of ``max_plans`` plans), the recorded observations."""
    out: dict[str, list[list[Observation]]] = {}
    with np.load(path, allow_pickle=False) as f:  # strings are stored as unicode arrays: no pickle
        rows = zip(f["images"], f["states"], f["instructions"], f["tasks"], f["episodes"], strict=True)
        for image, state, instruction, task, episode in rows:
            runs = out.setdefault(str(task), [])
            if int(episode) >= episodes:
                continue
            while len(runs) <= int(episode):
                runs.append([])
            if len(runs[int(episode)]) < max_plans:
                runs[int(episode)].append((image, state, str(instruction)))
    return out


def _all_observations(episodes: int, max_plans: int) -> tuple[dict[str, list[list[Observation]]], str]:
    """Live from the simulator when PyBullet is here, else the recorded ones; and which it was."""
    try:
        import pybullet  # noqa: F401  (only asked whether it is here)
    except ImportError:
        log.warning("bench vla: no PyBullet here: replaying the recorded observations (%s)", RECORDED.name)
        return load_observations(RECORDED, episodes, max_plans), f"recorded ({RECORDED.name})"
    return {task: _observations(task, episodes, max_plans) for task in TASK_NAMES}, "simulator (lockstep, CPU)"


def measure(*, episodes: int, max_plans: int, device: str = "cpu", dtype: str = "float32",
            modes: tuple[Mode, ...] = MODES) -> dict[str, Any]:
    from policies.vla.policy import NanoPolicy, PolicyConfig

    if modes[0].name != "ar":
        raise ValueError("bench vla: the first mode must be ar, the reference of every ratio")
    observed, source = _all_observations(episodes, max_plans)
    policies = {m.name: NanoPolicy(PolicyConfig(weights=m.weights, decoding=m.decoding, max_iterations=m.max_iterations,
                                                tolerance_bins=m.tolerance_bins, device=device, dtype=dtype))
                for m in modes}
    c = policies["ar"].model.config
    decode: dict[str, list[float]] = {m.name: [] for m in modes}
    passes: dict[str, list[int]] = {m.name: [] for m in modes}
    same: dict[str, list[bool]] = {m.name: [] for m in modes}
    bins: dict[str, list[float]] = {m.name: [] for m in modes}
    chunks = 0
    for task in observed:
        for episode in observed[task]:
            for policy in policies.values():
                policy.reset()
            for image, state, instruction in episode:
                tokens: dict[str, np.ndarray] = {}
                for m in modes:
                    chunk, info = policies[m.name].act(image, state, instruction)
                    decode[m.name].append(info.decode_ms)
                    passes[m.name].append(info.iterations)
                    tokens[m.name] = policies[m.name].actions.to_bins(chunk)  # bin centres map back exactly
                for m in modes:
                    same[m.name].append(bool(np.array_equal(tokens[m.name], tokens["ar"])))
                    xyz = (tokens[m.name] - tokens["ar"])[:, :-1]
                    bins[m.name].append(float(np.abs(xyz).mean()))
                chunks += 1
    ar_ms, ar_mean = statistics.median(decode["ar"]), statistics.fmean(decode["ar"])
    figures = {}
    for m in modes:
        ms, mean = statistics.median(decode[m.name]), statistics.fmean(decode[m.name])
        counts = Counter(passes[m.name])
        figures[m.name] = {
            "decoding": m.decoding, "weights": m.weights or None,
            "max_iterations": m.max_iterations if m.decoding == "consistency" else None,
            "tolerance_bins": m.tolerance_bins if m.decoding == "consistency" else None,
            "decode_ms": ms, "mean_ms": mean, "passes": statistics.fmean(passes[m.name]),
            "pass_share": {str(k): counts[k] / len(passes[m.name]) for k in sorted(counts)},
            "speedup": ar_ms / ms if ms > 0 else float("nan"), "speedup_mean": ar_mean / mean if mean > 0 else float("nan"),
            "same_as_ar": statistics.fmean(same[m.name]), "bins_from_ar": statistics.fmean(bins[m.name]),
        }
    return {"chunks": chunks, "tasks": list(observed), "episodes_per_task": episodes, "chunk_tokens": c.chunk_tokens,
            "observations": source, "modes": figures}


def print_table(result: dict[str, Any]) -> None:
    rows = [[name, f["decode_ms"], f["speedup"], f["mean_ms"], f["speedup_mean"], f["passes"], _shares(f["pass_share"]),
             f["same_as_ar"], f["bins_from_ar"]] for name, f in result["modes"].items()]
    print_rows(f"vla: the {result['chunk_tokens']}-token action block, {result['chunks']} chunks from "
               f"{', '.join(result['tasks'])} (side by side)",
               ["mode", "median ms", "x AR", "mean ms", "x AR (mean)", "passes", "chunks by passes",
                "same as AR", "bins from AR"], rows)


def _shares(share: dict[str, float]) -> str:
    """``{"1": 0.39, "3": 0.57, ...}`` -> "1: 39% 3: 57%" (at most four counts; AR's one count of 31 too)."""
    top = sorted(share.items(), key=lambda kv: int(kv[0]))
    return " ".join(f"{k}: {v:.0%}" for k, v in (top if len(top) <= 4 else top[:3] + [("more", sum(v for _, v in top[3:]))]))
