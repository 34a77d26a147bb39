"""The nano VLA: a small ViT and a causal decoder that emits an action chunk as tokens.

Sequence (one sample)::

    [ image tokens (ViT, pooled) | bos  instruction words  pad..  sep | keypoints | (wrist) | state | a(0,0) ... a(K-1,D-1) ]
      grid/pool² embeddings        text_len ids                         n_kp        grid/pool²  1     K x D action-bin ids

With ``wrist`` the wrist camera is a second image: stacked behind the scene's
channels (uint8 (H, W, 6), scene then wrist), run through the same stem and
ViT, its pooled tokens (plus a learned camera embedding) placed before the
state, after the keypoints, so a model grown from scene-only weights keeps
its image, words and keypoints where they were.

Grounding: the ViT's pooled tokens are too coarse to put a 4 cm object within
the 2 cm a task needs (a 64 px scene camera shows it as ~4 px). So the model
also finds the instruction's objects itself: a spatial soft-argmax per keypoint
(Levine et al. 2016) over a 32x32 map of the stem's features, the logits being
each cell's match with a query made from the instruction's words. Keypoint 0
is the named object, keypoint 1 the place it must go (the tray); each becomes
a table position (normalised like the state), trained with an auxiliary loss
on the sim's privileged positions, and enters the prompt as one token holding
the position and its offset from the tool. With ``keypoint_height`` each
keypoint also predicts its height above the table (from the heatmap-weighted
features and the tool's height), the image -> table map takes that height, and
the token holds it and its offset from the tool's: the camera looks down at an
angle, so a lifted object mapped as if on the floor lands ~7 cm off, and a
policy that sees its held object away from the tool goes back to pick it up.

Vocabulary: 4 specials (pad, bos, sep, unk), the instruction words, then 256
action bins (id = ``action_start + bin``). Unknown words become ``unk``
(training drops words to ``unk`` at random, so reworded instructions degrade
gracefully). Actions: dims 0..2 (ee xyz deltas) are normalised with the
dataset's q01/q99 to [-1, 1] and put in 256 uniform bins (OpenVLA style); the
gripper is binarised (bin 0 open, 255 closed). The normalisation statistics are
part of the config, so they are saved with the weights, and so is the robot
whose demonstrations trained them (metadata "robot"; ``trained_robot``).

The pieces are the engine's: ``agentrt.engine.ViT`` for vision and
``agentrt.engine.Decoder`` (RoPE, ``KVCache``) for the language side, so
``greedy_decode`` / ``jacobi_decode`` drive it through ``NativeRunner``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine import Decoder, DecoderConfig, ViT, ViTConfig
from agentrt.errors import ConfigError
from policies.checkpoint import load_checkpoint, save_checkpoint
from policies.vla.state import robot_state
from policies.vocabulary import WordCheck, check_words, split_words

__all__ = ["NanoVLAConfig", "NanoVLA", "Percept", "Keypoints", "ActionTokenizer", "TextTokenizer", "save_model", "load_model",
           "trained_robot", "LEGACY_ROBOT", "robot_state", "ActionSpace"]

log = logging.getLogger(__name__)

SPECIALS = ("<pad>", "<bos>", "<sep>", "<unk>")
PAD, BOS, SEP, UNK = 0, 1, 2, 3
N_BINS = 256
LEGACY_ROBOT = "panda"  # the robot of weights that do not name theirs (all saved before "robot" was written)


@dataclass
class NanoVLAConfig:
    image_size: int = 64
    patch_size: int = 8
    vit_width: int = 128
    vit_depth: int = 2
    vit_heads: int = 4
    pool: int = 2  # average-pool the ViT grid by this factor before the decoder (8x8 -> 4x4 tokens)
    stem_channels: int = 48  # hybrid ViT: a small conv stem (with x, y coordinate channels) makes the patches; 0 = plain
    width: int = 128
    depth: int = 3
    heads: int = 4
    chunk_steps: int = 8  # K: actions per chunk (0.4 s at 20 Hz)
    action_dims: int = 4  # D: dx, dy, dz, gripper
    state_dims: int = 4  # x, y, z, gripper
    text_len: int = 10  # bos + words + pad + sep
    keypoints: int = 2  # grounding tokens: 0 the named object, 1 where it must go (0 = none)
    keypoint_channels: int = 32
    keypoint_height: bool = False  # each keypoint predicts its height too (module docstring); False: older weights
    wrist: bool = False  # the wrist camera as a second image (module docstring); False: the scene camera alone
    words: list[str] = field(default_factory=list)
    action_q01: list[float] = field(default_factory=lambda: [-0.02, -0.02, -0.02])  # metres per step
    action_q99: list[float] = field(default_factory=lambda: [0.02, 0.02, 0.02])
    state_center: list[float] = field(default_factory=lambda: [0.5, 0.0, 0.2, 0.5])
    state_scale: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.2, 0.5])

    def __post_init__(self) -> None:
        if self.stem_channels and (self.patch_size % 4 or self.stem_channels % 2):
            raise ConfigError(f"NanoVLAConfig: a stem needs patch_size a multiple of 4 and even stem_channels, got {self.patch_size}, {self.stem_channels}")
        if self.image_size % self.patch_size or (self.image_size // self.patch_size) % self.pool:
            raise ConfigError(
                f"NanoVLAConfig: image_size / patch_size must divide by pool, got {self.image_size}, {self.patch_size}, {self.pool}"
            )
        if self.keypoints and not self.stem_channels:
            raise ConfigError("NanoVLAConfig: keypoints need the conv stem (stem_channels > 0)")
        if self.text_len < 3 or self.chunk_steps < 1 or self.action_dims < 2:
            raise ConfigError(
                f"NanoVLAConfig: expected text_len >= 3, chunk_steps >= 1, action_dims >= 2, "
                f"got {self.text_len}, {self.chunk_steps}, {self.action_dims}"
            )
        if len(self.action_q01) != self.action_dims - 1 or len(self.action_q99) != self.action_dims - 1:
            raise ConfigError(f"NanoVLAConfig.action_q01/q99: expected {self.action_dims - 1} values each")

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size // self.pool) ** 2

    def vit_config(self) -> ViTConfig:
        """The engine ViT: over pixels, or (with a stem) over the stem's 4x-downsampled feature map."""
        if self.stem_channels:
            return ViTConfig(image_size=self.image_size // 4, patch_size=self.patch_size // 4, in_channels=self.stem_channels,
                             width=self.vit_width, depth=self.vit_depth, heads=self.vit_heads)
        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, width=self.vit_width,
                         depth=self.vit_depth, heads=self.vit_heads)

    @property
    def prompt_len(self) -> int:
        return self.image_tokens * (2 if self.wrist else 1) + self.text_len + self.keypoints + 1

    @property
    def image_channels(self) -> int:
        """Channels of an input image: RGB, or scene RGB then wrist RGB."""
        return 6 if self.wrist else 3

    @property
    def chunk_tokens(self) -> int:
        return self.chunk_steps * self.action_dims

    @property
    def action_start(self) -> int:
        return len(SPECIALS) + len(self.words)

    @property
    def vocab_size(self) -> int:
        return self.action_start + N_BINS

    @property
    def action_ids(self) -> tuple[int, int]:
        return (self.action_start, self.action_start + N_BINS)


class Percept(NamedTuple):
    vit_tokens: torch.Tensor  # [B, grid², Cv]
    keypoint_features: torch.Tensor | None  # [B, k, S/2, S/2], None without grounding
    wrist_tokens: torch.Tensor | None = None  # [B, grid², Cv] the wrist camera's ViT tokens (wrist only)


class Keypoints(NamedTuple):
    xy: torch.Tensor  # [B, n_kp, 2] table positions, normalised like the state
    logits: torch.Tensor  # [B, n_kp, h*w] the heatmaps they are the soft-argmax of
    z: torch.Tensor | None = None  # [B, n_kp, 1] heights, normalised like the state's z (keypoint_height only)


class TextTokenizer:
    """Word-level: ``bos w1 .. wn pad .. sep`` in exactly ``text_len`` ids; unknown words are ``unk``."""

    def __init__(self, config: NanoVLAConfig) -> None:
        self.config = config
        self.index = {w: len(SPECIALS) + i for i, w in enumerate(config.words)}

    def encode(self, text: str) -> list[int]:
        ids = [self.index.get(w, UNK) for w in split_words(text)][: self.config.text_len - 2]
        return [BOS, *ids] + [PAD] * (self.config.text_len - 2 - len(ids)) + [SEP]

    def check(self, text: str) -> WordCheck:
        """The words of ``text`` this vocabulary lacks (read as ``unk``) and those past ``text_len`` (not read)."""
        return check_words(text, self.index, self.config.text_len - 2)  # specials are never written words


class ActionSpace(Protocol):
    """What the action tokenizer reads of a config (``NanoVLAConfig``, or a Hugging Face VLA's action spec)."""

    action_q01: list[float]
    action_q99: list[float]
    chunk_steps: int
    action_dims: int

    @property
    def action_start(self) -> int: ...


class ActionTokenizer:
    """(K, D) actions <-> K*D action-bin ids; xyz by q01/q99, the gripper binarised."""

    def __init__(self, config: ActionSpace) -> None:
        self.config = config
        self.q01 = np.asarray(config.action_q01, dtype=np.float64)
        self.q99 = np.asarray(config.action_q99, dtype=np.float64)

    def to_bins(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions, dtype=np.float64)
        norm = 2.0 * (a[..., :-1] - self.q01) / (self.q99 - self.q01) - 1.0
        bins = np.clip(np.floor((np.clip(norm, -1.0, 1.0) + 1.0) / 2.0 * N_BINS), 0, N_BINS - 1)
        grip = np.where(a[..., -1:] >= 0.5, N_BINS - 1, 0)
        return np.concatenate([bins, grip], axis=-1).astype(np.int64)

    def from_bins(self, bins: np.ndarray) -> np.ndarray:
        b = np.asarray(bins, dtype=np.float64)
        norm = (b[..., :-1] + 0.5) / N_BINS * 2.0 - 1.0  # bin centre in [-1, 1]
        xyz = 0.5 * (norm + 1.0) * (self.q99 - self.q01) + self.q01
        grip = (b[..., -1:] >= N_BINS / 2).astype(np.float64)
        return np.concatenate([xyz, grip], axis=-1).astype(np.float32)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(K, D) -> (K*D,) token ids."""
        return self.to_bins(actions).reshape(-1) + self.config.action_start

    def decode(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """(K*D,) token ids -> (K, D) float32 actions (non-action ids are clipped to the nearest bin)."""
        bins = np.clip(np.asarray(ids, dtype=np.int64) - self.config.action_start, 0, N_BINS - 1)
        return self.from_bins(bins.reshape(self.config.chunk_steps, self.config.action_dims))


class Stem(nn.Module):
    """pixels [B, 3, S, S] -> (full-resolution features [B, C/2, S, S], features [B, C, S/4, S/4]):
    two convolutions over RGB + x, y coordinates."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(5, channels // 2, 3, padding=1)
        self.conv2 = nn.Conv2d(channels // 2, channels, 4, stride=4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, _, H, W = x.shape  # batch, channels, height, width
        h = F.gelu(self.conv1(torch.cat([x, *coordinates(B, H, W, x)], dim=1)))
        return h, F.gelu(self.conv2(h))


def coordinates(B: int, H: int, W: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y in [-1, 1] as [B, 1, H, W] maps."""
    ys = torch.linspace(-1, 1, H, device=like.device, dtype=like.dtype).view(1, 1, H, 1).expand(B, 1, H, W)
    xs = torch.linspace(-1, 1, W, device=like.device, dtype=like.dtype).view(1, 1, 1, W).expand(B, 1, H, W)
    return xs, ys


class Grounding(nn.Module):
    """Finds the instruction's objects: per keypoint, a soft-argmax over a 32x32 feature map whose logits
    are each cell's match with a query from the instruction's words; image (u, v) -> table (x, y)."""

    def __init__(self, config: NanoVLAConfig) -> None:
        super().__init__()
        c, k = config, config.keypoint_channels
        self.keypoints = c.keypoints
        self.conv1 = nn.Conv2d(c.stem_channels // 2, k, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(k, k, 3, padding=1)
        self.words_norm = nn.LayerNorm(c.width)  # word embeddings start tiny (std 0.02): without it the query ignores them
        self.query = nn.Linear(c.width, c.keypoints * k)
        # The scene camera is fixed, so image -> table is one smooth map (a homography on the floor; with
        # the height, the ray through the pixel cut at that height).
        height = int(c.keypoint_height)
        self.to_table = nn.Sequential(nn.Linear(2 + height, 64), nn.GELU(), nn.Linear(64, 2))
        # heatmap-weighted features + the tool's height -> the keypoint's height
        self.height = nn.Sequential(nn.Linear(k + 1, 32), nn.GELU(), nn.Linear(32, 1)) if height else None
        # (x, y, x - tool x, y - tool y [, z, z - tool z]) -> a prompt token
        self.token = nn.Linear(4 + 2 * height, c.width)

    def features(self, stem_full: torch.Tensor) -> torch.Tensor:
        """Full-resolution stem features [B, C/2, S, S] -> keypoint features [B, k, S/2, S/2]."""
        return F.gelu(self.conv2(F.gelu(self.conv1(stem_full))))

    def locate(self, features: torch.Tensor, words: torch.Tensor, tool_z: torch.Tensor) -> Keypoints:
        """Features [B, k, h, w], the instruction's mean word embedding [B, C] and the tool's normalised
        height [B] -> keypoints: table xy [B, n_kp, 2] (normalised like the state), the heatmap logits
        [B, n_kp, h*w] behind them and (keypoint_height) their heights [B, n_kp, 1]."""
        B, k, h, w = features.shape
        query = self.query(self.words_norm(words)).view(B, self.keypoints, k)
        logits = torch.einsum("bnk,bkp->bnp", query, features.flatten(2)) / k**0.5
        xs, ys = coordinates(1, h, w, features)
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # [h*w, 2]
        attention = logits.softmax(-1)
        uv = attention @ grid  # [B, n_kp, 2]: the expected image position
        if self.height is None:
            return Keypoints(self.to_table(uv), logits)
        seen = torch.einsum("bnp,bkp->bnk", attention, features.flatten(2))  # what the keypoint looks at
        z = self.height(torch.cat([seen, tool_z[:, None, None].expand(B, self.keypoints, 1)], dim=-1))
        return Keypoints(self.to_table(torch.cat([uv, z], dim=-1)), logits, z)

    def tokens(self, keypoints: Keypoints, tool: torch.Tensor) -> torch.Tensor:
        """Keypoints and the tool's normalised xyz [B, 3] -> prompt tokens [B, n_kp, C]."""
        xy, tool = keypoints.xy, tool[:, None]
        parts = [xy, xy - tool[..., :2]]
        if keypoints.z is not None:
            parts += [keypoints.z, keypoints.z - tool[..., 2:3]]
        return self.token(torch.cat(parts, dim=-1))


class NanoVLA(nn.Module):
    """images [B, 3, S, S] in [-1, 1], states [B, 4], text [B, L] -> prompt embeddings; the decoder does the rest."""

    def __init__(self, config: NanoVLAConfig) -> None:
        super().__init__()
        self.config = c = config
        self.stem = Stem(c.stem_channels) if c.stem_channels else None
        self.vit = ViT(c.vit_config())
        self.vision_proj = nn.Linear(c.vit_width, c.width)
        self.state_proj = nn.Linear(c.state_dims, c.width)
        self.decoder = Decoder(DecoderConfig(vocab_size=c.vocab_size, width=c.width, depth=c.depth, heads=c.heads))
        self.grounding = Grounding(c) if c.keypoints else None
        # tells the wrist camera's tokens from the scene's; zeros: a model grown from scene-only weights starts neutral
        self.wrist_embed = nn.Parameter(torch.zeros(c.width)) if c.wrist else None
        self.state_center: torch.Tensor
        self.state_scale: torch.Tensor
        self.register_buffer("state_center", torch.tensor(c.state_center, dtype=torch.float32), persistent=False)
        self.register_buffer("state_scale", torch.tensor(c.state_scale, dtype=torch.float32), persistent=False)

    def perceive(self, images: torch.Tensor, vit: Any = None) -> Percept:
        """Pixels [B, C, S, S] in [-1, 1] (C = ``config.image_channels``) -> ViT tokens (the scene's through
        ``vit``: the engine's feature cache, or by default the plain ViT), keypoint features (the scene's) and,
        with ``wrist``, the wrist camera's ViT tokens (always the plain ViT: the cache follows one stream)."""
        if images.shape[1] != self.config.image_channels:
            raise ConfigError(f"NanoVLA: expected images with {self.config.image_channels} channels "
                              f"({'scene and wrist' if self.config.wrist else 'the scene camera'}), got {images.shape[1]}")
        vit = vit if vit is not None else self.vit
        full, quarter = self._vit_input(images[:, :3])
        keypoint_features = self.grounding.features(full) if self.grounding is not None and full is not None else None
        wrist_tokens = self.vit(self._vit_input(images[:, 3:])[1]) if self.config.wrist else None
        return Percept(vit(quarter), keypoint_features, wrist_tokens)

    def _vit_input(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """-> (the stem's full-resolution features or None without a stem, the ViT's input)."""
        if self.stem is None:
            return None, images
        return self.stem(images)

    def image_features(self, vit_tokens: torch.Tensor) -> torch.Tensor:
        """ViT tokens [B, grid², Cv] -> pooled, projected [B, image_tokens, C]."""
        B, T, Cv = vit_tokens.shape  # batch, tokens, vit width
        g = int(round(T**0.5))
        x = vit_tokens.transpose(1, 2).reshape(B, Cv, g, g)
        x = F.avg_pool2d(x, self.config.pool).flatten(2).transpose(1, 2)  # [B, image_tokens, Cv]
        return self.vision_proj(x)

    def prompt(self, percept: Percept, states: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, Keypoints]:
        """-> (prompt embeddings [B, prompt_len, C]: image tokens, instruction, keypoints, state;
        the keypoints, with n_kp = 0 without grounding)."""
        img = self.image_features(percept.vit_tokens)
        words = self.decoder.embed(text)
        state = (states - self.state_center) / self.state_scale
        parts = [img, words]
        keypoints = Keypoints(state.new_zeros(state.shape[0], 0, 2), state.new_zeros(state.shape[0], 0, 1))
        if self.grounding is not None and percept.keypoint_features is not None:
            is_word = (text >= UNK).unsqueeze(-1).to(words.dtype)  # unknown words count: they still say "a word was here"
            mean_word = (words * is_word).sum(1) / is_word.sum(1).clamp(min=1.0)
            keypoints = self.grounding.locate(percept.keypoint_features, mean_word, state[:, 2])
            parts.append(self.grounding.tokens(keypoints, state[:, :3]))
        if self.wrist_embed is not None:
            if percept.wrist_tokens is None:
                raise ConfigError("NanoVLA: this model takes the wrist camera too; perceive scene and wrist images")
            parts.append(self.image_features(percept.wrist_tokens) + self.wrist_embed)
        parts.append(self.state_proj(state)[:, None])
        return torch.cat(parts, dim=1), keypoints

    def forward(
        self, images: torch.Tensor, states: torch.Tensor, text: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, Keypoints]:
        """Teacher forcing: -> (logits [B, K*D, V], row i predicting action token i; the keypoints)."""
        prompt, keypoints = self.prompt(self.perceive(images), states, text)
        return self.action_logits(prompt, actions), keypoints

    def normalise_position(self, xyz: torch.Tensor) -> torch.Tensor:
        return (xyz - self.state_center[: xyz.shape[-1]]) / self.state_scale[: xyz.shape[-1]]

    def action_logits(self, prompt: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings [B, P, C] and action ids [B, N] (the guess) -> logits [B, N, V] at the N action
        positions, row i conditioned on the prompt and inputs[:, :i]."""
        x = torch.cat([prompt, self.decoder.embed(inputs[:, :-1])], dim=1)
        logits = self.decoder(embeds=x)
        return logits[:, prompt.shape[1] - 1 :]


def pixels(images: np.ndarray | torch.Tensor, *, device: torch.device | None = None,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, H, W, 3) or (H, W, 3) -> [B, 3, H, W] in [-1, 1], made on ``device`` (the bytes travel, not
    floats), scaled in float32, then cast to ``dtype``."""
    x = torch.as_tensor(images, device=device)
    if x.dim() == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).to(dtype)


def save_model(model: NanoVLA, path: str | Path, extra: dict[str, Any] | None = None, *, robot: str) -> None:
    """Weights to ``path`` (``policies.checkpoint``: safetensors, the config as JSON in its metadata) and
    ``path``.json beside it. ``robot``: the robot whose demonstrations trained it (metadata "robot"), which
    the policy node compares with the robot it is asked to drive."""
    if not robot:
        raise ConfigError("save_model: name the robot the weights were trained on (robot='panda')")
    described = {"robot": robot, **{k: v for k, v in (extra or {}).items() if k != "robot"}}
    save_checkpoint(model, model.config, path, described)


def trained_robot(extra: dict[str, Any], path: str | Path = "") -> str:
    """The robot the weights were trained on: their metadata's "robot" (``load_model``'s extra). Weights
    saved before they named it say nothing; every one of those was trained on the simulated Panda."""
    robot = extra.get("robot")
    if isinstance(robot, str) and robot:
        return robot
    log.info("%s names no robot in its metadata: taking it for %s, the only robot nano VLA weights were trained "
             "on before they named theirs (re-save it with save_model(..., robot=...) to say so)", path or "the model",
             LEGACY_ROBOT)
    return LEGACY_ROBOT


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[NanoVLA, dict[str, Any]]:
    """-> (model in eval mode, extra metadata)."""
    return load_checkpoint(path, lambda config: NanoVLA(NanoVLAConfig(**config)), name="nano VLA",
                           absent="expected a .safetensors file (train one with `agentrt train`)", device=device)
