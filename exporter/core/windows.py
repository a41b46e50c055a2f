"""Rolling 24h windows and the two percentiles the reference bot reports.

Definitions match robjohncolson/doge-grid-bot so operators see the same numbers in its dashboard and ours:
median is `statistics.median` (mean of the two middle values for an even count), p95 is the nearest rank
`sorted[ceil(0.95 * n) - 1]`. Both are None for an empty window.

Windows are trimmed on every read and write. Timestamps are kept non-decreasing: an event stamped before
the newest one (the clock went backwards) is stored at the newest timestamp, so it is neither lost nor able
to break trimming; `append` reports that it clamped so the caller can count it.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable

DAY_SECONDS = 86_400.0
DEFAULT_MAX_EVENTS = 100_000


def median(values: Iterable[float]) -> float | None:
    """`statistics.median`, or None when there are no values."""
    data = list(values)
    return float(statistics.median(data)) if data else None


def percentile_nearest_rank(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile: `sorted[ceil(p/100 * n) - 1]`, or None when there are no values."""
    data = sorted(values)
    if not data:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(data)))
    return float(data[rank - 1])


class _Window:
    """Shared trimming for both windows: items are tuples whose first element is the timestamp."""

    def __init__(self, span_seconds: float = DAY_SECONDS, max_items: int = DEFAULT_MAX_EVENTS) -> None:
        self.span_seconds = float(span_seconds)
        self.max_items = int(max_items)
        self._items: deque[tuple[float, float]] = deque()
        self.overflowed = 0

    def _add(self, ts: float, value: float) -> bool:
        clamped = bool(self._items) and ts < self._items[-1][0]
        if clamped:
            ts = self._items[-1][0]
        self._items.append((ts, value))
        if len(self._items) > self.max_items:
            self._items.popleft()
            self.overflowed += 1
        self.trim(ts)
        return clamped

    def trim(self, now: float) -> None:
        """Drop items older than the span; an item exactly `span` old is dropped too."""
        cutoff = now - self.span_seconds
        items = self._items
        while items and items[0][0] <= cutoff:
            items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class RollingEventWindow(_Window):
    """Timestamps of events in the last 24h (partial-open, partial-cancel)."""

    def append(self, ts: float) -> bool:
        """Record an event at `ts`; True when `ts` was clamped forward (clock went backwards)."""
        return self._add(ts, 1.0)

    def count(self, now: float) -> int:
        self.trim(now)
        return len(self._items)


class RollingValueWindow(_Window):
    """(timestamp, value) pairs in the last 24h (fill durations)."""

    def append(self, ts: float, value: float) -> bool:
        """Record `value` at `ts`; True when `ts` was clamped forward (clock went backwards)."""
        return self._add(ts, float(value))

    def values(self, now: float) -> list[float]:
        self.trim(now)
        return [v for _, v in self._items]
