"""NanoPolicy: the nano VLA behind one call, ``act(image, state, instruction) -> chunk``, and its sim source.

Decoding modes (``DECODINGS``):

| name          | weights            | how                                                                  |
|---------------|--------------------|----------------------------------------------------------------------|
| `ar`          | AR-trained         | ``greedy_decode``: one pass per token (the reference)                 |
| `jacobi`      | AR-trained         | ``jacobi_decode``, exact (fixed point == AR), previous chunk as init |
| `consistency` | consistency-distilled | ``jacobi_decode`` with early exit (cap + tolerance in bins)       |

Every argmax is restricted to the action ids. The ViT runs plain, or through
the engine's ``ViTFeatureCache`` (``vit_cache=True``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrt.engine import (
    GRAPH_MODES,
    JacobiConfig,
    NativeRunner,
    ViTCacheConfig,
    ViTFeatureCache,
    greedy_decode,
    jacobi_decode,
    prefill,
)
from agentrt.engine.device import Placement, model_device, synchronize
from agentrt.errors import ConfigError
from agentrt.pixels import FIT_MODES, fit
from agentrt.scheduler import ChunkSchedule
from policies.vla.model import (
    LEGACY_ROBOT,
    ActionTokenizer,
    NanoVLA,
    TextTokenizer,
    load_model,
    pixels,
    robot_state,
    trained_robot,
)
from policies.vocabulary import WordCheck

__all__ = ["DECODINGS", "PolicyConfig", "NanoPolicy", "ActInfo", "InstructionCheck", "PolicySource", "default_weights",
           "shifted_guess"]

log = logging.getLogger(__name__)

DECODINGS = ("ar", "jacobi", "consistency")
WEIGHTS_DIR = Path(__file__).parents[1] / "weights"  # policies/weights/


def default_weights(decoding: str) -> Path:
    """The shipped weights for a decoding mode: the distilled ones for ``consistency``."""
    return WEIGHTS_DIR / ("nano_vla_cd.safetensors" if decoding == "consistency" else "nano_vla.safetensors")


@dataclass
class PolicyConfig:
    weights: str = ""  # empty: the shipped weights for the decoding mode
    decoding: str = "ar"  # ar | jacobi | consistency
    max_iterations: int = 3  # consistency: the cap σ on Jacobi passes (chosen from MODEL_CARD.md's table)
    tolerance_bins: int = 3  # consistency: stop when every changing token moved <= this many bins
    vit_cache: bool = False  # run the ViT through the engine's STC feature cache
    threads: int = 1  # a 1 M-parameter model gains little from more, and a shared 2-core machine loses a lot
    guess_shift_steps: int = 4  # Jacobi's first guess: the previous chunk moved on by the steps run since (4 of 8)
    fit: str = "center-crop"  # a camera image not at the model's size: center-crop | resize (agentrt.pixels.fit)
    device: str = "auto"  # auto (a GPU when there is one) | cpu | cuda | cuda:N (agentrt.engine.device)
    dtype: str = "float32"  # float32 | bfloat16
    graphs: str = "auto"  # auto: the decoder's passes replayed as CUDA graphs when the model is on CUDA | static | off

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise ConfigError(f"PolicyConfig.decoding: expected one of {', '.join(DECODINGS)}, got {self.decoding!r}")
        if self.fit not in FIT_MODES:
            raise ConfigError(f"PolicyConfig.fit: expected one of {', '.join(FIT_MODES)}, got {self.fit!r}")
        if self.graphs not in GRAPH_MODES:
            raise ConfigError(f"PolicyConfig.graphs: expected one of {', '.join(GRAPH_MODES)}, got {self.graphs!r}")
        if self.max_iterations < 1 or self.tolerance_bins < 0 or self.threads < 1:
            raise ConfigError(
                f"PolicyConfig: expected max_iterations >= 1, tolerance_bins >= 0, threads >= 1, "
                f"got {self.max_iterations}, {self.tolerance_bins}, {self.threads}"
            )
        Placement.parse(self.device, self.dtype)  # a device or dtype it does not understand: one line, now

    @property
    def placement(self) -> Placement:
        return Placement.parse(self.device, self.dtype)


@dataclass(frozen=True)
class InstructionCheck:
    words: WordCheck
    names_object: bool  # a colour or shape word the model knows is in it

    @property
    def clean(self) -> bool:
        return self.words.clean and self.names_object


@dataclass
class ActInfo:
    vit_ms: float = 0.0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0  # the action block: every pass after the prefill
    total_ms: float = 0.0
    iterations: int = 0
    early_exit: str = ""


class NanoPolicy:
    """Loads the weights once; ``act`` is one inference. ``reset()`` between episodes.

    Weights it loads go to ``config.device`` in ``config.dtype``; a ``model`` given in memory runs where it is.
    ``robot``: the robot the weights were trained on, read from their metadata when the policy loads them
    (``robot`` names it for a ``model`` given in memory). ``check_instruction`` says which words of an
    instruction the model does not know and whether it still names an object the model knows.
    """

    def __init__(self, config: PolicyConfig | None = None, model: NanoVLA | None = None, *,
                 robot: str = LEGACY_ROBOT) -> None:
        self.config = cfg = config or PolicyConfig()
        torch.set_num_threads(cfg.threads)
        if model is None:
            placement = cfg.placement
            path = cfg.weights or default_weights(cfg.decoding)
            model, extra = load_model(path, placement.device)
            model = model.to(placement.dtype)
            robot = trained_robot(extra, path)
        self.robot = robot
        self.model = model.eval()
        self.text = TextTokenizer(model.config)
        self.actions = ActionTokenizer(model.config)
        # The runner reads its device from the model on every call; a static cache for prompt + block + a padded
        # block pass (graphs on CUDA).
        c = model.config
        self.runner = NativeRunner(model.decoder, max_length=c.prompt_len + 2 * c.chunk_tokens, graphs=cfg.graphs,
                                   block=c.chunk_tokens - 1)
        self.vit: Any = ViTFeatureCache(model.vit, ViTCacheConfig()) if cfg.vit_cache else model.vit
        self.jacobi = JacobiConfig()
        if cfg.decoding == "consistency":
            self.jacobi = JacobiConfig(max_iterations=cfg.max_iterations, tolerance_bins=cfg.tolerance_bins)
        self._previous: list[int] | None = None
        self._text_cache: tuple[str, torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        """The model's device, wherever it was moved after construction: the policy follows its model (a
        model given in memory, one being trained, is never moved by the policy)."""
        return model_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def object_words(self) -> frozenset[str]:
        """The words the model knows that name an object: the sims' colours and shapes in its vocabulary."""
        from sims.tasks.base import COLOURS, SHAPES

        return frozenset(self.model.config.words) & {*COLOURS, *SHAPES}

    @property
    def wants_wrist(self) -> bool:
        """The weights take the wrist camera as a second image."""
        return self.model.config.wrist

    def check_instruction(self, instruction: str) -> InstructionCheck:
        """What the model makes of ``instruction``: its unknown and unread words, and whether a word it knows
        still names the object (without one, the grounding has nothing to look for)."""
        words = self.text.check(instruction)
        objects = self.object_words
        named = not objects or any(w in objects for w in words.known)  # a vocabulary without objects: no judging
        return InstructionCheck(words, named)

    @property
    def previous(self) -> list[int] | None:
        """The last chunk's tokens (the next Jacobi guess starts from them); a server swaps them per robot."""
        return self._previous

    @previous.setter
    def previous(self, tokens: list[int] | None) -> None:
        self._previous = tokens

    def reset(self) -> None:
        self._previous = None
        if isinstance(self.vit, ViTFeatureCache):
            self.vit.reset()

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """An RGB uint8 image (H, W, 3) of any size -> the model's input [1, 3, S, S]: fitted to S x S
        (``config.fit``), then scaled to [-1, 1]. A frame's pixels: ``agentrt.pixels.to_rgb(frame)`` first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ConfigError(f"NanoPolicy: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape} "
                              "(convert a frame with agentrt.pixels.to_rgb)")
        return pixels(fit(image, self.model.config.image_size, self.config.fit), device=self.device, dtype=self.dtype)

    @torch.inference_mode()
    def act(self, image: np.ndarray, state: np.ndarray, instruction: str,
            wrist: np.ndarray | None = None) -> tuple[np.ndarray, ActInfo]:
        """image (H, W, 3) RGB uint8 of any size (see ``prepare``), state (4,) -> chunk (K, D) float32 and timings.
        ``wrist``: the wrist camera's image, for a model that takes it (``wants_wrist``)."""
        if self.wants_wrist and wrist is None:
            raise ConfigError("NanoPolicy: these weights take the wrist camera too (wrist=true); give act(..., wrist=image)")
        info = ActInfo()
        c = self.model.config
        device = self.device
        # on a GPU kernels run queued: wait for them before each clock read, or the times belong to the wrong part
        synchronize(device)
        t0 = time.perf_counter()
        device = self.runner.device  # the model's, wherever it was moved after construction
        x = self.prepare(image).to(device)
        if self.wants_wrist:
            x = torch.cat([x, self.prepare(wrist).to(device)], dim=1)  # type: ignore[arg-type]
        percept = self.model.perceive(x, self.vit)
        synchronize(device)
        t1 = time.perf_counter()
        if self._text_cache is None or self._text_cache[0] != instruction or self._text_cache[1].device != device:
            self._text_cache = (instruction, torch.tensor([self.text.encode(instruction)], device=device))
        state_t = torch.as_tensor(np.asarray(state, dtype=np.float32), device=device)[None].to(self.dtype)
        prompt, _ = self.model.prompt(percept, state_t, self._text_cache[1])
        cache, last = prefill(self.runner, prompt)
        synchronize(device)
        t2 = time.perf_counter()
        n = c.chunk_tokens
        if self.config.decoding == "ar":
            result = greedy_decode(self.runner, None, n, action_ids=c.action_ids, cache=cache, last_logits=last)
        else:
            init = self._shifted_guess()[1:] if self._previous is not None else None
            result = jacobi_decode(self.runner, None, n, self.jacobi, action_ids=c.action_ids, init=init, cache=cache, last_logits=last)
        synchronize(device)
        t3 = time.perf_counter()
        self._previous = result.tokens
        info.vit_ms, info.prefill_ms, info.decode_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3
        info.total_ms = (t3 - t0) * 1e3
        info.iterations, info.early_exit = result.stats.iterations, result.stats.early_exit
        return self.actions.decode(result.tokens), info


    def _shifted_guess(self) -> list[int]:
        assert self._previous is not None
        return shifted_guess(self._previous, self.model.config.action_dims, self.config.guess_shift_steps)


def shifted_guess(previous: list[int], action_dims: int, shift: int) -> list[int]:
    """The previous chunk's tokens moved on by ``shift`` whole steps (all dims of a step move together), the
    last step repeated behind them: what the new chunk most likely starts with (Jacobi's first guess)."""
    steps = [previous[i : i + action_dims] for i in range(0, len(previous), action_dims)]
    shift = min(shift, len(steps) - 1)
    moved = steps[shift:] + [steps[-1]] * shift
    return [token for step in moved for token in step]


@dataclass
class PolicySource:
    """A ``sims.loop`` action source running the policy in-process, on ``agentrt.scheduler``'s schedule.

    Lockstep: ``fetch`` plans synchronously from the frame of the tick that needed it.
    Real time: a worker thread plans from the newest frame whenever the current chunk
    has at most ``lead_steps`` left (so the next chunk arrives before this one runs
    out) and drops the steps that went by while it computed.
    """

    policy: NanoPolicy
    env: Any = None  # the sims.SimEnv: its instruction is read at every episode start
    reword: Callable[[str], str] | None = None  # what the policy is told instead (held-out rewordings)
    instruction: str = ""
    # its clock must be the loop's; lockstep runs 4 of 8 steps, then plans again: as often as real time with
    # lead_steps 4 (and grasps land better)
    schedule: ChunkSchedule = field(default_factory=ChunkSchedule)
    wants_frames: bool = True
    infos: list[ActInfo] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # capture -> chunk ready
    told: list[str] = field(default_factory=list)  # the instruction of each episode, as the policy was told it
    _frame: tuple[np.ndarray, np.ndarray, int, np.ndarray | None] | None = None  # image, state, t_capture, wrist
    _pending: tuple[np.ndarray, int] | None = None
    _busy: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _worker: threading.Thread | None = None
    _wake: threading.Event = field(default_factory=threading.Event)
    _closed: bool = False

    @property
    def wants_wrist(self) -> bool:
        """The loop renders the wrist camera beside each frame (``StepRecord.wrist``) for a model that takes it."""
        return self.policy.wants_wrist

    def start_episode(self, instruction: str) -> None:
        self.instruction = instruction
        self.told.append(instruction)
        self.policy.reset()
        with self._lock:
            self._frame, self._pending, self._busy = None, None, False

    def observe(self, tick: Any) -> None:
        if tick.step == 0 and self.env is not None:
            text = self.env.instruction
            self.start_episode(self.reword(text) if self.reword else text)
        if tick.image is not None:
            state = robot_state(tick.observation.ee_pose, tick.observation.gripper)
            with self._lock:
                self._frame = (tick.image, state, tick.t_capture_ns, tick.wrist)

    def _plan(self) -> tuple[np.ndarray, int] | None:
        with self._lock:
            frame = self._frame
        if frame is None:
            return None
        wrist = {} if frame[3] is None else {"wrist": frame[3]}  # only a policy that wants it (an HF VLA takes none)
        chunk, info = self.policy.act(frame[0], frame[1], self.instruction, **wrist)
        self.infos.append(info)
        self.latencies_ms.append((time.monotonic_ns() - frame[2]) / 1e6)
        return chunk, frame[2]

    def fetch(self, queue: Any, *, wait: bool, stop: threading.Event) -> None:
        schedule = self.schedule
        if wait != schedule.lockstep:
            raise ConfigError(f"PolicySource: its schedule's clock is {schedule.clock} but the episode loop runs "
                              f"{'lockstep' if wait else 'realtime'}: give both the same clock")
        if wait:  # lockstep
            if schedule.due(queue.remaining):
                planned = self._plan()
                if planned is not None:
                    chunk = schedule.steps_to_run(planned[0], t_capture_ns=planned[1])
                    queue.submit("ee_delta", chunk, t_capture_ns=planned[1])
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="policy", daemon=True)
            self._worker.start()
        with self._lock:
            pending, self._pending = self._pending, None
            busy = self._busy
        if pending is not None:
            chunk, t_capture = pending
            queue.submit("ee_delta", schedule.steps_to_run(chunk, t_capture_ns=t_capture), t_capture_ns=t_capture)
        elif not busy and schedule.due(queue.remaining):
            self._wake.set()

    def _work(self) -> None:
        while not self._closed:
            if not self._wake.wait(0.1):
                continue
            self._wake.clear()
            with self._lock:
                self._busy = True
            planned = None
            try:
                planned = self._plan()
            finally:
                with self._lock:
                    self._busy = False
                    if planned is not None:
                        self._pending = planned

    def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.join(timeout=2.0)
