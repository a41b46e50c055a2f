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

`RollingValueWindow` keeps its values in an order-statistics index (`SortedFloats`) beside the arrival order, so
insert and expiry are O(log n) and the median and p95 are two O(log n) rank reads with no copy of the window.
"""

from __future__ import annotations

import math
import statistics
from array import array
from bisect import bisect_left
from collections.abc import Iterable

from .sortedfloats import SortedFloats

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


_COMPACT_AT = 4096  # removed items kept at the front of an array before it is compacted (amortized O(1))


class _RollingWindow:
    """What both windows share: timestamps in an `array('d')` (8 bytes an item, which the garbage collector never
    has to walk: a deque of 100,000 floats costs every full collection), the head index, the mark and the cap."""

    __slots__ = ("max_items", "span_seconds", "_head", "_mark", "_stamps")

    def __init__(self, span_seconds: float = DAY_SECONDS, max_items: int = DEFAULT_MAX_EVENTS) -> None:
        self.span_seconds = float(span_seconds)
        self.max_items = int(max_items)
        self._stamps = array("d")
        self._head = 0  # items before it are removed
        self._mark = -math.inf

    def _over_cap(self) -> float:
        """An append went over the cap: remove the oldest item and return its timestamp (the caller counts it as
        overflow when it was still in the window, at or after the mark)."""
        out = self._stamps[self._head]
        self._pop_oldest()
        return out

    def _pop_oldest(self) -> None:
        self._head = head = self._head + 1
        if head >= _COMPACT_AT and head * 2 >= len(self._stamps):
            self._compact(head)
            self._head = 0

    def _compact(self, head: int) -> None:
        del self._stamps[:head]

    def expire(self, horizon: float, budget: int = _UNBOUNDED) -> int:
        """Raise the mark to `horizon` and remove up to `budget` expired items; returns how many it removed."""
        if horizon > self._mark:
            self._mark = horizon
        removed = 0
        while removed < budget and len(self._stamps) > self._head and self._stamps[self._head] < self._mark:
            self._pop_oldest()
            removed += 1
        return removed

    def count_since(self, start: float) -> int:
        """How many items held are stamped at or after `start` (a binary search; nothing is removed)."""
        return len(self._stamps) - bisect_left(self._stamps, start, self._head)

    def front(self) -> float:
        """The oldest timestamp held (expired or not), or +inf when empty."""
        return self._stamps[self._head] if len(self._stamps) > self._head else math.inf

    def __len__(self) -> int:
        return len(self._stamps) - self._head


class RollingEventWindow(_RollingWindow):
    """Timestamps of events in the last 24h (partial-open, partial-cancel): 8 bytes an event."""

    __slots__ = ()

    def append(self, ts: float) -> float | None:
        """Record an event at `ts` (not before the previous one); returns the timestamp the cap pushed out, if any."""
        stamps = self._stamps
        stamps.append(ts)
        return self._over_cap() if len(stamps) - self._head > self.max_items else None

    def count(self, now: float) -> int:
        """Events at or after `now - span` (and the mark)."""
        self.expire(now - self.span_seconds)
        return len(self)


class RollingValueWindow(_RollingWindow):
    """(timestamp, value) pairs in the last 24h (fill durations), with an order-statistics index of the values.

    Timestamps and values sit in two `array('d')` (16 bytes a fill, nothing for the garbage collector to walk);
    the values are also in a `SortedFloats` (arrays too). `append` is O(1): a new value waits past the indexed
    ones until a reader moves it into the index (`index`, O(log n) a value, in bounded batches), so the writer
    never pays for the index. The indexed values are always the oldest held, which is what lets expiry take a
    value out of the index, or out of the waiting ones.
    """

    __slots__ = ("_indexed", "_sorted", "_values")

    def __init__(self, span_seconds: float = DAY_SECONDS, max_items: int = DEFAULT_MAX_EVENTS) -> None:
        super().__init__(span_seconds, max_items)
        self._values = array("d")
        self._indexed = 0  # how many of the oldest items held are in the sorted index
        self._sorted = SortedFloats()

    def append(self, ts: float, value: float) -> float | None:
        """Record `value` at `ts` (not before the previous one); returns the timestamp the cap pushed out, if any."""
        stamps = self._stamps
        stamps.append(ts)
        self._values.append(value)
        return self._over_cap() if len(stamps) - self._head > self.max_items else None

    def _pop_oldest(self) -> None:
        if self._indexed:
            self._sorted.remove(self._values[self._head])
            self._indexed -= 1
        super()._pop_oldest()

    def _compact(self, head: int) -> None:
        del self._stamps[:head]
        del self._values[:head]

    def index(self, budget: int = _UNBOUNDED) -> int:
        """Move up to `budget` waiting values into the sorted index; returns how many it moved."""
        start = self._head + self._indexed
        end = min(len(self._values), start + budget)
        add, values = self._sorted.add, self._values
        for i in range(start, end):
            add(values[i])
        self._indexed += end - start
        return end - start

    @property
    def indexed(self) -> bool:
        """True when every value held is in the index (the percentiles may be read)."""
        return self._head + self._indexed == len(self._values)

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

    def values_since(self, start: float) -> list[float]:
        """A copy of the values held that are stamped at or after `start`, in arrival order (nothing is removed)."""
        return self._values[bisect_left(self._stamps, start, self._head):].tolist()

    def values(self, now: float) -> list[float]:
        """The values at or after `now - span`, in arrival order (a copy: for tests and the naive reference)."""
        self.expire(now - self.span_seconds)
        return self._values[self._head:].tolist()
