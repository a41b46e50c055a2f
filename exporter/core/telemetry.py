"""`CapacityTelemetry`: the object a bot owns and calls from its poll loop (spec sections 1, 2, 4, 5).

The hooks never raise and never do I/O: bad input is counted by kind (`hook_errors`, and the
`krakenbot_hook_errors_total` counter when metrics are attached) and logged at most once a minute per kind.
All state sits behind one lock, so the bot thread and the HTTP thread can share the object.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from .capacity import CapacityFillHealth, CapacityInputs, evaluate
from .clock import Clock, SystemClock
from .inputs import BadInput, parse_count, parse_volume, plain_volume
from .pairs import PairNames
from .reading import PairReading
from .thresholds import DEFAULT_LIMIT, DEFAULT_SAFETY_RATIO, DRIFT_PERSIST_SECONDS, DRIFT_THRESHOLD, KRAKEN_STALE_AFTER_SECONDS
from .windows import DAY_SECONDS, RollingEventWindow, RollingValueWindow, median, percentile_nearest_rank

log = logging.getLogger("kraken_capacity_exporter")

CANARY_MARKER = "PHANTOM_POSITION_CANARY"
MAX_TRACKED_TXIDS = 100_000
_LOG_EVERY_SECONDS = 60.0

class EventSink(Protocol):
    """Where counted events go besides the windows: prometheus-client instruments (see `web/metrics.py`)."""

    def partial_open(self) -> None: ...
    def partial_cancel(self) -> None: ...
    def fill_duration(self, seconds: float) -> None: ...
    def hook_error(self, kind: str) -> None: ...


class NullEventSink:
    """Used when the telemetry is not attached to a Prometheus registry."""

    def partial_open(self) -> None:
        pass

    def partial_cancel(self) -> None:
        pass

    def fill_duration(self, seconds: float) -> None:
        pass

    def hook_error(self, kind: str) -> None:
        pass


class CapacityTelemetry:
    """Rolling 24h fill health plus open-order counts for one pair.

    Fed by the bot: `observe_order_status` for every polled order, `set_internal_counts` for its own
    bookkeeping, and `observe_kraken_open_orders` with the `OpenOrders` reply it already fetched.
    Read with `snapshot()`.
    """

    def __init__(
        self,
        pair: str,
        limit: int = DEFAULT_LIMIT,
        safety_ratio: float = DEFAULT_SAFETY_RATIO,
        *,
        clock: Clock | None = None,
        events: EventSink | None = None,
        kraken_stale_after: float = KRAKEN_STALE_AFTER_SECONDS,
        drift_threshold: int = DRIFT_THRESHOLD,
        drift_persist_seconds: float = DRIFT_PERSIST_SECONDS,
        max_window_events: int = 100_000,
    ) -> None:
        self.names = PairNames.offline(pair)
        self.limit = int(limit)
        self.safety_ratio = float(safety_ratio)
        self.clock = clock or SystemClock()
        self.events: EventSink = events or NullEventSink()
        self.kraken_stale_after = float(kraken_stale_after)
        self.drift_threshold = max(1, int(drift_threshold))
        self.drift_persist_seconds = max(0.0, float(drift_persist_seconds))

        self._lock = threading.Lock()
        self._partial_open = RollingEventWindow(max_items=max_window_events)
        self._partial_cancel = RollingEventWindow(max_items=max_window_events)
        self._fill_durations = RollingValueWindow(max_items=max_window_events)
        self._partial_seen: OrderedDict[str, float] = OrderedDict()  # txid -> last seen open
        self._finished: OrderedDict[str, float] = OrderedDict()  # txid -> when it ended
        self._active = 0
        self._recovery = 0
        self._slots = 0
        self._kraken_count: int | None = None
        self._kraken_at: float | None = None
        self._drift_since: float | None = None
        self._last_update: float | None = None
        self.hook_errors: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}

    @property
    def pair(self) -> str:
        """The exported `pair` label (Kraken's REST altname)."""
        return self.names.label

    def set_pair_names(self, names: PairNames) -> None:
        """Replace the offline aliases with the names Kraken's `AssetPairs` reported (label unchanged)."""
        with self._lock:
            self.names = PairNames(label=self.names.label, spellings=names.spellings | self.names.spellings)

    # ---- hooks -------------------------------------------------------------------------------

    def observe_order_status(
        self,
        txid: Any,
        status: Any,
        vol: Any,
        vol_exec: Any,
        placed_at: Any = None,
        **context: Any,
    ) -> None:
        """Record one polled order (`status` as Kraken reports it); never raises.

        `context` (e.g. slot=, kind=, local=) is only logged with the canary.
        """
        self._guard(self._observe_order_status, txid, status, vol, vol_exec, placed_at, context)

    def set_internal_counts(
        self, active_orders: Any = None, recovery_orders: Any = None, slot_count: Any = None
    ) -> None:
        """The bot's own view: active + recovery orders, and its slot count. None leaves a value as is."""
        self._guard(self._set_internal_counts, active_orders, recovery_orders, slot_count)

    def observe_kraken_open_orders(self, open_orders: Any, fetched_at: float | None = None) -> None:
        """Count this pair's rows in an `OpenOrders` reply the bot already fetched (`result["open"]`).

        The whole `result` (with its `open` key) is accepted too. Only well-formed rows are counted.
        """
        self._guard(self._observe_kraken_open_orders, open_orders, fetched_at)

    def observe_kraken_count(self, count: Any, fetched_at: float | None = None) -> None:
        """Record an already-counted Kraken open-order number for this pair."""
        self._guard(self._observe_kraken_count, count, fetched_at)

    def observe_kraken_unavailable(self) -> None:
        """The latest Kraken refresh failed: fall back to the internal count now, not after staleness."""
        self._guard(self._observe_kraken_unavailable)

    # ---- reads -------------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> CapacityFillHealth:
        """The spec's `capacity_fill_health` block at `now`."""
        now = self.clock.now() if now is None else now
        with self._lock:
            kraken = self._fresh_kraken_count(now)
            durations = self._fill_durations.values(now)
            inputs = CapacityInputs(
                limit=self.limit,
                safety_ratio=self.safety_ratio,
                internal_open_orders=self._active + self._recovery,
                kraken_open_orders=kraken,
                slot_count=self._slots,
                partial_open_1d=self._partial_open.count(now),
                partial_cancel_1d=self._partial_cancel.count(now),
                median_fill_seconds_1d=median(durations),
                p95_fill_seconds_1d=percentile_nearest_rank(durations, 95),
                drift_persistent=kraken is not None
                and self._drift_since is not None
                and now - self._drift_since >= self.drift_persist_seconds,
            )
        return evaluate(inputs)

    def reading(self, now: float | None = None) -> PairReading:
        """Snapshot plus the state /metrics exports beside it."""
        now = self.clock.now() if now is None else now
        health = self.snapshot(now)
        with self._lock:
            return PairReading(
                pair=self.pair,
                health=health,
                safety_ratio=self.safety_ratio,
                slot_count=self._slots,
                kraken_data_age_seconds=self._kraken_age(now),
                last_update=self._last_update,
            )

    def kraken_data_age(self, now: float | None = None) -> float | None:
        """Seconds since the last Kraken snapshot, or None if there was none (or it was marked failed)."""
        now = self.clock.now() if now is None else now
        with self._lock:
            return self._kraken_age(now)

    @property
    def last_update(self) -> float | None:
        """When any hook last ran: a liveness signal for the bot's loop."""
        with self._lock:
            return self._last_update

    # ---- internals ---------------------------------------------------------------------------

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            now = self.clock.now()
            with self._lock:
                self._last_update = now
                fn(now, *args)
        except BadInput as exc:
            self._count_error(exc.kind, str(exc))
        except Exception as exc:  # a hook must never raise into the bot's loop
            self._count_error("internal_error", f"{type(exc).__name__}: {exc}")

    def _count_error(self, kind: str, message: str) -> None:
        try:
            now = self.clock.now()
        except Exception:
            now = 0.0
        with self._lock:
            self.hook_errors[kind] += 1
            last = self._last_logged.get(kind)
            should_log = last is None or now - last >= _LOG_EVERY_SECONDS or now < last
            if should_log:
                self._last_logged[kind] = now
        self.events.hook_error(kind)
        if should_log:
            log.warning("capacity telemetry hook rejected input pair=%s kind=%s: %s", self.pair, kind, message)

    def _append(self, window: RollingEventWindow | RollingValueWindow, *item: float) -> None:
        """Add to a window, counting a clamped timestamp (clock went backwards) and an overflow (flood)."""
        overflowed = window.overflowed
        if window.append(*item):
            self._count_error_unlocked("clock_went_backwards")
        if window.overflowed > overflowed:
            self._count_error_unlocked("window_overflow")

    def _count_error_unlocked(self, kind: str) -> None:
        """Count without logging, for events noticed while the lock is held."""
        self.hook_errors[kind] += 1
        self.events.hook_error(kind)

    def _forget_old_txids(self, now: float) -> None:
        for table in (self._partial_seen, self._finished):
            while table and next(iter(table.values())) <= now - DAY_SECONDS:
                table.popitem(last=False)
            while len(table) > MAX_TRACKED_TXIDS:
                table.popitem(last=False)
                self._count_error_unlocked("txid_table_full")

    def _remember(self, table: OrderedDict[str, float], txid: str, now: float) -> None:
        table[txid] = now
        table.move_to_end(txid)

    def _observe_order_status(
        self, now: float, txid: Any, status: Any, vol: Any, vol_exec: Any, placed_at: Any, context: dict
    ) -> None:
        if not isinstance(txid, str) or not txid:
            raise BadInput("invalid_txid", f"txid={txid!r} is not a non-empty string")
        if not isinstance(status, str):
            raise BadInput("invalid_status", f"txid={txid} status={status!r} is not a string")
        status = status.lower()
        self._forget_old_txids(now)
        if status == "open":
            volume = parse_volume(vol, "vol")
            executed = parse_volume(vol_exec, "vol_exec")
            if executed > volume:
                raise BadInput("vol_exec_exceeds_vol", f"txid={txid} vol_exec={vol_exec!r} > vol={vol!r}")
            if txid in self._partial_seen:
                self._remember(self._partial_seen, txid, now)
            elif 0 < executed < volume:
                self._remember(self._partial_seen, txid, now)
                self._append(self._partial_open, now)
                self.events.partial_open()
        elif status in ("canceled", "expired"):
            self._partial_seen.pop(txid, None)
            if txid in self._finished:
                return
            executed = parse_volume(vol_exec, "vol_exec")
            self._remember(self._finished, txid, now)
            if executed > 0:
                self._append(self._partial_cancel, now)
                self.events.partial_cancel()
                extra = " ".join(f"{k}={v}" for k, v in sorted(context.items()))
                log.warning(
                    "%s pair=%s txid=%s status=%s vol_exec=%.8f vol=%s %s",
                    CANARY_MARKER, self.pair, txid, status, executed, plain_volume(vol), extra,
                )
        elif status == "closed":
            self._partial_seen.pop(txid, None)
            if txid in self._finished:
                return
            self._remember(self._finished, txid, now)
            if placed_at is None or placed_at == 0:
                return
            if isinstance(placed_at, bool) or not isinstance(placed_at, (int, float)) or not math.isfinite(placed_at):
                raise BadInput("invalid_placed_at", f"txid={txid} placed_at={placed_at!r} is not a timestamp")
            if placed_at < 0:
                return
            if placed_at > now:
                raise BadInput("placed_at_in_future", f"txid={txid} placed_at={placed_at} is after now={now}")
            duration = now - float(placed_at)
            self._append(self._fill_durations, now, duration)
            self.events.fill_duration(duration)
        elif status == "pending":
            return
        else:
            raise BadInput("unknown_status", f"txid={txid} status={status!r} is not a Kraken order status")

    def _set_internal_counts(self, now: float, active: Any, recovery: Any, slots: Any) -> None:
        values = {
            name: parse_count(value, name)
            for name, value in (("active_orders", active), ("recovery_orders", recovery), ("slot_count", slots))
            if value is not None
        }
        self._active = values.get("active_orders", self._active)
        self._recovery = values.get("recovery_orders", self._recovery)
        self._slots = values.get("slot_count", self._slots)
        self._update_drift(now)

    def _observe_kraken_open_orders(self, now: float, open_orders: Any, fetched_at: float | None) -> None:
        if isinstance(open_orders, Mapping) and "open" in open_orders:  # the whole `result`; no txid is "open"
            open_orders = open_orders["open"]
        if not isinstance(open_orders, Mapping):
            raise BadInput("malformed_kraken_reply", f"OpenOrders 'open' is {type(open_orders).__name__}, not a mapping")
        count = 0
        malformed = 0
        for row in open_orders.values():
            descr = row.get("descr") if isinstance(row, Mapping) else None
            pair = descr.get("pair") if isinstance(descr, Mapping) else None
            if not isinstance(pair, str):
                malformed += 1
            elif self.names.matches(pair):
                count += 1
        for _ in range(malformed):
            self._count_error_unlocked("malformed_kraken_row")
        self._record_kraken(now, count, fetched_at)

    def _observe_kraken_count(self, now: float, count: Any, fetched_at: float | None) -> None:
        self._record_kraken(now, parse_count(count, "kraken_open_orders"), fetched_at)

    def _record_kraken(self, now: float, count: int, fetched_at: float | None) -> None:
        self._kraken_count = count
        self._kraken_at = now if fetched_at is None else float(fetched_at)
        self._update_drift(now)

    def _observe_kraken_unavailable(self, now: float) -> None:
        self._kraken_count = None
        self._kraken_at = None
        self._drift_since = None

    def _kraken_age(self, now: float) -> float | None:
        return None if self._kraken_at is None else max(0.0, now - self._kraken_at)

    def _fresh_kraken_count(self, now: float) -> int | None:
        if self._kraken_count is None or self._kraken_at is None:
            return None
        if now - self._kraken_at > self.kraken_stale_after:
            return None
        return self._kraken_count

    def _update_drift(self, now: float) -> None:
        kraken = self._fresh_kraken_count(now)
        if kraken is None or abs(kraken - (self._active + self._recovery)) < self.drift_threshold:
            self._drift_since = None
        elif self._drift_since is None:
            self._drift_since = now
