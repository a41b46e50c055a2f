"""Rolling 24h windows and the two percentiles the reference bot reports.

Definitions match robjohncolson/doge-grid-bot so operators see the same numbers in its dashboard and ours:
median is `statistics.median` (mean of the two middle values for an even count), p95 is the nearest rank
`sorted[ceil(0.95 * n) - 1]`. Both are None for an empty window. An event exactly 24h old is still in the
window (the reference bot drops only events older than its cutoff).

Expiry is a *mark*: `expire(horizon)` raises the window's mark to `horizon` (never lowers it) and an item is in
the window while its timestamp is at or after the mark. Items past the mark are removed from the front in
bounded batches (`budget`), so no single call does O(n) work; reads finish the removal before they count.
The caller (the telemetry) appends timestamps in non-decreasing order: it stamps events with the highest clock
reading seen so far, so a clock that went backwards loses no event and never breaks the ordering.

`RollingValueWindow` keeps its values in a `sortedcontainers.SortedList` beside the arrival order, so insert
and expiry are O(log n) and the median and p95 are two O(log n) index reads with no copy of the window.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable

from sortedcontainers import SortedList

DAY_SECONDS = 86_400.0
DEFAULT_MAX_EVENTS = 100_000
_UNBOUNDED = 1 << 62


def median(values: Iterable[float]) -> float | None:
    """`statistics.median`, or None when there are no values (the naive reference of `RollingValueWindow`)."""
    data = list(values)
    return float(statistics.median(data)) if data else None


def percentile_nearest_rank(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile: `sorted[ceil(p/100 * n) - 1]`, or None when there are no values."""
    data = sorted(values)
    if not data:
        return None
    return float(data[nearest_rank(len(data), p) - 1])


def nearest_rank(n: int, p: float) -> int:
    """The 1-based rank of the p-th percentile among n sorted values (`ceil(p/100 * n)`, at least 1)."""
    return max(1, math.ceil(p / 100.0 * n))


class RollingEventWindow:
    """Timestamps of events in the last 24h (partial-open, partial-cancel): a deque of floats, 32 B an event."""

    __slots__ = ("max_items", "span_seconds", "_mark", "_stamps")

    def __init__(self, span_seconds: float = DAY_SECONDS, max_items: int = DEFAULT_MAX_EVENTS) -> None:
        self.span_seconds = float(span_seconds)
        self.max_items = int(max_items)
        self._stamps: deque[float] = deque()
        self._mark = -math.inf

    def append(self, ts: float) -> float | None:
        """Record an event at `ts` (not before the previous one). Returns the timestamp the cap pushed out, if
        any: the caller counts it as overflow when it was still in the window (at or after the mark)."""
        stamps = self._stamps
        stamps.append(ts)
        if len(stamps) > self.max_items:
            return stamps.popleft()
        return None

    def expire(self, horizon: float, budget: int = _UNBOUNDED) -> int:
        """Raise the mark to `horizon` and remove up to `budget` expired items; returns how many it removed."""
        if horizon > self._mark:
            self._mark = horizon
        stamps, mark = self._stamps, self._mark
        removed = 0
        while removed < budget and stamps and stamps[0] < mark:
            stamps.popleft()
            removed += 1
        return removed

    def front(self) -> float:
        """The oldest timestamp held (expired or not), or +inf when empty."""
        return self._stamps[0] if self._stamps else math.inf

    def count(self, now: float) -> int:
        """Events at or after `now - span` (and the mark)."""
        self.expire(now - self.span_seconds)
        return len(self._stamps)

    def __len__(self) -> int:
        return len(self._stamps)


class RollingValueWindow:
    """(timestamp, value) pairs in the last 24h (fill durations), with an order-statistics index of the values.

    `append` is O(1): a new value waits in `pending` until a reader moves it into the sorted index (`index`,
    O(log n) a value, in bounded batches), so the writer never pays for the index. The indexed values are
    always the oldest ones held, which is what lets expiry take a value out of the index or the queue.
    """

    __slots__ = ("max_items", "span_seconds", "_mark", "_pending", "_sorted", "_stamps", "_values")

    def __init__(self, span_seconds: float = DAY_SECONDS, max_items: int = DEFAULT_MAX_EVENTS) -> None:
        self.span_seconds = float(span_seconds)
        self.max_items = int(max_items)
        self._stamps: deque[float] = deque()
        self._values: deque[float] = deque()
        self._pending: deque[float] = deque()  # the newest values, not in the index yet
        self._sorted: SortedList = SortedList()
        self._mark = -math.inf

    def append(self, ts: float, value: float) -> float | None:
        """Record `value` at `ts` (not before the previous one); returns the timestamp the cap pushed out, if any."""
        stamps = self._stamps
        stamps.append(ts)
        self._values.append(value)
        self._pending.append(value)
        if len(stamps) > self.max_items:
            out = stamps[0]
            self._pop_oldest()
            return out
        return None

    def _pop_oldest(self) -> None:
        self._stamps.popleft()
        value = self._values.popleft()
        if self._sorted:
            self._sorted.remove(value)
        else:
            self._pending.popleft()

    def expire(self, horizon: float, budget: int = _UNBOUNDED) -> int:
        """Raise the mark to `horizon` and remove up to `budget` expired items; returns how many it removed."""
        if horizon > self._mark:
            self._mark = horizon
        stamps, mark = self._stamps, self._mark
        removed = 0
        while removed < budget and stamps and stamps[0] < mark:
            self._pop_oldest()
            removed += 1
        return removed

    def index(self, budget: int = _UNBOUNDED) -> int:
        """Move up to `budget` pending values into the sorted index; returns how many it moved."""
        pending, add = self._pending, self._sorted.add
        moved = min(budget, len(pending))
        for _ in range(moved):
            add(pending.popleft())
        return moved

    @property
    def indexed(self) -> bool:
        """True when every value held is in the index (the percentiles may be read)."""
        return not self._pending

    def front(self) -> float:
        """The oldest timestamp held (expired or not), or +inf when empty."""
        return self._stamps[0] if self._stamps else math.inf

    def median(self) -> float | None:
        """`statistics.median` of the values held, in O(log n) (expire and index first)."""
        self.index()
        data, n = self._sorted, len(self._sorted)
        if n == 0:
            return None
        mid = n // 2
        return float(data[mid]) if n % 2 else (data[mid - 1] + data[mid]) / 2

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of the values held, in O(log n) (expire and index first)."""
        self.index()
        n = len(self._sorted)
        return None if n == 0 else float(self._sorted[nearest_rank(n, p) - 1])

    def values(self, now: float) -> list[float]:
        """The values at or after `now - span`, in arrival order (a copy: for tests and the naive reference)."""
        self.expire(now - self.span_seconds)
        return list(self._values)

    def __len__(self) -> int:
        return len(self._stamps)
