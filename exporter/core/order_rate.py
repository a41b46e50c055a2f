"""Kraken's per-pair order rate counter, estimated from the account's own order events: pure and clock-injected.

Kraken's arithmetic (its "Trading rate limits" article and the Spot trading limits guide), per pair:
- placing an order adds 1 (the fixed count, applied even when the order then fails validation);
- an amend adds 1 plus a penalty by the order's age: < 5 s +3, < 10 s +2, < 15 s +1, older nothing;
- a cancel adds a penalty by the order's age: < 5 s +8, < 10 s +6, < 15 s +5, < 45 s +4, < 90 s +2, < 300 s +1,
  older nothing; an order's age runs from when it was placed or last amended;
- fills and expiries add nothing; the counter decays continuously at the tier's rate and never goes below 0;
- over the tier's threshold every order on the pair fails with `EOrder:Rate limit exceeded`.

`RateCounter` holds one pair's counter as (value, time of value): an event decays the value to its time and adds
its amount, a read decays it to the read's time; O(1) per event. Events are applied in the order they come: one
dated before the last event (a clock step back, or a late row) is applied at the last event's time, so the counter
never decays backwards. Kraken's own number, when it is handed over (`report`), replaces the estimate and the
difference is kept (`estimate_error`), so an operator sees how honest the estimate is.

The 24h peak and the rejections of the last day are kept in 5-minute buckets (at most 289): a peak leaves the day at
most 5 minutes late, never early.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

from .thresholds import ORDER_RATE_HIGH_RATIO
from .windows import DAY_SECONDS

TIERS = ("starter", "intermediate", "pro")
RATE_LIMIT_REASON = "EOrder:Rate limit exceeded"
HIGH_RATIO = ORDER_RATE_HIGH_RATIO  # the warning's edge: the counter above 80% of the threshold (alerts, advise)
BUCKET_SECONDS = 300.0

# (age below which, penalty), youngest first: Kraken's table
CANCEL_PENALTIES = ((5.0, 8.0), (10.0, 6.0), (15.0, 5.0), (45.0, 4.0), (90.0, 2.0), (300.0, 1.0))
AMEND_PENALTIES = ((5.0, 3.0), (10.0, 2.0), (15.0, 1.0))
PLACE_COST = 1.0
PENDING_MAX = 1024  # placements a hook may leave pending before it applies them
AMEND_FIXED = 1.0


class Tier(NamedTuple):
    """One verification tier's walls: the open-order limit per pair, the rate counter's threshold and decay."""

    name: str
    open_order_limit: int
    rate_threshold: float
    rate_decay: float  # per second


TIER_WALLS = {
    "starter": Tier("starter", 60, 60.0, 1.0),
    "intermediate": Tier("intermediate", 80, 125.0, 2.34),
    "pro": Tier("pro", 225, 180.0, 3.75),
}


def tier(name: object) -> Tier:
    """The tier named `name` (case-insensitive), or ValueError naming the choices."""
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in TIER_WALLS:
        raise ValueError(f"kraken tier must be one of {', '.join(TIERS)}, got {name!r}")
    return TIER_WALLS[key]


MAX_RATE_THRESHOLD = 100_000.0  # a `maxratecount` above this is no threshold of Kraken's


def check_max_rate_count(value: object) -> float | None:
    """Kraken's `maxratecount` as a threshold: a finite number in (0, MAX_RATE_THRESHOLD], else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if 0.0 < number <= MAX_RATE_THRESHOLD else None


def _penalty(table: tuple[tuple[float, float], ...], age: float) -> float:
    for below, amount in table:
        if age < below:
            return amount
    return 0.0


def cancel_cost(age: float) -> float:
    """What cancelling an order `age` seconds old adds (a negative age, from clocks apart, counts as 0 s)."""
    return _penalty(CANCEL_PENALTIES, age)


def amend_cost(age: float) -> float:
    """What amending an order `age` seconds old adds: the fixed 1 and the penalty."""
    return AMEND_FIXED + _penalty(AMEND_PENALTIES, age)


class RateReading(NamedTuple):
    """One pair's rate counter at one instant (what /metrics and /api/status show)."""

    counter: float
    threshold: float
    peak_1d: float
    limited_1d: int
    limited_total: int
    estimate_error: float | None  # Kraken's last reported value minus our estimate then (None: never reported)
    tier: str
    threshold_source: str = "tier"  # "kraken": the account's own `maxratecount` (the stream's ack); "tier": the tier's

    @property
    def utilization(self) -> float:
        return min(1.0, max(0.0, self.counter / self.threshold)) if self.threshold > 0 else 0.0


class RateCounter:
    """One pair's order rate counter. Not locked: the owner (a telemetry) holds its lock around every call."""

    __slots__ = ("_bucket_end", "_buckets", "_closed_rejections", "_current", "_peaks", "at", "decay",
                 "estimate_error", "limited_total", "pending", "threshold", "threshold_source", "tier_name", "value")

    def __init__(self, walls: Tier) -> None:
        self.threshold = walls.rate_threshold
        self.decay = walls.rate_decay
        self.tier_name = walls.name
        self.threshold_source = "tier"
        self.value = 0.0
        self.at = -math.inf  # the time of `value` (the latest event applied)
        self.limited_total = 0
        self.estimate_error: float | None = None
        self._buckets: deque[list[float]] = deque()  # closed buckets [start, peak, rejections], oldest first
        self._closed_rejections = 0  # the rejections in `_buckets`
        self._peaks: deque[tuple[float, float]] = deque()  # closed buckets' (start, peak), the peaks decreasing
        self._current: list[float] = [0.0, 0.0, 0.0]  # the newest bucket, open
        self._bucket_end = -math.inf  # events before this go into `_current` (-inf: there is none yet)
        # placements not applied yet, in order (a hook appends, cheaply; every other call applies them first; the
        # appender applies them itself at PENDING_MAX, so the list stays bounded without any reader)
        self.pending: list[float] = []

    # ---- events (each O(1))

    def fold(self) -> None:
        """Apply the pending placements."""
        pending = self.pending
        if pending:
            for at in pending:
                self._add(PLACE_COST, at)
            pending.clear()

    def add(self, amount: float, at: float) -> None:
        """An event adding `amount` at `at` (applied at the last event's time when `at` is before it)."""
        if self.pending:
            self.fold()
        self._add(amount, at)

    def _add(self, amount: float, at: float) -> None:
        last = self.at
        if at > last:  # (the first event: decayed from -inf, so from 0)
            value = self.value - self.decay * (at - last)
            value = (value if value > 0.0 else 0.0) + amount
            self.at = last = at
        else:
            value = self.value + amount
        self.value = value
        current = self._current if last < self._bucket_end else self._bucket(last)
        if value > current[1]:
            current[1] = value

    def placed(self, at: float) -> None:
        self.add(PLACE_COST, at)

    def cancelled(self, at: float, age: float) -> None:
        self.add(cancel_cost(age), at)

    def amended(self, at: float, age: float) -> None:
        self.add(amend_cost(age), at)

    def rejected(self, at: float) -> None:
        """An order refused with `EOrder:Rate limit exceeded` (its fixed +1 is Kraken's to count: a placement
        event, when the stream sends one, adds it)."""
        self.fold()
        self.limited_total += 1
        self._bucket(max(at, self.at))[2] += 1

    def account_threshold(self, value: float) -> None:
        """The account's own threshold (Kraken's `maxratecount`): preferred to the tier's from here on. When it is
        another tier's threshold, that tier's decay comes with it (Kraken's thresholds name the tiers)."""
        self.fold()
        self.threshold = value
        self.threshold_source = "kraken"
        for walls in TIER_WALLS.values():
            if walls.rate_threshold == value:
                self.decay = walls.rate_decay

    def report(self, value: float, at: float) -> None:
        """Kraken's own counter `value` at `at` (not before the last event): preferred from here on."""
        self.fold()
        self.estimate_error = value - self.value_at(at)
        self.value = value
        self.at = max(at, self.at)
        bucket = self._bucket(self.at)
        if value > bucket[1]:
            bucket[1] = value

    # ---- reads

    def value_at(self, now: float) -> float:
        self.fold()
        if now <= self.at:
            return self.value
        return max(0.0, self.value - self.decay * (now - self.at))

    def reading(self, now: float, prune: bool = False) -> RateReading:
        """The counter at `now`, its 24h peak and rejections (a bucket reaching into the day counts whole). O(1)
        amortized: `prune` (a read at the owner's clock, never a caller's other time) lets go of what left the day."""
        self.fold()
        start = now - DAY_SECONDS
        if prune:
            self._prune(start)
        value = self.value_at(now)
        peak, limited = value, self._closed_rejections
        for bucket_start, _, rejections in self._buckets:  # those that left the day before `now`, not yet let go
            if bucket_start + BUCKET_SECONDS > start:
                break
            limited -= int(rejections)
        for bucket_start, bucket_peak in self._peaks:  # the first in the day is the day's highest closed bucket
            if bucket_start + BUCKET_SECONDS > start:
                peak = max(peak, bucket_peak)
                break
        current = self._current
        if self._bucket_end > -math.inf and current[0] + BUCKET_SECONDS > start:
            peak = max(peak, current[1])
            limited += int(current[2])
        return RateReading(value, self.threshold, peak, limited, self.limited_total, self.estimate_error,
                           self.tier_name, self.threshold_source)

    def _bucket(self, at: float) -> list[float]:
        """The bucket of `at` (not before the newest): a new one when `at` is past the newest's end, the newest
        closed then."""
        if at < self._bucket_end:
            return self._current
        start = at - at % BUCKET_SECONDS if math.isfinite(at) else 0.0
        if self._bucket_end > -math.inf:
            closed = self._current
            self._buckets.append(closed)
            self._closed_rejections += int(closed[2])
            peaks = self._peaks
            while peaks and peaks[-1][1] <= closed[1]:
                peaks.pop()
            peaks.append((closed[0], closed[1]))
        self._current = [start, 0.0, 0.0]
        self._bucket_end = start + BUCKET_SECONDS
        self._prune(start - DAY_SECONDS)
        return self._current

    def _prune(self, horizon: float) -> None:
        """Let go of the closed buckets that end at or before `horizon`."""
        buckets, peaks = self._buckets, self._peaks
        while buckets and buckets[0][0] + BUCKET_SECONDS <= horizon:
            self._closed_rejections -= int(buckets.popleft()[2])
        while peaks and peaks[0][0] + BUCKET_SECONDS <= horizon:
            peaks.popleft()
