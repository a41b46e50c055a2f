"""Kraken's WebSocket v2 `executions` rows, translated into what the hooks record: pure and clock-free.

`ExecutionBook` holds every open order of the account (its pair, quantity, executed quantity, when it was placed
and went live, its amends) and turns each row into `Observation`s, the arguments of one
`CapacityTelemetry.observe_order_status` call each:

- **partial-open**: once per order, the first time it is open with `0 < cum_qty < order_qty` (an `open` row).
  Kraken warns that a `trade` can say `partially_filled` while filling the whole order (a separate `filled`
  follows): the quantities decide, never the status word;
- **partial-cancel**: `canceled`/`expired` with `cum_qty > 0` (Kraken's `reason` goes to the canary's context). An
  order partly filled while open and then canceled counts as both, as the hooks do;
- **fill**: `filled`, timed from the order's `new` event (for an order already open when the stream connected,
  from its `opentm`, which REST tells: `note_open_orders`, `resolve`) to the `filled` event, on Kraken's clock. A
  fill whose start is not known yet waits for it (`pending_lookups`);
- the **open-order count** per pair: the snapshot, then every transition;
- the **order rate counter**'s events (`rate_events`, drained by the stream): a placement (`pending_new`, or `new`
  when none came), an amend and a cancel with the order's age then (from its `pending_new`, or its last amend), a
  rejection (`reason` `EOrder:Rate limit exceeded`, never charged as a cancel), and Kraken's own counter when a
  row carries one (`ratecounter`), each at Kraken's timestamp. Snapshot rows add nothing.

Nothing is counted twice: an order that ended is remembered (bounded, as the hooks' txid tables) and any later
row for it is a replay; a partial-open is reported once per order. A snapshot replaces what we held: orders we
held open that it no longer lists ended while we were away (`missing`, to resolve with `QueryOrders`), and one
that contradicts what we know (an order we saw end listed as open, an executed quantity gone down) is reported.
Malformed rows change nothing and are counted by reason.

Update rows carry only what changed (a `new` or `canceled` row has no symbol or quantity): the book supplies them
from the order's earlier rows. Rows of pairs not configured are followed as well (to ignore their later rows
quietly) but produce nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from .order_rate import RATE_LIMIT_REASON
from .pairs import PairNames

# Kraken's v2 vocabulary (documented values; `iceberg_refill` and `triggered` are in the public clients too).
EXEC_TYPES = frozenset({"pending_new", "new", "trade", "filled", "iceberg_refill", "canceled", "expired", "amended",
                        "restated", "status"})
ORDER_STATUSES = frozenset({"pending_new", "new", "partially_filled", "filled", "canceled", "expired", "triggered"})
ENDING_EXEC_TYPES = frozenset({"filled", "canceled", "expired"})
OPEN_STATUSES = frozenset({"new", "partially_filled", "triggered"})
_TIMED = frozenset({"pending_new", "new", "amended", *ENDING_EXEC_TYPES})  # exec_types whose timestamp is used
_RATED = frozenset({"pending_new", "new", "amended", "canceled", "expired"})  # exec_types the rate counter reads


# Why a row was skipped (`krakenbot_kraken_stream_bad_rows_total{reason}`); created up front.
SKIP_REASONS = (
    "not_an_object",      # a row that is not a JSON object
    "missing_order_id",   # no order_id, or not a string
    "bad_field",          # a quantity, status or timestamp of the wrong type or range
    "unknown_exec_type",  # an exec_type outside Kraken's documented set
    "unknown_symbol",     # a symbol that cannot be a pair name
    "unknown_order",      # an update for an order we never saw, without its symbol and quantity (looked up by REST)
    "bad_timestamp",      # applied, but its time is not RFC 3339: the fill's times come from REST instead
    "replayed",           # a row for an order that already ended: counted once already
    "not_open",           # a snapshot row of an order that is not open (a trade, with snap_trades)
)
MAX_ENDED_ORDERS = 100_000  # ended order_ids remembered (two generations), as the hooks' txid tables
MAX_ORDER_ID_LENGTH = 128
_NUMBER = (int, float)
_INF = float("inf")


class Observation(NamedTuple):
    """One `observe_order_status` call: `status` in the hooks' words (open, closed, canceled, expired)."""

    pair: str
    order_id: str
    status: str
    vol: float
    vol_exec: float
    placed_at: float | None = None
    closed_at: float | None = None
    reason: str | None = None


class OrderState:
    """What the book knows of one order. `pair` is the exported label, or None for a pair not configured.

    Times are kept as Kraken wrote them and read (`submitted_at`, `placed_at`, `amended_at`) only when needed: most
    orders' times are needed once, when they fill.
    """

    __slots__ = ("_amended", "_placed", "_submitted", "cum", "exec_ids", "order_id", "pair", "partial_reported", "qty",
                 "status")

    def __init__(self, order_id: str, pair: str | None, qty: float, placed_at: float | None = None) -> None:
        self.order_id = order_id
        self.pair = pair
        self.qty = qty
        self.cum = 0.0
        self.status = "pending_new"
        self.partial_reported = False
        # its `pending_new`: when the order was placed (the rate counter's +1); Kraken's text, or already read (float)
        self._submitted: str | float | None = None
        self._placed: str | float | None = placed_at  # its `new` (or REST's `opentm`): where a fill time starts
        self._amended: list[str] | None = None  # each `amended` (the rate counter charges amends by age)
        self.exec_ids: set[str] | None = None  # trades already added when Kraken sends no cum_qty

    @property
    def submitted_at(self) -> float | None:
        submitted = self._submitted
        return submitted if type(submitted) is float else parse_time(submitted)

    @property
    def placed_at(self) -> float | None:
        placed = self._placed
        if type(placed) is str:
            placed = self._placed = parse_time(placed)  # None when it is not RFC 3339: REST's opentm then
        return placed  # type: ignore[return-value]

    @placed_at.setter
    def placed_at(self, value: float | None) -> None:
        self._placed = value

    @property
    def amended_at(self) -> list[float]:
        return [t for t in map(parse_time, self._amended or ()) if t is not None]

    def __repr__(self) -> str:
        return (f"OrderState({self.order_id!r}, pair={self.pair!r}, qty={self.qty}, cum={self.cum}, "
                f"status={self.status!r})")


class Applied(NamedTuple):
    """What one batch of rows did."""

    observations: list[Observation]
    skipped: Counter[str]
    missing: list[str]  # snapshot only: orders held open that it no longer lists
    contradictions: list[str]  # snapshot only: order_ids whose listed state contradicts what we know


_observation = tuple.__new__  # Observation(*fields) without its Python-level __new__ (all eight fields given)
_IMPLAUSIBLE = "\x00not a pair"  # what `_pair_of` says of a symbol that cannot be a pair name
_NOTHING_SKIPPED: Counter[str] = Counter()  # shared and never written: an update without a bad row allocates none
_NONE: list[str] = []  # (updates have no missing orders or contradictions; never written)


def parse_time(value: Any) -> float | None:
    """An RFC 3339 timestamp with its offset (`2024-05-18T12:58:40.165132Z`) as Unix seconds, else None."""
    if type(value) is not str or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _quantity(value: Any) -> float | None:
    """A JSON number >= 0 and finite (Kraken v2 sends numbers, not strings), else None."""
    if type(value) not in _NUMBER:
        return None
    number = float(value)
    return number if 0.0 <= number < _INF else None


class _RecentIds:
    """Order ids that ended, in two generations of at most `capacity / 2` each: O(1), bounded."""

    __slots__ = ("capacity", "_new", "_old")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(2, capacity)
        self._new: set[str] = set()
        self._old: set[str] = set()

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._new or order_id in self._old

    def add(self, order_id: str) -> None:
        self._new.add(order_id)
        if len(self._new) * 2 >= self.capacity:
            self._old, self._new = self._new, set()

    def __len__(self) -> int:
        return len(self._new) + len(self._old)


class PairMatcher:
    """Symbol -> exported label (None for a pair not configured), cached; matches every spelling
    (`DOGE/USD` in v2, `XDG/USD` in AssetPairs' wsname, `XDGUSD` in REST)."""

    def __init__(self, pairs: Iterable[PairNames], cache_size: int = 1024) -> None:
        self._pairs = list(pairs)
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size

    def __call__(self, symbol: str) -> str | None:
        label = self._cache.get(symbol, False)
        if label is not False:
            return label  # type: ignore[return-value]
        found = next((names.label for names in self._pairs if names.matches(symbol)), None)
        if len(self._cache) < self._cache_size:
            self._cache[symbol] = found
        return found


def plausible_symbol(symbol: Any) -> bool:
    """A v2 symbol is `BASE/QUOTE` of letters and digits; anything else is not a pair name."""
    if type(symbol) is not str or not 3 <= len(symbol) <= 32 or symbol.count("/") != 1:
        return False
    base, quote = symbol.split("/")
    return base.isalnum() and quote.isalnum()


class ExecutionBook:
    """The account's open orders as the `executions` stream reports them, and the hook calls they amount to.

    Not thread-safe: one stream client feeds it. `match` maps a symbol to the exported label or None.
    """

    def __init__(self, match: Callable[[str], str | None], max_ended: int = MAX_ENDED_ORDERS) -> None:
        self._match = match
        self._orders: dict[str, OrderState] = {}  # every order we follow that has not ended
        self._ended = _RecentIds(max_ended)
        self._open: dict[str, int] = {}  # label -> orders of that pair in `_orders`
        self.changes = 0  # how often an open count changed: readers compare it instead of every count
        self._waiting_fill: dict[str, tuple[OrderState, float | None]] = {}  # filled, a time unknown: (state, closed_at)
        self._missing: dict[str, OrderState] = {}  # ended while we were away: waiting for REST
        self._unknown: set[str] = set()  # updates for orders never seen: waiting for REST
        self._untimed: list[Observation] = []  # fills REST could not time either
        self._latest: str | None = None  # the last event time seen, as Kraken wrote it
        self._symbols: dict[Any, str | None] = {}  # symbol -> label (None: not configured; _IMPLAUSIBLE: no pair)
        self.snapshots = 0
        # the rate counter's events since the stream last drained them: pair -> [(kind, at, amount)], in order
        self.rate_events: dict[str, list[tuple[str, float, float]]] = {}
        self._minutes: dict[str, float] = {}  # "YYYY-MM-DDTHH:MM" -> its start in Unix seconds (for `_time`)

    # ---- reading ------------------------------------------------------------------------------------------

    def open_count(self, pair: str) -> int:
        """Orders of `pair` open on Kraken (pending, new, partially filled), as the stream has told."""
        return self._open.get(pair, 0)

    def order(self, order_id: str) -> OrderState | None:
        return self._orders.get(order_id)

    def pending_lookups(self) -> list[str]:
        """Order ids only REST can settle (`QueryOrders`): ended while away, unknown to us, or filled with an
        unknown start."""
        return [*self._missing, *self._unknown, *self._waiting_fill]

    @property
    def latest(self) -> float | None:
        """The latest event time seen (Kraken's clock): where a gap after it begins."""
        return parse_time(self._latest)

    @property
    def has_pending(self) -> bool:
        """Whether anything waits for REST (`pending_lookups`), cheaply."""
        return bool(self._missing or self._unknown or self._waiting_fill)

    def _pair_of(self, symbol: Any) -> str | None:
        """The exported label of a v2 symbol, None for a pair not configured, `_IMPLAUSIBLE` for no pair name."""
        try:
            return self._symbols[symbol]
        except (KeyError, TypeError):
            pass
        pair = self._match(symbol) if plausible_symbol(symbol) else _IMPLAUSIBLE
        if type(symbol) is str and len(self._symbols) < 4096:
            self._symbols[symbol] = pair
        return pair

    def has_ended(self, order_id: str) -> bool:
        return order_id in self._ended

    def unplaced(self) -> int:
        """Open orders of configured pairs whose start we do not know yet (open when the stream connected)."""
        return sum(1 for state in self._orders.values() if state.placed_at is None and state.pair is not None)

    # ---- the stream ---------------------------------------------------------------------------------------

    def apply_update(self, rows: Any) -> Applied:
        """An `update` message's `data`: each row one event of one order, in Kraken's order."""
        out: list[Observation] = []
        skipped = self.update(rows if type(rows) is list else [], out)
        return Applied(out, _NOTHING_SKIPPED if skipped is None else skipped, _NONE, _NONE)

    def update(self, rows: list[Any], out: list[Observation]) -> Counter[str] | None:
        """`apply_update` for the stream's hot path: observations added to `out`, the skipped rows by reason (None
        when none was)."""
        skipped: Counter[str] | None = None
        update = self._update
        for row in rows:
            reason = update(row, out)
            if reason is not None:
                if skipped is None:
                    skipped = Counter()
                skipped[reason] += 1
        return skipped

    def apply_snapshot(self, rows: Any, trust: Collection[str] = ()) -> Applied:
        """A `snapshot` message's `data`: the account's open orders now. Orders we held open that it does not
        list ended while we were away (`missing`). An order we saw end that it lists open is a contradiction; in
        `trust` (Kraken said so twice), it is counted open again, and its end, counted already, is not counted twice."""
        out: list[Observation] = []
        skipped: Counter[str] = Counter()
        contradictions: list[str] = []
        listed: set[str] = set()
        for row in rows if type(rows) is list else ():
            reason = self._snapshot_row(row, out, listed, contradictions, trust)
            if reason is not None:
                skipped[reason] += 1
        missing = [order_id for order_id in self._orders if order_id not in listed]
        for order_id in missing:
            state = self._orders.pop(order_id)
            self._uncount(state)
            self._missing[order_id] = state
        self.snapshots += 1
        return Applied(out, skipped, missing, contradictions)

    def _update(self, row: Any, out: list[Observation]) -> str | None:
        """One event of one order (the hot path: written out, each field checked before any is taken)."""
        if type(row) is not dict:
            return "not_an_object"
        get = row.get
        order_id = get("order_id")
        if type(order_id) is not str or not 0 < len(order_id) <= MAX_ORDER_ID_LENGTH:
            return "missing_order_id"
        exec_type = get("exec_type")
        if exec_type not in EXEC_TYPES:
            return "unknown_exec_type"
        state = self._orders.get(order_id)
        if state is None:
            if order_id in self._ended:
                return "replayed"
            found = self._new_state(order_id, row)
            if isinstance(found, str):
                if found == "unknown_order" and order_id not in self._waiting_fill:
                    self._unknown.add(order_id)
                return found
            state = found
        status = get("order_status", state.status)
        if status not in ORDER_STATUSES:
            return "bad_field"
        qty = get("order_qty", state.qty)
        if not (type(qty) is float and 0.0 <= qty < _INF):
            qty = _quantity(qty)
            if qty is None:
                return "bad_field"
        cum = get("cum_qty")
        if cum is None:
            cum = state.cum if exec_type != "trade" else self._trade_without_cum(state, row)
            if cum is None:
                return "bad_field"
        elif not (type(cum) is float and 0.0 <= cum < _INF):
            cum = _quantity(cum)
            if cum is None:
                return "bad_field"
        state.qty, state.cum, state.status = qty, cum, status
        bad_rate = (exec_type in _RATED or "ratecounter" in row) and self._rate(state, exec_type, row)
        if exec_type in _TIMED:
            text = get("timestamp")
            if type(text) is str:
                self._latest = text  # rows come in Kraken's order: the last timed one is where a gap would begin
            if exec_type in ENDING_EXEC_TYPES:
                stamp = parse_time(text)
                placed = state._placed
                if type(placed) is str:
                    placed = state._placed = parse_time(placed)
                    bad = stamp is None or placed is None
                else:
                    bad = stamp is None
                self._end(state, exec_type, stamp, get("reason"), out)
                return "bad_timestamp" if bad else "bad_field" if bad_rate else None
            if exec_type == "new":
                if state._placed is None:
                    state._placed = text
            elif exec_type == "pending_new":
                if state._submitted is None:
                    state._submitted = text
            elif type(text) is str:  # amended
                if state._amended is None:
                    state._amended = []
                state._amended.append(text)
        if not state.partial_reported and status in OPEN_STATUSES and 0.0 < cum < qty:
            state.partial_reported = True
            if state.pair is not None:
                out.append(_observation(Observation, (state.pair, order_id, "open", qty, cum, None, None, None)))
        return "bad_field" if bad_rate else None  # (a `ratecounter` that is not a number: the row applied)

    def _rate(self, state: OrderState, exec_type: str, row: dict[str, Any]) -> bool:
        """The rate counter's events in one row (before the row's times are recorded in `state`): the time is read
        only for a row that makes one (a `new` after its `pending_new` makes none). True when the row's `ratecounter`
        is there but not a number in [0, 1e9) (ignored; the row counted as a bad row)."""
        pair = state.pair
        if pair is None:
            return False
        reason = row.get("reason")
        refused = type(reason) is str and RATE_LIMIT_REASON in reason
        counter = row.get("ratecounter")
        placed_now = False
        if exec_type == "pending_new":
            kind = "placed" if state._submitted is None else None
            placed_now = kind is not None
        elif exec_type == "new":
            kind = "placed" if state._submitted is None and state._placed is None else None
        elif exec_type in ("canceled", "amended") and not refused:
            kind = exec_type
        else:
            kind = None
        bad = counter is not None and not (
            isinstance(counter, (int, float)) and not isinstance(counter, bool) and 0.0 <= counter < 1e9)
        if kind is None and not refused and counter is None:
            return False
        at = self._time(row.get("timestamp"))
        if at is None:
            return bad
        events = self.rate_events.get(pair)
        if events is None:
            events = self.rate_events[pair] = []
        if refused:
            events.append(("rejected", at, 0.0))
        if kind == "placed":
            events.append(("placed", at, 0.0))
            if placed_now:
                state._submitted = at  # read once: a cancel's age starts here
        elif kind is not None:
            amends = state._amended
            submitted = state._submitted
            start = self._time(amends[-1]) if amends else (
                submitted if type(submitted) is float else
                self._time(submitted) if submitted is not None else state.placed_at)
            age = _INF if start is None else max(0.0, at - start)  # unknown: as an old order (no penalty)
            events.append((kind, at, age))
        if counter is not None and not bad:
            events.append(("reported", at, float(counter)))
        return bad

    def _time(self, text: Any) -> float | None:
        """`parse_time`, fast for Kraken's own form (`2024-05-18T12:58:40.165132Z`): each minute's start is cached."""
        if type(text) is str and len(text) == 27 and text[26] == "Z":
            minute = self._minutes.get(text[:16])
            if minute is None:
                minute = parse_time(text[:16] + ":00Z")
                if minute is None or text[16] != ":":
                    return parse_time(text)
                if len(self._minutes) >= 64:
                    self._minutes.clear()
                self._minutes[text[:16]] = minute
            try:
                seconds = float(text[17:26])
            except ValueError:
                return None
            return minute + seconds if 0.0 <= seconds < 61.0 else parse_time(text)
        return parse_time(text)

    def take_rate_events(self) -> dict[str, list[tuple[str, float, float]]]:
        events, self.rate_events = self.rate_events, {}
        return events

    def _trade_without_cum(self, state: OrderState, row: dict[str, Any]) -> float | None:
        """The executed quantity after a trade that did not say it: `last_qty` added once per `exec_id`."""
        exec_id, last = row.get("exec_id"), _quantity(row.get("last_qty"))
        if last is None:
            return None
        seen = state.exec_ids
        if seen is not None and exec_id in seen:
            return state.cum
        if type(exec_id) is str:
            if seen is None:
                seen = state.exec_ids = set()
            seen.add(exec_id)
        return _add(state.cum, last)

    def _new_state(self, order_id: str, row: dict[str, Any]) -> OrderState | str:
        """A state for an order first seen in `row`, or the reason it cannot have one."""
        symbol, qty = row.get("symbol"), row.get("order_qty")
        if not (type(qty) is float and 0.0 <= qty < _INF):
            qty = _quantity(qty)
        if symbol is None or qty is None:
            return "unknown_order"
        pair = self._symbols.get(symbol, _IMPLAUSIBLE) if type(symbol) is str else _IMPLAUSIBLE
        if pair is _IMPLAUSIBLE:
            pair = self._pair_of(symbol)
            if pair is _IMPLAUSIBLE:
                return "unknown_symbol"
        state = OrderState(order_id, pair, qty)
        self._orders[order_id] = state
        if pair is not None:  # `_count`, written out
            self._open[pair] = self._open.get(pair, 0) + 1
            self.changes += 1
        if self._unknown:
            self._unknown.discard(order_id)
        return state

    def _check_partial(self, state: OrderState, out: list[Observation]) -> None:
        if not state.partial_reported and state.status in OPEN_STATUSES and 0.0 < state.cum < state.qty:
            state.partial_reported = True
            if state.pair is not None:
                out.append(Observation(state.pair, state.order_id, "open", state.qty, state.cum))

    def _end(self, state: OrderState, exec_type: str, stamp: float | None, reason: Any,
             out: list[Observation]) -> None:
        """The order ended: a fill (timed when its start is known) or a cancel/expiry (a canary when it had fills)."""
        order_id, pair = state.order_id, state.pair
        if self._orders.pop(order_id, None) is not None and pair is not None:  # `_drop`, written out
            self._open[pair] = max(0, self._open.get(pair, 0) - 1)
            self.changes += 1
        ended = self._ended
        if order_id in ended:  # a reopened order (see `apply_snapshot`): its end was counted
            return
        ended.add(order_id)
        if pair is None:
            return
        if exec_type == "filled":
            placed = state.placed_at
            if placed is None or stamp is None:
                self._waiting_fill[order_id] = (state, stamp)  # REST's opentm/closetm complete it
                return
            out.append(_observation(Observation, (pair, order_id, "closed", state.qty, state.cum, placed, stamp, None)))
            return
        if 0.0 < state.cum < state.qty and not state.partial_reported:  # it was open and partly filled: a
            state.partial_reported = True  # partial-open too, as the hooks count it (even when only REST tells)
            out.append(Observation(pair, order_id, "open", state.qty, state.cum))
        out.append(_observation(Observation, (pair, order_id, exec_type, state.qty, state.cum, None, None,
                                              reason if type(reason) is str else None)))

    def _snapshot_row(self, row: Any, out: list[Observation], listed: set[str], contradictions: list[str],
                      trust: Collection[str]) -> str | None:
        if type(row) is not dict:
            return "not_an_object"
        order_id = row.get("order_id")
        if type(order_id) is not str or not 0 < len(order_id) <= MAX_ORDER_ID_LENGTH:
            return "missing_order_id"
        status = row.get("order_status")
        if status not in ORDER_STATUSES:
            return "bad_field"
        if status not in OPEN_STATUSES and status != "pending_new" or row.get("exec_type") == "trade":
            return "not_open"
        if order_id in self._ended and order_id not in self._orders:
            contradictions.append(order_id)  # we saw it end; Kraken lists it open
            if order_id not in trust:
                return None
        state = self._orders.get(order_id) or self._missing.pop(order_id, None)
        qty, cum = _quantity(row.get("order_qty")), _quantity(row.get("cum_qty", 0.0))
        if qty is None or cum is None:
            return "bad_field"
        if state is None:
            pair = self._pair_of(row.get("symbol"))
            if pair is _IMPLAUSIBLE:
                return "unknown_symbol"
            state = OrderState(order_id, pair, qty)
            self._unknown.discard(order_id)
        elif cum < state.cum:
            contradictions.append(order_id)  # executed quantity never goes down
        if order_id not in self._orders:
            self._orders[order_id] = state
            self._count(state)
        listed.add(order_id)
        state.qty, state.cum, state.status = qty, cum, status
        self._check_partial(state, out)
        return None

    # ---- REST ---------------------------------------------------------------------------------------------

    def note_open_orders(self, open_orders: Mapping[str, Any]) -> int:
        """Take `opentm` from an `OpenOrders` reply for orders whose start we do not know (open when the stream
        connected); returns how many were learned."""
        learned = 0
        for order_id, info in open_orders.items():
            state = self._orders.get(order_id)
            if state is not None and state.placed_at is None:
                opened = _rest_time(info, "opentm")
                if opened is not None:
                    state.placed_at = opened
                    learned += 1
        return learned

    def resolve(self, order_id: str, info: Any) -> list[Observation]:
        """Settle an order by its `QueryOrders`/`ClosedOrders` entry (`OrderInfo`). What the stream already
        counted is not counted again."""
        out: list[Observation] = []
        waiting = self._waiting_fill.pop(order_id, None)
        if waiting is not None:  # a fill we saw, waiting for its start
            done, closed_at = waiting
            out.append(Observation(done.pair or "", order_id, "closed", done.qty, done.cum,
                                   placed_at=done.placed_at or _rest_time(info, "opentm"),
                                   closed_at=closed_at or _rest_time(info, "closetm")))
            return out
        state: OrderState | None = self._missing.pop(order_id, None) or self._orders.get(order_id)
        self._unknown.discard(order_id)
        if order_id in self._ended or not isinstance(info, Mapping):
            return out
        status = info.get("status")
        vol, vol_exec = _rest_quantity(info.get("vol")), _rest_quantity(info.get("vol_exec"))
        if status not in ("closed", "canceled", "expired", "open", "pending") or vol is None or vol_exec is None:
            return out
        if state is None:
            descr = info.get("descr")
            pair_name = descr.get("pair") if isinstance(descr, Mapping) else None
            if type(pair_name) is not str:
                return out
            state = OrderState(order_id, self._match(pair_name), vol, placed_at=_rest_time(info, "opentm"))
        state.qty, state.cum = vol, max(state.cum, vol_exec)
        if state.placed_at is None:
            state.placed_at = _rest_time(info, "opentm")
        if status in ("open", "pending"):  # still open after all: back in the book
            state.status = "new" if status == "open" else "pending_new"
            if order_id not in self._orders:
                self._orders[order_id] = state
                self._count(state)
            self._check_partial(state, out)
            return out
        self._drop(state)
        if status == "closed":
            self._ended.add(order_id)
            if state.pair is not None:
                out.append(Observation(state.pair, order_id, "closed", state.qty, state.cum,
                                       placed_at=state.placed_at, closed_at=_rest_time(info, "closetm")))
            return out
        self._end(state, status, None, info.get("reason"), out)
        return out

    def forget(self, order_id: str) -> None:
        """REST does not know the order either: stop waiting for it (its fill, if any, goes untimed)."""
        waiting = self._waiting_fill.pop(order_id, None)
        self._missing.pop(order_id, None)
        self._unknown.discard(order_id)
        if waiting is not None and waiting[0].pair is not None:
            state, closed_at = waiting
            self._untimed.append(Observation(state.pair or "", order_id, "closed", state.qty, state.cum,
                                             closed_at=closed_at))

    def take_untimed(self) -> list[Observation]:
        """Fills `forget` gave up timing: still fills (the order ended), with no fill time."""
        untimed, self._untimed = self._untimed, []
        return untimed

    # ---- counts -------------------------------------------------------------------------------------------

    def _drop(self, state: OrderState) -> None:
        """Out of the book (and its count), if it is in it."""
        if self._orders.pop(state.order_id, None) is not None:
            self._uncount(state)

    def _count(self, state: OrderState) -> None:
        pair = state.pair
        if pair is not None:
            self._open[pair] = self._open.get(pair, 0) + 1
            self.changes += 1

    def _uncount(self, state: OrderState) -> None:
        pair = state.pair
        if pair is not None:
            self._open[pair] = max(0, self._open.get(pair, 0) - 1)
            self.changes += 1


def _add(a: float, b: float) -> float:
    """a + b in decimal, as Kraken adds quantities (0.1 + 0.2 is 0.3 here)."""
    from decimal import Decimal

    return float(Decimal(repr(a)) + Decimal(repr(b)))


def _rest_quantity(value: Any) -> float | None:
    """REST's quantities are strings ("13.00000000")."""
    if type(value) is str:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if 0.0 <= number < _INF else None
    return _quantity(value)


def _rest_time(info: Any, key: str) -> float | None:
    """REST's `opentm`/`closetm`: Unix seconds as a JSON number, > 0."""
    value = info.get(key) if isinstance(info, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < float(value) < _INF:
        return float(value)
    return None
