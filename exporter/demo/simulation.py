"""The built-in demo: a simulated grid bot on an accelerated clock, feeding the real hooks.

No Kraken keys, no Docker. Each slot keeps a buy and a sell entry open; fills close them (recording fill
times), some closes leave a slow recovery order behind, a few orders fill partially, and now and then a
partially filled order is canceled (the PHANTOM_POSITION_CANARY). A simulated operator follows the spec's
playbook eagerly: adds a slot every 30 simulated minutes in normal, one every 3 hours in caution (the
playbook says one a day; the demo hurries so stop comes within minutes), none in stop, and after half a day
in stop soft-closes recovery orders and orphans and drops slots, so every band comes round again. The bot also loses
track of an order now and then, so Kraken's count drifts from the internal one.

`SimulatedExchange` holds the account's order book as Kraken would report it; the fake Kraken server
serves the same book, and `history` lists every order placed and removed, in order. Given a `FakeAccount`, it
mirrors every change into it (placements, each partial fill as a trade, fills, cancels, on the simulated clock), so
the fake Kraken's `executions` stream reports them as Kraken would; the bot then leaves the order hooks to the
stream (`feed_orders=False`) and feeds only its own counts.

The bot runs the same with or without telemetry (`telemetry=None`): the hooks only read, and the random draws
never depend on them. Only the simulated operator reads the telemetry (the band it scales by); give it
`band_of` to act on another source of the band.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.capacity import BAND_CAUTION, BAND_NORMAL, BAND_STOP
from ..core.clock import Clock
from ..core.telemetry import CapacityTelemetry
from ..core.windows import DAY_SECONDS
from .fake_account import FakeAccount

log = logging.getLogger("kraken_capacity_exporter.demo")



@dataclass
class SimOrder:
    txid: str
    pair: str
    slot: int
    role: str  # "entry" | "recovery"
    side: str
    vol: float
    vol_exec: float
    price: float
    placed_at: float
    status: str = "open"
    tracked: bool = True  # False: the bot lost track of it (an orphan Kraken still reports)

    def kraken_info(self) -> dict[str, Any]:
        """The order as Kraken's OpenOrders/QueryOrders report it (numbers as strings)."""
        return {
            "refid": None, "userref": self.slot, "status": self.status, "opentm": self.placed_at,
            "starttm": 0, "expiretm": 0,
            "descr": {
                "pair": self.pair, "type": self.side, "ordertype": "limit", "price": f"{self.price:.7f}",
                "price2": "0", "leverage": "none", "close": "",
                "order": f"{self.side} {self.vol:.8f} {self.pair} @ limit {self.price:.7f}",
            },
            "vol": f"{self.vol:.8f}", "vol_exec": f"{self.vol_exec:.8f}",
            "cost": f"{self.vol_exec * self.price:.9f}", "fee": "0.000000000", "price": f"{self.price:.9f}",
            "stopprice": "0.000000000", "limitprice": "0.000000000", "misc": "", "oflags": "fciq",
        }


class SimulatedExchange:
    """A pretend Kraken account: open orders of every simulated pair."""

    def __init__(self, rng: random.Random, account: FakeAccount | None = None) -> None:
        self._rng = rng
        self.account = account
        self._orders: dict[str, SimOrder] = {}
        self.history: list[tuple[Any, ...]] = []  # ("place", txid, pair, slot, role, side, price, at) / ("remove", txid, why, at)
        self.lock = threading.Lock()

    def new_txid(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        part = lambda n: "".join(self._rng.choice(alphabet) for _ in range(n))  # noqa: E731
        return f"O{part(5)}-{part(5)}-{part(6)}"

    def add(self, order: SimOrder) -> None:
        with self.lock:
            self._orders[order.txid] = order
            self.history.append(("place", order.txid, order.pair, order.slot, order.role, order.side, order.price,
                                 order.placed_at))
            if self.account is not None:
                self.account.place(order.pair, f"{order.vol:.8f}", price=f"{order.price:.7f}", side=order.side,
                                   txid=order.txid, at=order.placed_at)

    def execute(self, order: SimOrder, vol_exec: float, at: float) -> None:
        """The order has `vol_exec` executed now (a trade of the difference)."""
        with self.lock:
            traded = round(vol_exec - order.vol_exec, 8)
            order.vol_exec = vol_exec
            if self.account is not None and traded > 0 and order.txid in self._orders:
                self.account.trade(order.txid, f"{traded:.8f}", at=at)

    def remove(self, txid: str, why: str = "canceled", at: float | None = None) -> None:
        with self.lock:
            if self._orders.pop(txid, None) is not None:
                self.history.append(("remove", txid, why, at))
                if self.account is not None and why == "closed":
                    self.account.fill(txid, at=at)
                elif self.account is not None:
                    self.account.cancel(txid, reason="User requested", at=at)

    def orders(self, pair: str | None = None) -> list[SimOrder]:
        with self.lock:
            return [o for o in self._orders.values() if pair is None or o.pair == pair]

    def open_orders_result(self) -> dict[str, Any]:
        """`result` of an OpenOrders reply: `{"open": {txid: OrderInfo}}`."""
        with self.lock:
            return {"open": {t: o.kraken_info() for t, o in self._orders.items()}}


class SimulatedBot:
    """One pair's grid bot, advanced by `tick()`; it calls the telemetry hooks as a real bot would."""

    MEAN_ENTRY_FILL = 2 * 3600.0
    MEAN_RECOVERY_FILL = 12 * 3600.0
    RECOVERY_SHARE = 0.02  # closed entries that leave a recovery order behind
    PARTIAL_PER_DAY = 0.02  # per order
    FIRST_CANARY_AFTER = 20 * 3600.0  # a partially filled order is canceled (the canary), then every canary_every
    ORPHAN_PER_DAY = 0.005  # per order: the bot loses track, Kraken still counts it
    SLOT_EVERY_NORMAL = 1800.0
    SLOT_EVERY_CAUTION = 3 * 3600.0  # faster than the playbook's one a day, so the demo reaches stop

    def __init__(
        self,
        pair: str,
        exchange: SimulatedExchange,
        telemetry: CapacityTelemetry | None,
        clock: Clock,
        rng: random.Random,
        start_slots: int = 58,
        feed_kraken: bool = True,
        canary_every_hours: float = 36.0,
        band_of: Callable[[float], str | None] | None = None,
        feed_orders: bool = True,
    ) -> None:
        self.pair = pair
        self.feed_orders = feed_orders  # False: Kraken's executions stream reports the orders, the bot only its counts
        self.exchange = exchange
        self.telemetry = telemetry
        self.clock = clock
        self.rng = rng
        self.start_slots = start_slots
        self.feed_kraken = feed_kraken
        if band_of is None and telemetry is None:
            raise ValueError("without telemetry the simulated operator needs band_of")
        self.band_of = band_of
        self.slots = 0
        self._last_tick = clock.now()
        self._last_slot_add = self._last_tick
        self._stop_since: float | None = None
        self.canary_every = canary_every_hours * 3600.0
        self._next_canary = self._last_tick + self.FIRST_CANARY_AFTER if canary_every_hours else float("inf")
        for _ in range(start_slots):
            self._add_slot(self._last_tick)

    def _place(self, slot: int, role: str, side: str, now: float) -> None:
        self.exchange.add(SimOrder(
            txid=self.exchange.new_txid(), pair=self.pair, slot=slot, role=role, side=side,
            vol=13.0, vol_exec=0.0, price=round(0.18 * (1 + self.rng.uniform(-0.05, 0.05)), 7), placed_at=now,
        ))

    def _add_slot(self, now: float) -> None:
        self.slots += 1
        for side in ("buy", "sell"):
            self._place(self.slots, "entry", side, now)

    def _report(self, txid: str, status: str, vol: str, vol_exec: str, **options: Any) -> None:
        """An order hook call, unless Kraken's stream reports the orders (or there is no telemetry)."""
        if self.telemetry is not None and self.feed_orders:
            self.telemetry.observe_order_status(txid, status, vol, vol_exec, **options)

    def _chance(self, per_period: float, period: float, dt: float) -> bool:
        return self.rng.random() < min(1.0, per_period * dt / period)

    def tick(self) -> None:
        now = self.clock.now()
        dt = max(0.0, now - self._last_tick)
        self._last_tick = now
        mine = self.exchange.orders(self.pair)
        for order in mine:
            mean = self.MEAN_ENTRY_FILL if order.role == "entry" else self.MEAN_RECOVERY_FILL
            if order.vol_exec == 0 and self._chance(self.PARTIAL_PER_DAY, DAY_SECONDS, dt):
                self.exchange.execute(order, round(order.vol * self.rng.uniform(0.2, 0.8), 8), now)
            if order.tracked and self._chance(self.ORPHAN_PER_DAY, DAY_SECONDS, dt):
                order.tracked = False
            if self._chance(1.0, mean, dt):
                order.vol_exec = order.vol
                self._finish(order, "closed", now)
            elif order.tracked:
                self._report(order.txid, "open", f"{order.vol:.8f}", f"{order.vol_exec:.8f}")
        if now >= self._next_canary:
            self._next_canary = now + self.canary_every
            self._cancel_a_partial_fill(now)
        self._operate(now)
        if self.telemetry is None:
            return
        tracked = [o.role for o in self.exchange.orders(self.pair) if o.tracked]
        entries, recoveries = tracked.count("entry"), tracked.count("recovery")
        self.telemetry.set_internal_counts(active_orders=entries, recovery_orders=recoveries, slot_count=self.slots)
        if self.feed_kraken:
            self.telemetry.observe_kraken_open_orders(self.exchange.open_orders_result())

    def _cancel_a_partial_fill(self, now: float) -> None:
        """A refresh cancels an entry that had partly filled: the stranded volume the canary is for."""
        entries = [o for o in self.exchange.orders(self.pair) if o.tracked and o.role == "entry"]
        if not entries:
            return
        order = next((o for o in entries if o.vol_exec > 0), None) or self.rng.choice(entries)
        if order.vol_exec == 0:
            self.exchange.execute(order, round(order.vol * self.rng.uniform(0.2, 0.8), 8), now)
            self._report(order.txid, "open", f"{order.vol:.8f}", f"{order.vol_exec:.8f}")
        self._finish(order, "canceled", now)

    def _finish(self, order: SimOrder, status: str, now: float) -> None:
        self.exchange.remove(order.txid, status, now)
        if order.tracked:
            self._report(order.txid, status, f"{order.vol:.8f}", f"{order.vol_exec:.8f}", placed_at=order.placed_at,
                         slot=order.slot)
        if order.role == "entry" and order.slot <= self.slots:
            if status == "closed" and self.rng.random() < self.RECOVERY_SHARE:
                self._place(order.slot, "recovery", "sell" if order.side == "buy" else "buy", now)
            self._place(order.slot, "entry", order.side, now)

    def _operate(self, now: float) -> None:
        """The simulated operator: the playbook, plus a clean-up after half a day in stop."""
        band = self.band_of(now) if self.band_of is not None else self._telemetry_band(now)
        if band != BAND_STOP:
            self._stop_since = None
        every = {BAND_NORMAL: self.SLOT_EVERY_NORMAL, BAND_CAUTION: self.SLOT_EVERY_CAUTION}.get(band or BAND_STOP)
        if every is not None and now - self._last_slot_add >= every:
            self._last_slot_add = now
            self._add_slot(now)
        elif band == BAND_STOP:
            self._stop_since = self._stop_since or now
            if now - self._stop_since >= DAY_SECONDS / 2:
                self._clean_up(now)

    def _telemetry_band(self, now: float) -> str | None:
        assert self.telemetry is not None  # checked in __init__
        return self.telemetry.snapshot(now).status_band

    def _clean_up(self, now: float) -> None:
        log.info("demo operator: soft-closing recovery orders and orphans, dropping slots (pair=%s)", self.pair)
        keep = max(self.start_slots - 10, 1)
        for order in self.exchange.orders(self.pair):
            if order.vol_exec > 0:
                continue  # partly filled: soft-closing it would strand the executed part (a canary of its own)
            if order.role == "recovery" or not order.tracked or order.slot > keep:
                self.exchange.remove(order.txid, "canceled", now)
                if order.tracked:
                    self._report(order.txid, "canceled", f"{order.vol:.8f}", "0")
        self.slots = keep
        self._stop_since = None
        self._last_slot_add = now
