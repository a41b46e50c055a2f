"""The time-to-stop forecast: least squares as PromQL's predict_linear computes it, and the bounded history."""

from __future__ import annotations

import math

import pytest

from exporter.core.forecast import HeadroomHistory, fit_trend, hours_to_stop, seconds_to_stop
from exporter.core.thresholds import FORECAST_TREND_SECONDS, STOP_HEADROOM


def test_a_straight_falling_line_is_fitted_exactly_and_reaches_the_stop_edge_when_expected():
    # headroom 50 at t=0 falling 1 per 100 s: 50 - t/100 reaches 10 at t=4000
    points = [(float(t), 50 - t / 100) for t in range(0, 3001, 60)]
    trend = fit_trend(points, at=3000.0)
    assert trend is not None
    assert trend.slope == pytest.approx(-0.01) and trend.value_at_eval == pytest.approx(20.0)
    assert trend.predict(600) == pytest.approx(14.0)
    assert seconds_to_stop(points, at=3000.0) == pytest.approx(1000.0)
    assert hours_to_stop(points, at=3000.0) == pytest.approx(1000 / 3600)


def test_the_slope_is_the_ordinary_least_squares_estimate_of_scattered_points():
    points = [(0.0, 10.0), (60.0, 7.0), (120.0, 8.0), (180.0, 1.0)]
    # by hand: mean x 90, mean y 6.5, Sxy = -90*3.5 - 30*0.5 + 30*1.5 - 90*5.5 = -780, Sxx = 2*(8100+900) = 18000
    trend = fit_trend(points, at=180.0)
    assert trend is not None
    assert trend.slope == pytest.approx(-780 / 18000)
    assert trend.value_at_eval == pytest.approx(6.5 + (-780 / 18000) * 90)


def test_no_forecast_when_the_headroom_is_flat_or_rising_or_there_are_fewer_than_two_points():
    assert seconds_to_stop([(0.0, 30.0), (60.0, 30.0), (120.0, 30.0)], at=120.0) is None
    assert seconds_to_stop([(0.0, 30.0), (60.0, 31.0)], at=60.0) is None
    assert seconds_to_stop([(0.0, 30.0)], at=0.0) is None
    assert seconds_to_stop([], at=0.0) is None
    assert seconds_to_stop([(5.0, 30.0), (5.0, 20.0)], at=5.0) is None  # one instant: no slope


def test_a_trend_already_under_the_stop_edge_is_zero_seconds_away():
    assert seconds_to_stop([(0.0, 9.0), (60.0, 8.0)], at=60.0) == 0.0


def test_the_history_keeps_one_point_per_minute_the_minutes_latest():
    history = HeadroomHistory()
    history.record(60.0, 40)
    history.record(90.0, 39)
    history.record(119.0, 38)
    history.record(120.0, 37)
    assert history.points(120.0) == [(119.0, 38.0), (120.0, 37.0)]


def test_the_history_is_bounded_to_the_trend_window():
    history = HeadroomHistory()
    for minute in range(2000):
        history.record(minute * 60.0, 100 - minute * 0.01)
    assert len(history) == history.max_points == int(FORECAST_TREND_SECONDS / 60) + 1
    now = 1999 * 60.0
    assert history.points(now)[0][0] == now - FORECAST_TREND_SECONDS


def test_the_history_forecasts_the_same_as_the_points_it_holds():
    history = HeadroomHistory()
    points = [(t * 60.0, 60 - 0.05 * t + (t % 3)) for t in range(400)]
    for t, v in points:
        history.record(t, v)
    now = points[-1][0]
    window = [(t, v) for t, v in points if t >= now - FORECAST_TREND_SECONDS]
    assert history.seconds_to_stop(now) == pytest.approx(seconds_to_stop(window, now))
    assert history.hours_to_stop(now) == pytest.approx(seconds_to_stop(window, now) / 3600)
    trend = fit_trend(window, now)
    assert trend is not None
    assert trend.predict(history.seconds_to_stop(now)) == pytest.approx(STOP_HEADROOM)


def test_the_history_ignores_unknown_headroom_and_restarts_when_the_clock_goes_back():
    history = HeadroomHistory()
    history.record(0.0, None)
    history.record(60.0, math.nan)
    assert len(history) == 0
    history.record(120.0, 30)
    history.record(180.0, 29)
    history.record(100.0, 28)
    assert history.points(100.0) == [(100.0, 28.0)]
    assert history.seconds_to_stop(100.0) is None


def test_an_old_history_without_recent_points_gives_no_forecast():
    history = HeadroomHistory()
    history.record(0.0, 30)
    history.record(60.0, 29)
    assert history.seconds_to_stop(60.0 + FORECAST_TREND_SECONDS + 61) is None


def test_the_cached_forecast_equals_a_fresh_fit_after_every_record_and_read():
    import random

    rng = random.Random(11)
    history = HeadroomHistory()
    now, headroom = 1_700_000_000.0, 120.0
    for _ in range(3000):
        now += rng.choice([0.0, 5.0, 15.0, 60.0, 600.0])
        headroom += rng.choice([0, 0, 0, -1, -2, 1])
        history.record(now, headroom)
        read_at = now + rng.choice([0.0, 1.0, 30.0])
        expected = seconds_to_stop(history.points(read_at), read_at)
        got = history.seconds_to_stop(read_at)
        assert (got is None) == (expected is None)
        if got is not None:
            assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-6)


def test_the_exporter_serves_the_forecast_of_the_headroom_it_has_seen_in_status_and_metrics():
    import statistics

    from prometheus_client import CollectorRegistry

    from exporter import CapacityExporter, ManualClock, status_payload

    clock = ManualClock(start=1_700_000_000.0)
    registry = CollectorRegistry()
    exporter = CapacityExporter(registry=registry, clock=clock)
    telemetry = exporter.add_pair("XDGUSD")  # limit 225 x 0.75: safe cap 168
    times, headrooms = [], []
    for active in [100, 102, 103, 105, 108, 110]:
        telemetry.set_internal_counts(active_orders=active, recovery_orders=0, slot_count=10)
        exporter.readings()
        times.append(clock.now())
        headrooms.append(168 - active)
        clock.advance(60)
    clock.advance(-60)  # read at the last point's time
    fit = statistics.linear_regression(times, headrooms)
    crossing = (STOP_HEADROOM - fit.intercept) / fit.slope  # when the fitted line reaches the stop edge
    expected = crossing - clock.now()

    block = status_payload(exporter)["capacity_fill_health"]
    assert math.isclose(block["forecast_hours_to_stop"], expected / 3600, rel_tol=1e-6)
    gauge = registry.get_sample_value("krakenbot_forecast_seconds_to_stop_band", {"pair": "XDGUSD"})
    assert math.isclose(gauge, expected, rel_tol=1e-6)


def test_the_exporter_has_no_forecast_for_a_flat_headroom():
    from prometheus_client import CollectorRegistry

    from exporter import CapacityExporter, ManualClock, status_payload

    clock = ManualClock(start=1_700_000_000.0)
    registry = CollectorRegistry()
    exporter = CapacityExporter(registry=registry, clock=clock)
    telemetry = exporter.add_pair("XDGUSD")
    for _ in range(5):
        telemetry.set_internal_counts(active_orders=100, recovery_orders=0, slot_count=10)
        exporter.readings()
        clock.advance(60)
    assert status_payload(exporter)["capacity_fill_health"]["forecast_hours_to_stop"] is None
    assert registry.get_sample_value("krakenbot_forecast_seconds_to_stop_band", {"pair": "XDGUSD"}) is None


def test_a_pair_that_turns_blind_loses_its_forecast():
    from prometheus_client import CollectorRegistry

    from exporter import CapacityExporter, ManualClock

    clock = ManualClock(start=1_700_000_000.0)
    registry = CollectorRegistry()
    exporter = CapacityExporter(registry=registry, clock=clock)
    telemetry = exporter.add_pair("XDGUSD", stale_after=300.0)
    for active in (100, 102, 104, 106, 108):
        telemetry.set_internal_counts(active_orders=active, recovery_orders=0, slot_count=10)
        exporter.readings()
        clock.advance(60)
    assert registry.get_sample_value("krakenbot_forecast_seconds_to_stop_band", {"pair": "XDGUSD"}) > 0
    clock.advance(3600)  # no hook call for an hour: blind
    assert registry.get_sample_value("krakenbot_pair_blind", {"pair": "XDGUSD"}) == 1
    assert registry.get_sample_value("krakenbot_forecast_seconds_to_stop_band", {"pair": "XDGUSD"}) is None


def test_in_the_stop_band_the_forecast_is_zero_whatever_the_trend():
    flat, rising, single, empty = HeadroomHistory(), HeadroomHistory(), HeadroomHistory(), HeadroomHistory()
    for minute in range(5):
        flat.record(minute * 60.0, 7)
        rising.record(minute * 60.0, 5 + minute)  # 5 .. 9: rising, still below the edge
    single.record(0.0, 3)
    now = 4 * 60.0
    assert flat.forecast(now, 7) == rising.forecast(now, 9) == single.forecast(0.0, 3) == empty.forecast(0.0, 0) == 0.0


def test_at_the_edge_and_above_it_the_forecast_is_null_only_while_the_trend_is_flat_or_rising():
    import statistics

    flat_at_edge, flat_above, rising, falling, single = (HeadroomHistory() for _ in range(5))
    times = [minute * 60.0 for minute in range(5)]
    for t, value in zip(times, [14, 13, 12, 11, 10], strict=True):
        flat_at_edge.record(t, STOP_HEADROOM)
        flat_above.record(t, 30)
        rising.record(t, 30 + t / 60)
        falling.record(t, value)
    single.record(0.0, 12)
    now = times[-1]
    assert flat_at_edge.forecast(now, STOP_HEADROOM) is None  # at the edge is not in the band (the band is < 10)
    assert flat_above.forecast(now, 30) is None and rising.forecast(now, 34) is None
    assert single.forecast(0.0, 12) is None  # too few points
    fit = statistics.linear_regression(times, [14, 13, 12, 11, 10])
    assert falling.forecast(now, STOP_HEADROOM) == pytest.approx((STOP_HEADROOM - fit.intercept) / fit.slope - now)


def test_the_exporter_keeps_the_forecast_at_zero_while_the_headroom_stays_in_the_stop_band():
    from prometheus_client import CollectorRegistry

    from exporter import CapacityExporter, ManualClock, status_payload

    clock = ManualClock(start=1_700_000_000.0)
    registry = CollectorRegistry()
    exporter = CapacityExporter(registry=registry, clock=clock)
    telemetry = exporter.add_pair("XDGUSD")  # safe cap 168
    for headroom in [9, 9, 9, 8, 5, 6, 7, 8, 9, 9, 12, 11, 9]:  # in the band: one point, flat, falling, rising
        telemetry.set_internal_counts(active_orders=168 - headroom, recovery_orders=0, slot_count=10)
        block = status_payload(exporter)["capacity_fill_health"]
        gauge = registry.get_sample_value("krakenbot_forecast_seconds_to_stop_band", {"pair": "XDGUSD"})
        if headroom < STOP_HEADROOM:
            assert (block["status_band"], block["forecast_hours_to_stop"], gauge) == ("stop", 0, 0), headroom
        clock.advance(60)


def test_a_blind_pair_in_the_stop_band_has_no_forecast():
    from prometheus_client import CollectorRegistry

    from exporter import CapacityExporter, ManualClock, status_payload

    clock = ManualClock(start=1_700_000_000.0)
    registry = CollectorRegistry()
    exporter = CapacityExporter(registry=registry, clock=clock)
    telemetry = exporter.add_pair("XDGUSD", stale_after=300.0)
    telemetry.set_internal_counts(active_orders=161, recovery_orders=0, slot_count=10)  # headroom 7
    assert registry.get_sample_value("krakenbot_forecast_seconds_to_stop_band", {"pair": "XDGUSD"}) == 0
    clock.advance(3600)  # no hook call for an hour: blind
    assert registry.get_sample_value("krakenbot_pair_blind", {"pair": "XDGUSD"}) == 1
    assert registry.get_sample_value("krakenbot_forecast_seconds_to_stop_band", {"pair": "XDGUSD"}) is None
    assert status_payload(exporter)["capacity_fill_health"]["forecast_hours_to_stop"] is None


def test_two_overlapping_reads_record_in_the_order_they_read_the_clock_and_keep_the_history():
    import statistics
    import threading

    from prometheus_client import CollectorRegistry

    from exporter import CapacityExporter, ManualClock

    clock = ManualClock(start=1_700_000_000.0)
    exporter = CapacityExporter(registry=CollectorRegistry(), clock=clock)
    telemetry = exporter.add_pair("XDGUSD")  # limit 225 x 0.75: safe cap 168
    points = []
    for minute in range(30):  # half an hour of a steadily falling headroom, one read a minute
        telemetry.set_internal_counts(active_orders=10 + minute, slot_count=1)
        exporter.readings()
        points.append((clock.now(), 168 - (10 + minute)))
        clock.advance(60)
    telemetry.set_internal_counts(active_orders=40, slot_count=1)
    assert exporter.readings()[0].forecast_seconds_to_stop is not None
    paused, resume = threading.Event(), threading.Event()

    class ClockPausingReadA:  # read A is preempted right after it has read the clock
        def now(self) -> float:
            t = clock.now()
            if threading.current_thread().name == "A":
                paused.set()
                assert resume.wait(10)
            return t

    exporter.clock = ClockPausingReadA()
    a = threading.Thread(target=exporter.readings, name="A")
    a.start()
    assert paused.wait(10)
    telemetry.set_internal_counts(active_orders=41, slot_count=1)  # the grid places one more order
    clock.advance(0.001)  # and a millisecond later another scrape reads
    b = threading.Thread(target=exporter.readings, name="B")
    b.start()
    b.join(0.5)  # B either records at once or waits for A: both must leave the history whole
    resume.set()
    a.join(10)
    b.join(10)
    assert not a.is_alive() and not b.is_alive()
    points.append((clock.now(), 168 - 41))  # the minute's latest value
    fit = statistics.linear_regression([t for t, _ in points], [v for _, v in points])
    expected = (STOP_HEADROOM - fit.intercept) / fit.slope - clock.now()
    got = exporter.readings()[0].forecast_seconds_to_stop
    assert got is not None and math.isclose(got, expected, rel_tol=1e-6)
