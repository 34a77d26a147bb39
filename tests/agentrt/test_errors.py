"""Which errors a retry meets again (`is_permanent`): the supervisor restarts a node for the others only."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from agentrt.errors import (
    ConfigError,
    MissingDependencyError,
    ModelError,
    RobotError,
    SourceError,
    TransportError,
    is_permanent,
)
from agentrt.transport import Publisher
from streams.registry import make_source


def test_permanent_by_type() -> None:
    assert is_permanent(ConfigError("bad value"))
    assert is_permanent(ModelError("weights do not load"))
    assert is_permanent(MissingDependencyError("av", "reading video files"))
    assert is_permanent(FileNotFoundError(errno.ENOENT, "no such file", "x.mp4"))
    assert is_permanent(ModuleNotFoundError("No module named 'nope'"))
    assert not is_permanent(SourceError("camera unplugged"))  # it may come back
    assert not is_permanent(RobotError("no reply from servo 3"))
    assert not is_permanent(RuntimeError("boom"))
    assert is_permanent(SourceError("file gone", permanent=True))


def test_a_missing_file_and_a_port_in_use_are_permanent(tmp_path: Path) -> None:
    for spec in (str(tmp_path / "missing.mp4"), f"folder:{tmp_path / 'nothing'}"):
        with pytest.raises(SourceError) as info:
            make_source(spec).connect()
        assert is_permanent(info.value), spec
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(TransportError) as transport:
            Publisher(f"tcp://127.0.0.1:{taken.getsockname()[1]}")
    assert is_permanent(transport.value)
