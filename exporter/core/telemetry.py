"""`CapacityTelemetry`: the object a bot owns and calls from its poll loop (spec sections 1, 2, 4, 5).

The hooks never raise and never do I/O under the lock. Each call either records a fully valid observation or
counts exactly one kind of bad input (`HookErrors`), logs it at most once a minute per kind, and changes nothing
else. One exception, for safety: a `canceled`/`expired` row with a valid `vol_exec > 0` is a partial-cancel even
when its `vol` is bad (counted as a hook error too), because a possible phantom position must never be hidden by a
flaw in another field.

What a telemetry holds, each part in its own module, all behind one lock:
- `EventRecord` (event_record.py): the 24h windows, the event totals, the remembered txids and the marks of time,
  with the read and expiry side (how a read moves them on and counts them);
- `KrakenCount` (kraken_count.py): Kraken's count of the pair and the drift run against the bot's count;
- `HookErrors` (hook_errors.py): rejection accounting and rate-limited logging;
- `RateCounter` (order_rate.py): Kraken's per-pair order rate counter, fed by the same hooks (an order first seen
  open is a placement, a cancel is charged by the order's age) or, in `serve`, by the executions stream;
- the bot's own counts (active, recovery, slots).
A read copies a handful of numbers under the lock (`_capture`) and evaluates outside it. Another capacity fed by the
same hooks is one more such part: the hook paths below are where an order is seen open (`see_open`), ends, or is
cancelled (with the `placed_at` the caller gave), and `_capture` is where its number would be read.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from . import logtext
from .capacity import CapacityFillHealth, CapacityInputs, evaluate
from .clock import Clock, SystemClock
from .counters import FILL_DURATION_BUCKETS, EventCounts
from .defaults import KRAKEN_TIER
from .event_record import EventRecord, release
from .hook_errors import HookErrors
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
from .kraken_count import KrakenCount, count_rows
from .order_rate import (
    PENDING_MAX,
    PLACE_COST,
    RATE_LIMIT_REASON,
    RateCounter,
    RateReading,
    amend_cost,
    cancel_cost,
    check_max_rate_count,
)
from .order_rate import tier as tier_walls
from .pairs import PairNames
from .reading import PairReading
from .thresholds import (
    DEFAULT_SAFETY_RATIO,
    DRIFT_PERSIST_SECONDS,
    DRIFT_THRESHOLD,
    HOOK_STALE_AFTER_SECONDS,
    KRAKEN_STALE_AFTER_SECONDS,
)
from .txids import MAX_BACKLOG
from .windows import DAY_SECONDS

log = logging.getLogger("kraken_capacity_exporter")

CANARY_MARKER = "PHANTOM_POSITION_CANARY"
MAX_CLOCK_AHEAD_SECONDS = 60.0  # how far Kraken's clock (a `closed_at`) may run ahead of ours
MAX_TRACKED_TXIDS = 200_000  # orders remembered: seen partially filled, or ended (one table)
MAX_SEEN_OPEN = 200_000  # orders remembered as seen open, for the rate counter (two generations of half each)
_SEEN_ROTATE_AT = MAX_SEEN_OPEN // 2 - 1  # the young generation rotates when it holds half (in `_first_seen`)
SNAPSHOT_GRACE_SECONDS = 60.0  # orders first seen this soon after creation without a placed_at: already open
MAX_REASON_LENGTH = 256
MAX_RATE_COUNTER = 1e9  # Kraken's counter is below its threshold plus one burst; more is not a counter
_BUCKETS = tuple(float(edge) for edge in FILL_DURATION_BUCKETS)  # floats: a float key bisects them twice as fast
_bucket = bisect_left
_INF = math.inf
UNKNOWN_PLACED = -math.inf  # in the seen-open table: an order already open when the telemetry started (age unknown)
_STATUSES = {status: status for status in ORDER_STATUSES}  # the exact spellings, found without lowering
_BAD_CLOCK = "is not a positive finite time"


class _State(NamedTuple):
    """What a read copies under the lock; everything else is computed outside it."""

    inputs: CapacityInputs
    kraken_at: float | None
    last_update: float | None
    counts: EventCounts
    rate: RateReading | None


class CapacityTelemetry:
    """Rolling 24h fill health plus open-order counts for one pair.

    Fed by the bot: `observe_order_status` for every polled order, `set_internal_counts` for its own
    bookkeeping, and `observe_kraken_open_orders` with the `OpenOrders` reply it already fetched.
    Read with `snapshot()` or `reading()`. Bad settings raise ValueError here; bad hook input never raises.
    """

    def __init__(
        self,
        pair: str,
        limit: int | None = None,
        safety_ratio: float = DEFAULT_SAFETY_RATIO,
        *,
        clock: Clock | None = None,
        kraken_stale_after: float = KRAKEN_STALE_AFTER_SECONDS,
        stale_after: float = HOOK_STALE_AFTER_SECONDS,
        drift_threshold: int = DRIFT_THRESHOLD,
        drift_persist_seconds: float = DRIFT_PERSIST_SECONDS,
        max_window_events: int = 100_000,
        tier: str = KRAKEN_TIER,
    ) -> None:
        walls = tier_walls(tier)  # ValueError naming the tiers
        if limit is None:
            limit = walls.open_order_limit  # the tier's, unless the caller says
        self.limit, self.safety_ratio = check_settings(
            limit, safety_ratio, kraken_stale_after=kraken_stale_after, stale_after=stale_after,
            drift_persist_seconds=drift_persist_seconds, drift_threshold=drift_threshold,
            max_window_events=max_window_events,
        )
        self.names = PairNames.offline(pair)
        self.stale_after = float(stale_after)
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._events = EventRecord(max_window_events, MAX_TRACKED_TXIDS)
        self._kraken = KrakenCount(float(kraken_stale_after), drift_threshold, float(drift_persist_seconds))
        self._errors = HookErrors(self._lock, self.names.label)
        self._active = 0
        self._recovery = 0
        self._slots = 0
        self.tier = walls.name
        self._rate = RateCounter(walls)
        self._placements = self._rate.pending  # a hook appends a placement's time; the counter applies it later
        self._seen: dict[str, float] = {}  # txid -> when placed: orders seen open (young generation) ...
        self._seen_old: dict[str, float] = {}  # ... and the previous one
        self._seen_dropped: list[dict[str, float]] = []  # generations let go, freed by a reader outside the lock
        self._match_cache: dict[str, bool] = {}
        started = self._now()
        self.window_started_at: float | None = float(started) if _finite(started) else None
        # orders first seen before this without a placed_at were already open: not placed by the bot now
        self._rate_after = _INF if self.window_started_at is None else self.window_started_at + SNAPSHOT_GRACE_SECONDS
        self._from_hooks = True

    @property
    def rate_from_hooks(self) -> bool:
        """Whether the hooks feed the order rate counter; False when a source (the executions stream) feeds it."""
        return self._from_hooks

    @rate_from_hooks.setter
    def rate_from_hooks(self, value: bool) -> None:
        with self._lock:
            self._from_hooks = bool(value)
            started = self.window_started_at
            self._rate_after = _INF if started is None or not value else started + SNAPSHOT_GRACE_SECONDS

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

    @property
    def kraken_stale_after(self) -> float:
        return self._kraken.stale_after

    @property
    def drift_threshold(self) -> int:
        return self._kraken.drift_threshold

    @property
    def drift_persist_seconds(self) -> float:
        return self._kraken.drift_persist_seconds

    @property
    def hook_errors(self) -> dict[str, int]:
        """What the hooks could not record (and conditions they met), by kind: a copy, taken under the lock."""
        with self._lock:
            self._collect_forgotten()
            return self._errors.copy()

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
            if not 0.0 < now < _INF:
                return self._errors.reject(None, "invalid_clock", _BAD_CLOCK, "now", now)
            if type(txid) is not str or not 0 < len(txid) <= MAX_TXID_LENGTH:
                checked = check_txid(txid)
                if isinstance(checked, Rejected):
                    return self._errors.reject(now, *checked, "txid", txid)
                txid = checked
            kind = _STATUSES.get(status) if type(status) is str else None
            if kind is None:
                checked_status = check_status(status)
                if isinstance(checked_status, Rejected):
                    return self._errors.reject(now, *checked_status, "status", status)
                kind = checked_status
            if placed_at is not None and kind != "closed" and not (  # (the closed path checks it against closed_at)
                    type(placed_at) is float and 0.0 < placed_at <= now + MAX_CLOCK_AHEAD_SECONDS):
                if type(placed_at) in (int, float) and placed_at == 0:  # 0: not known, as on the closed path
                    placed_at = None
                else:
                    checked_placed = check_timestamp(placed_at, now + MAX_CLOCK_AHEAD_SECONDS, "invalid_placed_at")
                    if isinstance(checked_placed, Rejected):
                        self._errors.reject(now, *checked_placed, "placed_at", placed_at)
                        if kind == "open":
                            return  # the whole row: nothing changes
                        placed_at = None  # an end keeps what is safety-relevant (a partial cancel), not the age
                    else:
                        placed_at = checked_placed
            if kind != "open":
                if kind == "closed":
                    self._closed(now, txid, placed_at, closed_at)
                elif kind == "pending":
                    with self._lock:
                        self._events.accept(now)
                else:
                    self._ended(now, txid, kind, vol, vol_exec, context, placed_at, closed_at)
                return
            # `open`, the common poll: inlined, the cheapest path (`EventRecord.accept` is written out here on
            # purpose: calling it costs the common poll about 7% of issue 11's 3x hook-cost target)
            volume = executed = -1.0
            if type(vol) is float and type(vol_exec) is float:  # the stream's form: range-checked below
                volume, executed = vol, vol_exec
            elif type(vol) is str and type(vol_exec) is str:  # Kraken's own form: parsed inline
                try:
                    volume = float(vol)
                except ValueError:
                    return self._errors.reject(now, "invalid_volume", "is not a number", "vol", vol)
                try:
                    executed = float(vol_exec)
                except ValueError:
                    if 0.0 <= volume < _INF:  # vol is fine, so vol_exec is the first bad field
                        return self._errors.reject(now, "invalid_volume", "is not a number", "vol_exec", vol_exec)
            if not 0.0 <= executed <= volume < _INF:  # anything else: the careful path, vol first
                checked_vol = check_volume(vol)
                if isinstance(checked_vol, Rejected):
                    return self._errors.reject(now, *checked_vol, "vol", vol)
                checked_exec = check_volume(vol_exec)
                if isinstance(checked_exec, Rejected):
                    return self._errors.reject(now, *checked_exec, "vol_exec", vol_exec)
                volume, executed = checked_vol, checked_exec
                if executed > volume:
                    return self._errors.reject(now, "vol_exec_exceeds_vol", f"> vol={logtext.text(vol)}", "vol_exec",
                                               vol_exec)
            events, lock = self._events, self._lock
            lock.acquire()  # (not `with`: its protocol costs the common poll 50 ns, a sixth of a Counter.inc())
            try:
                behind = now < events.hw
                if not behind:
                    events.hw = now
                    if now - DAY_SECONDS > events.mark:
                        events.mark = now - DAY_SECONDS
                events.last_update = now
                hw, mark = events.hw, events.mark
                partial = 0.0 < executed < volume
                if not partial:  # the common poll: a new order is seen open here first (the rate counter's +1)
                    seen = self._seen
                    if txid not in seen:
                        if placed_at is None and not self._seen_old and len(seen) < _SEEN_ROTATE_AT:
                            if hw >= self._rate_after:  # the usual case, written out
                                seen[txid] = hw
                                placements = self._placements
                                placements.append(hw)
                                if len(placements) >= PENDING_MAX:
                                    self._rate.fold()
                            else:  # already open when the telemetry started: its age is unknown
                                seen[txid] = UNKNOWN_PLACED
                        else:
                            self._first_seen(txid, hw, placed_at, True)
                if not events.txids.see_open(txid, hw, mark, partial):
                    return  # not a new partial-open: unfilled, already seen partially filled, or already ended
                if txid not in self._seen:  # first seen already partly filled: a new order too (the txid table
                    if placed_at is None and not self._seen_old:  # remembers it from here on, not `_seen`)
                        if hw >= self._rate_after:
                            placements = self._placements
                            placements.append(hw)
                            if len(placements) >= PENDING_MAX:
                                self._rate.fold()
                    else:
                        self._first_seen(txid, hw, placed_at, False)
                events.opens_total += 1
                out = events.partial_open.append(hw)
                if out is not None and out >= mark:
                    self._errors.note("window_overflow")
                if behind:
                    self._errors.note("clock_went_backwards")
            finally:
                lock.release()
        except Exception as exc:  # a hook must never raise into the bot's loop
            self._errors.internal_error(exc)

    def set_internal_counts(
        self, active_orders: Any = None, recovery_orders: Any = None, slot_count: Any = None
    ) -> None:
        """The bot's own view: active + recovery orders, and its slot count. None leaves a value as is."""
        try:
            now = self._now()
            if not 0.0 < now < _INF:
                return self._errors.reject(None, "invalid_clock", _BAD_CLOCK, "now", now)
            values: list[int | None] = []
            for name, value in (("active_orders", active_orders), ("recovery_orders", recovery_orders),
                                ("slot_count", slot_count)):
                if value is None:
                    values.append(None)
                    continue
                checked = check_count(value)
                if isinstance(checked, Rejected):
                    return self._errors.reject(now, *checked, name, value)
                values.append(checked)  # type: ignore[arg-type]
            active, recovery, slots = values
            with self._lock:
                self._events.accept(now)
                if active is not None:
                    self._active = active
                if recovery is not None:
                    self._recovery = recovery
                if slots is not None:
                    self._slots = slots
        except Exception as exc:
            self._errors.internal_error(exc)

    def observe_kraken_open_orders(self, open_orders: Any, fetched_at: Any = None) -> None:
        """Count this pair's rows in an `OpenOrders` reply the bot already fetched (`result["open"]`).

        The whole `result` (with its `open` key) is accepted too. Only well-formed rows are counted; a
        malformed row is counted as `malformed_kraken_row`. `fetched_at` (Unix seconds) dates it; without it the
        reply is the newest there is (see `observe_kraken_count`).
        """
        try:
            now = self._now()
            if not 0.0 < now < _INF:
                return self._errors.reject(None, "invalid_clock", _BAD_CLOCK, "now", now)
            rows = open_orders
            if isinstance(rows, Mapping) and "open" in rows:  # the whole `result`; no txid is "open"
                rows = rows["open"]
            if not isinstance(rows, Mapping):
                return self._errors.reject(now, "malformed_kraken_reply", "is not a mapping of txid to order",
                                           "open", type(rows).__name__)
            at = None if fetched_at is None else check_timestamp(fetched_at, now, "invalid_fetched_at")
            if isinstance(at, Rejected):
                return self._errors.reject(now, *at, "fetched_at", fetched_at)
            count, malformed = count_rows(rows, self.names, self._match_cache)
            self._record_kraken(now, count, at, malformed)
        except Exception as exc:
            self._errors.internal_error(exc)

    def observe_kraken_count(self, count: Any, fetched_at: Any = None) -> None:
        """Record an already-counted Kraken open-order number for this pair.

        `fetched_at` (Unix seconds) dates it, and one older than the count recorded is dropped (`invalid_fetched_at`).
        Without it the count is the newest there is: it is recorded at the newest clock reading, even when the clock
        has stepped back since (counted as `clock_went_backwards`, as for events).
        """
        try:
            now = self._now()
            if not 0.0 < now < _INF:
                return self._errors.reject(None, "invalid_clock", _BAD_CLOCK, "now", now)
            checked = check_count(count)
            if isinstance(checked, Rejected):
                return self._errors.reject(now, *checked, "kraken_open_orders", count)
            at = None if fetched_at is None else check_timestamp(fetched_at, now, "invalid_fetched_at")
            if isinstance(at, Rejected):
                return self._errors.reject(now, *at, "fetched_at", fetched_at)
            self._record_kraken(now, checked, at, 0)
        except Exception as exc:
            self._errors.internal_error(exc)

    def observe_kraken_unavailable(self) -> None:
        """The latest Kraken refresh failed: fall back to the internal count now, not after staleness."""
        try:
            now = self._now()
            if not 0.0 < now < _INF:
                return self._errors.reject(None, "invalid_clock", _BAD_CLOCK, "now", now)
            with self._lock:
                self._events.accept(now)
                self._kraken.clear()
        except Exception as exc:
            self._errors.internal_error(exc)

    def observe_rate_threshold(self, value: Any) -> str | None:
        """The account's own order rate threshold (Kraken's `maxratecount`, from the executions stream's ack):
        preferred to the tier's. Returns the tier's name when the two disagree (for the caller's one warning), else
        None; a bad value is counted (`invalid_rate_threshold`) and changes nothing."""
        try:
            threshold = check_max_rate_count(value)
            if threshold is None:
                self._errors.reject(self._now(), "invalid_rate_threshold", "is not a number in (0, 100000]",
                                    "maxratecount", value)
                return None
            with self._lock:
                self._rate.account_threshold(threshold)
                walls = tier_walls(self._rate.tier_name)
            return None if walls.rate_threshold == threshold else walls.name
        except Exception as exc:  # never into the caller
            self._errors.internal_error(exc)
            return None

    def observe_rate_counter(self, value: Any, fetched_at: Any = None) -> None:
        """Kraken's own order rate counter for this pair (a bot that knows it hands it over): preferred to our
        estimate from here on, and the difference exported. `fetched_at` (Unix seconds) dates it; one before the last
        order event recorded is dropped (`invalid_fetched_at`)."""
        try:
            now = self._now()
            if not 0.0 < now < _INF:
                return self._errors.reject(None, "invalid_clock", _BAD_CLOCK, "now", now)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= MAX_RATE_COUNTER:
                return self._errors.reject(now, "invalid_rate_counter", f"is not a number in [0, {MAX_RATE_COUNTER:g}]",
                                           "rate_counter", value)
            at = None if fetched_at is None else check_timestamp(fetched_at, now, "invalid_fetched_at")
            if isinstance(at, Rejected):
                return self._errors.reject(now, *at, "fetched_at", fetched_at)
            with self._lock:
                self._events.accept(now)
                stamp = self._events.hw if at is None else at
                self._rate.fold()
                late = stamp < self._rate.at
                if not late:
                    self._rate.report(float(value), stamp)
            if late:
                self._errors.reject(now, "invalid_fetched_at", "is before the last order event recorded",
                                    "fetched_at", fetched_at)
        except Exception as exc:
            self._errors.internal_error(exc)

    def observe_order_rejected(self, reason: Any) -> None:
        """An order of this pair that Kraken refused, with its error text: `EOrder:Rate limit exceeded` counts in
        `krakenbot_order_rate_limited_total`; any other reason is accepted and changes nothing."""
        try:
            now = self._now()
            if not 0.0 < now < _INF:
                return self._errors.reject(None, "invalid_clock", _BAD_CLOCK, "now", now)
            if type(reason) is not str or not 0 < len(reason) <= MAX_REASON_LENGTH:
                return self._errors.reject(now, "invalid_reason", "is not a non-empty string of at most "
                                           f"{MAX_REASON_LENGTH} characters", "reason", reason)
            with self._lock:
                self._events.accept(now)
                if RATE_LIMIT_REASON in reason:
                    self._rate.rejected(self._events.hw)
        except Exception as exc:
            self._errors.internal_error(exc)

    def observe_rate_events(self, events: Iterable[tuple[str, float, float]]) -> None:
        """A source's order events (the executions stream, on Kraken's clock), in order, as (kind, at, amount):
        `placed`, `canceled` and `amended` (`amount`: the order's age in seconds), `rejected` (a rate-limit
        refusal), `reported` (`amount`: Kraken's own counter). Events dated before the last are applied at the last
        one's time. One lock for the whole batch."""
        try:
            rate, bad = self._rate, None
            with self._lock:
                for kind, at, amount in events:
                    if not (0.0 < at < _INF and 0.0 <= amount <= _INF):  # (an age may be infinite: unknown, as old)
                        bad = (kind, at, amount)
                    elif kind == "placed":
                        rate.add(PLACE_COST, at)
                    elif kind == "canceled":
                        rate.add(cancel_cost(amount), at)
                    elif kind == "amended":
                        rate.add(amend_cost(amount), at)
                    elif kind == "rejected":
                        rate.rejected(at)
                    elif kind == "reported":
                        rate.fold()
                        if at >= rate.at:
                            rate.report(amount, at)
            if bad is not None:
                self._errors.reject(self._now(), "invalid_rate_counter", "is not a finite time and amount",
                                    "rate_event", bad)
        except Exception as exc:
            self._errors.internal_error(exc)

    # ---- reads -------------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> CapacityFillHealth:
        """The spec's `capacity_fill_health` block now, or at a caller's `now` (Unix seconds).

        A read never changes what is recorded: only the telemetry's own clock moves the 24h windows on. A caller's
        `now` is evaluated and forgotten: ahead of the clock it leaves out what will have left the windows by then,
        behind it sees what is still held. A `now` that is not a finite number raises ValueError.
        """
        clock_now = self._now()
        return evaluate(self._capture(clock_now, clock_now if now is None else _caller_time(now)).inputs)

    def reading(self, now: float | None = None) -> PairReading:
        """Snapshot plus the state /metrics and /api/status export beside it, including whether it is blind
        (`now` as in `snapshot`)."""
        clock_now = self._now()
        now = clock_now if now is None else _caller_time(now)
        if not _finite(now):
            return PairReading(pair=self.pair, health=None, safety_ratio=self.safety_ratio, blind=True,
                               window_started_at=self.window_started_at,
                               problem="the clock returned a time that is not a finite number")
        state = self._capture(clock_now, now)
        problem = self._silence(now, state.last_update)
        return PairReading(
            pair=self.pair,
            health=evaluate(state.inputs),
            safety_ratio=self.safety_ratio,
            slot_count=state.inputs.slot_count,
            kraken_data_age_seconds=None if state.kraken_at is None else max(0.0, now - state.kraken_at),
            last_update=state.last_update,
            problem=problem,
            blind=problem is not None,
            window_started_at=self.window_started_at,
            counts=state.counts,
            order_rate=state.rate,
        )

    def kraken_data_age(self, now: float | None = None) -> float | None:
        """Seconds since the last Kraken snapshot, or None if there was none (or it was marked failed)."""
        now = self._now() if now is None else _caller_time(now)
        with self._lock:
            at = self._kraken.at
        return None if at is None else max(0.0, now - at)

    @property
    def last_update(self) -> float | None:
        """When a hook last recorded something: a liveness signal for the bot's loop."""
        return self._events.last_update

    # ---- internals: the hook paths -------------------------------------------------------------

    def _closed(self, now: float, txid: str, placed_at: Any, closed_at: Any) -> None:
        closed = now
        if type(closed_at) is float and 0.0 < closed_at <= now + MAX_CLOCK_AHEAD_SECONDS:
            closed = closed_at  # the stream's common case (a float on Kraken's clock), checked inline
        elif closed_at is not None:
            checked_close = check_timestamp(closed_at, now + MAX_CLOCK_AHEAD_SECONDS, "invalid_closed_at")
            if isinstance(checked_close, Rejected):
                return self._errors.reject(now, *checked_close, "closed_at", closed_at)
            closed = checked_close
        placed: float | Rejected | None
        if type(placed_at) is float and 0.0 < placed_at <= closed:  # the common case, checked inline
            placed = placed_at
        elif placed_at is None or (type(placed_at) in (int, float) and placed_at == 0):  # 0: not known
            placed = None
        else:
            placed = check_timestamp(placed_at, closed, "invalid_placed_at")
            if isinstance(placed, Rejected):
                return self._errors.reject(now, *placed, "placed_at", placed_at)
        events, lock = self._events, self._lock
        lock.acquire()  # a fill, the second most common call: written out as the `open` path is
        try:
            behind = now < events.hw
            if not behind:
                events.hw = now
                if now - DAY_SECONDS > events.mark:
                    events.mark = now - DAY_SECONDS
            events.last_update = now
            hw, mark = events.hw, events.mark
            if not events.txids.end(txid, hw, mark) or placed is None:
                return  # already ended (a terminal order polled twice counts once), or no fill time to record
            duration = closed - placed
            events.fill_buckets[_bucket(_BUCKETS, duration)] += 1
            events.fill_sum += duration
            out = events.fills.append(hw, duration)
            if out is not None and out >= mark:
                self._errors.note("window_overflow")
            if behind:
                self._errors.note("clock_went_backwards")
        finally:
            lock.release()

    def _first_seen(self, txid: str, hw: float, placed_at: Any, remember: bool) -> None:
        """`txid` is open and not in the young generation of orders seen open (the lock is held): moved up from the
        old one, or a new order, counted as placed unless it was already open when the telemetry started (placed
        before then, or first seen in its first minute without a `placed_at`). `remember` False: an order seen
        partly filled, which the txid table remembers instead."""
        seen = self._seen
        if self._seen_old:
            old = self._seen_old.pop(txid, None)
            if old is not None:
                seen[txid] = old
                return
        if not remember:
            seen = {}  # (written to and forgotten)
        if placed_at is None:
            if hw >= self._rate_after:
                seen[txid] = hw
                self._rate.add(1.0, hw)
            else:  # already open when the telemetry started: its age is unknown
                seen[txid] = UNKNOWN_PLACED
        else:
            given = _valid_time(placed_at) and placed_at <= hw + MAX_CLOCK_AHEAD_SECONDS
            placed = float(placed_at) if given else hw
            seen[txid] = placed
            started = self.window_started_at
            if self._from_hooks and started is not None and placed >= started and (given or hw >= self._rate_after):
                self._rate.add(1.0, placed)
        if len(seen) * 2 >= MAX_SEEN_OPEN:
            if self._seen_old:
                dropped = self._seen_dropped
                dropped.append(self._seen_old)
                if len(dropped) > MAX_BACKLOG:  # nobody has read for a long flood: free them here, as the txid table
                    dropped.clear()
            self._seen_old, self._seen = seen, {}

    def _ended(self, now: float, txid: str, status: str, vol: Any, vol_exec: Any, context: dict[str, Any],
               placed_at: Any = None, closed_at: Any = None) -> None:
        ended_at: float | None = None  # when it ended (Kraken's `closetm`): a polled cancel is charged then
        if closed_at is not None and status == "canceled":
            if type(closed_at) is float and 0.0 < closed_at <= now + MAX_CLOCK_AHEAD_SECONDS:
                ended_at = closed_at
            else:
                checked_close = check_timestamp(closed_at, now + MAX_CLOCK_AHEAD_SECONDS, "invalid_closed_at")
                if isinstance(checked_close, Rejected):  # counted and ignored: the cancel itself still counts
                    self._errors.reject(now, *checked_close, "closed_at", closed_at)
                else:
                    ended_at = checked_close
        executed = check_volume(vol_exec)
        if isinstance(executed, Rejected):
            return self._errors.reject(now, *executed, "vol_exec", vol_exec)
        volume = check_volume(vol)
        flaw: tuple[str, str, str, Any] | None = None
        if isinstance(volume, Rejected):
            flaw = (*volume, "vol", vol)
        elif executed > volume:
            flaw = ("vol_exec_exceeds_vol", f"> vol={logtext.text(vol)}", "vol_exec", vol_exec)
        if flaw is not None:
            self._errors.reject(now, *flaw)
            if not executed > 0.0:
                return  # nothing safety-relevant to keep: the whole row is rejected
        events = self._events
        with self._lock:
            behind = events.accept(now)
            seen = self._seen.get(txid)  # kept: a late open row of an ended order is no new placement
            if seen is None and self._seen_old:
                seen = self._seen_old.get(txid)
            first = events.txids.end(txid, events.hw, events.mark)
            if first and status == "canceled" and self._from_hooks:
                placed = placed_at if _valid_time(placed_at) else seen
                if placed == UNKNOWN_PLACED:
                    # already open when the telemetry started, no placed_at: its true age is unknown (Kraken charges
                    # nothing past 300 s, and we cannot vouch for a young one), so not charged -- and counted
                    self._errors.note("order_rate_unknown_age")
                elif placed is not None:  # (None: never seen open nor told its placing; docs/order-rate.md)
                    at = events.hw if ended_at is None or ended_at < placed else ended_at
                    self._rate.cancelled(at, at - placed)
            if not first or not executed > 0.0:
                return
            if events.add_partial_cancel():
                self._errors.note("window_overflow")
            if behind:
                self._errors.note("clock_went_backwards")
        self._canary(txid, status, executed, vol, context)

    def _canary(self, txid: str, status: str, executed: float, vol: Any, context: dict[str, Any]) -> None:
        """The PHANTOM_POSITION_CANARY line: always written, every caller value escaped."""
        try:
            extra = "".join(f" {logtext.text(k)}={logtext.text(v)}" for k, v in sorted(context.items()))
        except Exception:
            extra = " context=<unprintable>"
        log.warning("%s pair=%s txid=%s status=%s vol_exec=%.8f vol=%s%s", CANARY_MARKER, self.pair,
                    logtext.text(txid), status, executed, logtext.number(vol), extra)

    def _record_kraken(self, now: float, count: int, fetched_at: float | None, malformed: int) -> None:
        """A Kraken refresh fetched at `fetched_at`, or (None) just now: the newest there is, stamped with the newest
        clock reading however the clock stepped."""
        with self._lock:
            events, kraken = self._events, self._kraken
            rejected = fetched_at is not None and kraken.is_older(fetched_at)
            if not rejected:
                behind = events.accept(now)
                if fetched_at is None and behind:
                    self._errors.note("clock_went_backwards")
                kraken.record(count, events.hw if fetched_at is None else fetched_at, self._active + self._recovery)
                if malformed:
                    self._errors.note("malformed_kraken_row", malformed)
        if rejected:
            self._errors.reject(now, "invalid_fetched_at", "is before the snapshot already recorded", "fetched_at",
                                fetched_at)

    # ---- internals: the read path --------------------------------------------------------------

    def _capture(self, clock_now: float, now: float) -> _State:
        """Move the record on to the clock's `clock_now` (in short batches), then copy the inputs of the block at
        `now` under the lock (O(log n) in all; a `now` ahead of the clock also copies the fills it keeps)."""
        horizon = clock_now - DAY_SECONDS
        events, kraken = self._events, self._kraken
        while True:
            with self._lock:
                if not events.move_on(horizon):
                    continue  # let a waiting hook in between batches
                window = events.window_at(now)
                internal = self._active + self._recovery
                fresh = kraken.fresh(now)
                drift = kraken.drift_persistent(now, internal)
                self._collect_forgotten()
                counts = events.totals(self._errors.copy(), self.window_started_at)
                kraken_at, last_update, slots = kraken.at, events.last_update, self._slots
                dropped, mark = events.txids.take_dropped(), events.mark
                rate = self._rate.reading(now, prune=now == clock_now)
                seen_dropped, self._seen_dropped = self._seen_dropped, []
            break
        seen_dropped.clear()  # freed here, outside the lock
        if dropped:
            early = release(dropped, mark)
            if early:
                with self._lock:
                    self._errors.note("txid_table_full", early)
        window = window.settled()
        inputs = CapacityInputs(
            limit=self.limit, safety_ratio=self.safety_ratio, internal_open_orders=internal,
            kraken_open_orders=fresh, slot_count=slots, partial_open_1d=window.partial_open,
            partial_cancel_1d=window.partial_cancel, median_fill_seconds_1d=window.median,
            p95_fill_seconds_1d=window.p95, drift_persistent=drift,
        )
        return _State(inputs, kraken_at, last_update, counts, rate)

    def _collect_forgotten(self) -> None:
        """Count the txids the table let go early while freeing a backlog itself (the lock is held)."""
        forgotten = self._events.txids.take_forgotten()
        if forgotten:
            self._errors.note("txid_table_full", forgotten)

    def _silence(self, now: float, last: float | None) -> str | None:
        """Why the pair is blind at `now` for lack of hook calls, or None."""
        started = self.window_started_at
        if last is None and started is not None and now - started <= self.stale_after:
            return None  # just created: the bot has until the stale limit to call a hook
        if last is None:
            return f"no hook call since the telemetry was created (stale after {self.stale_after:g} s): is the bot feeding it?"
        if now - last > self.stale_after:
            return f"no hook call for {now - last:.0f} s (stale after {self.stale_after:g} s): is the bot's loop stuck?"
        return None


def _caller_time(now: Any) -> float:
    """A `now` passed to a read: a finite Unix time in seconds, or ValueError."""
    try:
        if not isinstance(now, bool) and isinstance(now, (int, float)) and math.isfinite(now):
            return float(now)
    except OverflowError:
        pass
    raise ValueError(f"now must be a finite Unix time in seconds, got {logtext.text(now)}")


def _valid_time(value: Any) -> bool:
    """A caller's Unix time we can use: a finite int or float > 0."""
    return (type(value) is float and 0.0 < value < _INF) or (type(value) is int and 0 < value < 10**15)


def _finite(value: Any) -> bool:
    try:
        return bool(value - value == 0.0)
    except Exception:
        return False
