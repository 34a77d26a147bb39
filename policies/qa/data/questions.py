"""Templated questions about a scene, with their answers read from sim state.

Questions (``KINDS``), answers in a closed vocabulary of words:

| kind     | template (training)                              | answer                      |
|----------|--------------------------------------------------|-----------------------------|
| colour   | what colour is the {shape}?  (shape unique)      | red, green, blue, ...       |
| shape    | what shape is the {colour} object?               | cube, cylinder, sphere      |
| count    | how many objects are there?                      | two, three, four            |
| exists   | is there a {colour} {shape}?                     | yes, no                     |
| relation | is the {a} left or right of the {b}?             | left, right (the image's)   |
| moved    | what moved? / what changed in the last ten       | {colour} {shape}, nothing   |
|          | seconds?                                         |                             |
| holding  | what is the robot holding?                       | {colour} {shape}, nothing   |

Left and right are the image's (the camera faces the robot: image left is the robot's
right, -y, as in ``sims/tasks/push.py``); a pair is only asked about when the two
objects are at least ``RELATION_MARGIN`` of the image width apart. ``REWORDED`` holds
other wordings of each question, never used in training, for a separate held-out row.
"""

from __future__ import annotations

import numpy as np

from agentrt.errors import ConfigError
from policies.qa.data.records import Question, Scene
from policies.vocabulary import split_words

__all__ = ["KINDS", "TEMPLATES", "REWORDED", "COUNT_WORDS", "RELATION_MARGIN", "make_question", "questions_for",
           "vocabulary"]

KINDS = ("colour", "shape", "count", "exists", "relation", "moved", "holding")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": ("what colour is the {shape}?",),
    "shape": ("what shape is the {colour} object?",),
    "count": ("how many objects are there?",),
    "exists": ("is there a {colour} {shape}?",),
    "relation": ("is the {a} left or right of the {b}?",),
    "moved": ("what moved?", "what changed in the last ten seconds?"),  # memory holds ~10 s (10 frames, 1 s apart)
    "holding": ("what is the robot holding?",),
}
# Held-out wordings: never trained on; words the model does not know become <unk>.
REWORDED: dict[str, tuple[str, ...]] = {
    "colour": ("which colour does the {shape} have?",),
    "shape": ("which shape has the {colour} object?",),
    "count": ("how many objects do you see?",),
    "exists": ("do you see a {colour} {shape}?",),
    "relation": ("is the {a} on the left or on the right of the {b}?",),
    "moved": ("which object moved?",),
    "holding": ("what does the robot hold?",),
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
RELATION_MARGIN = 0.06  # fraction of the image width two objects must be apart for left / right


def make_question(scene: Scene, kind: str, rng: np.random.Generator, *, reworded: bool = False) -> Question | None:
    """One question of ``kind`` about ``scene`` (its last frame; ``moved`` compares the two), or None
    when the scene cannot pose it unambiguously (no unique shape, no pair far enough apart)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown question kind {kind!r}: expected one of {', '.join(KINDS)}")
    templates = (REWORDED if reworded else TEMPLATES)[kind]
    template = templates[int(rng.integers(len(templates)))]
    objs = scene.objects
    if kind == "colour":
        shapes = [o.shape for o in objs]
        unique = [o for o in objs if shapes.count(o.shape) == 1]
        if not unique:
            return None
        o = unique[int(rng.integers(len(unique)))]
        return Question(kind, template.format(shape=o.shape), o.colour)
    if kind == "shape":
        o = objs[int(rng.integers(len(objs)))]
        return Question(kind, template.format(colour=o.colour), o.shape)
    if kind == "count":
        return Question(kind, template, COUNT_WORDS[len(objs)])
    if kind == "exists":
        from sims.tasks.base import COLOURS, SHAPES

        present = {(o.colour, o.shape) for o in objs}
        if rng.random() < 0.5:
            colour, shape = sorted(present)[int(rng.integers(len(present)))]
            return Question(kind, template.format(colour=colour, shape=shape), "yes")
        if rng.random() < 0.5:  # hard negative: a colour that is there, on another shape
            o = objs[int(rng.integers(len(objs)))]
            absent = [(o.colour, s) for s in SHAPES if (o.colour, s) not in present]
        else:
            absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        colour, shape = absent[int(rng.integers(len(absent)))]
        return Question(kind, template.format(colour=colour, shape=shape), "no")
    if kind == "relation":
        margin = RELATION_MARGIN * scene.image_size
        pairs = [(i, j) for i in range(len(objs)) for j in range(len(objs))
                 if i != j and abs(objs[i].pixel_after[0] - objs[j].pixel_after[0]) >= margin]
        if not pairs:
            return None
        i, j = pairs[int(rng.integers(len(pairs)))]
        answer = "left" if objs[i].pixel_after[0] < objs[j].pixel_after[0] else "right"
        return Question(kind, template.format(a=objs[i].name, b=objs[j].name), answer)
    if kind == "moved":
        return Question(kind, template, objs[scene.moved].name if scene.moved is not None else "nothing")
    # holding
    return Question(kind, template, objs[scene.held].name if scene.held is not None else "nothing")


def questions_for(
    scene: Scene, rng: np.random.Generator, n: int, *, kinds: tuple[str, ...] = KINDS, reworded: bool = False
) -> list[Question]:
    """Up to ``n`` questions of distinct kinds (drawn in random order) that the scene can pose."""
    out: list[Question] = []
    for k in rng.permutation(len(kinds)):
        q = make_question(scene, kinds[int(k)], rng, reworded=reworded)
        if q is not None:
            out.append(q)
        if len(out) == n:
            break
    return out


def vocabulary() -> list[str]:
    """Every word of the training templates and answers, sorted (the model's word list)."""
    from sims.tasks.base import COLOURS, SHAPES

    words: set[str] = set(COLOURS) | set(SHAPES) | set(COUNT_WORDS.values()) | {"yes", "no", "left", "right", "nothing"}
    for templates in TEMPLATES.values():
        for t in templates:
            words |= set(split_words(t.format(shape="", colour="", a="", b="")))
    return sorted(words)
