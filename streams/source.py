"""`Source`: the Camera-style base class of every frame source in streams/.

The contract (`check_source` verifies it):

- ``__init__(config)`` keeps the config and does no I/O.
- ``connect()`` opens the device, file or stream and captures the first frame
  in the caller's thread, so a broken source fails right there with a
  SourceError; then a background grab thread keeps the newest frame. A failed
  ``connect()`` releases whatever it opened: just call it again.
- Three read modes, named as in LeRobot:

  ============================  ===============================================================
  ``read()``                    block until a frame not returned before; raise SourceError
                                if the source ends (StreamEnded), fails, or stalls
                                (``timeout_ms`` with no frame while not reconnecting)
  ``async_read(timeout_ms)``    the same, but raise SourceError after ``timeout_ms``
  ``read_latest(max_age_ms)``   the newest frame now, even one returned before; raise if it
                                is older than ``max_age_ms`` (a frozen camera never passes
                                for a live one)
  ============================  ===============================================================

- Every frame is ``Frame(config.stream, seq, t_capture_ns, image)``: ``seq``
  counts from 0 at connect, ``t_capture_ns`` is CLOCK_MONOTONIC taken at
  capture (not at read), ``image`` is H x W x 3 uint8, ``pixel_format`` is
  "rgb" unless the config asks for "bgr".
- Drops are counted in ``stats``: ``replaced`` (captured, then overwritten by
  a newer frame before anyone read it: the reader is slower than the source),
  ``skipped`` (frames the source passed over: late frames of a paced file,
  missing camera frames) and ``gaps`` (seq jumps the reader saw). Skipped
  frames use up a seq, so gaps show downstream too.
- Failures: a subclass raises SourceLost when reconnecting may help (camera
  unplugged, network stream dropped or stalled); the grab thread reconnects
  with exponential backoff up to ``reconnect_attempts``. StreamEnded marks a
  normal end (end of file). Any other SourceError (missing or corrupt file) is
  final and is raised by the next read.

Subclasses implement ``_open()``, ``_grab() -> (image, t_capture_ns)`` and
``_close()``, and may pace frames with ``_pace()``.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from agentrt.errors import ConfigError, FrameTimeout, SourceError
from agentrt.messages import Frame, now_ns
from streams.config import SourceConfig
from streams.stats import SourceStats

__all__ = ["Source", "SourceStats", "SourceLost", "StreamEnded"]  # SourceStats lives in streams.stats

log = logging.getLogger(__name__)

_MAX_CONSECUTIVE_SKIPS = 4  # a paced source that keeps falling behind delivers anyway and re-anchors


class SourceLost(SourceError):
    """The device or stream went away or stalled; reconnecting may help."""


class StreamEnded(SourceError):
    """The source has no more frames (end of a file or folder without looping)."""


class _Stopping(Exception):
    """Raised inside the grab thread when disconnect() asks it to stop."""


class Source:
    """Base class of frame sources; see the module docstring for the contract."""

    config_class: type[SourceConfig] = SourceConfig

    def __init__(self, config: SourceConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.stats = SourceStats()
        self.width: int | None = None  # actual size of the newest frame, known after connect()
        self.height: int | None = None
        self.fps: float | None = None  # nominal rate the device or file reports (None = unknown)
        self.frame_count: int | None = None  # frames a file or folder holds, after connect() (None: live or unknown)
        self.state = "disconnected"  # connecting | running | reconnecting | ended | failed | disconnected
        self.backpressure = False  # True: the grab thread waits for each frame to be read (no drops)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stuck: threading.Thread | None = None  # a grab thread that did not stop in time
        self._opened = False
        self._latest: Frame | None = None
        self._last_read_seq = -1
        self._seq = 0
        self._error: SourceError | None = None
        self._busy_since_ns = 0  # when the grab thread entered the device (0 = waiting by design)
        self._t0_ns: int | None = None  # pacing anchor
        self._skips_in_row = 0

    # -- what subclasses implement -------------------------------------------------------------

    def describe(self) -> str:
        """A short human name for messages, like "camera 0" or "file clip.mp4"."""
        return type(self).__name__

    def _open(self) -> None:
        raise NotImplementedError

    def _grab(self) -> tuple[np.ndarray, int]:
        """Capture one frame: (H x W x 3 uint8 image, t_capture_ns). Raise SourceLost / StreamEnded / SourceError."""
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _on_reopen(self) -> None:
        """Called after a reconnect re-opened the source (reset pacing and the like)."""
        self._t0_ns = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    @property
    def alive(self) -> bool:
        """Connected and neither ended nor failed (it may be reconnecting)."""
        return self.is_connected and self.state not in ("ended", "failed")

    def connect(self) -> None:
        """Open the source, capture the first frame, start the grab thread. SourceError if that fails."""
        if self._thread is not None:
            raise SourceError(f"{self.describe()}: already connected")
        if self._stuck is not None and self._stuck.is_alive():
            raise SourceError(f"{self.describe()}: the last connection is still blocked in the device; try again later")
        self._stop.clear()
        self._latest, self._last_read_seq, self._seq, self._error = None, -1, 0, None
        self._t0_ns, self._skips_in_row = None, 0
        self.state = "connecting"
        try:
            self._open()
            self._opened = True
            image, t_ns = self._grab()
        except StreamEnded as exc:
            self._release()
            self.state = "failed"
            raise SourceError(f"{self.describe()}: no frames at all ({exc})") from None
        except SourceError:
            self._release()
            self.state = "failed"
            raise
        except BaseException as exc:
            self._release()
            self.state = "failed"
            if isinstance(exc, Exception):
                raise SourceError(f"{self.describe()}: cannot connect: {type(exc).__name__}: {exc}") from exc
            raise
        self._publish(image, t_ns)
        self.state = "running"
        self._thread = threading.Thread(target=self._loop, name=f"grab-{self.describe()}", daemon=True)
        self._thread.start()
        log.debug("%s connected: %dx%d, %s fps", self.describe(), self.width, self.height,
                 f"{self.fps:.3g}" if self.fps else "unknown")

    def disconnect(self) -> None:
        """Stop the grab thread and release the source. Safe to call twice."""
        thread, self._thread = self._thread, None
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=self.config.timeout_ms / 1000 + 2.0)
            if thread.is_alive():
                self._stuck = thread
                log.warning("%s: grab thread still blocked in the device after disconnect; left to finish", self.describe())
        else:
            self._release()
        if self.state not in ("ended", "failed"):
            self.state = "disconnected"

    def __enter__(self) -> Source:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- read modes ----------------------------------------------------------------------------

    def read(self) -> Frame:
        """Block until a frame not returned before; SourceError on end, failure or stall."""
        return self._wait_new(None)

    def async_read(self, timeout_ms: int | None = None) -> Frame:
        """Like read(), but raise SourceError after ``timeout_ms`` (default: config.timeout_ms)."""
        return self._wait_new(self.config.timeout_ms if timeout_ms is None else timeout_ms)

    def read_latest(self, max_age_ms: float = 500.0) -> Frame:
        """The newest frame at once; SourceError if there is none or it is older than ``max_age_ms``."""
        self._require_connected()
        with self._cond:
            frame = self._latest
            if self.state == "failed" and self._error is not None:
                raise self._error
            if frame is None:
                raise SourceError(f"{self.describe()}: no frame captured yet")
            age_ms = (now_ns() - frame.t_capture_ns) / 1e6
            if age_ms > max_age_ms:
                raise SourceError(
                    f"{self.describe()}: newest frame is {age_ms:.0f} ms old, older than max_age_ms={max_age_ms:g} "
                    f"(state: {self.state})"
                )
            if frame.seq > self._last_read_seq:
                self._mark_read(frame)
            return frame

    def _require_connected(self) -> None:
        if self._thread is None:
            raise SourceError(f"{self.describe()}: not connected; call connect() first")

    def _wait_new(self, timeout_ms: int | None) -> Frame:
        self._require_connected()
        start = now_ns()
        deadline = None if timeout_ms is None else start + int(timeout_ms * 1e6)
        stall_ns = int(self.config.timeout_ms * 1e6)
        with self._cond:
            while True:
                frame = self._latest
                if frame is not None and frame.seq > self._last_read_seq:
                    self._mark_read(frame)
                    return frame
                if self._error is not None:
                    raise self._error
                if self._thread is None:
                    raise SourceError(f"{self.describe()}: disconnected while reading")
                now = now_ns()
                busy = self._busy_since_ns
                if busy and now - busy > stall_ns and now - start > stall_ns:
                    self.stats.stalls += 1
                    raise SourceError(
                        f"{self.describe()}: stalled: no frame for {(now - busy) / 1e6:.0f} ms "
                        f"(timeout_ms={self.config.timeout_ms})"
                    )
                if deadline is not None and now >= deadline:
                    last = f"{(now - frame.t_capture_ns) / 1e6:.0f} ms ago" if frame else "never"
                    raise FrameTimeout(
                        f"{self.describe()}: no new frame within {timeout_ms} ms (state: {self.state}, last frame {last})"
                    )
                wait_ns = 100_000_000 if deadline is None else min(100_000_000, deadline - now)
                self._cond.wait(wait_ns / 1e9)

    def _mark_read(self, frame: Frame) -> None:
        if self._last_read_seq >= 0 and frame.seq > self._last_read_seq + 1:
            self.stats.gaps += frame.seq - self._last_read_seq - 1
        self._last_read_seq = frame.seq
        self.stats.delivered += 1
        self._cond.notify_all()  # a backpressured grab thread waits for this

    # -- the grab thread -----------------------------------------------------------------------

    def _publish(self, image: np.ndarray, t_ns: int) -> None:
        frame = Frame(self.config.stream, self._seq, t_ns, image, self.config.pixel_format)
        self._seq += 1
        self.height, self.width = int(image.shape[0]), int(image.shape[1])
        with self._cond:
            previous = self._latest
            if previous is not None and previous.seq > self._last_read_seq:
                self.stats.replaced += 1
            if previous is not None and t_ns > previous.t_capture_ns:
                rate = 1e9 / (t_ns - previous.t_capture_ns)
                self.stats.fps = rate if self.stats.fps == 0 else 0.9 * self.stats.fps + 0.1 * rate
            self.stats.captured += 1
            self._latest = frame
            self._cond.notify_all()

    def _skip(self, count: int = 1) -> None:
        """Note frames the source passed over: they use up seq numbers so readers see the gap."""
        self._seq += count
        self.stats.skipped += count

    def _pace(self, t_rel_ns: int, period_ns: int) -> bool:
        """Wait until a frame ``t_rel_ns`` into the stream is due. False: it is over a period late and was
        counted as skipped; the caller drops it."""
        now = now_ns()
        if self._t0_ns is None:
            self._t0_ns = now - t_rel_ns
        due = self._t0_ns + t_rel_ns
        if now - due > max(period_ns, 1_000_000):
            if self._skips_in_row < _MAX_CONSECUTIVE_SKIPS:
                self._skips_in_row += 1
                self._skip()
                return False
            self._t0_ns = now - t_rel_ns  # persistently behind: deliver this one and re-anchor
        self._skips_in_row = 0
        self._sleep_until(due)
        return True

    def _sleep_until(self, t_ns: int) -> None:
        """Stop-aware sleep; the stall watchdog does not count it."""
        delay = t_ns - now_ns()
        if delay <= 0:
            return
        busy, self._busy_since_ns = self._busy_since_ns, 0
        if self._stop.wait(delay / 1e9):
            raise _Stopping
        if busy:
            self._busy_since_ns = now_ns()

    def _release(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self._close()
            except Exception as exc:  # releasing must never mask the real error
                log.warning("%s: error while closing: %s", self.describe(), exc)

    def _wait_until_read(self) -> None:
        with self._cond:
            while not self._stop.is_set():
                latest = self._latest
                if latest is None or latest.seq <= self._last_read_seq:
                    return
                self._cond.wait(0.1)
        raise _Stopping

    def _finish(self, state: str, error: SourceError) -> None:
        with self._cond:
            self.state = state
            self._error = error
            self.stats.last_error = str(error)
            self._cond.notify_all()
        (log.info if state == "ended" else log.error)("%s", error)

    def _loop(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    if not self._opened:
                        self._open()
                        self._opened = True
                        self._on_reopen()
                        with self._cond:
                            self.state = "running"
                        log.info("%s reconnected", self.describe())
                    self._busy_since_ns = now_ns()
                    image, t_ns = self._grab()
                    self._busy_since_ns = 0
                    if self.backpressure:  # one frame of lookahead: grab the next while the last is unread
                        self._wait_until_read()
                    self._publish(image, t_ns)
                    failures = 0
                except _Stopping:
                    return
                except StreamEnded as exc:
                    self._finish("ended", exc)
                    return
                except SourceLost as exc:
                    self._busy_since_ns = 0
                    self._release()
                    failures += 1
                    self.stats.last_error = str(exc)
                    limit = self.config.reconnect_attempts
                    if limit == 0 or (limit > 0 and failures > limit):
                        tried = f"gave up after {failures - 1} reconnect attempt(s)" if limit else "reconnect is off"
                        self._finish("failed", SourceError(f"{exc}; {tried}"))
                        return
                    delay = min(self.config.reconnect_backoff_s * 2 ** (failures - 1), self.config.reconnect_backoff_max_s)
                    with self._cond:
                        self.state = "reconnecting"
                    self.stats.reconnects += 1
                    log.warning("%s; reconnecting in %.1f s (attempt %d of %s)", exc, delay, failures,
                                "unlimited" if limit < 0 else limit)
                    if self._stop.wait(delay):
                        return
                except SourceError as exc:
                    self._finish("failed", exc)
                    return
                except Exception as exc:
                    log.exception("%s: unexpected error in the grab thread", self.describe())
                    self._finish("failed", SourceError(f"{self.describe()}: {type(exc).__name__}: {exc}"))
                    return
        finally:
            self._busy_since_ns = 0
            self._release()
