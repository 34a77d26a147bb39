"""The one exception tree of agentrt.

Every error a user can hit is an ``AgentRTError`` whose message says what went
wrong (expected vs actual) and what to do next, in one line. The CLI prints it
without a traceback. ``assert`` is kept for internal invariants only.

An error is *permanent* when trying again the same way cannot help: a bad
value, a missing file, a port in use, weights that do not load, missing keys.
A node whose start-up raises one is not restarted: the run fails at once with
its message (`is_permanent`). ConfigError, ModelError and MissingDependencyError
always are; another type is when raised with ``permanent=True``.
"""

from __future__ import annotations

import errno

__all__ = [
    "AgentRTError",
    "ProtocolError",
    "TransportError",
    "FrameTornError",
    "ConfigError",
    "LaunchError",
    "MissingDependencyError",
    "SourceError",
    "FrameTimeout",
    "RobotError",
    "ActionError",
    "ModelError",
    "is_permanent",
    "first_line",
]


class AgentRTError(Exception):
    """Base of every error agentrt raises on purpose."""

    permanent: bool = False  # trying again the same way cannot help (see the module docstring)

    def __init__(self, *args: object, permanent: bool | None = None) -> None:
        super().__init__(*args)
        if permanent is not None:
            self.permanent = permanent


class ProtocolError(AgentRTError):
    """A message on the wire is malformed: bad magic, version, lengths, fields or shape."""


class TransportError(AgentRTError):
    """A socket or shared-memory ring could not be used (bind, connect, timeout, torn read)."""


class FrameTornError(TransportError):
    """A shared-memory frame's slot was written again before its pixels were read: drop it, take the next."""

    def __init__(self, stream: str, seq: int) -> None:
        super().__init__(f"frame {seq} of stream '{stream}': its shared-memory slot was overwritten before it was "
                         "read (the reader is slower than the publisher); dropped, the next frame is used")
        self.stream, self.seq = stream, seq


class ConfigError(AgentRTError):
    """A configuration value is invalid; the message names the field, the expected and the given value."""

    permanent = True


class LaunchError(ConfigError):
    """A launch file is invalid; the message names the file and line."""


class MissingDependencyError(AgentRTError):
    """An optional dependency is missing; the message holds the install command."""

    permanent = True

    def __init__(self, package: str, purpose: str, install: str | None = None) -> None:
        command = install or f"pip install {package}"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed: run `{command}`")
        self.package = package


class SourceError(AgentRTError):
    """A frame source failed: camera missing or unplugged, file missing or corrupt, stream stalled."""


class FrameTimeout(SourceError):
    """No new frame within a read's own timeout; the source is still alive: read again (not a failure)."""


class RobotError(AgentRTError):
    """A robot (simulated or real) could not connect, read or act."""


class ActionError(RobotError):
    """An action was rejected (NaN, wrong length, unknown kind); the robot holds still."""


class ModelError(AgentRTError):
    """A model could not be loaded or run (missing weights, wrong shapes, unsupported architecture)."""

    permanent = True


# OS errors that a retry meets again: a path that is not there or not what it should be, an address in use.
_PERMANENT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EADDRINUSE,
                               errno.EADDRNOTAVAIL})


def is_permanent(exc: BaseException) -> bool:
    """Would trying again the same way fail the same way? By type, never by message text."""
    if isinstance(exc, AgentRTError):
        return exc.permanent
    if isinstance(exc, ImportError):  # a module that is not installed stays missing
        return True
    return isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, at most ``limit`` characters (its type's name when it has none):
    what a one-line error quotes of a library's exception."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
