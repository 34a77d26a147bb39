"""What a Hugging Face VLA checkpoint carries beside its weights: ``vla_actions.json``.

OpenVLA-style action tokens (REFERENCES §6): ``n_bins`` (256) ids at the top
of the LM's vocabulary, ``[vocab_size - n_bins, vocab_size)``, id =
``action_start + bin``; xyz deltas normalised with the dataset's q01/q99 into
uniform bins, the gripper binarised (the nano VLA's ``ActionTokenizer``, the
same bins). A chunk is ``chunk_steps`` x ``action_dims`` tokens, step-major.
The JSON also says how big the camera image is, how the robot state is
written into the prompt and which robot the demonstrations came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import ConfigError

__all__ = ["SPEC_FILE", "ActionSpec", "load_spec", "state_text", "prompt_text"]

SPEC_FILE = "vla_actions.json"
IMAGE_TOKEN = "<image>"
# SmolVLM / Idefics3's markers around one un-split image (what its processor writes for a global view)
IMAGE_OPEN, GLOBAL_IMAGE, END_OF_UTTERANCE = "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"
PROMPT_TOKENS = (IMAGE_OPEN, GLOBAL_IMAGE, IMAGE_TOKEN, END_OF_UTTERANCE)


@dataclass
class ActionSpec:
    vocab_size: int  # rows of the LM head; the action ids are its top n_bins
    image_seq_len: int  # <image> tokens one image becomes (vision patches / scale_factor²)
    n_bins: int = 256
    chunk_steps: int = 8
    action_dims: int = 4  # dx, dy, dz (m / step), gripper
    action_q01: list[float] = field(default_factory=lambda: [-0.02, -0.02, -0.02])
    action_q99: list[float] = field(default_factory=lambda: [0.02, 0.02, 0.02])
    image_size: int = 64  # the camera image is fitted to this square before the vision tower
    robot: str = "panda"
    # grounding tokens: the model first says where the named object is (its table xyz, ``ground_dims`` of them,
    # each binned uniformly over [ground_lo, ground_hi] into the same 256 action ids), then the chunk; the
    # actions are decoded conditioned on that answer. 0: the block is the chunk alone.
    ground_dims: int = 0
    ground_lo: list[float] = field(default_factory=list)
    ground_hi: list[float] = field(default_factory=list)
    format: str = "agentrt-vla/1"

    def __post_init__(self) -> None:
        if self.n_bins != 256:
            raise ConfigError(f"{SPEC_FILE}: n_bins must be 256 (OpenVLA action tokens), got {self.n_bins}")
        if self.vocab_size <= self.n_bins:
            raise ConfigError(f"{SPEC_FILE}: vocab_size {self.vocab_size} leaves no room below {self.n_bins} action ids")
        if self.chunk_steps < 1 or self.action_dims < 2 or self.image_seq_len < 1 or self.image_size < 8:
            raise ConfigError(f"{SPEC_FILE}: expected chunk_steps >= 1, action_dims >= 2, image_seq_len >= 1, "
                              f"image_size >= 8, got {self.chunk_steps}, {self.action_dims}, {self.image_seq_len}, "
                              f"{self.image_size}")
        if len(self.action_q01) != self.action_dims - 1 or len(self.action_q99) != self.action_dims - 1:
            raise ConfigError(f"{SPEC_FILE}: action_q01 and action_q99 need {self.action_dims - 1} values each")
        if self.ground_dims < 0 or len(self.ground_lo) != self.ground_dims or len(self.ground_hi) != self.ground_dims \
                or any(hi <= lo for lo, hi in zip(self.ground_lo, self.ground_hi, strict=True)):
            raise ConfigError(f"{SPEC_FILE}: ground_lo and ground_hi need ground_dims ({self.ground_dims}) values "
                              f"each, every hi above its lo")

    # what the nano VLA's ActionTokenizer reads
    @property
    def action_start(self) -> int:
        return self.vocab_size - self.n_bins

    @property
    def action_ids(self) -> tuple[int, int]:
        return (self.action_start, self.vocab_size)

    @property
    def chunk_tokens(self) -> int:
        return self.chunk_steps * self.action_dims

    @property
    def block_tokens(self) -> int:
        """Tokens decoded per call: the grounding tokens, then the chunk."""
        return self.ground_dims + self.chunk_tokens

    def ground_bins(self, xyz: np.ndarray) -> np.ndarray:
        """[N, >= ground_dims] positions -> [N, ground_dims] bins in [0, n_bins)."""
        lo, hi = np.asarray(self.ground_lo), np.asarray(self.ground_hi)
        unit = (np.asarray(xyz, dtype=np.float64)[:, : self.ground_dims] - lo) / (hi - lo)
        return np.clip(np.floor(unit * self.n_bins), 0, self.n_bins - 1).astype(np.int64)

    def ground_values(self, tokens: list[int]) -> np.ndarray:
        """The block's grounding token ids -> the position they say (bin centres), [ground_dims]."""
        lo, hi = np.asarray(self.ground_lo), np.asarray(self.ground_hi)
        bins = np.asarray(tokens[: self.ground_dims], dtype=np.float64) - self.action_start
        return (lo + (bins + 0.5) / self.n_bins * (hi - lo)).astype(np.float32)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / SPEC_FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path


def load_spec(folder: str | Path) -> ActionSpec:
    """The folder's ``vla_actions.json``; one line when it is missing or malformed."""
    path = Path(folder) / SPEC_FILE
    if not path.exists():
        raise ConfigError(f"{folder} has no {SPEC_FILE}: it is not a VLA checkpoint with action tokens "
                          f"(a plain VLM cannot act; train one with `agentrt train-hfvla`)")
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        return ActionSpec(**raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid action spec ({exc}); expected the fields of "
                          f"policies.hfvla.spec.ActionSpec") from exc


def state_text(state: np.ndarray) -> str:
    """The robot state as the prompt writes it: tool xyz in whole centimetres and the gripper in percent
    (1 cm is half the reach task's margin; digits are single tokens in SmolLM2's tokenizer)."""
    x, y, z, g = (float(v) for v in np.asarray(state, dtype=np.float64)[:4])
    return f"x {round(100 * x)} y {round(100 * y)} z {round(100 * z)} gripper {round(100 * g)}"


def prompt_text(instruction: str, state: np.ndarray | None, image_seq_len: int) -> str:
    """SmolVLM's chat layout with the instruction and state first, then the image, then the answer
    (the actions). The words come first so the image tokens can attend to what to look for.
    ``state`` None writes "State: unknown" (training drops the state so the image must carry the target)."""
    image = IMAGE_OPEN + GLOBAL_IMAGE + IMAGE_TOKEN * image_seq_len + IMAGE_OPEN
    said = "unknown" if state is None else state_text(state)
    return (f"<|im_start|>User: {instruction.strip()}. State: {said}.{image}"
            f"{END_OF_UTTERANCE}\nAssistant:")
