"""BatchPolicy: the nano VLA for many robots at once, ``act_batch(requests) -> chunks``, memory per robot.

One forward per pass for the whole batch (``agentrt.engine.batched``): the images through the ViT together,
the prompts prefilled together, then the action block decoded as ``NanoPolicy.act`` would per robot
(ar: greedy; jacobi: exact Jacobi from the robot's previous chunk; consistency: Jacobi with the cap and
tolerance, each row exiting on its own). Row b's chunk equals what a ``NanoPolicy`` of its own, with the
same history, gives robot b. What ``NanoPolicy`` keeps about a robot (its previous chunk, the Jacobi
guess) is kept here per robot id; ``reset(robot)`` starts that robot's episode afresh. The ViT feature
cache (``vit_cache``) is one robot's video memory, so batches run the plain ViT.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from agentrt.engine import ViTFeatureCache, batched_greedy, batched_jacobi, batched_prefill
from agentrt.engine.device import synchronize
from agentrt.errors import ConfigError
from policies.vla.policy import ActInfo, NanoPolicy, shifted_guess

__all__ = ["BatchRequest", "BatchPolicy"]

TEXT_CACHE = 256  # instructions kept encoded (a fleet has few; an endless stream of new ones must not grow it)


@dataclass
class BatchRequest:
    robot: str  # the robot id its memory is kept under
    image: np.ndarray  # RGB uint8 (H, W, 3), any size (NanoPolicy.prepare fits it)
    state: np.ndarray  # (4,): tool point xyz and gripper (policies.vla.model.robot_state)
    instruction: str


class BatchPolicy:
    """Wraps a loaded ``NanoPolicy`` (its model, tokenizers and decoding config); no weights of its own."""

    def __init__(self, policy: NanoPolicy) -> None:
        if policy.wants_wrist:
            raise ConfigError("policy server: these weights take the wrist camera too, which a robot's request does not "
                              "carry; serve scene-only weights")
        self.policy = policy
        self._previous: dict[str, list[int]] = {}
        self._text: OrderedDict[str, list[int]] = OrderedDict()

    @property
    def robots(self) -> list[str]:
        """The robots with memory (a previous chunk) now."""
        return list(self._previous)

    def reset(self, robot: str) -> None:
        """Forget what this robot's episode had (its previous chunk): a new episode, or a robot gone."""
        self._previous.pop(robot, None)

    def _encode(self, instruction: str) -> list[int]:
        ids = self._text.get(instruction)
        if ids is None:
            ids = self._text[instruction] = self.policy.text.encode(instruction)
            if len(self._text) > TEXT_CACHE:
                self._text.popitem(last=False)
        return ids

    @torch.inference_mode()
    def act_batch(self, requests: list[BatchRequest]) -> tuple[list[np.ndarray], list[ActInfo]]:
        """One chunk (K, D) float32 per request, in order, and each row's timings (the batch's parts, shared)
        and pass count. One request per robot: a robot's second row would not see its first's chunk."""
        if not requests:
            return [], []
        robots = [r.robot for r in requests]
        if len(set(robots)) != len(robots):
            raise ValueError(f"act_batch: one request per robot, got {robots}")
        policy = self.policy
        if len(requests) == 1 and not isinstance(policy.vit, ViTFeatureCache):
            # one row: the single-row path gives the same chunk (tests) with less work per pass
            r = requests[0]
            policy.previous = self._previous.get(r.robot)
            chunk, info = policy.act(r.image, r.state, r.instruction)
            assert policy.previous is not None
            self._previous[r.robot] = policy.previous
            return [chunk], [info]
        model, c = policy.model, policy.model.config
        device = policy.device
        synchronize(device)
        t0 = time.perf_counter()
        images = torch.cat([policy.prepare(r.image) for r in requests]).to(device)
        percept = model.perceive(images, model.vit)
        synchronize(device)
        t1 = time.perf_counter()
        text = torch.tensor([self._encode(r.instruction) for r in requests], device=device)
        states = torch.as_tensor(np.stack([np.asarray(r.state, np.float32) for r in requests]), device=device)
        prompts, _ = model.prompt(percept, states.to(policy.dtype), text)
        cache, last = batched_prefill(model.decoder, prompts)
        synchronize(device)
        t2 = time.perf_counter()
        n, ids = c.chunk_tokens, c.action_ids
        if policy.config.decoding == "ar":
            results = batched_greedy(model.decoder, cache, last, n, action_ids=ids)
        else:
            shift = policy.config.guess_shift_steps
            inits = [shifted_guess(p, c.action_dims, shift)[1:] if (p := self._previous.get(robot)) else None
                     for robot in robots]
            results = batched_jacobi(model.decoder, cache, last, n, policy.jacobi, action_ids=ids, inits=inits)
        synchronize(device)
        t3 = time.perf_counter()
        chunks, infos = [], []
        for robot, result in zip(robots, results, strict=True):
            self._previous[robot] = result.tokens
            chunks.append(policy.actions.decode(result.tokens))
            infos.append(ActInfo(vit_ms=(t1 - t0) * 1e3, prefill_ms=(t2 - t1) * 1e3, decode_ms=(t3 - t2) * 1e3,
                                 total_ms=(t3 - t0) * 1e3, iterations=result.stats.iterations,
                                 early_exit=result.stats.early_exit))
        return chunks, infos
