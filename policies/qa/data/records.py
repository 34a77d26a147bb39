"""What a video-QA scene is, as the dataset stores it and the questions read it: objects with their
positions before and after (metres and image pixels), which moved, which is held; and a question."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["QAObject", "Scene", "Question"]


@dataclass
class QAObject:
    colour: str
    shape: str
    before: tuple[float, float, float]  # metres, world frame
    after: tuple[float, float, float]
    pixel_before: tuple[float, float]  # (u, v) in the image, pixels
    pixel_after: tuple[float, float]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    seed: int
    objects: list[QAObject]
    moved: int | None = None  # index of the object moved between the frames
    held: int | None = None  # index of the object in the gripper (both frames)
    arm: str = "home"  # home | away | holding
    image_size: int = 96
    # where the frames are stored (set by the dataset writer / reader)
    shard: int = -1
    before: int = -1
    after: int = -1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Scene:
        objects = [QAObject(o["colour"], o["shape"], tuple(o["before"]), tuple(o["after"]), tuple(o["pixel_before"]),
                            tuple(o["pixel_after"])) for o in d["objects"]]
        return cls(**{**d, "objects": objects})


@dataclass
class Question:
    kind: str
    text: str
    answer: str
