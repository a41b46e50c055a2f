"""`EventRecord`: the order events the hooks recorded, the txids they remember, the marks of time, and how all of
it expires and is read.

Time. Every accepted hook call raises the high-water mark `hw` (the highest clock reading of an accepted call);
events are stamped with `hw`, so a clock that goes backwards loses no event and never breaks the windows' order.
Everything stamped before the expiry `mark` has left the 24h windows and the txid table: the mark is `max(hw, the
telemetry's own clock at a read) - 24h`, so an event exactly 24h old is still counted, as in the reference bot. A
caller's time passed to a read is evaluated against the record (`window_at`) and never moves the mark.

Removal is the reader's job, in short batches under the lock (`move_on`), so no hook does O(n) (or any) expiry work
and a hook never waits long for a reader; the caps bound memory between reads, and lookups compare stamps with the
mark, so what has left the window is gone for the hooks even while it still takes memory.

The telemetry's lock guards every method here; `release` (freeing what the txid table let go) runs outside it.
"""

from __future__ import annotations

from typing import NamedTuple

from .counters import FILL_DURATION_BUCKETS, EventCounts
from .txids import Generation, TxidTable, forgotten_early
from .windows import DAY_SECONDS, RollingEventWindow, RollingValueWindow, median, percentile_nearest_rank

READ_EXPIRY_BUDGET = 512  # expired items (and fills to index) a read handles per hold of the lock


class WindowCounts(NamedTuple):
    """The 24h numbers of the block at one time."""

    partial_open: int
    partial_cancel: int
    median: float | None
    p95: float | None
    later_fills: list[float] | None = None  # a time ahead of the clock: the fills held then, for `settled()`

    def settled(self) -> WindowCounts:
        """The percentiles of `later_fills`, computed from the copy (outside the lock)."""
        if self.later_fills is None:
            return self
        fills = self.later_fills
        return WindowCounts(self.partial_open, self.partial_cancel, median(fills), percentile_nearest_rank(fills, 95))


class EventRecord:
    __slots__ = ("cancels_total", "fill_buckets", "fill_sum", "fills", "hw", "last_update", "mark", "opens_total",
                 "partial_cancel", "partial_open", "txids")

    def __init__(self, max_window_events: int, max_txids: int) -> None:
        self.partial_open = RollingEventWindow(max_items=max_window_events)
        self.partial_cancel = RollingEventWindow(max_items=max_window_events)
        self.fills = RollingValueWindow(max_items=max_window_events)  # fill durations
        self.txids = TxidTable(max_txids)
        self.hw = -float("inf")  # the highest clock reading of an accepted hook call: the stamp of new events
        self.mark = -float("inf")  # everything stamped before this has left the windows and the txid table
        self.last_update: float | None = None  # the clock reading of the last accepted call: the hooks' liveness
        self.opens_total = 0  # since creation (the counters /metrics exports)
        self.cancels_total = 0
        self.fill_buckets = [0] * (len(FILL_DURATION_BUCKETS) + 1)
        self.fill_sum = 0.0

    # ---- the hooks' side (the `open` poll and a fill write theirs out in `CapacityTelemetry`, for speed)

    def accept(self, now: float) -> bool:
        """An accepted call at `now` raises `hw` (and with it the mark); True when the clock is behind `hw`."""
        self.last_update = now
        if now < self.hw:
            return True
        self.hw = now
        if now - DAY_SECONDS > self.mark:
            self.mark = now - DAY_SECONDS
        return False

    def add_partial_cancel(self) -> bool:
        """A partial-cancel at `hw`; True when the window's cap pushed out an event still in the window."""
        self.cancels_total += 1
        out = self.partial_cancel.append(self.hw)
        return out is not None and out >= self.mark

    # ---- the reader's side

    def move_on(self, horizon: float, budget: int = READ_EXPIRY_BUDGET) -> bool:
        """Raise the mark to `horizon` (the telemetry's clock minus 24h), then do one batch of the reader's work:
        expire up to `budget` items, index up to `budget` fills. True when nothing is left to do."""
        if horizon > self.mark:
            self.mark = horizon
        mark = self.mark
        done = True
        for window in (self.partial_open, self.partial_cancel, self.fills):
            budget -= window.expire(mark, budget)
            if window.front() < mark:
                done = False
        self.txids.expire(mark)
        if not done:
            return False
        return not (self.fills.index(READ_EXPIRY_BUDGET) == READ_EXPIRY_BUDGET and not self.fills.indexed)

    def window_at(self, now: float) -> WindowCounts:
        """The 24h numbers at `now` (after `move_on`). A `now` whose day starts after the mark leaves out what will
        have left the windows by then, without removing it: the fills it keeps are copied, to be `settled()`."""
        start = now - DAY_SECONDS
        if start <= self.mark:
            return WindowCounts(len(self.partial_open), len(self.partial_cancel), self.fills.median(),
                                self.fills.percentile(95))
        return WindowCounts(self.partial_open.count_since(start), self.partial_cancel.count_since(start), None, None,
                            self.fills.values_since(start))

    def totals(self, hook_errors: dict[str, int], created: float | None) -> EventCounts:
        return EventCounts(
            partial_open_total=self.opens_total,
            partial_cancel_total=self.cancels_total,
            fill_bucket_counts=tuple(self.fill_buckets),
            fill_sum=self.fill_sum,
            hook_errors=hook_errors,
            created=created,
        )


def release(dropped: list[tuple[Generation, Generation]], mark: float) -> int:
    """Free the txid generations a table let go (outside the lock); returns how many txids it forgot early."""
    early = forgotten_early(dropped, mark)
    dropped.clear()
    return early
