"""Templated video-QA data from the PyBullet sims: seeded scenes, two frames each, questions with short answers.

- ``records``: what a scene and a question are (``Scene``, ``QAObject``, ``Question``).
- ``questions``: the question kinds, their templates (and held-out rewordings), the answers from a scene.
- ``scenes``: ``SceneMaker`` renders seeded scenes (and moments of task episodes) in one PyBullet world.
- ``sim_view``: reading a scene off the world (visibility, the held object, image pixels).
- ``dataset``: the dataset on disk (``write_dataset``, ``load_split``) and scenes rendered on the fly.

Importing this package imports no simulator: ``SceneMaker`` loads ``sims`` when it connects.
"""

from policies.qa.data.dataset import HELD_OUT_SEED, TRAIN_SEED, iter_scenes, load_split, write_dataset
from policies.qa.data.questions import (
    COUNT_WORDS,
    KINDS,
    RELATION_MARGIN,
    REWORDED,
    TEMPLATES,
    make_question,
    questions_for,
    vocabulary,
)
from policies.qa.data.records import QAObject, Question, Scene
from policies.qa.data.scenes import SceneConfig, SceneMaker

__all__ = [
    "KINDS", "TEMPLATES", "REWORDED", "COUNT_WORDS", "TRAIN_SEED", "HELD_OUT_SEED", "RELATION_MARGIN",
    "QAObject", "Scene", "Question", "SceneConfig", "SceneMaker", "questions_for", "make_question",
    "write_dataset", "load_split", "iter_scenes", "vocabulary",
]
