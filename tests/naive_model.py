"""A naive model of `CapacityTelemetry` for the property tests: plain lists and dicts, no amortization, no index.

It is fed only the calls the test's own generators marked valid (each generated value carries its verdict), and
it implements the documented rules directly: stamps are the highest clock reading of an accepted call; an item
leaves when it is stamped before `max(clock readings) - 24h` (the hooks' readings and the telemetry's own
clock read by a read, never a `now` a caller passes to a read, which is evaluated and forgotten); percentiles are
`statistics.median` and `sorted[ceil(0.95 n) - 1]` of what is left; drift runs are judged at Kraken refreshes.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

DAY = 86_400.0


class NaiveTelemetry:
    def __init__(self, cap: int, kraken_stale_after: float, drift_threshold: int, drift_persist: float) -> None:
        self.cap = cap
        self.stale = kraken_stale_after
        self.threshold = drift_threshold
        self.persist = drift_persist
        self.hw = -math.inf
        self.mark = -math.inf
        self.opens: list[float] = []
        self.cancels: list[float] = []
        self.fills: list[tuple[float, float]] = []
        self.partial_seen: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.errors: Counter[str] = Counter()
        self.opens_total = self.cancels_total = 0
        self.fill_durations_total: list[float] = []
        self.active = self.recovery = self.slots = 0
        self.kraken: int | None = None
        self.kraken_at: float | None = None
        self.drift_since: float | None = None
        self.last_update: float | None = None
        self.canaries = 0

    # -- time --
    def accept(self, now: float) -> bool:
        behind = now < self.hw
        self.hw = max(self.hw, now)
        self.mark = max(self.mark, self.hw - DAY)
        self.last_update = now
        return behind

    def live(self, stamp: float | None) -> bool:
        return stamp is not None and stamp >= self.mark

    def _append(self, items: list, item, behind: bool) -> None:
        if behind:
            self.errors["clock_went_backwards"] += 1
        items[:] = [i for i in items if (i[0] if isinstance(i, tuple) else i) >= self.mark]
        items.append(item)
        if len(items) > self.cap:
            items.pop(0)
            self.errors["window_overflow"] += 1

    # -- hooks (valid calls only; rejections are counted by `reject`) --
    def reject(self, kind: str) -> None:
        self.errors[kind] += 1

    def open(self, now: float, txid: str, vol: float, vol_exec: float) -> None:
        behind = self.accept(now)
        if self.live(self.finished.get(txid)):
            return
        if self.live(self.partial_seen.get(txid)):
            self.partial_seen[txid] = self.hw
            return
        if 0 < vol_exec < vol:
            self.partial_seen[txid] = self.hw
            self.opens_total += 1
            self._append(self.opens, self.hw, behind)

    def closed(self, now: float, txid: str, placed: float | None) -> None:
        behind = self.accept(now)
        self.partial_seen.pop(txid, None)
        if self.live(self.finished.get(txid)):
            return
        self.finished[txid] = self.hw
        if placed is not None:
            duration = now - placed
            self.fill_durations_total.append(duration)
            self._append(self.fills, (self.hw, duration), behind)

    def ended(self, now: float, txid: str, vol_exec: float) -> None:
        behind = self.accept(now)
        self.partial_seen.pop(txid, None)
        if self.live(self.finished.get(txid)):
            return
        self.finished[txid] = self.hw
        if vol_exec > 0:
            self.cancels_total += 1
            self.canaries += 1
            self._append(self.cancels, self.hw, behind)

    def pending(self, now: float) -> None:
        self.accept(now)

    def counts(self, now: float, active: int | None, recovery: int | None, slots: int | None) -> None:
        self.accept(now)
        self.active = self.active if active is None else active
        self.recovery = self.recovery if recovery is None else recovery
        self.slots = self.slots if slots is None else slots

    def kraken_refresh(self, now: float, count: int, at: float | None, malformed: int = 0) -> None:
        """`at` None: no fetched_at given, so the newest reading there is: stamped with the newest clock reading."""
        if at is not None and self.kraken_at is not None and at < self.kraken_at:
            self.reject("invalid_fetched_at")
            return
        behind = self.accept(now)
        if at is None:
            at = self.hw
            if behind:
                self.errors["clock_went_backwards"] += 1
        if self.kraken_at is None or at - self.kraken_at > self.stale:
            self.drift_since = None
        self.kraken, self.kraken_at = count, at
        if abs(count - (self.active + self.recovery)) < self.threshold:
            self.drift_since = None
        elif self.drift_since is None:
            self.drift_since = at
        self.errors["malformed_kraken_row"] += malformed

    def unavailable(self, now: float) -> None:
        self.accept(now)
        self.kraken = self.kraken_at = self.drift_since = None

    # -- reads --
    def read_clock(self, clock_now: float) -> None:
        """A read consults the telemetry's own clock: only that reading moves the mark."""
        if math.isfinite(clock_now):
            self.mark = max(self.mark, clock_now - DAY)

    def read(self, now: float) -> dict:
        """The block at `now`, a caller's time or the clock's: evaluated at it, never saved."""
        mark = max(self.mark, now - DAY)
        opens = [s for s in self.opens if s >= mark]
        cancels = [s for s in self.cancels if s >= mark]
        values = [v for s, v in self.fills if s >= mark]
        kraken = self.kraken
        if kraken is not None and (self.kraken_at is None or now - self.kraken_at > self.stale):
            kraken = None
        internal = self.active + self.recovery
        persistent = (kraken is not None and self.drift_since is not None
                      and abs(kraken - internal) >= self.threshold and now - self.drift_since >= self.persist)
        ordered = sorted(values)
        return {
            "partial_fill_open_events_1d": len(opens),
            "partial_fill_cancel_events_1d": len(cancels),
            "median_fill_seconds_1d": float(statistics.median(values)) if values else None,
            "p95_fill_seconds_1d": float(ordered[max(1, math.ceil(0.95 * len(ordered))) - 1]) if ordered else None,
            "open_orders_internal": internal,
            "open_orders_kraken": kraken,
            "drift_persistent": persistent,
        }
