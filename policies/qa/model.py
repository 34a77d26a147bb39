"""The nano video-QA model: a small ViT per frame, slow-fast frame tokens in a streaming decoder.

Sequence (what the decoder's cache holds, then what a question adds for the time of its answer)::

    <bos> | fast(f1) <frame> | fast(f2) <frame> | ... | fast(fn) <frame> || full(fn) <q> words <a> answer <eos>
    sink    window: the newest ``window_frames`` frames, 17 rows each          appended by answer(), then cropped

- Vision: a conv stem with x, y coordinate channels (the nano VLA's ``Stem``: objects are
  ~6 px across at 96 px, and position questions need coordinates) makes a 24x24 map, the
  engine ``ViT`` (patch 3) an 8x8 grid of tokens. Frames go through the engine's
  ``ViTFeatureCache``, so an unchanged frame is skipped and a changed one recomputes only
  the tokens that moved.
- Slow-fast: every kept frame enters the stream as fast tokens (the grid average-pooled 2x2
  to 4x4 = 16, plus a ``<frame>`` separator); only the newest frame is seen at full
  resolution (64 tokens), and only while a question is answered, so it never fills memory.
- Memory and answers: ``policies.qa.runtime`` (a streaming KV window of ``window_frames``
  frames behind a ``<bos>`` sink; greedy answers on the cached prefix, cropped back after).
- What stands where and what changed: each full-resolution row also carries the exact (x, y)
  of its object (cell centre + the ``locate`` head's in-cell offset) and the word "moved"
  weighted by how much its cell's colour changed since the earlier frames in memory
  (``NanoQA.change``), so left/right and "what moved?" are found by attention, as colours are.

Vocabulary: 7 specials, then the words of the training templates and answers
(``policies.qa.data.vocabulary``); unknown words become ``<unk>``. Weights are saved as
safetensors with the config (and so the vocabulary) in the metadata (``policies.checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine import Decoder, DecoderConfig, StreamingConfig, VisionTower, ViT, ViTConfig
from agentrt.errors import ConfigError
from policies.checkpoint import load_checkpoint, save_checkpoint
from policies.vocabulary import WordCheck, check_words, split_words

__all__ = ["NanoQAConfig", "NanoQA", "QATokenizer", "QAStem", "save_model", "load_model", "SPECIALS", "split_words"]

SPECIALS = ("<pad>", "<bos>", "<frame>", "<unk>", "<q>", "<a>", "<eos>")
PAD, BOS, FRAME, UNK, Q, A, EOS = range(len(SPECIALS))


class QAStem(nn.Module):
    """pixels [B, 3, S, S] -> features [B, C, S/4, S/4]: a 3x3 convolution over RGB + x, y coordinates
    at full resolution (small objects survive), then a 4x4 stride-4 one (the nano VLA's stem, kept here
    so the two models can change apart)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(5, channels // 2, 3, padding=1)
        self.conv2 = nn.Conv2d(channels // 2, channels, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape  # batch, channels, height, width
        ys = torch.linspace(-1, 1, H, device=x.device, dtype=x.dtype).view(1, 1, H, 1).expand(B, 1, H, W)
        xs = torch.linspace(-1, 1, W, device=x.device, dtype=x.dtype).view(1, 1, 1, W).expand(B, 1, H, W)
        h = F.gelu(self.conv1(torch.cat([x, xs, ys], dim=1)))
        return F.gelu(self.conv2(h))


@dataclass
class NanoQAConfig:
    image_size: int = 96
    stem_channels: int = 48  # conv stem: RGB + x, y -> a 4x-downsampled map of this many channels
    vit_patch: int = 3  # ViT patch over the stem map: 24 / 3 = an 8x8 grid
    vit_width: int = 128
    vit_depth: int = 3
    vit_heads: int = 4
    fast_pool: int = 2  # fast tokens: the grid average-pooled by this factor (8x8 -> 4x4 = 16 per frame)
    full_keep: int = 16  # slow tokens: the newest frame's cells most likely to hold an object (of 64)
    width: int = 128
    depth: int = 3
    heads: int = 4
    window_frames: int = 10  # frames kept in the streaming KV window (plus the <bos> sink)
    frame_interval_ms: float = 1000.0  # keep a frame in memory at most this often (10 frames: the last ~10 s)
    question_len: int = 16  # <q> + words + <a>, words beyond are cut
    max_answer_words: int = 3
    # The cell probe's classes: what colour / shape stands in each grid cell (sims.tasks.base order)
    colour_words: list[str] = field(default_factory=lambda: ["red", "green", "blue", "yellow", "purple"])
    shape_words: list[str] = field(default_factory=lambda: ["cube", "cylinder", "sphere"])
    words: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        side = self.image_size // 4
        if self.image_size % 4 or side % self.vit_patch:
            raise ConfigError(f"NanoQAConfig: image_size / 4 must divide by vit_patch, got {self.image_size}, {self.vit_patch}")
        if self.grid % self.fast_pool:
            raise ConfigError(f"NanoQAConfig: the {self.grid}x{self.grid} grid must divide by fast_pool, got {self.fast_pool}")
        unknown = [w for w in self.colour_words + self.shape_words if w not in self.words]
        if self.words and unknown:
            raise ConfigError(f"NanoQAConfig: probe words {unknown} are not in the vocabulary")
        if not 1 <= self.full_keep <= self.full_tokens:
            raise ConfigError(f"NanoQAConfig.full_keep: expected 1..{self.full_tokens}, got {self.full_keep}")
        if self.window_frames < 1 or self.question_len < 3 or self.frame_interval_ms < 0:
            raise ConfigError(f"NanoQAConfig: expected window_frames >= 1, question_len >= 3, frame_interval_ms >= 0, "
                              f"got {self.window_frames}, {self.question_len}, {self.frame_interval_ms}")

    @property
    def grid(self) -> int:
        return self.image_size // 4 // self.vit_patch

    @property
    def full_tokens(self) -> int:
        return self.grid**2

    @property
    def fast_tokens(self) -> int:
        return (self.grid // self.fast_pool) ** 2

    @property
    def frame_rows(self) -> int:
        """Rows one kept frame adds to the stream: its fast tokens and the separator."""
        return self.fast_tokens + 1

    @property
    def probe_classes(self) -> tuple[int, int]:
        """Colour and shape classes of the cell probe; class 0 = nothing there."""
        return 1 + len(self.colour_words), 1 + len(self.shape_words)

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.words)

    def vit_config(self) -> ViTConfig:
        return ViTConfig(image_size=self.image_size // 4, patch_size=self.vit_patch, in_channels=self.stem_channels,
                         width=self.vit_width, depth=self.vit_depth, heads=self.vit_heads)

    def streaming_config(self) -> StreamingConfig:
        return StreamingConfig(sink_tokens=1, window_tokens=self.window_frames * self.frame_rows)


class QATokenizer:
    """Words <-> ids. A question is ``<q> w1 .. wn <a>``; an answer ``w1 .. wk <eos>``."""

    def __init__(self, config: NanoQAConfig) -> None:
        self.config = config
        self.words = list(SPECIALS) + list(config.words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def question(self, text: str) -> list[int]:
        ids = [self.index.get(w, UNK) for w in split_words(text)][: self.config.question_len - 2]
        return [Q, *ids, A]

    def answer(self, text: str) -> list[int]:
        return [self.index.get(w, UNK) for w in split_words(text)] + [EOS]

    def word(self, token: int) -> str:
        return self.words[token] if 0 <= token < len(self.words) else "<unk>"

    def check(self, question: str) -> WordCheck:
        """The words of ``question`` this vocabulary lacks (read as ``<unk>``) and those past ``question_len``."""
        return check_words(question, self.index, self.config.question_len - 2)  # specials are never written words


class NanoQA(nn.Module):
    """Frames and questions -> answer logits; see the module docstring for the sequence."""

    def __init__(self, config: NanoQAConfig) -> None:
        super().__init__()
        self.config = c = config
        self.stem = QAStem(c.stem_channels)
        self.vit = ViT(c.vit_config())
        # Image rows are a sum of a projection, a position and the probe's word embeddings; each part
        # starts at a similar size (pre-LN blocks see only their ratio), so none drowns the others.
        self.fast_proj = nn.Linear(c.vit_width, c.width)
        self.full_proj = nn.Linear(c.vit_width, c.width)
        for proj in (self.fast_proj, self.full_proj):
            nn.init.normal_(proj.weight, std=0.02)
            nn.init.zeros_(proj.bias)
        # where each token sits in its frame: the decoder's rotary positions only order tokens
        self.fast_pos = nn.Parameter(torch.randn(c.fast_tokens, c.width) * 0.1)
        self.full_pos = nn.Parameter(torch.randn(c.full_tokens, c.width) * 0.1)
        self.decoder = Decoder(DecoderConfig(vocab_size=c.vocab_size, width=c.width, depth=c.depth, heads=c.heads))
        # The cell probe: what colour and shape stand in each grid cell, read from the ViT tokens and
        # trained on dense labels from sim state. Its probabilities mix the decoder's own embeddings of
        # those words into the image tokens, so the word "red" in a question can find the red cells by
        # plain attention, and they rank the cells kept at full resolution.
        self.probe = nn.Linear(c.vit_width, sum(c.probe_classes))
        # Where in its cell the object stands (a 12 px cell holds a 6 px object anywhere): trained on
        # positions from sim state; full tokens get the exact (x, y) through coord_proj, so left / right
        # of two objects in one or neighbouring cells can still be told apart.
        self.locate = nn.Linear(c.vit_width, 2)
        self.coord_proj = nn.Linear(2, c.width)
        for layer in (self.locate, self.coord_proj):  # zero: new weights start as a no-op on trained ones
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # Training-only readouts (auxiliary losses; never used to answer): the pointer's word row after
        # its layer says where the object it names stands, and a left/right answer row after the routes
        # says x(A) - x(B). Without them the pointer found the objects but carried no position, and
        # left/right stayed at chance.
        self.where_readout = nn.Linear(c.width, 2)
        self.compare_readout = nn.Linear(c.width, 1)
        index = {w: len(SPECIALS) + i for i, w in enumerate(c.words)}
        self.symbol_ids: torch.Tensor
        self.register_buffer("symbol_ids", torch.tensor([index.get(w, UNK) for w in c.colour_words + c.shape_words]),
                             persistent=False)
        self.moved_id: torch.Tensor
        self.register_buffer("moved_id", torch.tensor([index.get("moved", UNK)]), persistent=False)
        cells = (torch.arange(c.grid, dtype=torch.float32) + 0.5) / c.grid * 2 - 1  # cell centres in [-1, 1]
        self.cell_xy: torch.Tensor
        self.register_buffer("cell_xy", torch.stack(torch.meshgrid(cells, cells, indexing="xy"), -1).reshape(-1, 2),
                             persistent=False)

    def tower(self) -> VisionTower:
        """The stem + ViT as the feature cache's tower (the stem is part of the embedding step)."""
        return VisionTower(embed=lambda px: self.vit.embed(self.stem(px)), layers=list(self.vit.layers),
                           finish=self.vit.finish)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels [N, 3, S, S] in [-1, 1] -> ViT tokens [N, grid², Cv] (the plain forward)."""
        return self.vit(self.stem(images))

    def cell_probs(self, vit_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ViT tokens [N, T, Cv] -> the probe's (colour [N, T, colours + 1], shape [N, T, shapes + 1])
        probabilities per cell; class 0 = nothing there."""
        nc = self.config.probe_classes[0]
        logits = self.probe(vit_tokens)
        return logits[..., :nc].softmax(-1), logits[..., nc:].softmax(-1)

    def symbols(self, vit_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ViT tokens [N, T, Cv] -> (the probe's colour and shape word embeddings, probability-weighted,
        scaled like the projections [N, T, C]; P(an object is there) [N, T])."""
        colour, shape = self.cell_probs(vit_tokens)
        probs = torch.cat([colour[..., 1:], shape[..., 1:]], dim=-1)  # class 0 (nothing there) adds nothing
        words = self.decoder.embed(self.symbol_ids) * self.config.width**0.5  # embeddings start at std 0.02
        return probs @ words, 1.0 - colour[..., 0]

    def coordinates(self, vit_tokens: torch.Tensor) -> torch.Tensor:
        """ViT tokens [N, grid², Cv] -> (x, y) in [-1, 1] of what stands in each cell [N, grid², 2]:
        the cell's centre moved by the located offset (at most half a cell)."""
        return self.cell_xy + self.locate(vit_tokens).tanh() / self.config.grid

    @staticmethod
    def change(colour: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """How much each cell of the newest frame shows something that was not there earlier in the
        stream: P(object now) x the largest total-variation distance between the cell's colour now and
        in any earlier frame. colour [N, T, K], history [N, H, T, K] -> [N, T] in [0, 1]. An object
        that moved lights up where it now stands; objects that stayed put, and empty cells, stay dark."""
        if history.shape[1] == 0:
            return colour.new_zeros(colour.shape[:2])
        distance = 0.5 * (colour[:, None] - history).abs().sum(-1).amax(1)  # [N, T]
        return (1.0 - colour[..., 0]) * distance

    def frame_chunk(self, vit_tokens: torch.Tensor) -> torch.Tensor:
        """ViT tokens [N, grid², Cv] -> the rows a frame adds to the stream [N, fast + 1, C]."""
        N, T, Cv = vit_tokens.shape  # frames, tokens, vit width
        g, p = self.config.grid, self.config.fast_pool

        def pool(x: torch.Tensor) -> torch.Tensor:  # [N, grid², D] -> [N, fast, D]
            x = x.transpose(1, 2).reshape(N, -1, g, g)
            return F.avg_pool2d(x, p).flatten(2).transpose(1, 2)

        fast = self.fast_proj(pool(vit_tokens)) + self.fast_pos + pool(self.symbols(vit_tokens)[0])
        sep = self.decoder.embed(torch.full((N, 1), FRAME, dtype=torch.long, device=vit_tokens.device))
        return torch.cat([fast, sep], dim=1)

    def full_frame(self, vit_tokens: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        """ViT tokens [N, grid², Cv] -> the newest frame at full resolution, pruned to the ``full_keep``
        cells most likely to hold an object, in grid order [N, full_keep, C] (fewer rows to attend over,
        almost all of them about objects). Each row carries the probe's words, the exact coordinates of
        what stands there and, given the colour probabilities of the stream's earlier frames
        (``history`` [N, H, grid², K]), the word "moved" weighted by how much the cell changed, so
        "what moved?" can find the object by plain attention, as "red" finds red cells."""
        symbols, objectness = self.symbols(vit_tokens)
        rows = self.full_proj(vit_tokens) + self.full_pos + symbols + self.coord_proj(self.coordinates(vit_tokens))
        if history is not None:
            change = self.change(self.cell_probs(vit_tokens)[0], history)  # [N, grid²]
            rows = rows + change[..., None] * (self.decoder.embed(self.moved_id) * self.config.width**0.5)
        keep = objectness.topk(self.config.full_keep, dim=1).indices.sort(dim=1).values  # [N, k]
        return rows.gather(1, keep[..., None].expand(-1, -1, rows.shape[-1]))

    def prefix(self, vit_frames: torch.Tensor) -> torch.Tensor:
        """ViT tokens of a stream [B, F, grid², Cv] -> ``<bos> chunks.. full(newest)`` [B, P, C]."""
        B, Fr, T, Cv = vit_frames.shape  # streams, frames, tokens, vit width
        chunks = self.frame_chunk(vit_frames.reshape(B * Fr, T, Cv)).reshape(B, Fr * self.config.frame_rows, -1)
        bos = self.decoder.embed(torch.full((B, 1), BOS, dtype=torch.long, device=vit_frames.device))
        history = self.cell_probs(vit_frames)[0]  # [B, F, grid², K]: every frame of the stream, as memory holds them
        return torch.cat([bos, chunks, self.full_frame(vit_frames[:, -1], history)], dim=1)

    def forward(self, prefix: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        """Prefix [B, P, C] and Q question+answer id rows per stream [B, Q, T] -> logits [B, Q, T, V]:
        each question appended to its prefix and run through the decoder. Training runs the same in
        one pass that shares the prefix between the questions (``policies.qa.attention``; a test holds
        the two together)."""
        B, Qn, T = questions.shape
        out = []
        for i in range(Qn):
            x = torch.cat([prefix, self.decoder.embed(questions[:, i])], dim=1)
            out.append(self.decoder(embeds=x)[:, prefix.shape[1]:])
        return torch.stack(out, dim=1)


# -- weights -------------------------------------------------------------------------------------

def save_model(model: NanoQA, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Weights to ``path`` (``policies.checkpoint``: safetensors, config and vocabulary as JSON in its
    metadata, tagged ``nano_qa``) and ``path``.json beside."""
    save_checkpoint(model, model.config, path, extra, kind="nano_qa")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[NanoQA, dict[str, Any]]:
    """-> (model in eval mode, extra metadata)."""
    return load_checkpoint(path, lambda config: NanoQA(NanoQAConfig(**config)), name="nano QA", kind="nano_qa",
                           absent="train them with `agentrt train-qa` or pass nano:PATH to a .safetensors file",
                           device=device)
