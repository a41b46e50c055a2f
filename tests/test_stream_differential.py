"""The differential test of issue 17: the same scripted order lifecycles (hundreds: fills, partial-opens,
partial-cancels, expiries, some ending while the stream is disconnected) fed

(a) to the hooks, as a bot polling every N seconds sees them (`observe_order_status` at each poll, the fill time
    measured at the poll that sees the order closed), and
(b) through the fake Kraken's WebSocket v2 stream to `KrakenStream` (real sockets, krakenex's real signatures),

must give identical partial-open and partial-cancel counts and canaries, and fill times that agree within the poll
interval: the stream's exact to Kraken's timestamps (checked against the script's own durations), the hooks' later by
less than N. A second script adds partial fills shorter than a poll: the stream sees them, the poll cannot, and the
difference is exactly those orders.

Expectations are computed from the script alone (`Lifecycle`), never from either path.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from statistics import median

import pytest

from exporter import CapacityTelemetry, ManualClock
from exporter.core.windows import percentile_nearest_rank
from tests.conftest import wait_for
from tests.stream_rig import StreamRig

pytestmark = pytest.mark.integration

T0 = 1_760_000_000.0
POLL = 10.0  # N: the hook-fed bot polls every 10 s
HOURS = 8
WINDOW = (T0 + 3 * 3600.0, T0 + 4 * 3600.0)  # the stream is disconnected (tokens refused) for this hour


@dataclass
class Lifecycle:
    """One order: placed at `placed`, maybe a partial fill of `partial` at `partial_at`, then it `ends`
    (filled / canceled / expired / None: still open at the end) at `end_at`."""

    placed: float
    qty: int
    partial: int = 0
    partial_at: float | None = None
    ends: str | None = "filled"
    end_at: float | None = None
    txid: str = ""

    def events(self) -> list[tuple[float, str]]:
        out = [(self.placed, "place")]
        if self.partial_at is not None:
            out.append((self.partial_at, "partial"))
        if self.ends is not None:
            out.append((self.end_at, self.ends))
        return out

    def poll_sees_partial(self) -> bool:
        """Some poll instant falls after the partial fill and before the end."""
        if self.partial_at is None:
            return False
        first_poll = T0 + math.ceil((self.partial_at - T0) / POLL) * POLL
        return self.end_at is None or first_poll < self.end_at

    def in_window(self, t: float | None) -> bool:
        return t is not None and WINDOW[0] <= t < WINDOW[1]


def script(seed: int, orders: int, transient: bool) -> list[Lifecycle]:
    """Lifecycles whose partial states last at least a poll (and, with `transient`, some shorter than a poll)."""
    rng = random.Random(seed)
    end = T0 + HOURS * 3600.0
    out: list[Lifecycle] = []
    kinds = ["fill"] * 8 + ["partial_fill"] * 3 + ["partial_cancel"] * 2 + ["cancel"] * 2 + ["partial_expire", "open",
                                                                                              "partial_open"]
    if transient:
        kinds += ["transient_fill"] * 2 + ["transient_cancel"]
    while len(out) < orders:
        kind = rng.choice(kinds)
        placed = round(rng.uniform(T0, end - 2 * 3600.0), 3)
        qty = rng.randint(10, 20)
        life = Lifecycle(placed, qty)
        if kind.startswith(("partial", "transient")):
            life.partial = rng.randint(1, qty - 1)
        if kind.startswith("transient"):  # partial fill and end inside one poll interval
            k = math.ceil((placed - T0) / POLL) + rng.randint(1, 300)
            life.partial_at = T0 + k * POLL + round(rng.uniform(0.5, 3.0), 3)
            life.end_at = T0 + k * POLL + round(rng.uniform(4.0, POLL - 0.5), 3)
        elif kind.startswith("partial"):
            life.partial_at = round(placed + rng.uniform(1.0, 3600.0), 3)
            life.end_at = round(life.partial_at + rng.uniform(POLL + 1.0, 3600.0), 3)
        else:
            life.end_at = round(placed + rng.uniform(1.0, 5400.0), 3)
        life.ends = {"fill": "filled", "partial_fill": "filled", "transient_fill": "filled", "cancel": "canceled",
                     "partial_cancel": "canceled", "transient_cancel": "canceled", "partial_expire": "expired",
                     "open": None, "partial_open": None}[kind]
        if life.ends is None:
            life.end_at = None
        # the one thing a disconnect truly costs: a partial fill that starts and is filled while the stream is
        # away is not seen (REST tells only the end). Scripted elsewhere, not here; docs/modes.md says so.
        if life.ends == "filled" and life.in_window(life.partial_at) and life.in_window(life.end_at):
            continue
        out.append(life)
    return out


# ---- (a) the hooks, as a bot polling every N seconds -----------------------------------------------------------

def through_the_hooks(lifecycles: list[Lifecycle]) -> CapacityTelemetry:
    clock = ManualClock(T0)
    telemetry = CapacityTelemetry("XDGEUR", clock=clock)  # another label, so its canaries are told apart
    done: set[int] = set()
    polls = int(HOURS * 3600.0 / POLL) + 1
    for k in range(polls + 1):
        now = T0 + k * POLL
        clock.set(now)
        for i, life in enumerate(lifecycles):
            if i in done or life.placed > now:
                continue
            executed = life.partial if life.partial_at is not None and life.partial_at <= now else 0
            vol = f"{life.qty:.8f}"
            if life.end_at is not None and life.end_at <= now:
                executed = life.qty if life.ends == "filled" else executed
                status = "closed" if life.ends == "filled" else life.ends
                telemetry.observe_order_status(life.txid, status, vol, f"{executed:.8f}", placed_at=life.placed)
                done.add(i)
            else:
                telemetry.observe_order_status(life.txid, "open", vol, f"{executed:.8f}")
    return telemetry


# ---- (b) the stream --------------------------------------------------------------------------------------------

def through_the_stream(rig: StreamRig, lifecycles: list[Lifecycle]) -> None:
    account = rig.account
    events = sorted((t, n, i, what) for i, life in enumerate(lifecycles)
                    for n, (t, what) in enumerate(life.events()))
    phase = "before"
    for t, _, i, what in events:
        if phase == "before" and t >= WINDOW[0]:
            assert wait_for(rig.settled, timeout=30)
            rig.server.refuse_tokens(10**6)
            rig.server.disconnect()
            assert wait_for(lambda: not rig.stream.live, timeout=10)
            phase = "window"
        if phase == "window" and t >= WINDOW[1]:
            rig.server.refuse_tokens(0)
            assert wait_for(lambda: rig.stream.live and rig.settled(), timeout=60), rig.stream.reconnects
            phase = "after"
        life = lifecycles[i]
        if what == "place":
            life.txid = account.place("XDGUSD", life.qty, at=t)
        elif what == "partial":
            account.trade(life.txid, life.partial, at=t)
        elif what == "filled":
            account.fill(life.txid, at=t)
        elif what == "canceled":
            account.cancel(life.txid, reason="User requested", at=t)
        else:
            account.expire(life.txid, reason="Order expired", at=t)
    assert wait_for(lambda: rig.settled() and not rig.stream.settler.busy, timeout=60)


def canary_txids(caplog, pair: str) -> list[str]:
    found = []
    for record in caplog.records:
        text = record.getMessage()
        if "PHANTOM_POSITION_CANARY" in text and f"pair={pair} " in text:
            found.append(text.split("txid=")[1].split(" ")[0])
    return sorted(found)


@pytest.mark.parametrize("transient", [False, True], ids=["partials-lasting-a-poll", "with-partials-shorter-than-a-poll"])
def test_the_stream_and_a_polling_bot_agree_on_the_same_lifecycles(kraken_secret, caplog, transient):
    caplog.set_level(logging.WARNING)
    lifecycles = script(seed=17, orders=300, transient=transient)
    rig = StreamRig(kraken_secret, clock=ManualClock(T0 + HOURS * 3600.0 + 60.0), max_backoff=0.2)
    try:
        rig.start()
        through_the_stream(rig, lifecycles)
        hooks = through_the_hooks(lifecycles)
        stream = rig.telemetries["XDGUSD"]
        h, s = hooks.snapshot(T0 + HOURS * 3600.0 + 60.0), stream.snapshot()
        assert rig.reconnects("disconnect") == 1  # the window: what ended in it came through REST
        assert rig.value("krakenbot_kraken_requests_total", endpoint="ClosedOrders", result="ok") >= 1

        # expectations from the script alone
        partial_opens = [life for life in lifecycles if life.partial_at is not None]
        seen_by_poll = [life for life in partial_opens if life.poll_sees_partial()]
        partial_ends = sorted(life.txid for life in lifecycles if life.ends in ("canceled", "expired") and life.partial)
        fills = [life for life in lifecycles if life.ends == "filled"]
        ended_in_window = [life for life in lifecycles if life.in_window(life.end_at)]
        assert len(lifecycles) == 300 and len(ended_in_window) >= 20 and len(partial_ends) >= 20
        assert (len(partial_opens) > len(seen_by_poll)) == transient

        assert h.partial_fill_open_events_1d == len(seen_by_poll)
        assert s.partial_fill_open_events_1d == len(partial_opens)  # the stream misses no partial fill
        if not transient:
            assert s.partial_fill_open_events_1d == h.partial_fill_open_events_1d
        assert s.partial_fill_cancel_events_1d == h.partial_fill_cancel_events_1d == len(partial_ends)
        assert canary_txids(caplog, "XDGUSD") == canary_txids(caplog, "XDGEUR") == partial_ends

        exact = [life.end_at - life.placed for life in fills]
        assert s.median_fill_seconds_1d == pytest.approx(median(exact), abs=1e-5)
        assert s.p95_fill_seconds_1d == pytest.approx(percentile_nearest_rank(exact, 95), abs=1e-5)
        assert 0.0 <= h.median_fill_seconds_1d - s.median_fill_seconds_1d <= POLL
        assert 0.0 <= h.p95_fill_seconds_1d - s.p95_fill_seconds_1d <= POLL
        hc, sc = hooks.reading().counts, stream.reading().counts
        assert hc.fill_count == sc.fill_count == len(fills)
        assert 0.0 <= hc.fill_sum - sc.fill_sum <= POLL * len(fills)
        assert s.open_orders_kraken == sum(1 for life in lifecycles if life.ends is None)
    finally:
        rig.stop()
