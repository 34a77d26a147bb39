"""The nano QA model on a live stream: ``NanoVideoQA`` is its ``policies.qa.videoqa.VideoQAModel``.

- Frames go through the engine's ``ViTFeatureCache`` (r = 0.25, a reference every 2nd frame), so
  an unchanged frame is skipped and a changed one recomputes only the tokens that moved.
- Memory: ``StreamingKVCache`` with the ``<bos>`` as the attention sink and a window of
  ``window_frames`` frames; appends are whole frames, so eviction drops whole frames and
  memory is flat on an endless stream. A frame is kept at most every ``frame_interval_ms``
  (the newest is always the one answered about).
- Out of domain: each frame also goes through ``policies.qa.domain.DomainCheck`` (when the weights
  have their ``*_domain.json`` beside them); ``domain_note()`` is the warning line while the stream
  looks nothing like the sim scenes the model was trained on.
- Answers: the question's tokens run on the cached prefix, the answer is decoded greedily
  word by word (streamed as text deltas) until ``<eos>``, then the cache is cropped back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from agentrt.engine import StreamingKVCache, ViTCacheConfig, ViTFeatureCache
from agentrt.engine.device import Placement
from agentrt.errors import ModelError
from policies.qa.domain import DomainCheck, DomainStats, domain_file
from policies.qa.model import BOS, EOS, NanoQA, QATokenizer, load_model
from policies.qa.videoqa import NANO_QA_WEIGHTS
from policies.vocabulary import WordCheck

__all__ = ["NanoVideoQA", "load_nano_qa", "pixels"]


def pixels(image: np.ndarray, size: int, *, device: torch.device | None = None,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An RGB frame (H, W, 3) uint8 of any size -> [1, 3, size, size] in [-1, 1], made on ``device``: the
    frame's bytes travel there, then it is resized and scaled in float32 and cast to ``dtype``."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ModelError(f"nano QA: expected an RGB frame (H, W, 3) uint8, got shape {image.shape}")
    # a private copy: a frame off the wire is read-only, which torch.from_numpy warns about
    x = torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1)[None].float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")  # averaging: small objects keep their colour
    return x.div_(127.5).sub_(1.0).to(dtype)


class NanoVideoQA:
    """The ``policies.qa.videoqa.VideoQAModel`` of the nano model: ingest a stream, answer questions about it.

    >>> qa = load_nano_qa("", "cpu")
    >>> for t_ns, image in frames: qa.ingest(image, t_ns)
    >>> "".join(qa.answer("what is the robot holding?"))
    'red cube'
    """

    name = "nano"

    def __init__(self, model: NanoQA, cache: ViTCacheConfig | None = None,
                 domain: DomainStats | None = None) -> None:
        self.model = model.eval()
        self.domain = DomainCheck(domain) if domain is not None else None  # None: no statistics shipped
        self.config = model.config
        self.tokenizer = QATokenizer(model.config)
        # r = 0.25, a reference every 2nd encoded frame: close to the plain forward on trained weights
        self.vit_cache = ViTFeatureCache(model.tower(), cache or ViTCacheConfig(interval=2, ratio=0.25))
        self.stream = StreamingKVCache(model.decoder, model.config.streaming_config())
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype  # inputs are made where the model is
        self.reset()

    def reset(self) -> None:
        if self.domain is not None:
            self.domain.reset()
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
        if self.domain is not None:
            self.domain.update(image)
        vit = self.vit_cache(pixels(image, self.config.image_size, device=self.device, dtype=self.dtype))
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

    def domain_note(self) -> str:
        """The optional ``VideoQAModel`` capability: the warning line while the stream is out of domain, else ""."""
        return self.domain.warning() if self.domain is not None and self.domain.out_of_domain else ""

    def check_words(self, question: str) -> WordCheck:
        """The optional ``VideoQAModel`` capability of a closed vocabulary: which words it does not know."""
        return self.tokenizer.check(question)

    def memory(self) -> dict[str, int]:
        c = self.config
        held = int(self.stream.cache.nbytes())
        if self.vit_cache.stats.references:  # the reference frame: K, V, A, M (+ unit keys, A+M) per layer
            held += 6 * c.vit_depth * c.full_tokens * c.vit_width * self.dtype.itemsize
        if self._newest is not None:
            held += self._newest.numel() * self._newest.element_size()
        held += sum(h.numel() * h.element_size() for h in self._history)
        return {"frames": self.frames, "tokens": self.stream.length, "bytes": held}


def load_nano_qa(path: str, device: str = "auto", dtype: str = "float32") -> NanoVideoQA:
    """The ``policies.qa.videoqa`` loader: ``path`` "" = the shipped weights; ``device`` and ``dtype`` as
    ``agentrt.engine.device`` reads them."""
    placement = Placement.parse(device, dtype)
    weights = Path(path) if path else NANO_QA_WEIGHTS
    model, _ = load_model(weights, placement.device)
    stats = domain_file(weights)  # absent beside other weights: no out-of-domain check, as before
    return NanoVideoQA(model.to(placement.dtype), domain=DomainStats.load(stats) if stats.exists() else None)
