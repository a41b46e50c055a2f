"""`CapacityTelemetry`: the object a bot owns and calls from its poll loop (spec sections 1, 2, 4, 5).

The hooks never raise and never do I/O under the lock. Each call either records a fully valid observation or
counts exactly one kind of bad input (`hook_errors`; `/metrics` exports them as
`krakenbot_hook_errors_total`), logs it at most once a minute per kind, and changes nothing else. One exception, for safety: a
`canceled`/`expired` row with a valid `vol_exec > 0` is a partial-cancel even when its `vol` is bad (counted as
a hook error too), because a possible phantom position must never be hidden by a flaw in another field.

Time. Every accepted hook call raises the high-water mark `hw` (the highest clock reading seen); events are
stamped with `hw`, so a clock that goes backwards loses no event (counted as `clock_went_backwards`). Everything
stamped before `max(hw, any read's now) - 24h` has left: an event exactly 24h old is still counted, as in the
reference bot. Removal is the reader's job, in short batches under the lock, so no hook does O(n) (or any)
expiry work and a hook never waits long for a reader; the caps bound memory between reads.

All state sits behind one lock; a read copies a handful of numbers under it and evaluates outside it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import logtext
from .capacity import CapacityFillHealth, CapacityInputs, evaluate
from .clock import Clock, SystemClock
from .counters import FILL_DURATION_BUCKETS, EventCounts
from .inputs import (
    MAX_TXID_LENGTH,
    ORDER_STATUSES,
    Rejected,
    check_count,
    check_settings,
    check_status,
    check_timestamp,
    check_txid,
    check_volume,
)
from .pairs import PairNames
from .reading import PairReading
from .thresholds import (
    DEFAULT_LIMIT,
    DEFAULT_SAFETY_RATIO,
    DRIFT_PERSIST_SECONDS,
    DRIFT_THRESHOLD,
    HOOK_STALE_AFTER_SECONDS,
    KRAKEN_STALE_AFTER_SECONDS,
)
from .txids import TxidTable
from .windows import DAY_SECONDS, RollingEventWindow, RollingValueWindow

log = logging.getLogger("kraken_capacity_exporter")

CANARY_MARKER = "PHANTOM_POSITION_CANARY"
MAX_CLOCK_AHEAD_SECONDS = 60.0  # how far Kraken's clock (a `closed_at`) may run ahead of ours
MAX_TRACKED_TXIDS = 100_000  # per table (partial-open txids, finished txids)
READ_EXPIRY_BUDGET = 512  # expired items a read removes per hold of the lock
_LOG_EVERY_SECONDS = 60.0
_MATCH_CACHE_SIZE = 1024
_BUCKETS = FILL_DURATION_BUCKETS
_bucket = bisect_left
_INF = math.inf
_STATUSES = {status: status for status in ORDER_STATUSES}  # the exact spellings, found without lowering


class _State(NamedTuple):
    """What a read copies under the lock; everything else is computed outside it."""

    inputs: CapacityInputs
    kraken_at: float | None
    last_update: float | None
    counts: EventCounts


class CapacityTelemetry:
    """Rolling 24h fill health plus open-order counts for one pair.

    Fed by the bot: `observe_order_status` for every polled order, `set_internal_counts` for its own
    bookkeeping, and `observe_kraken_open_orders` with the `OpenOrders` reply it already fetched.
    Read with `snapshot()` or `reading()`. Bad settings raise ValueError here; bad hook input never raises.
    """

    def __init__(
        self,
        pair: str,
        limit: int = DEFAULT_LIMIT,
        safety_ratio: float = DEFAULT_SAFETY_RATIO,
        *,
        clock: Clock | None = None,
        kraken_stale_after: float = KRAKEN_STALE_AFTER_SECONDS,
        stale_after: float = HOOK_STALE_AFTER_SECONDS,
        drift_threshold: int = DRIFT_THRESHOLD,
        drift_persist_seconds: float = DRIFT_PERSIST_SECONDS,
        max_window_events: int = 100_000,
    ) -> None:
        self.limit, self.safety_ratio = check_settings(
            limit, safety_ratio, kraken_stale_after=kraken_stale_after, stale_after=stale_after,
            drift_persist_seconds=drift_persist_seconds, drift_threshold=drift_threshold,
            max_window_events=max_window_events,
        )
        self.names = PairNames.offline(pair)
        self.kraken_stale_after = float(kraken_stale_after)
        self.stale_after = float(stale_after)
        self.drift_threshold = drift_threshold
        self.drift_persist_seconds = float(drift_persist_seconds)
        self.clock = clock or SystemClock()

        self._lock = threading.Lock()
        self._partial_open = RollingEventWindow(max_items=max_window_events)
        self._partial_cancel = RollingEventWindow(max_items=max_window_events)
        self._fill_durations = RollingValueWindow(max_items=max_window_events)
        self._partial_seen = TxidTable(MAX_TRACKED_TXIDS)  # txid -> stamp when last seen partially filled
        self._finished = TxidTable(MAX_TRACKED_TXIDS)  # txid -> stamp when it ended
        self._hw = -_INF  # highest clock reading of an accepted hook call: the stamp of new events
        self._mark = -_INF  # everything stamped before this has left the 24h windows and txid tables
        self._active = 0
        self._recovery = 0
        self._slots = 0
        self._kraken_count: int | None = None
        self._kraken_at: float | None = None
        self._drift_since: float | None = None
        self._last_update: float | None = None
        self._match_cache: dict[str, bool] = {}
        self._opens_total = 0
        self._cancels_total = 0
        self._fill_buckets = [0] * (len(FILL_DURATION_BUCKETS) + 1)
        self._fill_sum = 0.0
        self.hook_errors: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        started = self._now()
        self.window_started_at: float | None = float(started) if _finite(started) else None

    @property
    def clock(self) -> Clock:
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock
        self._now = clock.now

    @property
    def pair(self) -> str:
        """The exported `pair` label (Kraken's REST altname)."""
        return self.names.label

    def set_pair_names(self, names: PairNames) -> None:
        """Replace the offline aliases with the names Kraken's `AssetPairs` reported (label unchanged)."""
        with self._lock:
            self.names = PairNames(label=self.names.label, spellings=names.spellings | self.names.spellings)
            self._match_cache = {}

    # ---- hooks -------------------------------------------------------------------------------

    def observe_order_status(
        self,
        txid: Any,
        status: Any,
        vol: Any,
        vol_exec: Any,
        placed_at: Any = None,
        closed_at: Any = None,
        **context: Any,
    ) -> None:
        """Record one polled order (`status` as Kraken reports it); never raises.

        `placed_at` (Unix seconds) is when the order went live; for a `closed` order, its fill time runs from there
        to `closed_at` (Kraken's `closetm`, or the stream's `filled` timestamp), or to now when that is not given.
        `context` (e.g. slot=, kind=, local=) is only logged with the canary.
        """
        try:
            now = self._now()
            if now - now != 0.0:
                return self._reject(None, "invalid_clock", "is not a finite time", "now", now)
            if type(txid) is not str or not 0 < len(txid) <= MAX_TXID_LENGTH:
                checked = check_txid(txid)
                if isinstance(checked, Rejected):
                    return self._reject(now, *checked, "txid", txid)
                txid = checked
            kind = _STATUSES.get(status) if type(status) is str else None
            if kind is None:
                checked_status = check_status(status)
                if isinstance(checked_status, Rejected):
                    return self._reject(now, *checked_status, "status", status)
                kind = checked_status
            if kind != "open":
                if kind == "closed":
                    self._closed(now, txid, placed_at, closed_at)
                elif kind == "pending":
                    with self._lock:
                        self._accept(now)
                else:
                    self._ended(now, txid, kind, vol, vol_exec, context)
                return
            # `open`, the common poll: inlined, the cheapest path (`_accept` and `_event_added` are written out here on
            # purpose: calling them costs the common poll about 7% of issue 11's 3x hook-cost target)
            volume = executed = -1.0
            if type(vol) is str and type(vol_exec) is str:  # Kraken's own form: parsed inline
                try:
                    volume = float(vol)
                except ValueError:
                    return self._reject(now, "invalid_volume", "is not a number", "vol", vol)
                try:
                    executed = float(vol_exec)
                except ValueError:
                    if 0.0 <= volume < _INF:  # vol is fine, so vol_exec is the first bad field
                        return self._reject(now, "invalid_volume", "is not a number", "vol_exec", vol_exec)
            if not 0.0 <= executed <= volume < _INF:  # anything else: the careful path, vol first
                checked_vol = check_volume(vol)
                if isinstance(checked_vol, Rejected):
                    return self._reject(now, *checked_vol, "vol", vol)
                checked_exec = check_volume(vol_exec)
                if isinstance(checked_exec, Rejected):
                    return self._reject(now, *checked_exec, "vol_exec", vol_exec)
                volume, executed = checked_vol, checked_exec
                if executed > volume:
                    return self._reject(now, "vol_exec_exceeds_vol", f"> vol={logtext.text(vol)}", "vol_exec", vol_exec)
            with self._lock:
                behind = now < self._hw
                if not behind:
                    self._hw = now
                    if now - DAY_SECONDS > self._mark:
                        self._mark = now - DAY_SECONDS
                self._last_update = now
                mark = self._mark
                ended = self._finished.get(txid)
                if ended is not None and ended >= mark:  # already final: a late `open` row changes nothing
                    return
                seen_table = self._partial_seen
                seen = seen_table.get(txid)
                if seen is not None and seen >= mark:
                    if seen_table.put(txid, self._hw):
                        self._free_backlog(seen_table)
                    return
                if executed == 0.0 or executed == volume:
                    return
                hw = self._hw
                if seen_table.put(txid, hw):  # a new partial-open (an entry before the mark is forgotten)
                    self._free_backlog(seen_table)
                self._opens_total += 1
                if behind:
                    self._note("clock_went_backwards")
                out = self._partial_open.append(hw)
                if out is not None and out >= mark:
                    self._note("window_overflow")
        except Exception as exc:  # a hook must never raise into the bot's loop
            self._internal_error(exc)

    def set_internal_counts(
        self, active_orders: Any = None, recovery_orders: Any = None, slot_count: Any = None
    ) -> None:
        """The bot's own view: active + recovery orders, and its slot count. None leaves a value as is."""
        try:
            now = self._now()
            if now - now != 0.0:
                return self._reject(None, "invalid_clock", "is not a finite time", "now", now)
            values: list[int | None] = []
            for name, value in (("active_orders", active_orders), ("recovery_orders", recovery_orders),
                                ("slot_count", slot_count)):
                if value is None:
                    values.append(None)
                    continue
                checked = check_count(value)
                if isinstance(checked, Rejected):
                    return self._reject(now, *checked, name, value)
                values.append(checked)  # type: ignore[arg-type]
            active, recovery, slots = values
            with self._lock:
                self._accept(now)
                if active is not None:
                    self._active = active
                if recovery is not None:
                    self._recovery = recovery
                if slots is not None:
                    self._slots = slots
        except Exception as exc:
            self._internal_error(exc)

    def observe_kraken_open_orders(self, open_orders: Any, fetched_at: Any = None) -> None:
        """Count this pair's rows in an `OpenOrders` reply the bot already fetched (`result["open"]`).

        The whole `result` (with its `open` key) is accepted too. Only well-formed rows are counted; a
        malformed row is counted as `malformed_kraken_row`. `fetched_at` (Unix seconds, default now) dates it.
        """
        try:
            now = self._now()
            if now - now != 0.0:
                return self._reject(None, "invalid_clock", "is not a finite time", "now", now)
            rows = open_orders
            if isinstance(rows, Mapping) and "open" in rows:  # the whole `result`; no txid is "open"
                rows = rows["open"]
            if not isinstance(rows, Mapping):
                return self._reject(now, "malformed_kraken_reply", "is not a mapping of txid to order",
                                    "open", type(rows).__name__)
            at = now if fetched_at is None else check_timestamp(fetched_at, now, "invalid_fetched_at")
            if isinstance(at, Rejected):
                return self._reject(now, *at, "fetched_at", fetched_at)
            count, malformed = self._count_rows(rows)
            self._record_kraken(now, count, at, malformed)  # type: ignore[arg-type]
        except Exception as exc:
            self._internal_error(exc)

    def observe_kraken_count(self, count: Any, fetched_at: Any = None) -> None:
        """Record an already-counted Kraken open-order number for this pair."""
        try:
            now = self._now()
            if now - now != 0.0:
                return self._reject(None, "invalid_clock", "is not a finite time", "now", now)
            checked = check_count(count)
            if isinstance(checked, Rejected):
                return self._reject(now, *checked, "kraken_open_orders", count)
            at = now if fetched_at is None else check_timestamp(fetched_at, now, "invalid_fetched_at")
            if isinstance(at, Rejected):
                return self._reject(now, *at, "fetched_at", fetched_at)
            self._record_kraken(now, checked, at, 0)  # type: ignore[arg-type]
        except Exception as exc:
            self._internal_error(exc)

    def observe_kraken_unavailable(self) -> None:
        """The latest Kraken refresh failed: fall back to the internal count now, not after staleness."""
        try:
            now = self._now()
            if now - now != 0.0:
                return self._reject(None, "invalid_clock", "is not a finite time", "now", now)
            with self._lock:
                self._accept(now)
                self._kraken_count = None
                self._kraken_at = None
                self._drift_since = None
        except Exception as exc:
            self._internal_error(exc)

    # ---- reads -------------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> CapacityFillHealth:
        """The spec's `capacity_fill_health` block at `now`."""
        now = self._now() if now is None else now
        return evaluate(self._capture(now).inputs)

    def reading(self, now: float | None = None) -> PairReading:
        """Snapshot plus the state /metrics and /api/status export beside it, including whether it is blind."""
        now = self._now() if now is None else now
        if not _finite(now):
            return PairReading(pair=self.pair, health=None, safety_ratio=self.safety_ratio, blind=True,
                               window_started_at=self.window_started_at,
                               problem="the clock returned a time that is not a finite number")
        state = self._capture(now)
        last = state.last_update
        started = self.window_started_at
        if last is None and started is not None and now - started <= self.stale_after:
            problem: str | None = None  # just created: the bot has until the stale limit to call a hook
        elif last is None:
            problem = f"no hook call since the telemetry was created (stale after {self.stale_after:g} s): is the bot feeding it?"
        elif now - last > self.stale_after:
            problem = f"no hook call for {now - last:.0f} s (stale after {self.stale_after:g} s): is the bot's loop stuck?"
        else:
            problem = None
        return PairReading(
            pair=self.pair,
            health=evaluate(state.inputs),
            safety_ratio=self.safety_ratio,
            slot_count=state.inputs.slot_count,
            kraken_data_age_seconds=None if state.kraken_at is None else max(0.0, now - state.kraken_at),
            last_update=last,
            problem=problem,
            blind=problem is not None,
            window_started_at=self.window_started_at,
            counts=state.counts,
        )

    def kraken_data_age(self, now: float | None = None) -> float | None:
        """Seconds since the last Kraken snapshot, or None if there was none (or it was marked failed)."""
        now = self._now() if now is None else now
        with self._lock:
            at = self._kraken_at
        return None if at is None else max(0.0, now - at)

    @property
    def last_update(self) -> float | None:
        """When a hook last recorded something: a liveness signal for the bot's loop."""
        return self._last_update

    # ---- internals: the hook path (all `_apply`-style helpers run with the lock held) ---------

    def _accept(self, now: float) -> bool:
        """Start applying an accepted call at `now`; True when the clock is behind the high-water mark."""
        behind = now < self._hw
        if not behind:
            self._hw = now
            horizon = now - DAY_SECONDS
            if horizon > self._mark:
                self._mark = horizon
        self._last_update = now
        return behind

    def _closed(self, now: float, txid: str, placed_at: Any, closed_at: Any) -> None:
        closed = now
        if closed_at is not None:
            checked_close = check_timestamp(closed_at, now + MAX_CLOCK_AHEAD_SECONDS, "invalid_closed_at")
            if isinstance(checked_close, Rejected):
                return self._reject(now, *checked_close, "closed_at", closed_at)
            closed = checked_close
        placed: float | Rejected | None
        if type(placed_at) is float and 0.0 < placed_at <= closed:  # the common case, checked inline
            placed = placed_at
        elif placed_at is None or (type(placed_at) in (int, float) and placed_at == 0):  # 0: not known
            placed = None
        else:
            placed = check_timestamp(placed_at, closed, "invalid_placed_at")
            if isinstance(placed, Rejected):
                return self._reject(now, *placed, "placed_at", placed_at)
        with self._lock:
            behind = self._accept(now)
            self._partial_seen.pop(txid)
            finished = self._finished
            ended = finished.get(txid)
            if ended is not None and ended >= self._mark:
                return
            if finished.put(txid, self._hw):
                self._free_backlog(finished)
            if placed is None:
                return
            duration = closed - placed
            self._event_added(behind, self._fill_durations.append(self._hw, duration))
            self._fill_buckets[_bucket(_BUCKETS, duration)] += 1
            self._fill_sum += duration

    def _ended(self, now: float, txid: str, status: str, vol: Any, vol_exec: Any, context: dict[str, Any]) -> None:
        executed = check_volume(vol_exec)
        if isinstance(executed, Rejected):
            return self._reject(now, *executed, "vol_exec", vol_exec)
        volume = check_volume(vol)
        flaw: tuple[str, str, str, Any] | None = None
        if isinstance(volume, Rejected):
            flaw = (*volume, "vol", vol)
        elif executed > volume:
            flaw = ("vol_exec_exceeds_vol", f"> vol={logtext.text(vol)}", "vol_exec", vol_exec)
        if flaw is not None:
            self._reject(now, *flaw)
            if not executed > 0.0:
                return  # nothing safety-relevant to keep: the whole row is rejected
        counted = False
        with self._lock:
            behind = self._accept(now)
            self._partial_seen.pop(txid)
            ended = self._finished.get(txid)
            if ended is not None and ended >= self._mark:
                return
            if self._finished.put(txid, self._hw):
                self._free_backlog(self._finished)
            if executed > 0.0:
                self._cancels_total += 1
                self._event_added(behind, self._partial_cancel.append(self._hw))
                counted = True
        if counted:
            self._canary(txid, status, executed, vol, context)

    def _canary(self, txid: str, status: str, executed: float, vol: Any, context: dict[str, Any]) -> None:
        """The PHANTOM_POSITION_CANARY line: always written, every caller value escaped."""
        try:
            extra = "".join(f" {logtext.text(k)}={logtext.text(v)}" for k, v in sorted(context.items()))
        except Exception:
            extra = " context=<unprintable>"
        log.warning("%s pair=%s txid=%s status=%s vol_exec=%.8f vol=%s%s", CANARY_MARKER, self.pair,
                    logtext.text(txid), status, executed, logtext.number(vol), extra)

    def _count_rows(self, rows: Mapping[Any, Any]) -> tuple[int, int]:
        """Rows of this pair, and malformed rows, in an OpenOrders `open` mapping (computed outside the lock)."""
        cache = self._match_cache
        count = malformed = 0
        for row in rows.values():
            try:
                pair = row["descr"]["pair"]
            except Exception:
                malformed += 1
                continue
            match = cache.get(pair) if type(pair) is str else None
            if match is None:
                if not isinstance(pair, str):
                    malformed += 1
                    continue
                match = self.names.matches(pair)
                if len(cache) < _MATCH_CACHE_SIZE and type(pair) is str:
                    cache[pair] = match
            if match:
                count += 1
        return count, malformed

    def _record_kraken(self, now: float, count: int, at: float, malformed: int) -> None:
        """A Kraken refresh: judge the drift run here, against the internal count of this moment."""
        with self._lock:
            previous = self._kraken_at
            if previous is not None and at < previous:
                rejected = True
            else:
                rejected = False
                self._accept(now)
                if previous is None or at - previous > self.kraken_stale_after:
                    self._drift_since = None  # a stale gap (or no data before) ends a drift run
                self._kraken_count = count
                self._kraken_at = at
                if abs(count - (self._active + self._recovery)) < self.drift_threshold:
                    self._drift_since = None
                elif self._drift_since is None:
                    self._drift_since = at
                if malformed:
                    self.hook_errors["malformed_kraken_row"] += malformed
        if rejected:
            self._reject(now, "invalid_fetched_at", "is before the snapshot already recorded", "fetched_at", at)

    def _event_added(self, behind: bool, out: float | None) -> None:
        """Count the conditions of an event just stamped with `hw`: the clock was `behind` it, or the window's cap
        pushed out `out` while it was still in the window."""
        if behind:
            self._note("clock_went_backwards")
        if out is not None and out >= self._mark:
            self._note("window_overflow")

    def _note(self, kind: str) -> None:
        """Count a condition of an accepted call (not a rejection): no log line, the lock is held."""
        self.hook_errors[kind] += 1

    def _expire(self, budget: int) -> bool:
        """Remove up to `budget` items stamped before the mark (reads only); True when none is left anywhere.

        Hooks never expire anything: the caps bound memory between reads (an expired item pushed out by the
        cap is not counted as overflow), and lookups compare stamps with the mark, so what has left the window
        is gone for the hooks even while it still takes memory.
        """
        mark = self._mark
        done = True
        for window in (self._partial_open, self._partial_cancel, self._fill_durations):
            budget -= window.expire(mark, budget)
            if window.front() < mark:
                done = False
        self._partial_seen.expire(mark)
        self._finished.expire(mark)
        return done

    def _reject(self, now: float | None, kind: str, reason: str, field: str, value: Any) -> None:
        """Count one rejected input (lock taken here), and log it at most once a minute per kind.

        `now` None: no usable time (a broken clock): then only the 1st, 2nd, 4th, 8th … rejection is logged.
        """
        errors = self.hook_errors
        with self._lock:
            count = errors[kind] + 1
            errors[kind] = count
            if now is None:
                should_log = count & (count - 1) == 0
            else:
                last = self._last_logged.get(kind)
                should_log = last is None or not 0.0 <= now - last < _LOG_EVERY_SECONDS
                if should_log:
                    self._last_logged[kind] = now
        if should_log:
            log.warning("capacity telemetry hook rejected input pair=%s kind=%s: %s=%s %s",
                        self.pair, kind, field, logtext.text(value), reason)

    def _internal_error(self, exc: Exception) -> None:
        with contextlib.suppress(Exception):  # the lock failed too: nothing left to do without raising
            self._reject(None, "internal_error", "", "error", f"{type(exc).__name__}: {logtext.text(exc)}")

    # ---- internals: the read path --------------------------------------------------------------

    def _capture(self, now: float) -> _State:
        """Expire in short batches, then copy the inputs of the block under the lock (O(log n) in all)."""
        horizon = now - DAY_SECONDS
        while True:
            with self._lock:
                if horizon > self._mark:
                    self._mark = horizon
                if not self._expire(READ_EXPIRY_BUDGET):
                    continue
                if self._fill_durations.index(READ_EXPIRY_BUDGET) == READ_EXPIRY_BUDGET \
                        and not self._fill_durations.indexed:
                    continue
                kraken = self._kraken_count
                kraken_at = self._kraken_at
                if kraken is not None and (kraken_at is None or now - kraken_at > self.kraken_stale_after):
                    kraken = None
                internal = self._active + self._recovery
                since = self._drift_since
                fills = self._fill_durations
                inputs = CapacityInputs(
                    limit=self.limit,
                    safety_ratio=self.safety_ratio,
                    internal_open_orders=internal,
                    kraken_open_orders=kraken,
                    slot_count=self._slots,
                    partial_open_1d=len(self._partial_open),
                    partial_cancel_1d=len(self._partial_cancel),
                    median_fill_seconds_1d=fills.median(),
                    p95_fill_seconds_1d=fills.percentile(95),
                    drift_persistent=kraken is not None
                    and since is not None
                    and abs(kraken - internal) >= self.drift_threshold
                    and now - since >= self.drift_persist_seconds,
                )
                counts = EventCounts(
                    partial_open_total=self._opens_total,
                    partial_cancel_total=self._cancels_total,
                    fill_bucket_counts=tuple(self._fill_buckets),
                    fill_sum=self._fill_sum,
                    hook_errors=dict(self.hook_errors),
                    created=self.window_started_at,
                )
                dropped = self._partial_seen.take_dropped() + self._finished.take_dropped()
                mark = self._mark
                state = _State(inputs, kraken_at, self._last_update, counts)
            if dropped:
                self._release(dropped, mark)
            return state

    def _release(self, dropped: list[tuple[dict[str, float], dict[str, float]]], mark: float) -> None:
        """Free txid generations the tables let go (outside the lock), counting the txids they forgot early."""
        early = _forgotten_early(dropped, mark)
        dropped.clear()
        if early:
            with self._lock:
                self.hook_errors["txid_table_full"] += early

    def _free_backlog(self, table: TxidTable) -> None:
        """Nobody has read for a long flood: free the dropped generations here (lock held; O(n) once per
        `capacity / 2` new txids, and only when no reader comes)."""
        early = _forgotten_early(table.take_dropped(), self._mark)
        if early:
            self.hook_errors["txid_table_full"] += early


def _forgotten_early(dropped: list[tuple[dict[str, float], dict[str, float]]], mark: float) -> int:
    """Txids a full table let go while still within 24h and not remembered again since (`txid_table_full`)."""
    return sum(1 for generation, successor in dropped for txid, stamp in generation.items()
               if stamp >= mark and txid not in successor)


def _finite(value: Any) -> bool:
    try:
        return bool(value - value == 0.0)
    except Exception:
        return False
