import logging
import math
from decimal import Decimal

import pytest

from exporter.core.telemetry import CANARY_MARKER, MAX_TRACKED_TXIDS
from exporter.core.txids import MAX_BACKLOG, TxidTable
from exporter.core.windows import DAY_SECONDS


def kraken_row(pair: str, status: str = "open") -> dict:
    return {"status": status, "descr": {"pair": pair, "type": "buy"}, "vol": "13.0", "vol_exec": "0.0"}


@pytest.fixture
def telemetry(exporter):
    return exporter.add_pair("XDGUSD", limit=225, safety_ratio=0.75)


def sample(registry, name, **labels):
    return registry.get_sample_value(name, {"pair": "XDGUSD", **labels})


def test_partial_open_is_counted_once_per_txid_in_window_and_counter(telemetry, registry):
    for _ in range(3):
        telemetry.observe_order_status("TX1", "open", "13", "2")
    telemetry.observe_order_status("TX2", "open", "13", "0")
    assert telemetry.snapshot().partial_fill_open_events_1d == 1
    assert sample(registry, "krakenbot_partial_fill_open_events_total") == 1


def test_an_order_still_unfilled_or_fully_filled_while_open_is_no_partial(telemetry):
    telemetry.observe_order_status("TX1", "open", "13", "0")
    telemetry.observe_order_status("TX2", "open", "13", "13")
    assert telemetry.snapshot().partial_fill_open_events_1d == 0


def test_cancel_after_partial_fill_counts_and_logs_the_canary(telemetry, registry, caplog):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    with caplog.at_level(logging.WARNING, logger="kraken_capacity_exporter"):
        telemetry.observe_order_status("TX1", "canceled", "13", "2", slot=4)
    snap = telemetry.snapshot()
    assert snap.partial_fill_cancel_events_1d == 1
    assert snap.status_band == "stop"
    assert sample(registry, "krakenbot_partial_fill_cancel_events_total") == 1
    [record] = [r for r in caplog.records if CANARY_MARKER in r.getMessage()]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "txid=TX1" in message and "vol_exec=2.00000000" in message and "vol=13.00000000" in message
    assert "slot=4" in message


def test_expired_with_execution_is_a_partial_cancel_and_unfilled_cancel_is_not(telemetry):
    telemetry.observe_order_status("TX1", "expired", "13", "1.5")
    telemetry.observe_order_status("TX2", "canceled", "13", "0")
    assert telemetry.snapshot().partial_fill_cancel_events_1d == 1


def test_a_terminal_order_polled_twice_is_counted_once(telemetry, clock):
    telemetry.observe_order_status("TX1", "canceled", "13", "1")
    telemetry.observe_order_status("TX1", "canceled", "13", "1")
    telemetry.observe_order_status("TX2", "closed", "13", "13", placed_at=clock.now() - 60)
    telemetry.observe_order_status("TX2", "closed", "13", "13", placed_at=clock.now() - 60)
    snap = telemetry.snapshot()
    assert snap.partial_fill_cancel_events_1d == 1
    assert snap.median_fill_seconds_1d == 60.0


def test_closed_orders_record_fill_time_from_placed_at(telemetry, clock, registry):
    now = clock.now()
    for i, age in enumerate([30, 60, 90, 120]):
        telemetry.observe_order_status(f"TX{i}", "closed", "13", "13", placed_at=now - age)
    snap = telemetry.snapshot()
    assert snap.median_fill_seconds_1d == 75.0
    assert snap.p95_fill_seconds_1d == 120.0
    assert sample(registry, "krakenbot_fill_duration_seconds_count") == 4
    assert sample(registry, "krakenbot_fill_duration_seconds_sum") == 300.0
    assert sample(registry, "krakenbot_fill_duration_seconds_bucket", le="60.0") == 2


def test_a_closed_order_with_closed_at_records_its_fill_time_from_placed_at_to_closed_at(telemetry, clock):
    now = clock.now()
    telemetry.observe_order_status("TX1", "closed", "13", "13", placed_at=now - 100.5, closed_at=now - 40.25)
    telemetry.observe_order_status("TX2", "closed", "13", "13", placed_at=now + 10.0, closed_at=now + 30.0)  # Kraken ahead
    snap = telemetry.snapshot()
    assert (snap.median_fill_seconds_1d, snap.p95_fill_seconds_1d) == (40.125, 60.25)
    assert sum(telemetry.hook_errors.values()) == 0


def test_closed_order_without_placed_at_records_no_fill_time(telemetry):
    telemetry.observe_order_status("TX1", "closed", "13", "13", placed_at=0)
    telemetry.observe_order_status("TX2", "closed", "13", "13")
    assert telemetry.snapshot().median_fill_seconds_1d is None
    assert sum(telemetry.hook_errors.values()) == 0


def test_events_older_than_a_day_drop_out_when_the_clock_advances_and_exactly_a_day_old_stay(telemetry, clock):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    telemetry.observe_order_status("TX2", "canceled", "13", "2")
    telemetry.observe_order_status("TX3", "closed", "13", "13", placed_at=clock.now() - 10)
    clock.advance(DAY_SECONDS)  # exactly 24h old: still in the window, as in the reference bot
    snap = telemetry.snapshot()
    assert (snap.partial_fill_open_events_1d, snap.partial_fill_cancel_events_1d) == (1, 1)
    assert snap.median_fill_seconds_1d == 10.0
    clock.advance(0.001)
    snap = telemetry.snapshot()
    assert (snap.partial_fill_open_events_1d, snap.partial_fill_cancel_events_1d) == (0, 0)
    assert snap.median_fill_seconds_1d is None
    assert snap.status_band == "normal"


def test_a_txid_seen_partially_filled_is_remembered_as_ended_once_the_order_is_no_longer_open(telemetry, clock):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    assert telemetry._events.txids.state("TX1") == ("seen", clock.now())
    clock.advance(5)
    telemetry.observe_order_status("TX1", "closed", "13", "13")
    assert telemetry._events.txids.state("TX1") == ("ended", clock.now())


def test_txids_are_forgotten_after_a_day_and_the_reader_frees_their_memory(telemetry, clock):
    for i in range(50):
        telemetry.observe_order_status(f"P{i}", "open", "13", "2")
        telemetry.observe_order_status(f"C{i}", "canceled", "13", "0")
    clock.advance(DAY_SECONDS + 1)
    assert len(telemetry._events.txids) == 100  # a hook does no expiry work
    telemetry.snapshot()  # the reader lets every generation stamped before the mark go
    assert len(telemetry._events.txids) == 0
    telemetry.observe_order_status("P0", "open", "13", "2")  # forgotten: a partial-open again
    telemetry.observe_order_status("C0", "canceled", "13", "1")  # forgotten: this cancel counts
    snap = telemetry.snapshot()
    assert (snap.partial_fill_open_events_1d, snap.partial_fill_cancel_events_1d) == (1, 1)
    assert list(telemetry._events.txids) == ["P0", "C0"]


def test_a_forgotten_txid_is_forgotten_even_while_its_generation_is_still_held(telemetry, clock):
    telemetry.observe_order_status("OLD", "open", "13", "2")
    clock.advance(DAY_SECONDS + 1)
    telemetry.observe_order_status("NEW", "open", "13", "2")  # same generation, so OLD's memory is kept
    telemetry.snapshot()
    assert "OLD" in telemetry._events.txids
    telemetry.observe_order_status("OLD", "open", "13", "2")  # but it counts as a new partial-open
    assert telemetry.snapshot().partial_fill_open_events_1d == 2


def test_txid_table_is_capped_even_within_a_day(telemetry):
    telemetry._events.txids = TxidTable(10)
    for i in range(25):
        telemetry.observe_order_status(f"C{i}", "canceled", "13", "0")
    assert len(telemetry._events.txids) <= 10
    telemetry.snapshot()  # the reader frees what the table let go, counting what was forgotten early
    assert telemetry.hook_errors["txid_table_full"] == 25 - len(telemetry._events.txids)
    assert MAX_TRACKED_TXIDS >= 10_000


def test_a_flood_without_readers_keeps_the_txid_tables_bounded(telemetry):
    telemetry._events.txids = TxidTable(10)
    for i in range(1_000):
        telemetry.observe_order_status(f"C{i}", "canceled", "13", "0")
    assert len(telemetry._events.txids._dropped) <= MAX_BACKLOG + 1
    telemetry.snapshot()
    assert telemetry.hook_errors["txid_table_full"] == 1_000 - len(telemetry._events.txids)


@pytest.mark.parametrize(
    ("args", "kwargs", "kind"),
    [
        (("TX", "open", "abc", "1"), {}, "invalid_volume"),
        (("TX", "open", None, "1"), {}, "invalid_volume"),
        (("TX", "open", "13", float("nan")), {}, "invalid_volume"),
        (("TX", "open", "13", "inf"), {}, "invalid_volume"),
        (("TX", "open", "13", True), {}, "invalid_volume"),
        (("TX", "open", "-13", "1"), {}, "negative_volume"),
        (("TX", "open", "13", "14"), {}, "vol_exec_exceeds_vol"),
        (("TX", None, "13", "1"), {}, "invalid_status"),
        (("TX", "partially_open", "13", "1"), {}, "unknown_status"),
        ((None, "open", "13", "1"), {}, "invalid_txid"),
        (("", "open", "13", "1"), {}, "invalid_txid"),
        (("TX", "canceled", "13", "x"), {}, "invalid_volume"),
        (("TX", "closed", "13", "13"), {"placed_at": "yesterday"}, "invalid_placed_at"),
        (("TX", "closed", "13", "13"), {"placed_at": math.nan}, "invalid_placed_at"),
        (("TX", "closed", "13", "13"), {"placed_at": 1_700_000_000.0 + 3600}, "placed_at_in_future"),
        (("TX", "closed", "13", "13"), {"placed_at": 1_700_000_000.0 - 9, "closed_at": "now"}, "invalid_closed_at"),
        (("TX", "closed", "13", "13"), {"placed_at": 1_700_000_000.0 - 9, "closed_at": math.inf}, "invalid_closed_at"),
        (("TX", "closed", "13", "13"), {"placed_at": 1_700_000_000.0 - 9, "closed_at": 1_700_000_061.0},
         "closed_at_in_future"),
        (("TX", "closed", "13", "13"), {"placed_at": 1_700_000_000.0 - 9, "closed_at": 1_700_000_000.0 - 10},
         "placed_at_in_future"),
    ],
)
def test_bad_input_is_counted_by_kind_and_never_raised(telemetry, registry, args, kwargs, kind, caplog):
    with caplog.at_level(logging.WARNING, logger="kraken_capacity_exporter"):
        telemetry.observe_order_status(*args, **kwargs)
    assert telemetry.hook_errors == {kind: 1}
    assert sample(registry, "krakenbot_hook_errors_total", kind=kind) == 1
    assert any(kind in r.getMessage() for r in caplog.records)
    snap = telemetry.snapshot()
    assert snap.partial_fill_open_events_1d == 0 and snap.median_fill_seconds_1d is None


def test_a_flood_of_bad_input_logs_once_a_minute_but_counts_everything(telemetry, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="kraken_capacity_exporter"):
        for _ in range(1000):
            telemetry.observe_order_status("TX", "open", "abc", "1")
        clock.advance(61)
        telemetry.observe_order_status("TX", "open", "abc", "1")
    assert telemetry.hook_errors["invalid_volume"] == 1001
    assert len(caplog.records) == 2


def test_a_hook_survives_an_internal_failure(telemetry, monkeypatch):
    def boom(*_):
        raise RuntimeError("boom")

    monkeypatch.setattr(telemetry, "_closed", boom)
    telemetry.observe_order_status("TX", "closed", "13", "13")
    assert telemetry.hook_errors["internal_error"] == 1


def test_internal_counts_feed_the_fallback_source(telemetry):
    telemetry.set_internal_counts(active_orders=1, recovery_orders=1, slot_count=1)
    snap = telemetry.snapshot()
    assert snap.open_orders_source == "internal_fallback"
    assert (snap.open_orders_internal, snap.open_orders_current, snap.open_orders_safe_cap) == (2, 2, 168)
    assert snap.open_order_headroom == 166
    assert snap.orders_per_slot_estimate == 2.0


def test_bad_internal_counts_are_rejected_and_keep_the_previous_values(telemetry):
    telemetry.set_internal_counts(active_orders=4, recovery_orders=1, slot_count=2)
    telemetry.set_internal_counts(active_orders=-1)
    telemetry.set_internal_counts(slot_count="two")
    telemetry.set_internal_counts(recovery_orders=1.5)
    assert telemetry.hook_errors["invalid_count"] == 3
    assert telemetry.snapshot().open_orders_internal == 5


def test_fed_open_orders_count_only_well_formed_rows_of_the_pair(telemetry):
    reply = {
        "open": {
            "A": kraken_row("XDGUSD"),
            "B": kraken_row("xdgusd"),
            "C": kraken_row("XBTUSD"),
            "D": "garbage",
            "E": {"descr": None},
            "F": {"descr": {"pair": 7}},
            "G": kraken_row("XDGUSD", status="pending"),
        }
    }
    telemetry.set_internal_counts(active_orders=2)
    telemetry.observe_kraken_open_orders(reply)
    snap = telemetry.snapshot()
    assert snap.open_orders_source == "kraken"
    assert snap.open_orders_kraken == 3
    assert snap.open_orders_drift == 1
    assert telemetry.hook_errors["malformed_kraken_row"] == 3


def test_the_bare_open_mapping_is_accepted_as_well_as_the_result(telemetry):
    telemetry.observe_kraken_open_orders({"A": kraken_row("XDGUSD")})
    assert telemetry.snapshot().open_orders_kraken == 1


@pytest.mark.parametrize("reply", [None, [], "open", {"open": ["x"]}, 42])
def test_a_malformed_open_orders_reply_is_counted_and_keeps_the_last_count(telemetry, reply):
    telemetry.observe_kraken_open_orders({"open": {"A": kraken_row("XDGUSD")}})
    telemetry.observe_kraken_open_orders(reply)
    assert telemetry.hook_errors["malformed_kraken_reply"] == 1
    assert telemetry.snapshot().open_orders_kraken == 1


@pytest.mark.parametrize("configured", ["DOGE/USD", "DOGEUSD", "XDG/USD", "XDGUSD", "xdgusd"])
def test_every_spelling_of_the_pair_matches_krakens_altname(exporter, configured):
    telemetry = exporter.add_pair(configured)
    telemetry.observe_kraken_open_orders({"open": {"A": kraken_row("XDGUSD"), "B": kraken_row("XBTUSD")}})
    assert telemetry.pair == "XDGUSD"
    assert telemetry.snapshot().open_orders_kraken == 1


def test_stale_kraken_data_falls_back_to_internal(exporter, clock):
    telemetry = exporter.add_pair("XDGUSD", kraken_stale_after=120)
    telemetry.set_internal_counts(active_orders=3)
    telemetry.observe_kraken_open_orders({"open": {"A": kraken_row("XDGUSD")}})
    clock.advance(120)
    assert telemetry.snapshot().open_orders_source == "kraken"
    clock.advance(1)
    snap = telemetry.snapshot()
    assert snap.open_orders_source == "internal_fallback"
    assert snap.open_orders_kraken is None and snap.open_orders_current == 3
    assert telemetry.kraken_data_age() == 121


def test_marking_kraken_unavailable_falls_back_at_once(telemetry):
    telemetry.observe_kraken_count(5)
    telemetry.observe_kraken_unavailable()
    assert telemetry.snapshot().open_orders_source == "internal_fallback"


def test_drift_hint_appears_only_after_it_persists(exporter, clock):
    telemetry = exporter.add_pair("XDGUSD", drift_threshold=10, drift_persist_seconds=600, kraken_stale_after=1e9)
    telemetry.set_internal_counts(active_orders=0)
    telemetry.observe_kraken_count(10)
    clock.advance(599)
    assert "open_order_drift_persistent" not in telemetry.snapshot().blocked_risk_hint
    clock.advance(1)
    assert "open_order_drift_persistent" in telemetry.snapshot().blocked_risk_hint
    telemetry.set_internal_counts(active_orders=5)  # drift 5 < 10: cleared
    assert "open_order_drift_persistent" not in telemetry.snapshot().blocked_risk_hint


def test_clock_going_backwards_loses_no_event_and_is_counted(telemetry, clock):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    clock.advance(-3600)
    telemetry.observe_order_status("TX2", "open", "13", "2")
    assert telemetry.snapshot().partial_fill_open_events_1d == 2
    assert telemetry.hook_errors["clock_went_backwards"] == 1


def test_a_clock_jump_forward_expires_the_window(telemetry, clock):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    clock.advance(10 * DAY_SECONDS)
    assert telemetry.snapshot().partial_fill_open_events_1d == 0


def test_a_read_two_days_ahead_shows_that_day_and_forgets_nothing(telemetry, clock):
    telemetry.observe_order_status("FILL1", "closed", "13", "13", placed_at=clock.now() - 60)
    telemetry.observe_order_status("PART1", "open", "13", "2")
    ahead = telemetry.snapshot(now=clock.now() + 2 * DAY_SECONDS)
    assert (ahead.partial_fill_open_events_1d, ahead.median_fill_seconds_1d) == (0, None)
    now = telemetry.snapshot()
    assert (now.partial_fill_open_events_1d, now.median_fill_seconds_1d) == (1, 60.0)
    clock.advance(1)
    telemetry.observe_order_status("PART1", "canceled", "13", "2")  # after the read ahead: still counted
    after = telemetry.snapshot()
    assert (after.partial_fill_cancel_events_1d, after.status_band) == (1, "stop")


def test_a_read_with_milliseconds_for_seconds_changes_nothing(telemetry, clock):
    telemetry.observe_order_status("PART1", "open", "13", "2")
    assert telemetry.reading(now=clock.now() * 1000).health.partial_fill_open_events_1d == 0
    telemetry.observe_order_status("PART2", "open", "13", "2")
    assert telemetry.snapshot().partial_fill_open_events_1d == 2


def test_a_read_behind_the_clock_sees_what_is_still_held(telemetry, clock):
    telemetry.observe_order_status("PART1", "open", "13", "2")
    clock.advance(DAY_SECONDS + 1)
    telemetry.observe_order_status("PART2", "open", "13", "2")
    assert telemetry.snapshot(now=clock.now() - 2 * DAY_SECONDS).partial_fill_open_events_1d == 1


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, "now", 10**400, True])
def test_a_read_at_a_now_that_is_no_time_raises_value_error_and_changes_nothing(telemetry, now):
    telemetry.observe_order_status("PART1", "open", "13", "2")
    for read in (telemetry.snapshot, telemetry.reading, telemetry.kraken_data_age):
        with pytest.raises(ValueError, match="now must be a finite Unix time"):
            read(now)
    assert telemetry.snapshot().partial_fill_open_events_1d == 1


def test_hooks_record_when_they_last_ran(telemetry, clock):
    assert telemetry.last_update is None
    telemetry.set_internal_counts(active_orders=1)
    assert telemetry.last_update == clock.now()


def test_a_flood_of_fills_past_the_window_cap_is_counted_as_overflow(exporter, clock):
    telemetry = exporter.add_pair("XDGUSD", max_window_events=10)
    for i in range(15):
        telemetry.observe_order_status(f"C{i}", "closed", "13", "13", placed_at=clock.now() - 30)
    assert telemetry.hook_errors["window_overflow"] == 5
    assert telemetry.snapshot().median_fill_seconds_1d == 30.0


# ---- issue 10: rejected input changes nothing ------------------------------------------------------------


def test_a_closed_poll_with_a_rejected_placed_at_does_not_mark_the_txid_finished(telemetry, clock):
    telemetry.observe_order_status("TX1", "closed", "13", "13", placed_at="yesterday")
    telemetry.observe_order_status("TX1", "closed", "13", "13", placed_at=clock.now() - 42)
    assert telemetry.snapshot().median_fill_seconds_1d == 42.0
    assert telemetry.hook_errors == {"invalid_placed_at": 1}


def test_a_cancel_with_an_invalid_vol_exec_keeps_the_partial_open(telemetry):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    telemetry.observe_order_status("TX1", "canceled", "13", "garbage")
    telemetry.observe_order_status("TX1", "open", "13", "2")  # still the same partial-open: not counted twice
    assert telemetry.snapshot().partial_fill_open_events_1d == 1
    assert telemetry.hook_errors == {"invalid_volume": 1}


@pytest.mark.parametrize("vol", ["garbage", "1"])
def test_a_cancel_with_a_bad_vol_is_counted_but_still_a_partial_cancel_with_its_canary(telemetry, vol, caplog):
    with caplog.at_level(logging.WARNING, logger="kraken_capacity_exporter"):
        telemetry.observe_order_status("TX1", "canceled", vol, "2")
    assert telemetry.snapshot().partial_fill_cancel_events_1d == 1
    assert telemetry.hook_errors == {"invalid_volume" if vol == "garbage" else "vol_exec_exceeds_vol": 1}
    assert sum(CANARY_MARKER in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("fetched_at", [math.nan, math.inf, -math.inf, 0, -5, 1_700_000_000.0 + 1, "now", True, 10**400])
def test_a_kraken_snapshot_with_an_impossible_fetched_at_is_rejected_and_changes_nothing(telemetry, fetched_at):
    telemetry.observe_kraken_count(5)
    telemetry.observe_kraken_count(9, fetched_at=fetched_at)
    telemetry.observe_kraken_open_orders({"A": kraken_row("XDGUSD")}, fetched_at=fetched_at)
    assert telemetry.snapshot().open_orders_kraken == 5
    assert telemetry.hook_errors == {"invalid_fetched_at": 2}


def test_an_older_kraken_snapshot_than_the_one_recorded_is_rejected(telemetry, clock):
    telemetry.observe_kraken_count(5, fetched_at=clock.now() - 10)
    telemetry.observe_kraken_count(9, fetched_at=clock.now() - 20)
    assert telemetry.snapshot().open_orders_kraken == 5
    assert telemetry.hook_errors == {"invalid_fetched_at": 1}


@pytest.mark.parametrize("feed", ["count", "rows"])
def test_a_kraken_count_without_fetched_at_after_the_clock_steps_back_is_the_newest_and_is_recorded(telemetry, clock,
                                                                                                     feed):
    def observe(n):
        if feed == "count":
            telemetry.observe_kraken_count(n)
        else:
            telemetry.observe_kraken_open_orders({f"O{i}": kraken_row("XDGUSD") for i in range(n)})

    observe(5)
    clock.advance(-3600)  # the system clock steps back an hour
    observe(9)
    reading = telemetry.reading()
    assert reading.health.open_orders_kraken == 9  # not the old 5, "fresh" for the hour of the step
    assert reading.kraken_data_age_seconds == 0
    assert telemetry.hook_errors == {"clock_went_backwards": 1}
    telemetry.observe_kraken_unavailable()  # and a failure still falls back at once
    assert telemetry.snapshot().open_orders_kraken is None


def test_an_explicit_fetched_at_older_than_the_recorded_count_stays_dropped_after_the_clock_steps_back(telemetry,
                                                                                                        clock):
    telemetry.observe_kraken_count(5)
    clock.advance(-600)
    telemetry.observe_kraken_count(9, fetched_at=clock.now())
    assert telemetry.snapshot().open_orders_kraken == 5
    assert telemetry.hook_errors == {"invalid_fetched_at": 1}


@pytest.mark.parametrize("vol", [10**400, "1e400", b"13", Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity")])
def test_huge_or_odd_volumes_are_invalid_volumes_not_internal_errors(telemetry, vol):
    telemetry.observe_order_status("TX", "open", vol, "1")
    assert set(telemetry.hook_errors) == {"invalid_volume"}


def test_a_nan_clock_is_rejected_and_trimming_goes_on_afterwards(telemetry, clock):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    start = clock.now()
    clock.set(math.nan)
    telemetry.observe_order_status("TX2", "open", "13", "2")
    telemetry.set_internal_counts(active_orders=3)
    assert telemetry.hook_errors == {"invalid_clock": 2}
    clock.set(start + DAY_SECONDS + 1)
    assert telemetry.snapshot().partial_fill_open_events_1d == 0
    assert telemetry.snapshot().open_orders_internal == 0


@pytest.mark.parametrize("reading", [0.0, -1.0, -1_700_000_000.0])
def test_a_clock_at_or_before_1970_is_rejected_like_a_nan_clock(telemetry, clock, reading):
    start = clock.now()
    clock.set(reading)
    telemetry.observe_order_status("TX1", "open", "13", "2")
    telemetry.observe_order_status("TX2", "canceled", "13", "2")
    telemetry.observe_kraken_count(3)
    assert telemetry.hook_errors == {"invalid_clock": 3}
    clock.set(start)
    snap = telemetry.snapshot()
    assert (snap.partial_fill_open_events_1d, snap.partial_fill_cancel_events_1d, snap.open_orders_kraken) == (0, 0, None)


def test_hook_errors_is_a_copy_a_hook_cannot_change_under_a_reader(telemetry):
    telemetry.observe_order_status("TX1", "open", "garbage", "0")
    errors = telemetry.hook_errors
    for _kind in errors:  # a hook adding a kind while a reader iterates (a live Counter raised RuntimeError here)
        telemetry.observe_order_status(None, "open", "13", "0")
    assert errors == {"invalid_volume": 1}
    errors["invalid_volume"] = 99  # and the reader's copy is the reader's
    assert telemetry.hook_errors == {"invalid_volume": 1, "invalid_txid": 1}


class Unprintable:
    def __str__(self):
        raise RuntimeError("no")

    __repr__ = __str__


def test_the_canary_is_written_with_placeholders_and_never_forged(telemetry, caplog):
    with caplog.at_level(logging.WARNING, logger="kraken_capacity_exporter"):
        telemetry.observe_order_status("TX1\nPHANTOM_POSITION_CANARY txid=FORGED", "canceled", 10**400, "2",
                                       slot=Unprintable(), local=10**5000, **{"k\r\n": "v\x1b[31m"})
    lines = [r.getMessage() for r in caplog.records if CANARY_MARKER in r.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    assert line.isprintable() and "\n" not in line
    assert line.count(CANARY_MARKER) == 2  # the marker, and the escaped txid inside quotes: never a second line
    assert "<unprintable Unprintable>" in line and "vol_exec=2.00000000" in line
    assert all(r.getMessage().isprintable() for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"limit": 0}, "limit"), ({"limit": 2.5}, "limit"), ({"safety_ratio": 1.2}, "safety_ratio"),
     ({"safety_ratio": 0}, "safety_ratio"), ({"safety_ratio": math.nan}, "safety_ratio"),
     ({"kraken_stale_after": -1}, "kraken_stale_after"), ({"stale_after": math.inf}, "stale_after"),
     ({"drift_threshold": 0}, "drift_threshold"), ({"max_window_events": 0}, "max_window_events")],
)
def test_bad_library_settings_raise_value_error_at_construction(exporter, kwargs, name):
    with pytest.raises(ValueError, match=name):
        exporter.add_pair("XDGUSD", **kwargs)


@pytest.mark.parametrize("row_pair", ["XDGUSD", "DOGE/USD", "DOGEUSD", "XDG/USD", "doge/usd"])
@pytest.mark.parametrize("configured", ["XDGUSD", "DOGE/USD", "DOGEUSD", "XDG/USD"])
def test_pair_spellings_match_both_ways(exporter, configured, row_pair):
    telemetry = exporter.add_pair(configured)
    telemetry.observe_kraken_open_orders({"A": kraken_row(row_pair), "B": kraken_row("XBTUSD")})
    assert telemetry.snapshot().open_orders_kraken == 1


# ---- issue 10: reference-bot parity ----------------------------------------------------------------------


def drift_telemetry(exporter):
    return exporter.add_pair("XDGUSD", drift_threshold=10, drift_persist_seconds=600, kraken_stale_after=120)


def test_drift_persistence_is_judged_at_kraken_refreshes_not_when_the_bot_count_moves(exporter, clock):
    telemetry = drift_telemetry(exporter)
    for _ in range(11):  # Kraken = internal + 12 at every refresh; the bot's count wobbles in between
        telemetry.set_internal_counts(active_orders=100)
        telemetry.observe_kraken_count(112)
        telemetry.set_internal_counts(active_orders=103)
        clock.advance(30)
        telemetry.set_internal_counts(active_orders=100)
        clock.advance(30)
    assert "open_order_drift_persistent" in telemetry.snapshot().blocked_risk_hint


def test_the_drift_hint_shows_only_while_the_current_drift_is_still_over_the_threshold(exporter, clock):
    telemetry = drift_telemetry(exporter)
    telemetry.set_internal_counts(active_orders=100)
    for _ in range(11):
        telemetry.observe_kraken_count(112)
        clock.advance(60)
    assert "open_order_drift_persistent" in telemetry.snapshot().blocked_risk_hint
    telemetry.set_internal_counts(active_orders=110)  # drift now 2: hint gone at once, run kept until a refresh
    assert "open_order_drift_persistent" not in telemetry.snapshot().blocked_risk_hint
    telemetry.set_internal_counts(active_orders=100)
    assert "open_order_drift_persistent" in telemetry.snapshot().blocked_risk_hint


def test_a_stale_gap_ends_a_drift_run(exporter, clock):
    telemetry = drift_telemetry(exporter)
    telemetry.set_internal_counts(active_orders=100)
    telemetry.observe_kraken_count(112)
    clock.advance(500)  # longer than the 120 s stale limit without a refresh
    telemetry.observe_kraken_count(112)  # the run starts again here
    for _ in range(5):
        clock.advance(100)
        telemetry.observe_kraken_count(112)
    assert "open_order_drift_persistent" not in telemetry.snapshot().blocked_risk_hint  # 1000 s, but a 500 s run
    clock.advance(100)
    telemetry.observe_kraken_count(112)
    assert "open_order_drift_persistent" in telemetry.snapshot().blocked_risk_hint


def test_an_open_row_for_a_txid_already_final_is_ignored(telemetry):
    telemetry.observe_order_status("TX1", "open", "13", "2")
    telemetry.observe_order_status("TX1", "canceled", "13", "2")
    telemetry.observe_order_status("TX1", "open", "13", "2")
    telemetry.observe_order_status("TX2", "closed", "13", "13")
    telemetry.observe_order_status("TX2", "open", "13", "5")
    snap = telemetry.snapshot()
    assert (snap.partial_fill_open_events_1d, snap.partial_fill_cancel_events_1d) == (1, 1)
    assert sum(telemetry.hook_errors.values()) == 0


# ---- issue 10: blind is a state; restarts are visible ----------------------------------------------------


def test_an_embedded_telemetry_is_blind_without_a_hook_call_within_its_stale_limit(exporter, clock):
    telemetry = exporter.add_pair("XDGUSD", stale_after=120)
    clock.advance(120)
    assert not telemetry.reading().blind  # just created: the bot has until the stale limit to call
    clock.advance(1)
    assert telemetry.reading().blind and "no hook call since the telemetry was created" in telemetry.reading().problem
    telemetry.set_internal_counts(active_orders=1)
    clock.advance(120)
    assert not telemetry.reading().blind and telemetry.reading().problem is None
    clock.advance(1)
    reading = telemetry.reading()
    assert reading.blind and "no hook call for 121 s" in reading.problem
    assert reading.health is not None  # the last numbers stay readable; blind says they are not current


def test_rejected_calls_do_not_count_as_liveness(exporter, clock):
    telemetry = exporter.add_pair("XDGUSD", stale_after=120)
    telemetry.set_internal_counts(active_orders=1)
    clock.advance(200)
    telemetry.observe_order_status("TX", "open", "garbage", "1")
    assert telemetry.reading().blind
    assert telemetry.last_update == clock.now() - 200


def test_the_reading_says_since_when_the_windows_have_been_counting(exporter, clock):
    started = clock.now()
    telemetry = exporter.add_pair("XDGUSD")
    clock.advance(3600)
    assert telemetry.reading().window_started_at == started
