"""The VideoLLM node: watches a live Frame stream and answers Query messages with streamed Answers.

    nodes:
      qa:
        class: policies.qa.node:VideoQANode
        inputs: {frames: camera.frames, queries: web.queries}
        params: {model: nano, max_new_tokens: 32, device: auto}   # or model: hf:models/SmolVLM2-256M

Frames arrive latest-only, so a model slower than the camera never falls
behind: it ingests the newest frame it can (at most ``ingest_hz`` per second
when set). Queries are lossless and answered between two frames, in order;
each answer goes out as Answer pieces ``seq`` 0, 1, ... with ``done=True`` on
the last, or one ``done=True`` piece with ``error`` set when it failed (the
node keeps running). The model is anything behind `policies.qa.videoqa.VideoQAModel`.

Words a closed-vocabulary model (the nano one) does not know are never passed
over in silence (``checked_answer``, also behind `agentrt ask`): a question
with some of them is answered with a note first, "(I do not know the word
'now') red cube"; one with more than ``max_unknown_share`` of its words
unknown (another language: "où est le cube rouge ?") is not put to the model,
and the answer says which words it does not know. The node logs each such
question once and counts ``questions_unknown_words`` and ``questions_refused``
in its telemetry.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from agentrt.errors import AgentRTError, ConfigError, FrameTornError, ModelError
from agentrt.messages import Answer, Frame, Query, now_ns
from agentrt.node import Input, Node, latest, lossless
from agentrt.pixels import to_rgb
from policies.qa.hub import resolve_hf_path
from policies.qa.videoqa import (
    BACKENDS,
    NANO_QA_WEIGHTS,
    VideoQAModel,
    domain_note,
    load_videoqa,
    split_model_spec,
    word_check,
)
from policies.vocabulary import WordCheck, quote_words

__all__ = ["VideoQANodeConfig", "VideoQANode", "check_qa_model", "load_qa_model", "checked_answer",
           "refuses", "MAX_UNKNOWN_SHARE", "UNRELIABLE"]

log = logging.getLogger(__name__)

MAX_UNKNOWN_SHARE = 0.5  # a question with more of its words unknown to the model is not put to it
# the first piece of every answer while the stream is out of the model's domain: the Answer's flag, in its text
UNRELIABLE = "(unreliable: this model only knows the simulated scenes) "


def check_qa_model(spec: str) -> str:
    """The cheap checks of a model spec, before anything starts: one-line ModelError / ConfigError. Returns
    the spec to load: ``hf:ORG/NAME`` becomes ``hf:`` its folder in the hub cache (downloaded when missing)."""
    prefix, path = split_model_spec(spec)
    if prefix == "nano":
        module = BACKENDS["nano"][0]
        if importlib.util.find_spec(module) is None:
            raise ModelError(f"the nano QA model is not in this install ({module} is missing); "
                             "use --model hf:PATH with a local SmolVLM / Qwen2-VL checkpoint")
        weights = Path(path) if path else NANO_QA_WEIGHTS
        if not weights.exists():
            raise ModelError(f"the nano QA weights are missing ({weights}); train them with "
                             "`agentrt train-qa` or use --model hf:PATH")
    elif prefix == "hf":
        folder = resolve_hf_path(path) if path else Path()
        if not path or not (folder / "config.json").is_file():
            raise ModelError(f"hf:{path}: not a Hugging Face checkpoint folder (no config.json there); give a "
                             "local folder such as hf:models/SmolVLM2-256M-Video-Instruct or a hub name "
                             "such as hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
        return f"hf:{folder}"
    return spec


def load_qa_model(spec: str, device: str = "auto", dtype: str = "float32") -> VideoQAModel:
    """`load_videoqa` with one-line errors for what a user can hit: nano not installed or its weights missing,
    a device that is not here."""
    spec = check_qa_model(spec)
    try:
        return load_videoqa(spec, device, dtype)
    except AgentRTError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:  # a loader that did not say it in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(f"QA model {spec!r} could not be loaded: {first}") from None


def refuses(check: WordCheck, max_unknown_share: float = MAX_UNKNOWN_SHARE) -> bool:
    """Too few of the question's words known to answer it: more than ``max_unknown_share`` unknown, or none known."""
    return not check.known or check.share > max_unknown_share


def checked_answer(model: VideoQAModel, question: str, *, max_new_tokens: int = 32,
                   max_unknown_share: float = MAX_UNKNOWN_SHARE, logger: logging.Logger | None = None) -> Iterator[str]:
    """``model.answer`` with what the model makes of the question's words said, in the answer and once in the
    log: unknown words (read as ``<unk>``) or words past its limit -> a note before the answer; too many
    unknown (``refuses``) -> no answer from the model, only the note. An open-vocabulary model: as it is.
    A stream out of the model's domain (``domain_note``): ``UNRELIABLE`` first."""
    if domain_note(model):
        yield UNRELIABLE
    check = word_check(model, question)
    if check is None or check.clean:
        yield from model.answer(question, max_new_tokens=max_new_tokens)
        return
    logger = logger or log
    unknown, cut = quote_words(check.unknown), quote_words(check.cut)
    parts = [f"words the model does not know: {unknown} ({check.unknown_count} of {len(check.words)}, read as <unk>)"
             if check.unknown else "", f"words past its limit, not read: {cut}" if check.cut else "",
             "" if check.words else "no words it can read"]
    said = f"question '{question}': " + "; ".join(p for p in parts if p)
    if refuses(check, max_unknown_share):
        logger.warning("%s: not answering it; the answer says so", said)
        if not check.words:
            yield "I found no words in that question."
        else:
            plural = "s" if len(check.unknown) > 1 else ""
            yield f"I do not know the word{plural} {unknown}, so I cannot answer that."
        return
    logger.warning("%s: answering from the words it knows (%s), after a note saying so", said, quote_words(check.known))
    notes = []
    if check.unknown:
        notes.append(f"I do not know the word{'s' if len(check.unknown) > 1 else ''} {unknown}")
    if check.cut:
        notes.append(f"I did not read {cut}")
    yield "(" + "; ".join(notes) + ") "
    yield from model.answer(question, max_new_tokens=max_new_tokens)


@dataclass
class VideoQANodeConfig:
    model: str = "nano"  # one of policies.qa.videoqa.MODEL_SPECS
    # resolved in setup, on the node's own host (agentrt.engine.device): the launching host may have no GPU
    device: str = "auto"  # auto (a GPU when there is one) | cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | bfloat16
    max_new_tokens: int = 32
    ingest_hz: float = 0.0  # at most this many frames per second into the model; 0 = every frame it can take
    stream: str = ""  # only frames of this stream; "" = any
    max_unknown_share: float = MAX_UNKNOWN_SHARE  # more of a question's words unknown to the model: not answered

    def __post_init__(self) -> None:
        try:
            split_model_spec(self.model)
        except ConfigError as exc:
            raise ConfigError(f"VideoQANodeConfig.model: {exc}") from None
        if self.max_new_tokens < 1:
            raise ConfigError(f"VideoQANodeConfig.max_new_tokens: expected >= 1, got {self.max_new_tokens}")
        if self.ingest_hz < 0:
            raise ConfigError(f"VideoQANodeConfig.ingest_hz: expected >= 0, got {self.ingest_hz}")
        if not 0 <= self.max_unknown_share <= 1:
            raise ConfigError(f"VideoQANodeConfig.max_unknown_share: expected 0..1, got {self.max_unknown_share}")


class VideoQANode(Node):
    """Frames in (latest-only), queries in (lossless), streamed answers out (lossless)."""

    inputs = {"frames": latest("Frame"), "queries": lossless("Query")}
    outputs = {"answers": lossless("Answer")}
    Config = VideoQANodeConfig

    def setup(self) -> None:
        self.model = load_qa_model(self.config.model, self.config.device, self.config.dtype)
        self.pending: deque[Query] = deque()
        self.last_ingest_ns = 0
        self.ingested = 0
        self.domain_warned = False
        self.stats.counters.update(questions_unknown_words=0, questions_refused=0, out_of_domain=0)
        where = getattr(self.model, "device", None)
        self.log.info("model %s ready%s", self.model.name, f" on {where}, {self.config.dtype}" if where else "")

    def run(self) -> None:
        for event in self.events():
            if not isinstance(event, Input):
                continue
            if event.name == "queries":  # each input's port fixes its kind: the host drops any other
                self.pending.append(cast(Query, event.message))
            else:
                self.ingest(cast(Frame, event.message))
            while self.pending:  # answer between frames (an answer is bounded by max_new_tokens)
                self.respond(self.pending.popleft())

    def ingest(self, frame: Frame) -> None:
        c = self.config
        if c.stream and frame.stream != c.stream:
            return
        now = now_ns()
        if c.ingest_hz > 0 and self.ingested and now - self.last_ingest_ns < 1e9 / c.ingest_hz:
            return
        try:
            image = to_rgb(frame)  # RGB whatever the camera sends; a private copy of a shared-memory frame
        except FrameTornError:
            self.stats.count("dropped.torn_frames")
            return
        self.model.ingest(image, frame.t_capture_ns)
        self.last_ingest_ns = now
        self.ingested += 1
        note = domain_note(self.model)
        if note and not self.domain_warned:
            self.log.warning("%s", note)  # once per node: the answers carry UNRELIABLE from here on
            self.domain_warned = True
        self.stats.counters["out_of_domain"] = int(bool(note))

    def respond(self, query: Query) -> None:
        """Send the answer to ``query`` as pieces; a failure becomes one ``error`` piece, the node goes on."""
        seq = 0
        try:
            for piece in self._pieces(query):
                self.send("answers", Answer(query.id, seq, now_ns(), piece))
                seq += 1
                self.beat()  # a long answer is not a hang
        except Exception as exc:  # a bad question must not take the node down; the asker gets the reason
            self.log.warning("query %s failed: %s", query.id, exc)
            self.send("answers", Answer(query.id, seq, now_ns(), "", done=True,
                                        error=f"{type(exc).__name__}: {exc}"[:500]))
            return
        self.send("answers", Answer(query.id, seq, now_ns(), "", done=True))

    def _pieces(self, query: Query) -> Iterator[str]:
        if not query.text.strip():
            raise ConfigError("empty question")
        check = word_check(self.model, query.text)
        if check is not None and not check.clean:
            self.stats.counters["questions_unknown_words"] += bool(check.unknown)
            self.stats.counters["questions_refused"] += refuses(check, self.config.max_unknown_share)
        yield from checked_answer(self.model, query.text, max_new_tokens=self.config.max_new_tokens,
                                  max_unknown_share=self.config.max_unknown_share, logger=self.log)
