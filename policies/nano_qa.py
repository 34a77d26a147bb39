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
- Memory: ``StreamingKVCache`` with the ``<bos>`` as the attention sink and a window of
  ``window_frames`` frames; appends are whole frames, so eviction drops whole frames and
  memory is flat on an endless stream. A frame is kept at most every ``frame_interval_ms``
  (the newest is always the one answered about).
- What stands where and what changed: each full-resolution row also carries the exact (x, y)
  of its object (cell centre + the ``locate`` head's in-cell offset) and the word "moved"
  weighted by how much its cell's colour changed since the earlier frames in memory
  (``NanoQA.change``), so left/right and "what moved?" are found by attention, as colours are.
- Answers: the question's tokens run on the cached prefix, the answer is decoded greedily
  word by word (streamed as text deltas) until ``<eos>``, then the cache is cropped back.

Vocabulary: 7 specials, then the words of the training templates and answers
(``policies.qa_data.vocabulary``); unknown words become ``<unk>``. Weights are saved as
safetensors with the config (and so the vocabulary) in the metadata.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine import (
    Decoder,
    DecoderConfig,
    StreamingConfig,
    StreamingKVCache,
    VisionTower,
    ViT,
    ViTCacheConfig,
    ViTConfig,
    ViTFeatureCache,
    rope_rotate,
)
from agentrt.engine.decoder import Block
from agentrt.errors import ConfigError, ModelError
from policies.checkpoint import load_checkpoint, save_checkpoint
from policies.videoqa import NANO_QA_WEIGHTS
from policies.vocabulary import WordCheck, check_words, split_words

__all__ = ["NanoQAConfig", "NanoQA", "QATokenizer", "NanoVideoQA", "save_model", "load_model", "load_nano_qa",
           "SPECIALS", "split_words"]

SPECIALS = ("<pad>", "<bos>", "<frame>", "<unk>", "<q>", "<a>", "<eos>")
PAD, BOS, FRAME, UNK, Q, A, EOS = range(len(SPECIALS))
POINTER = (0, 0)  # (layer, head) taught to attend from a word to the object it names
# (layer, head)s taught to attend from the answer row of "is the A left or right of the B?" to the word
# naming A, and to the word naming B (which the pointer has read the position of) to compare them
ROUTES = ((1, 0), (1, 1))



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
        """Prefix [B, P, C] and Q question+answer id rows per stream [B, Q, T] -> logits [B, Q, T, V].

        The prefix runs once per stream and each of its Q rows attends to it (and causally to
        itself), never to the other rows: Q questions about one stream cost one prefix. Equal to
        ``reference_forward`` (a test holds them together)."""
        return self.forward_attention(prefix, questions, ())[0]

    def forward_attention(self, prefix: torch.Tensor, questions: torch.Tensor,
                          heads: tuple[tuple[int, int], ...] = (POINTER, *ROUTES)
                          ) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor], list[torch.Tensor]]:
        """``forward``, the attention log-probabilities [B*Q, T, P + T] of the question rows in the
        given (layer, head)s, and the question rows' hidden states after each layer [B*Q, T, C].

        Training teaches ``POINTER`` to look from the question word that names an object ("cube" in
        "what colour is the cube?") at that object's full-resolution row, and ``ROUTES`` to look from
        a left/right answer row at the two words naming the objects (with the answers alone the model
        sat at its priors for hundreds of steps: finding things and reading them only pay off
        together)."""
        B, P, C = prefix.shape  # streams, prefix rows, width
        _, Qn, T = questions.shape  # streams, questions per stream, row length
        xp = prefix
        xq = self.decoder.embed(questions.reshape(B * Qn, T))  # [B*Q, T, C]
        pos_p = torch.arange(P, device=prefix.device)
        pos_q = torch.arange(P, P + T, device=prefix.device)
        mask = torch.ones(T, P + T, dtype=torch.bool, device=prefix.device).tril(diagonal=P)
        attention: dict[tuple[int, int], torch.Tensor] = {}
        hidden: list[torch.Tensor] = []
        for layer, block in enumerate(cast("list[Block]", list(self.decoder.blocks))):
            attn = block.attn
            H = attn.heads
            qp, kp, vp = _heads(attn.qkv(block.ln_1(xp)), H)  # [B, H, P, D] each
            qq, kq, vq = _heads(attn.qkv(block.ln_1(xq)), H)  # [B*Q, H, T, D]
            qp, kp = rope_rotate(qp, pos_p, attn.theta), rope_rotate(kp, pos_p, attn.theta)
            qq, kq = rope_rotate(qq, pos_q, attn.theta), rope_rotate(kq, pos_q, attn.theta)
            yp = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
            k_all = torch.cat([kp.repeat_interleave(Qn, dim=0), kq], dim=2)  # [B*Q, H, P+T, D]
            v_all = torch.cat([vp.repeat_interleave(Qn, dim=0), vq], dim=2)
            yq = F.scaled_dot_product_attention(qq, k_all, v_all, attn_mask=mask)
            for head in (h for lyr, h in heads if lyr == layer):
                scores = qq[:, head] @ k_all[:, head].transpose(1, 2) * qq.shape[-1] ** -0.5  # [B*Q, T, P+T]
                attention[layer, head] = scores.masked_fill(~mask, float("-inf")).log_softmax(-1)
            xp = xp + attn.proj(yp.transpose(1, 2).reshape(B, P, C))
            xp = xp + block.mlp(block.ln_2(xp))
            xq = xq + attn.proj(yq.transpose(1, 2).reshape(B * Qn, T, C))
            xq = xq + block.mlp(block.ln_2(xq))
            hidden.append(xq)
        logits = self.decoder.lm_head(self.decoder.ln_f(xq))
        return logits.view(B, Qn, T, -1), attention, hidden

    def reference_forward(self, prefix: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        """The plain way: each question appended to its prefix and run through the decoder."""
        B, Qn, T = questions.shape
        out = []
        for i in range(Qn):
            x = torch.cat([prefix, self.decoder.embed(questions[:, i])], dim=1)
            out.append(self.decoder(embeds=x)[:, prefix.shape[1]:])
        return torch.stack(out, dim=1)


def _heads(qkv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[N, T, 3C] -> q, k, v [N, H, T, D]."""
    N, T, C3 = qkv.shape  # sequences, tokens, 3 x width
    q, k, v = qkv.view(N, T, 3, heads, C3 // 3 // heads).permute(2, 0, 3, 1, 4)
    return q, k, v


def pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """An RGB frame (H, W, 3) uint8 of any size -> [1, 3, size, size] in [-1, 1]."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ModelError(f"nano QA: expected an RGB frame (H, W, 3) uint8, got shape {image.shape}")
    # astype copies: a frame off the wire is read-only, which torch.from_numpy warns about
    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")  # averaging: small objects keep their colour
    return x.div_(127.5).sub_(1.0)


class NanoVideoQA:
    """The ``policies.videoqa.VideoQAModel`` of the nano model: ingest a stream, answer questions about it.

    >>> qa = load_nano_qa("", "cpu")
    >>> for t_ns, image in frames: qa.ingest(image, t_ns)
    >>> "".join(qa.answer("what is the robot holding?"))
    'red cube'
    """

    name = "nano"

    def __init__(self, model: NanoQA, cache: ViTCacheConfig | None = None) -> None:
        self.model = model.eval()
        self.config = model.config
        self.tokenizer = QATokenizer(model.config)
        # r = 0.25, a reference every 2nd encoded frame: close to the plain forward on trained weights
        self.vit_cache = ViTFeatureCache(model.tower(), cache or ViTCacheConfig(interval=2, ratio=0.25))
        self.stream = StreamingKVCache(model.decoder, model.config.streaming_config())
        self.device = next(model.parameters()).device
        self.reset()

    def reset(self) -> None:
        self.vit_cache.reset()
        self.stream.reset()
        self.frames = 0
        self._newest: torch.Tensor | None = None  # ViT tokens [1, grid², Cv] of the newest frame
        # the probe's colour per cell of each frame in memory (evicted with its frame): what "moved" compares with
        self._history: deque[torch.Tensor] = deque(maxlen=self.config.window_frames)
        self._pending = False  # the newest frame is not in the stream (it came within frame_interval_ms)
        self._last_kept_ns: int | None = None

    @torch.no_grad()
    def ingest(self, image: np.ndarray, t_ns: int) -> None:
        vit = self.vit_cache(pixels(image, self.config.image_size).to(self.device))
        self._newest = vit
        self.frames += 1
        interval_ns = self.config.frame_interval_ms * 1e6
        if self._last_kept_ns is not None and 0 <= t_ns - self._last_kept_ns < interval_ns:
            self._pending = True
            return
        if self.stream.length == 0:
            self.stream.append(ids=torch.tensor([BOS], device=self.device))
        self.stream.append(embeds=self.model.frame_chunk(vit)[0])
        self._history.append(self.model.cell_probs(vit)[0][0])
        self._last_kept_ns, self._pending = t_ns, False

    def answer(self, question: str, *, max_new_tokens: int = 32) -> Iterator[str]:
        if self._newest is None:
            yield "(no frames yet)"
            return
        with torch.no_grad():
            parts = [self.model.frame_chunk(self._newest)[0]] if self._pending else []
            history = [*self._history, *([self.model.cell_probs(self._newest)[0][0]] if self._pending else [])]
            parts.append(self.model.full_frame(self._newest, torch.stack(history)[None])[0])
            ids = torch.tensor(self.tokenizer.question(question), device=self.device)
            parts.append(self.model.decoder.embed(ids))
            x = torch.cat(parts)  # [L, C]
        limit = min(max_new_tokens, self.config.max_answer_words + 1)
        words = self.stream.answer(embeds=x, max_new_tokens=limit, stop_ids=[EOS])  # crops back when it ends
        try:
            for i, token in enumerate(words):
                yield self.tokenizer.word(token) if i == 0 else " " + self.tokenizer.word(token)
        finally:
            words.close()  # a consumer that stops reading early: asking still leaves no trace

    def ask(self, question: str) -> str:
        return "".join(self.answer(question))

    def check_words(self, question: str) -> WordCheck:
        """The optional ``VideoQAModel`` capability of a closed vocabulary: which words it does not know."""
        return self.tokenizer.check(question)

    def memory(self) -> dict[str, int]:
        c = self.config
        held = int(self.stream.cache.nbytes())
        if self.vit_cache.stats.references:  # the reference frame: K, V, A, M (+ unit keys, A+M) per layer
            held += 6 * c.vit_depth * c.full_tokens * c.vit_width * 4
        if self._newest is not None:
            held += self._newest.numel() * self._newest.element_size()
        held += sum(h.numel() * h.element_size() for h in self._history)
        return {"frames": self.frames, "tokens": self.stream.length, "bytes": held}


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


def load_nano_qa(path: str, device: str = "cpu") -> NanoVideoQA:
    """The ``policies.videoqa`` loader: ``path`` "" = the shipped weights."""
    model, _ = load_model(path or NANO_QA_WEIGHTS, device)
    return NanoVideoQA(model)
