"""The one exception tree of agentrt.

Every error a user can hit is an ``AgentRTError`` whose message says what went
wrong (expected vs actual) and what to do next, in one line. The CLI prints it
without a traceback. ``assert`` is kept for internal invariants only.
"""

from __future__ import annotations

__all__ = [
    "AgentRTError",
    "ProtocolError",
    "TransportError",
    "ConfigError",
    "LaunchError",
    "MissingDependencyError",
    "SourceError",
    "RobotError",
    "ActionError",
    "ModelError",
]


class AgentRTError(Exception):
    """Base of every error agentrt raises on purpose."""


class ProtocolError(AgentRTError):
    """A message on the wire is malformed: bad magic, version, lengths, fields or shape."""


class TransportError(AgentRTError):
    """A socket or shared-memory ring could not be used (bind, connect, timeout, torn read)."""


class ConfigError(AgentRTError):
    """A configuration value is invalid; the message names the field, the expected and the given value."""


class LaunchError(ConfigError):
    """A launch file is invalid; the message names the file and line."""


class MissingDependencyError(AgentRTError):
    """An optional dependency is missing; the message holds the install command."""

    def __init__(self, package: str, purpose: str, install: str | None = None) -> None:
        command = install or f"pip install {package}"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed: run `{command}`")
        self.package = package


class SourceError(AgentRTError):
    """A frame source failed: camera missing or unplugged, file missing or corrupt, stream stalled."""


class RobotError(AgentRTError):
    """A robot (simulated or real) could not connect, read or act."""


class ActionError(RobotError):
    """An action was rejected (NaN, wrong length, unknown kind); the robot holds still."""


class ModelError(AgentRTError):
    """A model could not be loaded or run (missing weights, wrong shapes, unsupported architecture)."""
