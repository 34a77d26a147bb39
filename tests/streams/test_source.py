"""The Source base class: read modes, drops, failed connects, reconnects with backoff, stalls."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from agentrt.errors import FrameTimeout, SourceError
from agentrt.messages import now_ns
from streams import SourceConfig, SourceLost, StreamEnded, check_source
from streams.source import Source


@dataclass
class FakeConfig(SourceConfig):
    period_s: float = 0.002  # time between frames
    fail_opens: tuple[int, ...] = ()  # these opens (1 = the first) fail with SourceLost
    lose_at: tuple[int, ...] = ()  # grab numbers (over the whole life) that raise SourceLost
    stall_at: int = -1  # this grab blocks until released
    end_at: int = 0  # StreamEnded at this grab (0 = never)
    open_error: str = ""  # "fatal": open raises a plain SourceError


class FakeSource(Source):
    """A scriptable source: counts opens and closes, fails or stalls on cue."""

    config_class = FakeConfig
    config: FakeConfig

    def __init__(self, config: FakeConfig | None = None) -> None:
        super().__init__(config)
        self.opens = 0
        self.closes = 0
        self.grabs = 0
        self.handle_open = False
        self.release_stall = threading.Event()

    def describe(self) -> str:
        return "fake"

    def _open(self) -> None:
        self.opens += 1
        if self.config.open_error == "fatal":
            raise SourceError("fake: the device is broken")
        if self.opens in self.config.fail_opens:
            raise SourceLost(f"fake: open {self.opens} failed")
        self.handle_open = True

    def _close(self) -> None:
        self.closes += 1
        self.handle_open = False

    def _grab(self) -> tuple[np.ndarray, int]:
        assert self.handle_open, "grab on a closed handle"
        self.grabs += 1
        n = self.grabs
        if self.config.end_at and n >= self.config.end_at:
            raise StreamEnded("fake: end")
        if n in self.config.lose_at:
            raise SourceLost(f"fake: lost at grab {n}")
        if n == self.config.stall_at:
            self.release_stall.wait(10)
        time.sleep(self.config.period_s)
        return np.full((4, 6, 3), n % 256, np.uint8), now_ns()


def fast(**kw: object) -> FakeConfig:
    return FakeConfig(reconnect_backoff_s=0.01, reconnect_backoff_max_s=0.04, **kw)  # type: ignore[arg-type]


def test_init_does_no_io_and_check_source_passes() -> None:
    source = FakeSource(fast())
    assert source.opens == 0 and not source.is_connected
    report = check_source(source)
    assert report["frames"] == 5 and (report["width"], report["height"]) == (6, 4)
    assert source.opens == 2 and source.closes == 2  # check_source connects twice, releasing each time


def test_read_modes() -> None:
    with FakeSource(fast(period_s=0.005)) as source:
        a = source.read()
        b = source.async_read(timeout_ms=2000)
        assert b.seq > a.seq and b.t_capture_ns >= a.t_capture_ns
        latest = source.read_latest(max_age_ms=10_000)
        assert latest.seq >= b.seq
        again = source.read_latest(max_age_ms=10_000)  # read_latest may return the same frame again
        assert again.seq >= latest.seq
        with pytest.raises(SourceError, match="older than max_age_ms"):
            source.read_latest(max_age_ms=-1)
        assert a.stream == "camera" and a.pixel_format == "rgb"
    with pytest.raises(SourceError, match="not connected"):
        source.read()


def test_failed_connect_releases_and_a_retry_works() -> None:
    source = FakeSource(fast(fail_opens=(1,)))
    with pytest.raises(SourceError, match="open 1 failed"):
        source.connect()
    assert not source.is_connected and not source.handle_open
    source.connect()  # the retry
    try:
        assert source.read().image.shape == (4, 6, 3)
    finally:
        source.disconnect()
    assert source.closes == 1 and not source.handle_open


def test_a_failed_first_frame_releases_the_open_handle() -> None:
    source = FakeSource(fast(end_at=1))
    with pytest.raises(SourceError, match="no frames at all"):
        source.connect()
    assert source.opens == 1 and source.closes == 1 and not source.handle_open


def test_flaky_source_reconnects_with_backoff_and_keeps_counting() -> None:
    # lost at grab 5; then the next two opens fail; then it works again
    source = FakeSource(fast(lose_at=(5,), fail_opens=(2, 3)))
    with source:
        seqs = [source.read().seq for _ in range(3)]
        more = []
        while len(more) < 5:
            try:
                more.append(source.async_read(timeout_ms=3000).seq)
            except SourceError:
                assert source.alive  # reconnecting, not dead
        assert source.stats.reconnects == 3  # one per failed attempt, backoff between
        assert source.opens == 4 and source.state == "running"
        assert seqs + more == sorted(seqs + more)  # seq keeps increasing across the reconnect
        assert "lost at grab 5" in source.stats.last_error or "open" in source.stats.last_error


def test_reconnects_are_bounded_and_then_fail_clearly() -> None:
    source = FakeSource(fast(lose_at=(3,), fail_opens=tuple(range(2, 100)), reconnect_attempts=2))
    with source:
        with pytest.raises(SourceError, match="gave up after 2 reconnect attempt"):
            for _ in range(100):
                source.read()
        assert not source.alive and source.state == "failed"


def test_fatal_error_is_not_retried() -> None:
    with pytest.raises(SourceError, match="the device is broken"):
        FakeSource(fast(open_error="fatal")).connect()


def test_a_stall_is_caught_by_the_timeout_not_a_hang() -> None:
    source = FakeSource(fast(stall_at=3, timeout_ms=300))
    with source:
        source.read()
        t = time.monotonic()
        with pytest.raises(SourceError, match="stalled"):
            for _ in range(5):
                source.read()
        assert time.monotonic() - t < 8  # bounded (generous: the point is it returns at all)
        assert source.stats.stalls == 1
        source.release_stall.set()
        assert source.read().seq >= 2  # it recovers when the device does


def test_async_read_times_out_with_a_clear_message() -> None:
    source = FakeSource(fast(stall_at=2, timeout_ms=5000))
    with source:
        source.read()
        with pytest.raises(SourceError, match="no new frame within 50 ms"):
            source.async_read(timeout_ms=50)
        source.release_stall.set()


def test_a_read_timeout_is_its_own_type_and_a_stall_is_not() -> None:
    """Callers tell "nothing new yet" from a failure by type, never by the message text."""
    source = FakeSource(fast(stall_at=2, timeout_ms=5000))
    with source:
        source.read()
        with pytest.raises(FrameTimeout) as info:
            source.async_read(timeout_ms=50)
        assert isinstance(info.value, SourceError) and source.alive
        source.release_stall.set()
    stalled = FakeSource(fast(stall_at=2, timeout_ms=100))
    with stalled:
        with pytest.raises(SourceError) as failure:
            for _ in range(5):
                stalled.read()
        assert not isinstance(failure.value, FrameTimeout)
        stalled.release_stall.set()


def test_slow_reader_counts_replaced_frames_and_gaps() -> None:
    with FakeSource(fast(period_s=0.001)) as source:
        seen = []
        for _ in range(5):
            seen.append(source.read().seq)
            time.sleep(0.03)
        stats = source.stats
        assert stats.replaced > 0
        assert stats.gaps == (seen[-1] - seen[0] + 1) - len(seen)
        assert stats.dropped == stats.replaced + stats.skipped


def test_backpressure_delivers_every_frame() -> None:
    source = FakeSource(fast(period_s=0.0, end_at=40))
    source.backpressure = True
    source.connect()
    try:
        source.backpressure = True
        seqs = []
        with pytest.raises(StreamEnded):
            while True:
                seqs.append(source.read().seq)
                time.sleep(0.001)
    finally:
        source.disconnect()
    assert seqs == list(range(39)) and source.stats.replaced == 0


def test_end_of_stream_is_distinct_from_failure() -> None:
    with FakeSource(fast(end_at=4)) as source:
        frames = []
        with pytest.raises(StreamEnded):
            while True:
                frames.append(source.read())
                time.sleep(0.02)
        assert source.state == "ended" and not source.alive


def test_skip_uses_up_seq_numbers() -> None:
    source = FakeSource(fast())
    source._skip(3)
    assert source._seq == 3 and source.stats.skipped == 3
