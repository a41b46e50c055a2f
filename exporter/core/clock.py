"""Clocks, injected everywhere so the core never reads the wall clock itself.

Tests drive a `ManualClock`; the demo runs an `AcceleratedClock` so 24h windows roll within minutes.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything with `now()` returning Unix seconds."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time; what a real bot uses. `now` is `time.time` itself: no Python frame on the hook path."""

    now = staticmethod(time.time)


class ManualClock:
    """A clock that moves only when told to: tests advance it instead of sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, timestamp: float) -> None:
        with self._lock:
            self._now = float(timestamp)


class AcceleratedClock:
    """Simulated time running `speedup` times faster than the wall clock, from `start`.

    The demo uses it so a simulated day passes in minutes; `wall_seconds(sim)` converts back.
    """

    def __init__(self, speedup: float, start: float | None = None, wall: Clock | None = None) -> None:
        if speedup <= 0:
            raise ValueError("speedup must be > 0")
        self.speedup = float(speedup)
        self._wall = wall or SystemClock()
        self._wall_start = self._wall.now()
        self._start = self._wall_start if start is None else float(start)

    def now(self) -> float:
        return self._start + (self._wall.now() - self._wall_start) * self.speedup

    def wall_seconds(self, simulated_seconds: float) -> float:
        return simulated_seconds / self.speedup
