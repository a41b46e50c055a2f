"""The pure translation of Kraken's `executions` rows into hook calls (exporter/core/executions.py) and the frame
reader (exporter/core/stream_frames.py). Rows are shaped as Kraken's v2 documentation shows them: full rows for
`pending_new` and snapshots, sparse rows (only what changed) for `new`, `trade`, `filled`, `canceled`."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.executions import (
    ExecutionBook,
    Observation,
    PairMatcher,
    parse_time,
    plausible_symbol,
)
from exporter.core.pairs import PairNames
from exporter.core.stream_frames import SequenceCheck, read_frame

T0 = 1_760_000_000.0


def ts(seconds: float) -> str:
    """RFC 3339 with microseconds and Z, as Kraken writes it."""
    return datetime.fromtimestamp(T0 + seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def book() -> ExecutionBook:
    return ExecutionBook(PairMatcher([PairNames.offline("XDGUSD"), PairNames.offline("XBTUSD")]))


def pending(order_id, qty=13.0, symbol="DOGE/USD", at=0.0):
    return {"order_id": order_id, "symbol": symbol, "order_qty": qty, "cum_cost": 0.0, "time_in_force": "GTC",
            "exec_type": "pending_new", "side": "buy", "order_type": "limit", "order_userref": 0,
            "limit_price": 0.185, "order_status": "pending_new", "timestamp": ts(at)}


def new(order_id, at):
    return {"timestamp": ts(at), "order_status": "new", "exec_type": "new", "order_userref": 0, "order_id": order_id}


def trade(order_id, cum, last, at, status="partially_filled", exec_id=None):
    return {"order_id": order_id, "exec_id": exec_id or f"T{order_id}{cum}", "exec_type": "trade", "symbol": "DOGE/USD",
            "side": "buy", "last_qty": last, "last_price": 0.185, "cum_qty": cum, "order_status": status,
            "timestamp": ts(at)}


def filled(order_id, cum, at):
    return {"timestamp": ts(at), "order_status": "filled", "exec_type": "filled", "cum_qty": cum, "order_id": order_id}


def ended(order_id, cum, at, kind="canceled", reason="User requested"):
    return {"timestamp": ts(at), "order_status": kind, "exec_type": kind, "cum_qty": cum, "cum_cost": 0.0,
            "reason": reason, "order_id": order_id}


def snap_row(order_id, qty=13.0, cum=0.0, status="new", symbol="DOGE/USD", at=0.0):
    return {"order_id": order_id, "symbol": symbol, "order_qty": qty, "cum_qty": cum, "exec_type": "new",
            "side": "buy", "order_type": "limit", "limit_price": 0.185, "order_status": status, "timestamp": ts(at)}


def observations(b: ExecutionBook, *rows) -> list[Observation]:
    out = []
    for row in rows:
        out += b.apply_update([row]).observations
    return out


# ---- the lifecycle ---------------------------------------------------------------------------------------------

def test_a_fill_is_timed_from_its_new_event_to_its_filled_event_on_krakens_clock():
    b = book()
    out = observations(b, pending("O1", at=0.0), new("O1", at=0.25), trade("O1", 13.0, 13.0, at=90.5, status="filled"),
                       filled("O1", 13.0, at=90.5))
    assert out == [Observation("XDGUSD", "O1", "closed", 13.0, 13.0, placed_at=T0 + 0.25, closed_at=T0 + 90.5)]
    assert b.open_count("XDGUSD") == 0


def test_a_partial_fill_while_open_is_one_partial_open_however_many_trades_follow():
    b = book()
    out = observations(b, pending("O1"), new("O1", 1.0), trade("O1", 4.0, 4.0, 10.0), trade("O1", 6.0, 2.0, 20.0),
                       trade("O1", 13.0, 7.0, 30.0), filled("O1", 13.0, 30.0))
    assert [o.status for o in out] == ["open", "closed"]
    assert out[0] == Observation("XDGUSD", "O1", "open", 13.0, 4.0)
    assert out[1].closed_at - out[1].placed_at == 29.0


def test_a_trade_that_says_partially_filled_but_fills_the_whole_order_is_a_fill_not_a_partial_open():
    """Kraken's documented caution: the status word of that trade is not the remaining quantity."""
    b = book()
    out = observations(b, pending("O1"), new("O1", 0.0), trade("O1", 13.0, 13.0, 5.0, status="partially_filled"),
                       filled("O1", 13.0, 5.0))
    assert [o.status for o in out] == ["closed"]


def test_a_cancel_after_a_partial_fill_is_both_a_partial_open_and_a_partial_cancel_with_krakens_reason():
    b = book()
    out = observations(b, pending("O1"), new("O1", 0.0), trade("O1", 5.0, 5.0, 3.0),
                       ended("O1", 5.0, 9.0, reason="User requested"))
    assert out == [Observation("XDGUSD", "O1", "open", 13.0, 5.0),
                   Observation("XDGUSD", "O1", "canceled", 13.0, 5.0, reason="User requested")]


def test_an_unfilled_cancel_and_an_expiry_without_fills_count_nothing_but_leave_the_book():
    b = book()
    out = observations(b, pending("O1"), new("O1", 0.0), pending("O2"), new("O2", 0.0))
    assert b.open_count("XDGUSD") == 2
    out += observations(b, ended("O1", 0.0, 5.0), ended("O2", 0.0, 6.0, kind="expired", reason="Order expired"))
    assert [(o.status, o.vol_exec) for o in out] == [("canceled", 0.0), ("expired", 0.0)]
    assert b.open_count("XDGUSD") == 0


def test_trades_without_cum_qty_add_up_their_last_qty_once_per_exec_id_in_decimal():
    b = book()
    observations(b, pending("O1", qty=0.3), new("O1", 0.0))
    first = {**trade("O1", 0.0, 0.1, 1.0, exec_id="E1")}
    del first["cum_qty"]
    second = {**trade("O1", 0.0, 0.2, 2.0, exec_id="E2", status="filled")}
    del second["cum_qty"]
    out = observations(b, first, first, second)
    assert out == [Observation("XDGUSD", "O1", "open", 0.3, 0.1)]
    assert b.order("O1").cum == 0.3  # 0.1 + 0.2 in decimal; the repeated E1 is not added twice


def test_the_open_count_follows_every_transition_and_amends_are_kept_for_the_rate_counter():
    b = book()
    observations(b, pending("O1", at=0.0))
    assert b.open_count("XDGUSD") == 1  # OpenOrders lists pending orders too
    observations(b, new("O1", 0.5), pending("O2", symbol="BTC/USD", at=1.0), new("O2", 1.5))
    amend = {"timestamp": ts(7.0), "exec_type": "amended", "order_status": "new", "cum_qty": 0.0, "reason": "User requested",
             "amended": True, "order_qty": 10.0, "limit_price": 0.19, "order_id": "O1"}
    observations(b, amend)
    state = b.order("O1")
    assert (state.qty, state.submitted_at, state.placed_at, state.amended_at) == (10.0, T0, T0 + 0.5, [T0 + 7.0])
    assert (b.open_count("XDGUSD"), b.open_count("XBTUSD")) == (1, 1)


def test_a_replayed_or_duplicated_ending_is_counted_once():
    b = book()
    observations(b, pending("O1"), new("O1", 0.0), trade("O1", 5.0, 5.0, 1.0))
    first = b.apply_update([ended("O1", 5.0, 2.0)])
    again = b.apply_update([ended("O1", 5.0, 2.0), trade("O1", 5.0, 5.0, 1.0), filled("O1", 13.0, 3.0)])
    assert [o.status for o in first.observations] == ["canceled"]
    assert again.observations == [] and again.skipped == {"replayed": 3}


def test_rows_of_pairs_not_configured_change_no_count_and_their_sparse_rows_are_not_unknown():
    b = book()
    applied = b.apply_update([pending("E1", symbol="ETH/USD"), new("E1", 1.0), trade("E1", 0.5, 0.5, 2.0),
                              ended("E1", 0.5, 3.0)])
    assert applied.observations == [] and not applied.skipped
    assert b.pending_lookups() == []


def test_pairs_match_in_every_spelling_kraken_uses():
    match = PairMatcher([PairNames.offline("XDGUSD"), PairNames.offline("DOGE/EUR"), PairNames.offline("XBTUSD")])
    assert [match(s) for s in ("DOGE/USD", "XDG/USD", "doge/usd", "BTC/USD", "XBT/USD", "DOGE/EUR", "ETH/USD")] == [
        "XDGUSD", "XDGUSD", "XDGUSD", "XBTUSD", "XBTUSD", "XDGEUR", None]


# ---- malformed input -------------------------------------------------------------------------------------------

def test_malformed_rows_are_counted_by_reason_and_change_nothing():
    b = book()
    observations(b, pending("O1"), new("O1", 0.0))
    bad = [
        "not a row",
        {"exec_type": "new"},
        {"order_id": 7, "exec_type": "new"},
        {"order_id": "O1", "exec_type": "teleported"},
        {"order_id": "O1", "exec_type": "trade", "cum_qty": "4.0", "order_status": "partially_filled"},
        {"order_id": "O1", "exec_type": "trade", "cum_qty": -1, "order_status": "partially_filled"},
        {"order_id": "O1", "exec_type": "trade", "cum_qty": 4.0, "order_status": "half_done"},
        {"order_id": "O1", "exec_type": "trade", "cum_qty": float("nan"), "order_status": "partially_filled"},
        pending("O2", symbol="NOT A PAIR"),
        {"order_id": "O3", "exec_type": "canceled", "order_status": "canceled", "cum_qty": 1.0},
    ]
    applied = b.apply_update(bad)
    assert applied.observations == []
    assert applied.skipped == {"not_an_object": 1, "missing_order_id": 2, "unknown_exec_type": 1, "bad_field": 4,
                               "unknown_symbol": 1, "unknown_order": 1}
    assert (b.order("O1").cum, b.order("O1").status, b.open_count("XDGUSD")) == (0.0, "new", 1)
    assert b.pending_lookups() == ["O3"]  # the unknown order's end is asked of REST


def test_a_fill_with_a_bad_timestamp_still_ends_the_order_and_takes_its_times_from_rest():
    b = book()
    observations(b, pending("O1"), new("O1", 0.0))
    row = {**filled("O1", 13.0, 0.0), "timestamp": "yesterday"}
    applied = b.apply_update([row])
    assert applied.observations == [] and applied.skipped == {"bad_timestamp": 1}
    assert b.open_count("XDGUSD") == 0 and b.pending_lookups() == ["O1"]
    out = b.resolve("O1", {"status": "closed", "vol": "13", "vol_exec": "13", "opentm": T0 - 5, "closetm": T0 + 60.0})
    assert out == [Observation("XDGUSD", "O1", "closed", 13.0, 13.0, placed_at=T0, closed_at=T0 + 60.0)]


def test_timestamps_must_be_rfc3339_with_an_offset():
    assert parse_time("2024-05-18T12:58:40.165132Z") == 1716037120.165132
    assert parse_time("2024-05-18T14:58:40+02:00") == 1716037120.0
    assert [parse_time(v) for v in ("2024-05-18T12:58:40", "1716037120", 1716037120, None, "x" * 50)] == [None] * 5


def test_plausible_symbols_are_base_slash_quote():
    assert [plausible_symbol(s) for s in ("DOGE/USD", "BTC/USD", "DOGEUSD", "DOGE/", "A/B/C", 5, "DO GE/USD")] == [
        True, True, False, False, False, False, False]


# ---- snapshots and REST ----------------------------------------------------------------------------------------

def test_a_snapshot_sets_the_counts_and_an_order_already_partly_filled_is_one_partial_open():
    b = book()
    applied = b.apply_snapshot([snap_row("O1"), snap_row("O2", cum=4.0, status="partially_filled"),
                                snap_row("B1", symbol="BTC/USD", qty=0.01), snap_row("E1", symbol="ETH/USD")])
    assert applied.observations == [Observation("XDGUSD", "O2", "open", 13.0, 4.0)]
    assert (b.open_count("XDGUSD"), b.open_count("XBTUSD")) == (2, 1)
    again = b.apply_snapshot([snap_row("O1"), snap_row("O2", cum=6.0, status="partially_filled"),
                              snap_row("B1", symbol="BTC/USD", qty=0.01)])
    assert again.observations == [] and again.missing == ["E1"]


def test_orders_missing_from_a_new_snapshot_ended_while_away_and_rest_tells_how_once():
    b = book()
    observations(b, pending("O1"), new("O1", 0.0), pending("O2"), new("O2", 1.0), pending("O3"), new("O3", 2.0))
    applied = b.apply_snapshot([snap_row("O3")])
    assert sorted(applied.missing) == ["O1", "O2"] and b.open_count("XDGUSD") == 1
    assert sorted(b.pending_lookups()) == ["O1", "O2"]
    cancel = {"status": "canceled", "vol": "13.00000000", "vol_exec": "3.00000000", "reason": "User requested",
              "opentm": T0, "closetm": T0 + 50.0, "descr": {"pair": "XDGUSD"}}
    fill = {"status": "closed", "vol": "13.00000000", "vol_exec": "13.00000000", "opentm": T0 + 1.0,
            "closetm": T0 + 40.0, "descr": {"pair": "XDGUSD"}}
    out = b.resolve("O1", cancel) + b.resolve("O2", fill)
    assert out == [
        Observation("XDGUSD", "O1", "open", 13.0, 3.0),  # partly filled while open, then canceled: both, as the hooks
        Observation("XDGUSD", "O1", "canceled", 13.0, 3.0, reason="User requested"),
        Observation("XDGUSD", "O2", "closed", 13.0, 13.0, placed_at=T0 + 1.0, closed_at=T0 + 40.0),
    ]
    assert b.resolve("O1", cancel) == [] and b.pending_lookups() == []
    assert b.open_count("XDGUSD") == 1  # O3, still open: what ended while away was taken off once, at the snapshot
    assert b.apply_update([ended("O1", 3.0, 50.0)]).skipped == {"replayed": 1}


def test_an_order_placed_and_canceled_with_a_fill_while_away_is_told_by_closed_orders_as_both():
    b = book()
    b.apply_snapshot([])
    info = {"status": "canceled", "vol": "7.00000000", "vol_exec": "2.00000000", "reason": "Post only order",
            "opentm": T0, "closetm": T0 + 9.0, "descr": {"pair": "XDGUSD"}}
    assert b.resolve("OF", info) == [Observation("XDGUSD", "OF", "open", 7.0, 2.0),
                                     Observation("XDGUSD", "OF", "canceled", 7.0, 2.0, reason="Post only order")]
    assert b.resolve("OF", info) == [] and b.open_count("XDGUSD") == 0
    other = {**info, "descr": {"pair": "ETHUSD"}}
    assert b.resolve("OE", other) == []


def test_a_snapshot_that_lists_an_order_we_saw_end_or_less_executed_volume_is_a_contradiction():
    b = book()
    observations(b, pending("O1"), new("O1", 0.0), filled("O1", 13.0, 5.0), pending("O2"), new("O2", 0.0),
                 trade("O2", 6.0, 6.0, 3.0))
    applied = b.apply_snapshot([snap_row("O1"), snap_row("O2", cum=2.0, status="partially_filled")])
    assert applied.contradictions == ["O1", "O2"]


def test_an_order_open_at_connect_is_timed_from_opentm_learned_from_open_orders():
    b = book()
    b.apply_snapshot([snap_row("O1"), snap_row("O2")])
    assert b.note_open_orders({"O1": {"opentm": T0 - 100.0, "descr": {"pair": "XDGUSD"}}, "OX": {"opentm": 1.0}}) == 1
    out = observations(b, filled("O1", 13.0, 20.0), filled("O2", 13.0, 30.0))
    assert out == [Observation("XDGUSD", "O1", "closed", 13.0, 13.0, placed_at=T0 - 100.0, closed_at=T0 + 20.0)]
    assert b.pending_lookups() == ["O2"]  # its start only QueryOrders can tell
    assert b.resolve("O2", {"status": "closed", "vol": "13", "vol_exec": "13", "opentm": T0 - 7.0}) == [
        Observation("XDGUSD", "O2", "closed", 13.0, 13.0, placed_at=T0 - 7.0, closed_at=T0 + 30.0)]


def test_an_order_rest_does_not_know_is_forgotten_and_a_waiting_fill_still_counts_untimed():
    b = book()
    b.apply_snapshot([snap_row("O1")])
    observations(b, filled("O1", 13.0, 20.0))
    b.forget("O1")
    assert b.pending_lookups() == []
    assert b.take_untimed() == [Observation("XDGUSD", "O1", "closed", 13.0, 13.0, closed_at=T0 + 20.0)]
    assert b.take_untimed() == []


def test_the_memory_of_ended_orders_is_bounded():
    b = ExecutionBook(PairMatcher([PairNames.offline("XDGUSD")]), max_ended=100)
    for i in range(1000):
        observations(b, pending(f"O{i}"), new(f"O{i}", 0.0), ended(f"O{i}", 0.0, 1.0))
    assert len(b._ended) <= 100 and b.has_ended("O999") and not b.has_ended("O0")


# ---- a property: any lifecycle, any duplication ----------------------------------------------------------------

@st.composite
def lifecycles(draw):
    """Orders of one pair: each placed, maybe partly filled in steps, then filled, canceled, expired or left open."""
    orders = []
    for i in range(draw(st.integers(1, 12))):
        qty = float(draw(st.integers(2, 100)))
        fills = sorted(set(draw(st.lists(st.integers(1, int(qty)), max_size=4))))
        end = draw(st.sampled_from(["filled", "canceled", "expired", "open"]))
        if end == "filled" and (not fills or fills[-1] != qty):
            fills.append(int(qty))
        if end != "filled" and fills and fills[-1] == qty:
            fills.pop()
        orders.append((f"O{i}", qty, [float(f) for f in fills], end))
    return orders


def rows_of(order_id, qty, fills, end):
    at = 0.0
    rows = [pending(order_id, qty=qty, at=at), new(order_id, at + 1.0)]
    last = 0.0
    for cum in fills:
        at += 10.0
        rows.append(trade(order_id, cum, cum - last, at, status="filled" if cum == qty else "partially_filled"))
        last = cum
    if end == "filled":
        rows.append(filled(order_id, qty, at + 1.0))
    elif end != "open":
        rows.append(ended(order_id, last, at + 2.0, kind=end))
    return rows


@settings(max_examples=150, deadline=None)
@given(lifecycles(), st.booleans())
def test_any_lifecycle_counts_what_happened_once_even_when_every_message_comes_twice(orders, twice):
    b = book()
    streams = [rows_of(*order) for order in orders]
    out = []
    for position in range(max(len(s) for s in streams)):  # interleaved, as several orders live at once
        for rows in streams:
            if position < len(rows):
                out += b.apply_update([rows[position]]).observations
                if twice:
                    out += b.apply_update([rows[position]]).observations
    partial_open = sum(1 for _, qty, fills, _end in orders if any(0 < f < qty for f in fills))
    partial_end = sum(1 for _, _qty, fills, end in orders if end in ("canceled", "expired") and fills)
    fills = sum(1 for *_, end in orders if end == "filled")
    assert sum(o.status == "open" for o in out) == partial_open
    assert sum(o.status in ("canceled", "expired") and o.vol_exec > 0 for o in out) == partial_end
    assert sum(o.status == "closed" for o in out) == fills
    assert b.open_count("XDGUSD") == sum(1 for *_, end in orders if end == "open")


# ---- frames ----------------------------------------------------------------------------------------------------

def test_each_documented_frame_is_recognised():
    frames = [
        '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.10"}]}',
        '{"method":"subscribe","result":{"channel":"executions","snapshot":true},"success":true,"time_in":"x","time_out":"y"}',
        '{"method":"subscribe","success":false,"error":"ESession:Invalid session","time_in":"x","time_out":"y"}',
        '{"channel":"executions","type":"snapshot","data":[],"sequence":1}',
        '{"channel":"executions","type":"update","data":[{"order_id":"O"}],"sequence":2}',
        '{"channel":"heartbeat"}',
        '{"method":"pong","req_id":1}',
        '{"channel":"balances","type":"update","data":[]}',
        "garbage{",
        "[1, 2]",
        '{"channel":"executions","type":"update","data":{}}',
        '{"channel":"executions","type":"update","data":[],"sequence":"3"}',
    ]
    kinds = [read_frame(f).kind for f in frames]
    assert kinds == ["status", "subscribed", "rejected", "snapshot", "update", "heartbeat", "pong", "other",
                     "malformed", "malformed", "malformed", "malformed"]
    assert read_frame(frames[2]).error == "ESession:Invalid session"
    assert read_frame(frames[0]).detail["system"] == "online"
    assert read_frame(frames[4]).sequence == 2


def test_the_sequence_check_finds_gaps_duplicates_and_updates_before_the_snapshot():
    check = SequenceCheck()
    update = lambda n: read_frame(f'{{"channel":"executions","type":"update","data":[],"sequence":{n}}}')  # noqa: E731
    assert check.check(update(1)) == "gap"  # nothing before a snapshot can be trusted
    assert check.check(read_frame('{"channel":"executions","type":"snapshot","data":[],"sequence":1}')) == "ok"
    assert [check.check(update(n)) for n in (2, 3, 3, 2, 5)] == ["ok", "ok", "duplicate", "duplicate", "gap"]
