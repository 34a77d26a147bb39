"""LeRobotDataset v3.0, written and read without LeRobot (which cannot share a venv with torch 2.13).

- ``layout``: the published paths, index features and info.json (`CODEBASE_VERSION` "v3.0").
- ``writer``: `LeRobotWriter`, episodes in, a dataset folder out (appends to an existing one).
- ``reader``: `LeRobotReader`, a dataset (ours or recorded with LeRobot) as episodes of arrays.
- ``video``: one MP4 per camera (H.264), decoding at timestamps. ``stats``: per-episode and pooled stats.
- ``collect``: `agentrt collect --format lerobot`. ``nano``: `agentrt train --data lerobot:PATH`.

Needs the optional extra: ``pip install 'agentrt[lerobot]'`` (pyarrow, pandas); PyAV for the videos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_EXPORTS = {
    "LeRobotWriter": "policies.lerobot.writer",
    "LeRobotReader": "policies.lerobot.reader",
    "RecordedEpisode": "policies.lerobot.reader",
    "LeRobotKeys": "policies.lerobot.nano",
    "CODEBASE_VERSION": "policies.lerobot.layout",
}
__all__ = ["LeRobotWriter", "LeRobotReader", "RecordedEpisode", "LeRobotKeys", "CODEBASE_VERSION"]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from policies.lerobot.layout import CODEBASE_VERSION
    from policies.lerobot.nano import LeRobotKeys
    from policies.lerobot.reader import LeRobotReader, RecordedEpisode
    from policies.lerobot.writer import LeRobotWriter
