"""Arithmetic on raw Prometheus samples, (unix seconds, value) in time order, shared by the baseline and the advisor.

Windows are left-open and right-closed, (start, end], so consecutive days never share a sample. A step
between two samples belongs to the window holding the later one (the step is seen then), so counter increases
and slot additions look back at the last sample before the window. Durations count samples times the scrape
interval seen in the data: a gap counts as nothing.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter, sub

Sample = tuple[float, float]


def _after(samples: Sequence[Sample], t: float) -> int:
    """The index of the first sample later than `t` (a binary search on the times)."""
    return bisect.bisect_right(samples, t, key=itemgetter(0))


def in_window(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    """The samples with start < t <= end."""
    return list(samples[_after(samples, start):_after(samples, end)])


def with_predecessor(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    """The window's samples, preceded by the last sample at or before `start` when there is one."""
    return list(samples[max(0, _after(samples, start) - 1):_after(samples, end)])


def scrape_interval(samples: Sequence[Sample]) -> float | None:
    """The median step between consecutive samples (gaps are rare, so the median is the scrape interval), to ms."""
    steps = [b[0] - a[0] for a, b in zip(samples, samples[1:], strict=False) if b[0] > a[0]]
    return round(statistics.median(steps), 3) if steps else None


class Steps:
    """The steps between consecutive samples of one series, counted as its times arrive in order, chunk by chunk:
    `interval()` is `scrape_interval()` of the whole series without holding it."""

    def __init__(self) -> None:
        self.counts: Counter[float] = Counter()
        self.last: float | None = None

    def add(self, times: Sequence[float]) -> None:
        """The next times of the series (later than every time added before)."""
        if not times:
            return
        if self.last is not None:
            self.counts[times[0] - self.last] += 1
        self.counts.update(map(sub, times[1:], times[:-1]))
        self.last = times[-1]

    def interval(self) -> float | None:
        """The median of the positive steps, to ms, as `scrape_interval` gives it; None with none."""
        ordered = sorted((step, n) for step, n in self.counts.items() if step > 0)
        total = sum(n for _, n in ordered)
        if not total:
            return None

        def nth(index: int) -> float:
            for step, n in ordered:
                if index < n:
                    return step
                index -= n
            raise IndexError(index)

        middle = nth(total // 2) if total % 2 else (nth(total // 2 - 1) + nth(total // 2)) / 2
        return round(middle, 3)


def counter_increase(samples: Sequence[Sample], start: float, end: float) -> tuple[int, float | None] | None:
    """(increase, time of the last increase) of a counter in (start, end]; a drop is a reset from zero.

    None when the window has no sample. The increase is rounded to an integer (event counters count events).
    """
    window = with_predecessor(samples, start, end)
    if not in_window(window, start, end):
        return None
    total, last = 0.0, None
    for (_, before), (t, after) in zip(window, window[1:], strict=False):
        step = after - before if after >= before else after
        if step > 0:
            total += step
            last = t
    return int(round(total)), last


def positive_steps(samples: Sequence[Sample], start: float, end: float) -> tuple[int, float | None] | None:
    """(sum of the rises between consecutive samples, time of the last rise) in (start, end]; None with no sample.

    Unlike a counter, a drop is a drop: a slot removed and added again counts 1.
    """
    window = with_predecessor(samples, start, end)
    if not in_window(window, start, end):
        return None
    total, last = 0.0, None
    for (_, before), (t, after) in zip(window, window[1:], strict=False):
        if after > before:
            total += after - before
            last = t
    return int(round(total)), last


def count_where(samples: Sequence[Sample], value: float) -> int:
    """How many of the samples have `value`."""
    return sum(1 for _, v in samples if v == value)


def as_number(value: float | None) -> int | float | None:
    """An integral float as an int (counts in JSON), anything else unchanged."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value
