"""Reference mode: one frame and a question, fed exactly as the checkpoint's authors feed them.

The inputs ARE the checkpoint's own processor, loaded from the folder
(``AutoProcessor``): its chat template with one image, its image processor
(resampling, image splitting with ``<row_i_col_j>`` tiles and a global view for
SmolVLM / Idefics3, min / max pixels for Qwen) and its tokenizer. The forward is
the adapter's own: its vision tower call, its embedding, its sequence builder
(M-RoPE positions for Qwen) and its LM + head (`policies.qa.hf.window.TextLM`),
decoded greedily with a KV cache. On tiny random checkpoints the logits equal
``model(**processor(text=..., images=...))`` within 1e-4 in float32 and the
answers equal ``model.generate(do_sample=False)`` (tests/qa/test_hf_reference.py).

`HFReferenceQA` keeps the VideoQA contract: it remembers the newest frame only
and answers about it; the streaming window of `HFVideoQA` is not used.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agentrt.engine.hf import HFCausalLMRunner
from agentrt.errors import ConfigError, ModelError, first_line
from policies.qa.hf.window import Builder, text_deltas

if TYPE_CHECKING:  # annotations only: policies.qa.hf.vlm imports this module
    from policies.qa.hf.vlm import HFVideoQA

__all__ = ["HFReferenceQA", "as_reference", "load_processor", "without_video"]

_SAVE_HINT = ("save the checkpoint's processor beside the weights (processor.save_pretrained(FOLDER): "
              "preprocessor or processor config, tokenizer files and the chat template)")


def load_processor(folder: Path) -> Any:
    """The checkpoint's own processor from ``folder``; ModelError (one line) when none was saved there.

    ``AutoProcessor`` first. Without torchvision, transformers cannot build the
    video half of the Qwen2-VL / SmolVLM processors; the same class then loads
    with its image processor and tokenizer only (its ``__call__`` on text and
    images is unchanged).
    """
    import transformers

    configs = ("processor_config.json", "preprocessor_config.json")
    if not any((folder / name).is_file() for name in configs):
        raise ModelError(f"hf:{folder}: reference mode needs the processor, and none is here; {_SAVE_HINT}")
    try:
        processor = transformers.AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds: one line for all
        if importlib.util.find_spec("torchvision") is not None:
            raise ModelError(f"hf:{folder}: the processor did not load ({first_line(exc)}); {_SAVE_HINT}") from None
        try:
            processor = without_video(_processor_class(folder)).from_pretrained(str(folder), local_files_only=True)
        except ModelError:
            raise
        except Exception as again:
            raise ModelError(f"hf:{folder}: the processor did not load ({first_line(again)}); {_SAVE_HINT}") from None
    template = getattr(processor, "chat_template", None) or getattr(processor.tokenizer, "chat_template", None)
    if getattr(processor, "image_processor", None) is None or not template:
        raise ModelError(f"hf:{folder}: the processor here has no image processor or no chat template; {_SAVE_HINT}")
    processor.chat_template = template  # chat_template.jinja, read by the tokenizer when not by the processor
    return processor


def _processor_class(folder: Path) -> Any:
    import transformers

    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            cls = json.loads(path.read_text()).get("processor_class")
            if cls and hasattr(transformers, cls):
                return getattr(transformers, cls)
    raise ModelError(f"hf:{folder}: no processor_class in the processor files; {_SAVE_HINT}")


def without_video(cls: Any) -> Any:
    """``cls`` without its video processor attribute (same name, same ``__call__``)."""
    if "video_processor" not in cls.get_attributes():
        return cls
    attributes = [a for a in cls.get_attributes() if a != "video_processor"]

    # named parameters, not *args: transformers reads which settings a processor takes from __init__'s code
    def __init__(self: Any, image_processor: Any = None, tokenizer: Any = None, video_processor: Any = None,
                 chat_template: Any = None, image_seq_len: int | None = None, **kwargs: Any) -> None:
        if image_seq_len is not None:  # SmolVLM's tokens per tile
            kwargs["image_seq_len"] = image_seq_len
        cls.__init__(self, image_processor, tokenizer, video_processor, chat_template=chat_template, **kwargs)

    # SmolVLM's apply_chat_template reads the video defaults (num_frames, fps) even for an image-only chat
    no_video = SimpleNamespace(num_frames=None, fps=None)
    return type(cls.__name__, (cls,), {"get_attributes": classmethod(lambda _: list(attributes)), "__init__": __init__,
                                      "video_processor": no_video})


def _check_tile_tokens(processor: Any, qa: HFVideoQA) -> None:
    """SmolVLM / Idefics3: the processor's tokens per tile must be what the vision tower gives (a processor
    saved by transformers' ``save_pretrained`` leaves ``image_seq_len`` out, and the default 169 is then wrong)."""
    given = getattr(processor, "image_seq_len", None)
    if qa.mrope or given is None:
        return
    config = qa.model.config
    side = int(config.vision_config.image_size) // int(config.vision_config.patch_size)
    wanted = side * side // int(config.scale_factor) ** 2
    if int(given) != wanted:
        raise ModelError(f"hf:{qa.folder}: the processor puts {given} tokens per image tile and the model gives "
                         f"{wanted}; set \"image_seq_len\": {wanted} in processor_config.json")



class HFReferenceQA:
    """The VideoQA contract over the newest frame, with the checkpoint's processor building the inputs."""

    def __init__(self, qa: HFVideoQA) -> None:
        self.qa = qa
        self.name = f"{qa.name} (reference)"
        self.device = qa.device
        self.processor = load_processor(qa.folder)
        _check_tile_tokens(self.processor, qa)
        self.runner = HFCausalLMRunner(qa.lm)
        eos = qa.model.generation_config.eos_token_id  # what generate() stops on
        self.stop_ids = {int(t) for t in (eos if isinstance(eos, list) else [eos]) if t is not None}
        self.reset()

    # -- the contract --

    def reset(self) -> None:
        self._image: np.ndarray | None = None
        self.frames = 0

    def ingest(self, image: np.ndarray, t_ns: int) -> None:
        if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
            raise ModelError(f"ingest: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        self._image = image[..., :3]
        self.frames += 1

    def answer(self, question: str, *, max_new_tokens: int = 32) -> Iterator[str]:
        if self._image is None:
            raise ModelError("reference mode answers about the newest frame, and none came in yet")
        tokens = self.greedy(self._image, question, max_new_tokens=max_new_tokens)
        yield from text_deltas(tokens, lambda ids: str(self.processor.tokenizer.decode(ids, skip_special_tokens=True)))

    def memory(self) -> dict[str, int]:
        held = 0 if self._image is None else int(self._image.nbytes)
        return {"frames": self.frames, "tokens": 0, "bytes": held}

    # -- the reference itself --

    def inputs(self, image: np.ndarray, question: str) -> Any:
        """The processor's inputs (``BatchFeature``) for one image and ``question`` in the chat template."""
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question.strip()}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return self.processor(text=prompt, images=[Image.fromarray(image[..., :3])], return_tensors="pt")

    @torch.no_grad()
    def prefill(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The adapter's sequence for the processor's inputs: embeddings [T, C] and positions [3, T]."""
        qa, inner = self.qa, self.qa.model.model
        ids = inputs["input_ids"][0].to(self.device)
        embeds = qa.embed_tokens(ids)
        dtype = embeds.dtype
        image_id = int(qa.model.config.image_token_id)
        is_image = ids == image_id
        if qa.mrope:
            thw = inputs["image_grid_thw"].to(self.device)
            out = inner.get_image_features(pixel_values=inputs["pixel_values"].to(self.device, dtype),
                                           image_grid_thw=thw)
            grids = list(out.pooler_output)
        else:
            mask = inputs.get("pixel_attention_mask")
            out = inner.get_image_features(pixel_values=inputs["pixel_values"].to(self.device, dtype),
                                           pixel_attention_mask=None if mask is None else mask.to(self.device))
            grids = [torch.cat(list(out.pooler_output))]
        features = torch.cat([g.reshape(-1, g.shape[-1]) for g in grids])
        if int(is_image.sum()) != features.shape[0]:
            raise ModelError(f"{qa.name}: the processor placed {int(is_image.sum())} image tokens for "
                             f"{features.shape[0]} image features; the processor does not fit these weights")
        embeds = embeds.masked_scatter(is_image[:, None], features.to(dtype))
        b = Builder(qa.mrope)
        if not qa.mrope:
            b.text(embeds)
        else:  # text runs as text, each image run as its merged (h, w) grid: M-RoPE grid positions
            merge = int(inner.config.vision_config.spatial_merge_size)
            image_runs = iter(inputs["image_grid_thw"].tolist())
            start, T = 0, len(ids)
            while start < T:
                stop = start
                while stop < T and bool(is_image[stop]) == bool(is_image[start]):
                    stop += 1
                if is_image[start]:
                    _, gh, gw = next(image_runs)
                    b.image(embeds[start:stop].reshape(gh // merge, gw // merge, -1))
                else:
                    b.text(embeds[start:stop])
                start = stop
        chunk = b.chunk()
        return chunk.embeds, chunk.positions

    @torch.no_grad()
    def logits(self, inputs: Any) -> torch.Tensor:
        """Next-token logits [V] after the processor's inputs, through the adapter's LM."""
        embeds, positions = self.prefill(inputs)
        return self.runner.forward(embeds[None], positions.to(self.device), self.runner.new_cache())[0, -1]

    def answer_tokens(self, image: np.ndarray, question: str, *, max_new_tokens: int = 32) -> list[int]:
        """Greedy answer ids (the stop token left out), as ``model.generate(do_sample=False)`` gives them."""
        return list(self.greedy(image, question, max_new_tokens=max_new_tokens))

    def greedy(self, image: np.ndarray, question: str, *, max_new_tokens: int = 32) -> Iterator[int]:
        """`answer_tokens`, one id at a time as each is decoded (a KV cache; M-RoPE steps on all three axes)."""
        embeds, positions = self.prefill(self.inputs(image, question))
        yield from self.decode(embeds, positions, max_new_tokens=max_new_tokens)

    @torch.no_grad()  # on a generator, torch turns grad off around each step, not for the caller
    def decode(self, embeds: torch.Tensor, positions: torch.Tensor, *, max_new_tokens: int) -> Iterator[int]:
        """Greedy ids after a prefilled sequence (embeds [T, C], positions [3, T]); decoding goes on from
        ``positions.max() + 1`` on all three axes, as transformers' rope deltas do."""
        cache = self.runner.new_cache()
        logits = self.runner.forward(embeds[None], positions.to(self.device), cache)
        nxt = int(positions.max()) + 1
        for i in range(max_new_tokens):
            token = int(logits[0, -1].argmax())
            if token in self.stop_ids:
                return
            yield token
            if i + 1 == max_new_tokens:
                return
            step = torch.full((3, 1), nxt, dtype=torch.long, device=self.device)
            logits = self.runner.forward(self.qa._embed([token])[None], step, cache)
            nxt += 1


def as_reference(model: object) -> HFReferenceQA:
    """A loaded ``hf:`` model in reference mode (``agentrt ask --reference``); ConfigError for any other model."""
    from policies.qa.hf.vlm import HFVideoQA

    if isinstance(model, HFReferenceQA):
        return model
    if not isinstance(model, HFVideoQA):
        raise ConfigError(f"--reference needs a Hugging Face model (--model hf:PATH), not {getattr(model, 'name', model)}")
    return HFReferenceQA(model)
