"""`FrameFeed`: frames from a published stream or straight from a source, behind one interface.

`agentrt record`, `agentrt view` and the recorder node take frames from
either; this keeps them from caring which.

    with open_feed("camera") as feed:                 # a stream name, or an endpoint like ipc://... tcp://...
        frame = feed.next(timeout_ms=1000)            # None when nothing came in time
    with open_feed(source="synthetic:320x240@30") as feed:
        ...
"""

from __future__ import annotations

from typing import Any

from agentrt.errors import ConfigError, FrameTornError, SourceError
from agentrt.messages import Frame
from streams.registry import make_source
from streams.source import Source, StreamEnded

__all__ = ["FrameFeed", "open_feed", "resolve_endpoint"]


def resolve_endpoint(endpoint_or_name: str) -> str:
    """``camera`` -> ``ipc://<run_dir>/camera``; an address with a scheme is kept as given."""
    if "://" in endpoint_or_name:
        return endpoint_or_name
    from agentrt.transport import endpoint

    return endpoint(endpoint_or_name)


class FrameFeed:
    """Wraps a Subscriber or a connected Source. ``next()`` gives frames whose pixels the caller owns."""

    def __init__(self, *, subscriber: Any = None, source: Source | None = None, label: str = "") -> None:
        if (subscriber is None) == (source is None):
            raise ConfigError("a frame feed needs exactly one of a subscriber or a source")
        self.subscriber = subscriber
        self.source = source
        self.label = label
        self.ended = False  # the source ended or failed for good

    def next(self, timeout_ms: int = 1000) -> Frame | None:
        """The next frame, or None if none came in time or the source ended (then ``ended`` is set).

        SourceError when a source fails for good.
        """
        if self.source is not None:
            try:
                return self.source.async_read(timeout_ms=timeout_ms)
            except StreamEnded:
                self.ended = True
                return None
            except SourceError:
                if self.source.alive:
                    return None  # reconnecting, or a stall it is dealing with
                self.ended = True
                raise
        message = self.subscriber.recv(timeout_ms=timeout_ms)
        if not isinstance(message, Frame):
            return None
        try:
            return message.detached()  # a view of a shared-memory slot: copied, and checked not torn
        except FrameTornError:
            return None

    def stats(self) -> dict[str, Any]:
        """Drop counters: a source's stats, or the subscriber's (received, skipped = frames never seen)."""
        if self.source is not None:
            return self.source.stats.as_dict()
        return dict(self.subscriber.stats.as_dict())

    def dropped(self) -> int:
        stats = self.stats()
        return int(stats.get("dropped", stats.get("skipped", 0)))

    def close(self) -> None:
        if self.source is not None:
            self.source.disconnect()
        if self.subscriber is not None:
            self.subscriber.close()

    def __enter__(self) -> FrameFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_feed(endpoint_or_name: str | None = None, *, source: str | None = None,
              overrides: dict[str, Any] | None = None) -> FrameFeed:
    """A feed from a stream (name or endpoint) or from a SOURCE string (connected here)."""
    if (endpoint_or_name is None) == (source is None):
        raise ConfigError("give either a stream (name or endpoint) or --source SOURCE, not both or neither")
    if source is not None:
        src = make_source(source, **(overrides or {}))
        src.connect()
        return FrameFeed(source=src, label=src.describe())
    from agentrt.transport import Subscriber

    assert endpoint_or_name is not None
    address = resolve_endpoint(endpoint_or_name)
    return FrameFeed(subscriber=Subscriber(address), label=address)
