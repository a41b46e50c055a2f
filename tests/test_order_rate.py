"""The order rate counter against an independent model of Kraken's published arithmetic (hypothesis), and its
tiers, peaks and rejections by hand-worked examples."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.order_rate import TIER_WALLS, RateCounter, amend_cost, cancel_cost, tier
from exporter.core.windows import DAY_SECONDS

START = 1_700_000_000.0

# Kraken's table, written out as the article shows it: (transaction, fixed, <5s, <10s, <15s, <45s, <90s, <300s)
TABLE = {
    "add": (1, 0, 0, 0, 0, 0, 0),
    "amend": (1, 3, 2, 1, 0, 0, 0),
    "cancel": (0, 8, 6, 5, 4, 2, 1),
}
EDGES = (5, 10, 15, 45, 90, 300)


def model_cost(kind: str, age: float) -> float:
    fixed, *by_age = TABLE[kind]
    column = next((i for i, edge in enumerate(EDGES) if age < edge), None)
    return fixed + (by_age[column] if column is not None else 0)


def model_value(events: list[tuple[float, str, float]], decay: float, now: float) -> float:
    """Replay every event from zero: the counter falls by `decay` a second between events, never below 0; an event
    dated before the previous one happens at the previous one's time."""
    value, clock = 0.0, None
    for t, kind, age in events:
        if clock is not None and t > clock:
            value = value - decay * (t - clock)
            if value < 0:
                value = 0.0
        if clock is None or t > clock:
            clock = t
        value = value + model_cost(kind, age)
    if clock is not None and now > clock:
        value = max(0.0, value - decay * (now - clock))
    return value


GAP = st.one_of(
    st.floats(min_value=0.0, max_value=2.0),          # bursts
    st.floats(min_value=0.0, max_value=400.0),        # ordinary spacing
    st.floats(min_value=600.0, max_value=90_000.0),   # long idle stretches
    st.floats(min_value=-120.0, max_value=-0.001),    # a clock step back
)
AGE = st.one_of(st.floats(min_value=0.0, max_value=20.0), st.floats(min_value=0.0, max_value=400.0),
                st.sampled_from([0.0, 4.999999, 5.0, 9.999, 10.0, 15.0, 44.9, 45.0, 89.99, 90.0, 299.9, 300.0]))
EVENT = st.tuples(GAP, st.sampled_from(["add", "cancel", "cancel", "amend"]), AGE)


@settings(max_examples=400, deadline=None)
@given(st.lists(EVENT, max_size=120), st.sampled_from(sorted(TIER_WALLS)))
def test_the_counter_equals_an_independent_model_of_krakens_arithmetic_after_every_event(steps, name):
    walls = TIER_WALLS[name]
    counter = RateCounter(walls)
    events: list[tuple[float, str, float]] = []
    t = START
    for gap, kind, age in steps:
        t += gap
        events.append((t, kind, age))
        if kind == "add":
            counter.placed(t)
        elif kind == "cancel":
            counter.cancelled(t, age)
        else:
            counter.amended(t, age)
        expected = model_value(events, walls.rate_decay, t)
        assert counter.value_at(t) == pytest.approx(expected, abs=1e-9)
        later = t + 7.5
        assert counter.value_at(later) == pytest.approx(model_value(events, walls.rate_decay, later), abs=1e-9)


def test_the_penalty_table_is_krakens():
    assert [cancel_cost(a) for a in (0, 4.9, 5, 9.9, 10, 14.9, 15, 44.9, 45, 89.9, 90, 299.9, 300, 10_000)] == [
        8, 8, 6, 6, 5, 5, 4, 4, 2, 2, 1, 1, 0, 0]
    assert [amend_cost(a) for a in (0, 4.9, 5, 9.9, 10, 14.9, 15, 300)] == [4, 4, 3, 3, 2, 2, 1, 1]


def test_the_tiers_set_both_walls():
    assert [(w.open_order_limit, w.rate_threshold, w.rate_decay) for w in map(tier, ("starter", "INTERMEDIATE", "pro"))] \
        == [(60, 60.0, 1.0), (80, 125.0, 2.34), (225, 180.0, 3.75)]
    with pytest.raises(ValueError, match="starter, intermediate, pro"):
        tier("gold")


def test_a_burst_of_young_cancels_on_starter_is_worked_out_by_hand():
    counter = RateCounter(tier("starter"))
    for i in range(6):  # six orders placed a second apart, each cancelled 2 s later
        counter.placed(START + i)
    for i in range(6):
        counter.cancelled(START + 7 + i, 2.0)
    # places: 1 at t0..t5, decaying 1/s: after t5 the counter is 1 (each +1 decays by the next second's 1)
    # t7: 1 - 2 + ... floor 0 then +8; t8..t12: -1 + 8 each -> 8 + 5 * 7 = 43
    assert counter.value_at(START + 12) == pytest.approx(43.0)
    assert counter.reading(START + 12).utilization == pytest.approx(43 / 60)


def test_the_peak_stays_a_day_and_rejections_are_counted_for_the_day():
    counter = RateCounter(tier("pro"))
    for _ in range(20):
        counter.cancelled(START, 1.0)  # 160 at once
    counter.rejected(START + 1)
    assert counter.reading(START + 3600).peak_1d == pytest.approx(160.0)
    assert counter.reading(START + 3600).counter == 0.0
    assert counter.reading(START + 3600).limited_1d == 1
    later = counter.reading(START + DAY_SECONDS + 2 * 300)
    assert (later.peak_1d, later.limited_1d, later.limited_total) == (0.0, 0, 1)


def test_krakens_own_value_is_preferred_and_the_difference_kept():
    counter = RateCounter(tier("pro"))
    counter.placed(START)
    counter.report(12.0, START + 1)
    assert counter.estimate_error == 12.0  # our estimate had decayed to 0 (1 - 3.75, floored)
    assert counter.value_at(START + 1) == 12.0
    counter.placed(START + 2)
    assert counter.value_at(START + 2) == pytest.approx(12.0 - 3.75 + 1)


# ---- the library: the hooks a bot already calls feed the counter ------------------------------------------------

def started(clock, tier_name="starter"):
    from exporter.core.telemetry import CapacityTelemetry

    telemetry = CapacityTelemetry("XDGUSD", clock=clock, tier=tier_name)
    clock.advance(120.0)  # past the first minute, when orders first seen without a placed_at were already open
    return telemetry


def rate(telemetry):
    return telemetry.reading().order_rate


def test_a_new_txid_seen_open_is_a_placement_and_polling_it_again_adds_nothing(clock):
    t = started(clock)
    t.observe_order_status("A", "open", "13", "0")
    t.observe_order_status("A", "open", "13", "0")
    t.observe_order_status("A", "open", "13", "4")  # a partial fill is no new order
    assert rate(t).counter == 1.0
    clock.advance(0.25)
    assert rate(t).counter == pytest.approx(0.75)  # Starter decays 1 a second


def test_a_cancel_is_charged_by_the_age_its_placed_at_gives_and_fills_and_expiries_add_nothing(clock):
    t = started(clock)
    now = clock.now()
    t.observe_order_status("A", "open", "13", "0", placed_at=now)
    t.observe_order_status("A", "canceled", "13", "0", placed_at=now - 2.0)  # 2 s old: +8
    t.observe_order_status("A", "canceled", "13", "0", placed_at=now - 2.0)  # a replayed row: once
    t.observe_order_status("B", "open", "13", "0", placed_at=now)
    t.observe_order_status("B", "closed", "13", "13", placed_at=now)
    t.observe_order_status("C", "open", "13", "0", placed_at=now)
    t.observe_order_status("C", "expired", "13", "0")
    assert rate(t).counter == pytest.approx(1 + 8 + 1 + 1)


def test_without_placed_at_a_cancel_is_aged_from_when_the_order_was_first_seen_open(clock):
    t = started(clock)
    t.observe_order_status("A", "open", "13", "0")
    clock.advance(50.0)
    t.observe_order_status("A", "canceled", "13", "0")  # 50 s old: +2, after the +1 decayed to 0
    assert rate(t).counter == pytest.approx(2.0)


def test_orders_already_open_when_the_telemetry_started_add_nothing(clock):
    from exporter.core.telemetry import CapacityTelemetry

    t = CapacityTelemetry("XDGUSD", clock=clock, tier="starter")
    for i in range(50):  # the first poll after a restart: the whole grid, no placed_at
        t.observe_order_status(f"S{i}", "open", "13", "0")
    t.observe_order_status("OLD", "open", "13", "0", placed_at=clock.now() - 3600)
    assert rate(t).counter == 0.0
    clock.advance(120.0)
    t.observe_order_status("OLD2", "open", "13", "0", placed_at=clock.now() - 7200)  # before we started
    t.observe_order_status("NEW", "open", "13", "0")
    assert rate(t).counter == 1.0


def test_cancelling_orders_already_open_at_start_charges_nothing_and_counts_their_unknown_age(clock):
    from exporter.core.telemetry import CapacityTelemetry

    t = CapacityTelemetry("XDGUSD", clock=clock, tier="starter")
    for i in range(40):  # a grid open for hours before the restart, no placed_at: its age is unknown
        t.observe_order_status(f"S{i}", "open", "13", "0")
    t.observe_order_status("P", "open", "13", "0")
    clock.advance(10.0)
    for i in range(40):  # the bot re-places its grid 10 s after the restart
        t.observe_order_status(f"S{i}", "canceled", "13", "0")
    t.observe_order_status("P", "canceled", "13", "0", placed_at=clock.now() - 100.0)  # 100 s old: +1
    reading = rate(t)
    assert reading.counter == 1.0 and reading.peak_1d == 1.0
    assert t.hook_errors == {"order_rate_unknown_age": 40}


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "125", None, True, 10**9])
def test_a_bad_maxratecount_is_counted_and_leaves_the_tiers_threshold(clock, bad):
    t = started(clock, "pro")
    assert t.observe_rate_threshold(bad) is None
    assert rate(t).threshold == 180.0 and rate(t).threshold_source == "tier"
    assert t.hook_errors == {"invalid_rate_threshold": 1}


def test_the_accounts_maxratecount_is_preferred_to_the_tiers_threshold_with_that_tiers_decay(clock):
    t = started(clock, "pro")
    assert t.observe_rate_threshold(125) == "pro"  # disagrees with the configured tier: named for the warning
    t.observe_order_status("A", "open", "13", "0")
    clock.advance(0.25)
    reading = rate(t)
    assert (reading.threshold, reading.threshold_source) == (125.0, "kraken")
    assert reading.counter == pytest.approx(1.0 - 2.34 * 0.25)  # Intermediate decays 2.34 a second
    assert t.observe_rate_threshold(125.0) == "pro" and started(clock, "intermediate").observe_rate_threshold(125) is None


@pytest.mark.parametrize(("bad", "kind"), [(1_700_000_000_000, "placed_at_in_future"), ("1700000000", "invalid_placed_at"),
                                         (float("nan"), "invalid_placed_at"), (-5.0, "invalid_placed_at")])
def test_a_bad_placed_at_on_the_open_and_cancel_paths_is_counted_as_on_the_closed_path_and_charges_nothing(
        clock, bad, kind):
    t = started(clock)
    t.observe_order_status("A", "open", "13", "0", placed_at=bad)  # the open row is refused whole
    assert rate(t).counter == 0.0 and t.snapshot().partial_fill_open_events_1d == 0
    t.observe_order_status("B", "open", "13", "0")
    clock.advance(1000.0)  # an old order: its cancel adds nothing, whatever a bad placed_at says
    t.observe_order_status("B", "canceled", "13", "4", placed_at=bad)
    assert rate(t).counter == 0.0
    assert t.snapshot().partial_fill_cancel_events_1d == 1  # the safety-relevant partial cancel is kept
    assert t.hook_errors == {kind: 2}


def test_the_seen_open_generations_stay_bounded_without_a_reader_as_the_txid_tables_do(clock, monkeypatch):
    import exporter.core.telemetry as telemetry_module
    from exporter.core.txids import MAX_BACKLOG

    monkeypatch.setattr(telemetry_module, "MAX_SEEN_OPEN", 20)  # generations of 10
    monkeypatch.setattr(telemetry_module, "_SEEN_ROTATE_AT", 9)
    t = started(clock, "pro")
    most = 0
    for n in range(1000):  # 100 generations, never read
        t.observe_order_status(f"O{n}", "open", "13", "0")
        most = max(most, len(t._seen_dropped))
    assert 0 < most <= MAX_BACKLOG + 1
    rate(t)
    assert t._seen_dropped == []  # a read frees the rest, as before


def test_a_polled_cancel_is_charged_by_its_age_at_closed_at_and_then(clock):
    t = started(clock, "pro")
    t0 = clock.now()
    t.observe_order_status("A", "open", "13", "0", placed_at=t0)  # +1 at t0
    clock.advance(20.0)  # the next poll finds it cancelled 2 s after it was placed: Kraken charged +8 then
    t.observe_order_status("A", "canceled", "13", "0", placed_at=t0, closed_at=t0 + 2.0)
    reading = rate(t)
    assert reading.peak_1d == pytest.approx(max(0.0, 1.0 - 3.75 * 2.0) + 8.0)
    assert reading.counter == pytest.approx(max(0.0, 8.0 - 3.75 * 18.0))
    t.observe_order_status("B", "open", "13", "0")
    t.observe_order_status("B", "canceled", "13", "0", closed_at="later")  # counted, ignored: charged at the poll
    assert t.hook_errors == {"invalid_closed_at": 1}
    assert rate(t).counter == pytest.approx(1.0 + 8.0)


def test_krakens_own_value_and_rejections_through_the_library_hooks(clock):
    t = started(clock, "pro")
    t.observe_order_status("A", "open", "13", "0")
    t.observe_rate_counter(40, fetched_at=clock.now())
    t.observe_order_rejected("EOrder:Rate limit exceeded")
    t.observe_order_rejected("EOrder:Insufficient funds")
    reading = rate(t)
    assert (reading.counter, reading.limited_1d, reading.limited_total) == (40.0, 1, 1)
    assert reading.estimate_error == pytest.approx(39.0)
    assert reading.peak_1d == 40.0


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "12", None, True, 10**400])
def test_a_bad_rate_counter_is_counted_and_changes_nothing(clock, bad):
    t = started(clock)
    t.observe_rate_counter(bad)
    assert rate(t).counter == 0.0 and rate(t).estimate_error is None
    assert t.hook_errors.get("invalid_rate_counter") == 1


def test_a_rate_counter_dated_before_the_last_order_event_is_refused(clock):
    t = started(clock)
    t.observe_order_status("A", "open", "13", "0")
    t.observe_rate_counter(5, fetched_at=clock.now() - 10)
    assert t.hook_errors.get("invalid_fetched_at") == 1 and rate(t).counter == 1.0


@pytest.mark.parametrize("bad", [None, 12, "", "x" * 1000, b"EOrder:Rate limit exceeded"])
def test_a_bad_rejection_reason_is_counted_and_changes_nothing(clock, bad):
    t = started(clock)
    t.observe_order_rejected(bad)
    assert rate(t).limited_total == 0
    assert t.hook_errors.get("invalid_reason") == 1


# ---- serve: the executions stream feeds the counter -------------------------------------------------------------

@pytest.mark.integration
def test_the_stream_charges_placements_young_cancels_amends_and_counts_rate_limit_refusals(kraken_secret):
    import time

    from exporter.core.clock import SystemClock
    from tests.conftest import wait_for
    from tests.stream_rig import StreamRig

    rig = StreamRig(kraken_secret, clock=SystemClock())
    try:
        old = rig.account.place("XDGUSD", 13, at=time.time() - 600)  # in the snapshot: adds nothing
        rig.start()
        telemetry = rig.telemetries["XDGUSD"]
        assert telemetry.rate_from_hooks is False
        t0 = time.time()
        txids = [rig.account.place("XDGUSD", 13, at=t0 + i * 0.001) for i in range(5)]  # +1 each
        for txid in txids:
            rig.account.cancel(txid, at=t0 + 2.0)  # 2 s old: +8 each
        rig.account.amend(old, qty=12, at=t0 + 2.0)  # 10 min old: +1
        rig.account.refuse("XDGUSD", 13, at=t0 + 2.0)  # +1 (its pending_new), refused: a rejection, no cancel
        assert wait_for(lambda: telemetry.reading().order_rate.limited_total == 1, timeout=10)
        reading = telemetry.reading(now=t0 + 2.0)
        # pro decays 3.75/s: the 5 placements (about 5) are gone by t0 + 2 (7.5 decayed), then 5 cancels at 2 s old
        # (+8 each), the amend of a 10-minute-old order (+1) and the refused order's placement (+1)
        assert reading.order_rate.counter == pytest.approx(5 * 8 + 1 + 1)
        assert reading.order_rate.limited_1d == 1
        assert rig.value("krakenbot_order_rate_limited_total", pair="XDGUSD") == 1
        assert rig.value("krakenbot_order_rate_threshold", pair="XDGUSD") == 180
    finally:
        rig.stop()


def test_the_status_block_keeps_the_specs_17_fields_and_adds_the_rate_fields_and_pair_tier_after_them(clock):
    from exporter.core.capacity import SPEC_FIELDS
    from exporter.web.status import add_capacity_fill_health

    t = started(clock)
    t.observe_order_status("A", "open", "13", "0")
    block = add_capacity_fill_health({}, t)["capacity_fill_health"]
    assert len(SPEC_FIELDS) == 17 and list(block)[:17] == list(SPEC_FIELDS)
    rate_fields = ["order_rate_counter", "order_rate_threshold", "order_rate_peak_1d", "order_rate_limited_1d",
                   "order_rate_threshold_source", "kraken_tier"]
    assert list(block)[-len(rate_fields):] == rate_fields
    assert (block["order_rate_counter"], block["order_rate_threshold"], block["order_rate_peak_1d"],
            block["order_rate_limited_1d"], block["order_rate_threshold_source"], block["kraken_tier"]) == (
        1.0, 60.0, 1.0, 0, "tier", "starter")


def test_a_pair_added_with_another_tier_says_its_own_tier_in_its_status_block():
    from prometheus_client import CollectorRegistry

    from exporter.core.clock import ManualClock
    from exporter.service import CapacityExporter
    from exporter.web.status import status_payload

    exporter = CapacityExporter(CollectorRegistry(), clock=ManualClock(1_700_000_000.0))  # the default tier: pro
    exporter.add_pair("XDGUSD", tier="starter").observe_order_status("A", "open", "1", "0")
    payload = status_payload(exporter)
    block = payload["capacity_fill_health"]
    assert payload["kraken_tier"] == "pro"  # the exporter's default
    assert (block["kraken_tier"], block["order_rate_threshold"], block["open_order_limit_configured"]) == (
        "starter", 60.0, 60)


def test_without_the_stream_serve_exports_no_rate_counter():
    from exporter.core.clock import ManualClock
    from exporter.core.telemetry import CapacityTelemetry
    from exporter.sources.standalone import StandaloneSource

    class Off:
        events_known = False

    t = CapacityTelemetry("XDGUSD", clock=ManualClock())
    t.observe_kraken_count(3)
    assert StandaloneSource(t, events=Off()).reading().order_rate is None
    assert StandaloneSource(t, events=None).reading().order_rate is None


@pytest.mark.integration
def test_while_the_stream_is_down_the_rate_counter_is_absent_not_a_confident_zero(kraken_secret):
    from exporter.web.status import status_payload
    from tests.conftest import wait_for
    from tests.stream_rig import StreamRig

    rig = StreamRig(kraken_secret, max_backoff=0.3)
    try:
        rig.start()
        assert rig.value("krakenbot_order_rate_level", pair="XDGUSD") is not None
        rig.server.refuse_tokens(10_000)  # the stream cannot come back
        rig.server.disconnect()
        assert wait_for(lambda: not rig.stream.live, timeout=10)
        assert rig.value("krakenbot_order_rate_level", pair="XDGUSD") is None
        assert rig.value("krakenbot_order_rate_utilization_ratio", pair="XDGUSD") is None
        block = status_payload(rig.exporter)["capacity_fill_health_by_pair"]["XDGUSD"]
        assert "order_rate_counter" not in block
    finally:
        rig.stop()


@pytest.mark.integration
def test_krakens_own_counter_in_the_stream_is_preferred_and_the_difference_exported(kraken_secret):
    import time

    from exporter.core.clock import SystemClock
    from tests.conftest import wait_for
    from tests.stream_rig import StreamRig

    rig = StreamRig(kraken_secret, clock=SystemClock())
    try:
        rig.start()
        telemetry = rig.telemetries["XDGUSD"]
        t0 = time.time()
        rig.account.place("XDGUSD", 13, at=t0, live_after=None)  # our estimate: +1
        rig.account.ratecounter = 30.0
        txid = rig.account.place("XDGUSD", 13, at=t0, live_after=None)  # its pending_new says 30: Kraken's
        rig.account.ratecounter = None
        assert wait_for(lambda: telemetry.reading().order_rate.estimate_error is not None, timeout=10)
        reading = telemetry.reading(now=t0).order_rate
        assert reading.counter == pytest.approx(30.0, abs=1e-5)  # (Kraken writes microseconds)
        assert reading.estimate_error == pytest.approx(30.0 - 2.0)  # ours was 2 (two placements at t0)
        assert rig.value("krakenbot_order_rate_estimate_error", pair="XDGUSD") == pytest.approx(28.0)
        rig.account.cancel(txid, at=t0 + 1.0)  # our arithmetic goes on from Kraken's value: 30 - 3.75 + 8
        assert wait_for(lambda: telemetry.reading(now=t0 + 1.0).order_rate.counter > 31.0, timeout=10)
        assert telemetry.reading(now=t0 + 1.0).order_rate.counter == pytest.approx(30.0 - 3.75 + 8)
    finally:
        rig.stop()


@pytest.mark.integration
def test_the_streams_ack_threshold_is_in_force_and_a_tier_mismatch_is_warned_once(kraken_secret, caplog):
    from tests.stream_rig import StreamRig

    caplog.set_level(logging.WARNING)
    rig = StreamRig(kraken_secret, fake_tier="intermediate")  # the exporter is left at the default tier, pro
    try:
        rig.start()
        reading = rig.telemetries["XDGUSD"].reading().order_rate
        assert (reading.threshold, reading.threshold_source) == (125.0, "kraken")
        assert rig.value("krakenbot_order_rate_threshold", pair="XBTUSD") == 125.0
        assert rig.value("krakenbot_order_rate_threshold_from_kraken", pair="XDGUSD") == 1.0
        warnings = [r.getMessage() for r in caplog.records if "maxratecount" in r.getMessage()
                    or "order rate threshold" in r.getMessage()]
        assert len(warnings) == 1 and "125" in warnings[0] and "pro" in warnings[0] and "180" in warnings[0]
    finally:
        rig.stop()


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.0, max_value=4_102_444_800.0), st.sampled_from([None, 0, 3, 6]))
def test_the_streams_fast_timestamp_reading_equals_rfc3339_parsing(t, digits):
    from datetime import UTC, datetime

    from exporter.core.executions import ExecutionBook, parse_time

    text = datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if digits is not None:  # other precisions take the general path
        text = text[:20 + digits].rstrip(".") + "Z"
    book = ExecutionBook(lambda symbol: None)
    assert book._time(text) == pytest.approx(parse_time(text), abs=1e-6)
    assert book._time(text + "junk") is None and book._time("2024-13-01T00:00:00.000000Z") is None


def test_an_order_first_seen_partly_filled_is_placed_once_and_a_late_open_row_after_its_end_adds_nothing(clock):
    t = started(clock)
    t.observe_order_status("P", "open", "13", "4")  # first seen partly filled: +1
    t.observe_order_status("P", "open", "13", "5")
    t.observe_order_status("U", "open", "13", "0")  # +1
    t.observe_order_status("U", "canceled", "13", "0", placed_at=clock.now() - 100)  # 100 s old: +1
    t.observe_order_status("U", "open", "13", "0")  # a late row: nothing
    t.observe_order_status("F", "open", "13", "0")  # +1
    t.observe_order_status("F", "closed", "13", "13", placed_at=clock.now() - 1)
    t.observe_order_status("F", "open", "13", "0")  # a late row after its fill: nothing
    assert rate(t).counter == pytest.approx(4.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(0, 30), st.floats(0, 4000), st.floats(20_000, 100_000)),
                          st.sampled_from(["cancel", "add", "reject", "read"]), st.floats(0, 20)), max_size=80))
def test_the_24h_peak_and_rejections_equal_a_naive_scan_of_every_event(steps):
    from exporter.core.order_rate import BUCKET_SECONDS

    counter = RateCounter(tier("starter"))
    seen: list[tuple[float, float, int]] = []  # (bucket start, value after the event, rejections)
    t = now = START
    for gap, kind, age in steps:
        t += gap
        if kind == "cancel":
            counter.cancelled(t, age)
        elif kind == "add":
            counter.placed(t)
        elif kind == "reject":
            counter.rejected(t)
        at = max(t, counter.at)
        bucket = at - at % BUCKET_SECONDS
        if kind != "read":
            seen.append((bucket, counter.value if kind != "reject" else 0.0, int(kind == "reject")))
        now = max(now, t + gap / 2)  # reads that let go (prune) are at the owner's clock: it never goes back
        in_day = [s for s in seen if s[0] + BUCKET_SECONDS > now - DAY_SECONDS]
        reading = counter.reading(now, prune=kind == "read")
        assert reading.peak_1d == pytest.approx(max([counter.value_at(now)] + [v for _, v, _ in in_day]), abs=1e-9)
        assert reading.limited_1d == sum(r for _, _, r in in_day)


@pytest.mark.parametrize("bad", ["12.5", -1, float("nan"), True, None])
def test_a_ratecounter_that_is_not_a_number_is_a_bad_row_and_the_row_still_places_the_order(bad):
    from exporter.core.executions import ExecutionBook

    book = ExecutionBook(lambda symbol: "XDGUSD" if symbol == "DOGE/USD" else None)
    book.apply_snapshot([])
    row = {"order_id": "OX1", "symbol": "DOGE/USD", "side": "buy", "order_type": "limit", "order_qty": 13.0,
           "cum_qty": 0.0, "exec_type": "pending_new", "order_status": "pending_new",
           "timestamp": "2026-12-02T10:00:01.000000Z", "ratecounter": bad}
    applied = book.apply_update([row])
    events = book.take_rate_events()["XDGUSD"]
    assert [kind for kind, _, _ in events] == ["placed"]  # no "reported": Kraken's value is not read
    assert applied.skipped == ({} if bad is None else {"bad_field": 1})  # (None: no ratecounter sent, nothing bad)
