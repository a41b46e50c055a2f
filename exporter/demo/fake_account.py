"""A pretend Kraken account for the fake Kraken: its orders as REST reports them (`OpenOrders`, `QueryOrders`,
`ClosedOrders`) and, for every change, the WebSocket v2 `executions` rows Kraken would stream.

Kraken's documented sequences: `pending_new` (a full row: symbol, quantity, price) then `new` (sparse: only what
changed), `trade` rows with `cum_qty` and `last_qty` (a trade that completes the order may still say
`partially_filled`: Kraken's caution, kept here when `caution_trades` is on) then a separate `filled`, and
`canceled`/`expired` with `reason`. Timestamps are RFC 3339 with microseconds on the account's own clock (wall time,
the demo's simulated time, or a test's script), and `opentm`/`closetm` in REST are the same moments.

Listeners get each change's rows in order; `snapshot_and_listen` takes the open orders and starts listening in one
step, so a connection misses and doubles nothing between its snapshot and its first update.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .fake_kraken import ASSET_PAIRS

Rows = list[dict[str, Any]]
Listener = Callable[[Rows], None]
_V1_TO_V2 = {"XDG": "DOGE", "XBT": "BTC"}


def v2_symbol(altname: str) -> str:
    """`XDGUSD` -> `DOGE/USD`: the v2 name of a pair the fake lists (v2 says DOGE and BTC where REST says XDG, XBT)."""
    for info in ASSET_PAIRS.values():
        if info["altname"] == altname:
            base, quote = info["wsname"].split("/")
            return f"{_V1_TO_V2.get(base, base)}/{_V1_TO_V2.get(quote, quote)}"
    raise KeyError(f"the fake Kraken does not list {altname}")


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakeOrder:
    txid: str
    pair: str  # REST altname
    qty: Decimal
    price: Decimal
    side: str
    opened_at: float
    cum: Decimal = Decimal(0)
    status: str = "open"  # REST words: pending, open, closed, canceled, expired
    closed_at: float | None = None
    reason: str | None = None
    trades: int = 0
    userref: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def order_info(self) -> dict[str, Any]:
        """The order as REST's OpenOrders/QueryOrders report it (numbers as strings, times as numbers)."""
        info: dict[str, Any] = {
            "refid": None, "userref": self.userref, "status": self.status, "opentm": self.opened_at, "starttm": 0,
            "expiretm": 0,
            "descr": {"pair": self.pair, "type": self.side, "ordertype": "limit", "price": f"{self.price:.7f}",
                      "price2": "0", "leverage": "none", "close": "",
                      "order": f"{self.side} {self.qty:.8f} {self.pair} @ limit {self.price:.7f}"},
            "vol": f"{self.qty:.8f}", "vol_exec": f"{self.cum:.8f}", "cost": f"{self.cum * self.price:.9f}",
            "fee": "0.000000000", "price": f"{self.price:.9f}", "stopprice": "0.000000000",
            "limitprice": "0.000000000", "misc": "", "oflags": "fciq",
        }
        if self.closed_at is not None:
            info["closetm"] = self.closed_at
            info["reason"] = self.reason
        return info

    def ws_status(self) -> str:
        if self.status == "pending":
            return "pending_new"
        if self.status == "open":
            return "partially_filled" if self.cum > 0 else "new"
        return "filled" if self.status == "closed" else self.status

    def snapshot_row(self, at: float) -> dict[str, Any]:
        """The order as an `executions` snapshot lists it: its whole current state."""
        return {
            "order_id": self.txid, "symbol": v2_symbol(self.pair), "order_qty": float(self.qty),
            "cum_qty": float(self.cum), "cum_cost": float(self.cum * self.price), "time_in_force": "GTC",
            "exec_type": "new", "side": self.side, "order_type": "limit", "order_userref": self.userref,
            "limit_price": float(self.price), "order_status": self.ws_status(), "timestamp": rfc3339(at),
        }


class FakeAccount:
    """`FakeAccount(clock=time.time)`: place, trade, cancel, expire orders; read them as REST and as the stream."""

    def __init__(self, clock: Callable[[], float] = time.time, caution_trades: bool = True) -> None:
        self.clock = clock
        self.caution_trades = caution_trades
        self._orders: dict[str, FakeOrder] = {}
        self._closed: dict[str, FakeOrder] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._exec_ids = itertools.count(1)
        # Kraken's own order rate counter as rows carry it with `ratecounter: true` (the field name of v1's openOrders;
        # v2's is not spelled out in Kraken's pages): a test sets a value, and every later row carries it
        self.ratecounter: float | None = None

    # ---- changes -----------------------------------------------------------------------------------------

    def place(self, pair: str, qty: float | str | Decimal, price: float | str = "0.1850000", side: str = "buy",
              txid: str | None = None, at: float | None = None, live_after: float | None = 0.0) -> str:
        """A new order: `pending_new`, then `new` after `live_after` seconds (None: it stays pending)."""
        at = self.clock() if at is None else at
        with self._lock:
            txid = txid or self._txid()
            order = FakeOrder(txid, pair, Decimal(str(qty)), Decimal(str(price)), side, opened_at=at, status="pending")
            self._orders[txid] = order
            self._emit([{
                "order_id": txid, "symbol": v2_symbol(pair), "order_qty": float(order.qty), "cum_cost": 0.0,
                "time_in_force": "GTC", "exec_type": "pending_new", "side": side, "order_type": "limit",
                "order_userref": 0, "limit_price_type": "static", "limit_price": float(order.price),
                "stop_price": 0.0, "order_status": "pending_new", "fee_usd_equiv": 0.0, "fee_ccy_pref": "fciq",
                "timestamp": rfc3339(at),
            }])
            if live_after is not None:
                self.go_live(txid, at + live_after)
        return txid

    def go_live(self, txid: str, at: float | None = None) -> None:
        at = self.clock() if at is None else at
        with self._lock:
            order = self._orders[txid]
            order.status, order.opened_at = "open", at  # REST's opentm is when it went on the book
            self._emit([{"timestamp": rfc3339(at), "order_status": "new", "exec_type": "new", "order_userref": 0,
                         "order_id": txid}])

    def trade(self, txid: str, qty: float | str | Decimal, at: float | None = None) -> None:
        """A fill of `qty` (capped at what is left); the one that completes the order is followed by `filled`."""
        at = self.clock() if at is None else at
        with self._lock:
            order = self._orders[txid]
            last = min(Decimal(str(qty)), order.qty - order.cum)
            if last <= 0:
                return
            order.cum += last
            order.trades += 1
            complete = order.cum == order.qty
            status = "partially_filled" if not complete or self.caution_trades else "filled"
            rows = [{
                "order_id": txid, "exec_id": f"T{next(self._exec_ids):05d}-FAKE-TRADE", "exec_type": "trade",
                "trade_id": next(self._exec_ids), "symbol": v2_symbol(order.pair), "side": order.side,
                "last_qty": float(last), "last_price": float(order.price), "liquidity_ind": "m",
                "cost": float(last * order.price), "order_userref": 0, "order_status": status, "order_type": "limit",
                "cum_qty": float(order.cum), "cum_cost": float(order.cum * order.price),
                "avg_price": float(order.price), "fee_usd_equiv": 0.0, "timestamp": rfc3339(at),
                "fees": [{"asset": "USD", "qty": 0.0}],
            }]
            if complete:
                rows.append({"timestamp": rfc3339(at), "order_status": "filled", "exec_type": "filled",
                             "cum_qty": float(order.cum), "cum_cost": float(order.cum * order.price),
                             "avg_price": float(order.price), "order_userref": 0, "order_id": txid})
                self._close(order, "closed", at, None)
            self._emit(rows)

    def fill(self, txid: str, at: float | None = None) -> None:
        """Fill whatever is left in one trade."""
        with self._lock:
            order = self._orders[txid]
            self.trade(txid, order.qty - order.cum, at)

    def amend(self, txid: str, qty: float | str | Decimal | None = None, at: float | None = None) -> None:
        """Kraken's `amend_order` (the order keeps its id): an `amended` row, optionally with a new quantity."""
        at = self.clock() if at is None else at
        with self._lock:
            order = self._orders[txid]
            if qty is not None:
                order.qty = Decimal(str(qty))
            self._emit([{"timestamp": rfc3339(at), "order_status": order.ws_status(), "exec_type": "amended",
                         "order_qty": float(order.qty), "cum_qty": float(order.cum), "order_userref": 0,
                         "reason": "User requested", "amended": True, "order_id": txid}])

    def refuse(self, pair: str, qty: float | str | Decimal, reason: str = "EOrder:Rate limit exceeded",
               at: float | None = None) -> str:
        """An order Kraken takes and refuses at once (`pending_new`, then `canceled` with `reason`): what an order
        over the rate counter's threshold gets."""
        at = self.clock() if at is None else at
        txid = self.place(pair, qty, at=at, live_after=None)
        self._end(txid, "canceled", reason, at)
        return txid

    def cancel(self, txid: str, reason: str = "User requested", at: float | None = None) -> None:
        self._end(txid, "canceled", reason, at)

    def expire(self, txid: str, reason: str = "Order expired", at: float | None = None) -> None:
        self._end(txid, "expired", reason, at)

    def _end(self, txid: str, kind: str, reason: str, at: float | None) -> None:
        at = self.clock() if at is None else at
        with self._lock:
            order = self._orders[txid]
            self._close(order, kind, at, reason)
            self._emit([{"timestamp": rfc3339(at), "order_status": kind, "exec_type": kind,
                         "cum_qty": float(order.cum), "cum_cost": float(order.cum * order.price),
                         "fee_usd_equiv": 0.0, "avg_price": float(order.price) if order.cum else 0.0,
                         "order_userref": 0, "cancel_reason": reason, "reason": reason, "order_id": txid}])

    def _close(self, order: FakeOrder, status: str, at: float, reason: str | None) -> None:
        order.status, order.closed_at, order.reason = status, at, reason
        self._orders.pop(order.txid, None)
        self._closed[order.txid] = order

    # ---- views -------------------------------------------------------------------------------------------

    def open_orders(self) -> dict[str, dict[str, Any]]:
        """REST `OpenOrders` `open`: pending and open orders."""
        with self._lock:
            return {t: o.order_info() for t, o in self._orders.items()}

    def query(self, txids: list[str]) -> dict[str, dict[str, Any]]:
        """REST `QueryOrders`: any order the account has had, open or closed."""
        with self._lock:
            found = {t: self._orders.get(t) or self._closed.get(t) for t in txids}
            return {t: o.order_info() for t, o in found.items() if o is not None}

    def closed_since(self, start: float) -> dict[str, dict[str, Any]]:
        """REST `ClosedOrders` with `start` (Unix seconds) and `closetime=close`: orders that ended since."""
        with self._lock:
            closed = [o for o in self._closed.values() if o.closed_at is not None and o.closed_at >= start]
            return {o.txid: o.order_info() for o in sorted(closed, key=lambda o: -(o.closed_at or 0))}

    def order(self, txid: str) -> FakeOrder | None:
        with self._lock:
            return self._orders.get(txid) or self._closed.get(txid)

    def open_txids(self, pair: str | None = None) -> list[str]:
        with self._lock:
            return [t for t, o in self._orders.items() if pair is None or o.pair == pair]

    # ---- the stream --------------------------------------------------------------------------------------

    def snapshot_and_listen(self, listener: Listener) -> tuple[Rows, Callable[[], None]]:
        """The open orders as snapshot rows, and `listener` registered for every later change, in one step;
        returns the rows and the function that stops listening."""
        with self._lock:
            now = self.clock()
            rows = [o.snapshot_row(now) for o in self._orders.values()]
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return rows, stop

    def _emit(self, rows: Rows) -> None:
        if self.ratecounter is not None:
            rows = [{**row, "ratecounter": self.ratecounter} for row in rows]
        for listener in list(self._listeners):
            listener(rows)

    def _txid(self) -> str:
        n = next(self._ids)
        return f"O{n:05d}-FAKEX-{n * 7919 % 1_000_000:06d}"
