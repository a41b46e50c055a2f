"""The pure parts of the baseline and the advisor: sample windows, counter resets, slot steps, and decisions."""

from __future__ import annotations

import pytest

from exporter.core.baseline import FillTimes, PairHistory, choose_fill, day_report
from exporter.core.playbook import AdviceInputs, advise
from exporter.core.samples import counter_increase, positive_steps, scrape_interval
from exporter.core.thresholds import BLIND_AFTER_SECONDS, RESUME_NORMAL_SECONDS

H = 3600.0


def test_a_counter_drop_is_a_restart_from_zero_and_the_step_into_the_window_counts():
    samples = [(0.0, 5.0), (10.0, 6.0), (20.0, 8.0), (30.0, 1.0), (40.0, 3.0)]
    assert counter_increase(samples, 10.0, 40.0) == (2 + 1 + 2, 40.0)
    assert counter_increase(samples, 0.0, 10.0) == (1, 10.0)
    assert counter_increase(samples, 40.0, 50.0) is None


def test_a_slot_dropped_and_added_again_counts_one():
    samples = [(0.0, 10.0), (10.0, 11.0), (20.0, 10.0), (30.0, 11.0)]
    assert positive_steps(samples, 5.0, 30.0) == (2, 30.0)
    assert positive_steps(samples, 15.0, 30.0) == (1, 30.0)


def test_the_scrape_interval_is_the_median_step_so_a_gap_does_not_move_it():
    assert scrape_interval([(0.0, 1), (15.0, 1), (30.0, 1), (900.0, 1), (915.0, 1)]) == 15.0
    assert scrape_interval([(0.0, 1)]) is None


def test_a_day_counts_samples_times_the_interval_and_a_gap_counts_nothing():
    band = [(float(t), 2.0 if 100 < t <= 200 else 0.0) for t in range(10, 1001, 10) if not 500 < t <= 700]
    row = day_report(PairHistory(band=band), 0.0, 1000.0, scrape_interval(band), FillTimes())
    assert row["seconds_in_band"] == {"normal": 700.0, "caution": 0.0, "stop": 100.0}
    assert row["coverage_ratio"] == 0.8
    assert row["utilization_mean_ratio"] is None and row["partial_open_events"] is None


def test_the_gauges_win_over_the_histogram_and_neither_is_none():
    assert choose_fill((10.0, 90.0), (1.0, 2.0)) == FillTimes(10.0, 90.0, "gauge")
    assert choose_fill((None, None), (1.0, 2.0)) == FillTimes(1.0, 2.0, "histogram")
    assert choose_fill((None, None), (None, None)) == FillTimes()


def band_run(values: list[tuple[float, float, int]], step: float = 60.0) -> list[tuple[float, float]]:
    """[(from, to, band)] -> samples every `step` in (from, to]."""
    samples = []
    for start, end, band in values:
        t = start + step
        while t <= end:
            samples.append((t, float(band)))
            t += step
    return samples


@pytest.mark.parametrize(("band", "expected"), [(0, ("add_slot", 0)), (1, ("add_slot", 0)), (2, ("stop", 2))])
def test_each_band_alone_decides(band, expected):
    samples = band_run([(0.0, 100 * H, band)])
    advice = advise("XDGUSD", AdviceInputs(at=100 * H, band=samples, slots=[(t, 5.0) for t, _ in samples],
                                           partial_cancel_total=[(t, 0.0) for t, _ in samples]))
    assert (advice.decision, advice.exit_code) == expected
    if band != 2:
        assert advice.stop_last_seen is None


def test_the_72h_rule_counts_from_the_last_stop_sample():
    samples = band_run([(0.0, 10 * H, 2), (10 * H, 200 * H, 0)])
    last_stop = 10 * H
    before = advise("XDGUSD", AdviceInputs(at=last_stop + RESUME_NORMAL_SECONDS - 1, band=samples))
    after = advise("XDGUSD", AdviceInputs(at=last_stop + RESUME_NORMAL_SECONDS + 60, band=samples))
    assert (before.decision, before.exit_code, before.wait_seconds) == ("wait", 1, 1)
    assert (after.decision, after.exit_code, after.wait_seconds) == ("add_slot", 0, None)
    assert after.normal_since == 10 * H + 60


def test_no_recent_band_sample_is_unknown():
    samples = band_run([(0.0, 10 * H, 0)])
    advice = advise("XDGUSD", AdviceInputs(at=10 * H + BLIND_AFTER_SECONDS, band=samples))
    assert (advice.decision, advice.exit_code, advice.band) == ("unknown", 3, None)
    assert advise("XDGUSD", AdviceInputs(at=10 * H + BLIND_AFTER_SECONDS - 1, band=samples)).decision == "add_slot"


def test_a_gap_in_the_72h_window_is_said():
    samples = [s for s in band_run([(0.0, 100 * H, 0)]) if not 50 * H < s[0] <= 60 * H]
    advice = advise("XDGUSD", AdviceInputs(at=100 * H, band=samples))
    assert advice.decision == "add_slot"
    assert any(r.startswith("Band data has 1 gap(s) in the 72 h before, 10.0 h in all") for r in advice.reasons)


# ---- issue 18: the order rate counter makes advise wait, and the baseline reports its daily peak and rejections

def rate_inputs(at: float, peak: float, threshold: float = 180.0, limited_at: float | None = None,
                peak_reached: float | None = None) -> AdviceInputs:
    band = band_run([(0.0, at, 0)])
    reached = at - H if peak_reached is None else peak_reached
    return AdviceInputs(
        at=at, band=band, slots=[(t, 10.0) for t, _ in band], partial_cancel_total=[(t, 0.0) for t, _ in band],
        rate_peak=[(t, peak if t >= reached else 10.0) for t, _ in band],
        rate_threshold=[(t, threshold) for t, _ in band],
        rate_limited_total=[(t, 1.0 if limited_at is not None and t >= limited_at else 0.0) for t, _ in band],
    )


def test_a_rate_peak_above_80_percent_makes_advise_wait_even_in_normal_and_says_the_numbers():
    at = 100 * H
    advice = advise("XDGUSD", rate_inputs(at, peak=152.0, peak_reached=at - 3 * H))
    assert (advice.decision, advice.exit_code, advice.band) == ("wait", 1, "normal")
    assert any("Adding a slot adds order traffic: the rate counter of XDGUSD peaked at 152 of 180" in r
               for r in advice.reasons), advice.reasons
    assert advice.wait_seconds == pytest.approx(21 * H)  # until the peak is a day old
    assert (advice.order_rate_peak_1d, advice.order_rate_threshold, advice.order_rate_limited_24h) == (152.0, 180.0, 0)


def test_a_peak_at_80_percent_or_below_changes_nothing():
    advice = advise("XDGUSD", rate_inputs(100 * H, peak=144.0))
    assert advice.decision == "add_slot"


def test_any_rate_limit_rejection_in_the_24h_makes_advise_wait_until_it_is_a_day_old():
    at = 100 * H
    advice = advise("XDGUSD", rate_inputs(at, peak=20.0, limited_at=at - 2 * H))
    assert advice.decision == "wait" and advice.order_rate_limited_24h == 1
    assert any("EOrder:Rate limit exceeded" in r for r in advice.reasons)
    assert advice.wait_seconds == pytest.approx(22 * H)
    later = advise("XDGUSD", rate_inputs(at + 23 * H, peak=20.0, limited_at=at - 2 * H))
    assert later.decision == "add_slot"


def test_the_playbook_rules_before_it_keep_their_answer():
    at = 100 * H
    inputs = rate_inputs(at, peak=170.0)
    stopped = AdviceInputs(at=at, band=band_run([(0.0, at, 2)]), rate_peak=inputs.rate_peak,
                           rate_threshold=inputs.rate_threshold)
    assert advise("XDGUSD", stopped).decision == "stop"


def test_without_rate_series_advise_decides_as_before_and_says_the_rate_counter_was_not_checked():
    at = 100 * H
    band = band_run([(0.0, at, 0)])
    advice = advise("XDGUSD", AdviceInputs(at=at, band=band))
    assert advice.decision == "add_slot" and advice.order_rate_peak_1d is None
    assert any("order rate counter is unknown here" in r and "not checked" in r for r in advice.reasons)
    known = advise("XDGUSD", rate_inputs(at, peak=20.0))
    assert not any("order rate counter is unknown" in r for r in known.reasons)


def test_a_baseline_day_reports_the_rate_counters_peak_at_its_end_and_its_rejections():
    day = 86400.0
    peak = [(t, 150.0 if t < 500.0 else 90.0) for t in range(60, int(day) + 1, 60)]  # yesterday's 150 left the day
    history = PairHistory(rate_peak=[(float(t), v) for t, v in peak],
                          rate_threshold=[(float(t), 180.0) for t, _ in peak],
                          rate_limited_total=[(float(t), 0.0 if t < 40_000 else 2.0) for t, _ in peak])
    row = day_report(history, 0.0, day, 60.0, FillTimes())
    assert (row["order_rate_peak"], row["order_rate_threshold"], row["order_rate_limited"]) == (90, 180, 2)
    empty = day_report(PairHistory(), 0.0, day, 60.0, FillTimes())
    assert (empty["order_rate_peak"], empty["order_rate_limited"]) == (None, None)


def test_the_baseline_table_shows_each_days_rate_peak_against_its_threshold_and_the_refusals():
    from exporter.core.baseline import pair_report
    from exporter.rollout.tables import format_baseline

    day = 86400.0
    times = [float(t) for t in range(300, int(day) + 1, 300)]
    history = PairHistory(band=[(t, 0.0) for t in times], rate_peak=[(t, 152.0) for t in times],
                          rate_threshold=[(t, 180.0) for t in times],
                          rate_limited_total=[(t, 0.0 if t < 50_000 else 3.0) for t in times])
    report = {"prometheus": "http://prom", "start": 0.0, "end": day,
              "pairs": {"XDGUSD": pair_report(history, day, 1, [FillTimes()])}}
    text = format_baseline(report)
    lines = text.splitlines()
    assert lines[3].rstrip().endswith("rate peak  rate refused")
    first, total = lines[5].split(), lines[7].split()
    assert first[-2:] == ["152/180", "3"] and total[-2:] == ["152/180", "3"]
