"""`baseline` and `advise` against a real Prometheus holding a scripted week (tests/rollout_week.py), backfilled
with `promtool tsdb create-blocks-from openmetrics`. Every expected number is computed here from the script."""

from __future__ import annotations

import gc
import io
import json
import statistics
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from exporter import rollout
from exporter.core.forecast import HeadroomHistory, fit_trend, seconds_to_stop
from exporter.core.thresholds import STOP_HEADROOM
from exporter.rollout.reading import read_baseline
from exporter.sources.prometheus_history import PrometheusHistory, PrometheusHistoryError
from tests.conftest import free_port
from tests.harness import Prometheus
from tests.rollout_week import BUCKET_STEP, BUCKETS, DAY, SAFE_CAP, STEP, Week
from tests.week_stores import backfill, start_prometheus_on

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def week() -> Week:
    return Week(end=int(time.time() // 3600 * 3600 - 3600))


@pytest.fixture(scope="module")
def prom(week: Week, tmp_path_factory: pytest.TempPathFactory):
    """One Prometheus per module on the backfilled week."""
    tmp = tmp_path_factory.mktemp("week")
    server = start_prometheus_on(backfill(week, tmp), tmp)
    try:
        yield server
    finally:
        server.stop()


def run(command: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = rollout.main(command, list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------------- expectations

def histogram_quantile(q: float, increments: tuple[int, ...], bounds: tuple[str, ...]) -> float:
    """PromQL's histogram_quantile over cumulative bucket counts, written out for the test."""
    rank = q * increments[-1]
    lower, below = 0.0, 0
    for count, le in zip(increments, bounds, strict=True):
        if count >= rank:
            upper = float(le)
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = float(le), count
    raise AssertionError("rank beyond the last finite bucket")


def expected_xdg_day(week: Week, k: int) -> dict:
    start, end = week.day_window(k)
    times = [t for t in week.xdg.times if start < t <= end]
    headroom = [week.xdg_headroom(t) for t in times]
    utilization = [(SAFE_CAP - h) / SAFE_CAP for h in headroom]
    drift = [abs(d) for d in (week.xdg_drift(t) for t in times) if d is not None]
    if k == 3:
        fill = ("histogram", histogram_quantile(0.5, BUCKET_STEP, BUCKETS), histogram_quantile(0.95, BUCKET_STEP, BUCKETS))
    else:
        fill = ("gauge", 100.0 + 10 * k, 900.0 + 50 * k)
    return {
        "start": start, "end": end,
        "coverage_ratio": round(len(times) * STEP / DAY, 4),
        "fill_source": fill[0], "median_fill_seconds": fill[1], "p95_fill_seconds": fill[2],
        "partial_open_events": sum(1 for e in week.xdg_open_events() if start < e <= end and not week.xdg_in_gap(e)),
        "partial_cancel_events": sum(1 for e in week.xdg_cancel_events() if start < e <= end),
        "utilization_peak_ratio": max(utilization),
        "utilization_mean_ratio": statistics.fmean(utilization),
        "headroom_min": min(headroom),
        "slots_start": week.xdg_slots(times[0]), "slots_end": week.xdg_slots(times[-1]),
        "slots_added": {4: 2, 5: 1}.get(k, 0),
        "seconds_in_band": {name: STEP * sum(1 for t in times if week.xdg_band(t) == v)
                            for v, name in enumerate(("normal", "caution", "stop"))},
        "seconds_kraken_fallback": STEP * sum(1 for t in times if week.xdg_outage(t)),
        "drift_max_abs": max(drift),
        # the week has no order rate counter series (issue 18's fields are tested in test_playbook.py): null, not 0
        "order_rate_peak": None, "order_rate_threshold": None, "order_rate_limited": None,
    }


def expected_xbt_day(week: Week, k: int) -> dict:
    start, end = week.day_window(k)
    times = [t for t in week.xbt.times if start < t <= end]
    headroom = [week.xbt_headroom(t) for t in times]
    utilization = [(SAFE_CAP - h) / SAFE_CAP for h in headroom]
    return {
        "start": start, "end": end, "coverage_ratio": 1.0,
        "fill_source": "gauge", "median_fill_seconds": 50.0, "p95_fill_seconds": 400.0,
        "partial_open_events": sum(1 for e in week.xbt_open_events() if start < e <= end),
        "partial_cancel_events": 0,
        "utilization_peak_ratio": max(utilization), "utilization_mean_ratio": statistics.fmean(utilization),
        "headroom_min": min(headroom), "slots_start": 5, "slots_end": 5, "slots_added": 0,
        "seconds_in_band": {"normal": DAY, "caution": 0, "stop": 0}, "seconds_kraken_fallback": 0, "drift_max_abs": 1,
        "order_rate_peak": None, "order_rate_threshold": None, "order_rate_limited": None,
    }


def assert_day(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if isinstance(value, float) and key != "start" and key != "end":
            assert actual[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert actual[key] == value, key
    for key in ("partial_open_events", "partial_cancel_events", "slots_added", "slots_start", "slots_end", "headroom_min"):
        assert isinstance(actual[key], int), key


@pytest.fixture(scope="module")
def report(prom: Prometheus, week: Week) -> dict:
    code, out, err = run("baseline", "--prometheus", prom.url, "--pair", "XDGUSD,XBTUSD,ETHUSD", "--end", str(week.end),
                         "--format", "json")
    assert code == 0, err
    return json.loads(out)


# ------------------------------------------------------------------------------------------------- baseline

def test_baseline_json_has_the_issue_shape_with_seven_days_ending_at_end(report, prom, week):
    assert (report["prometheus"], report["start"], report["end"]) == (prom.url, week.end - 7 * DAY, week.end)
    assert list(report["pairs"]) == ["XDGUSD", "XBTUSD", "ETHUSD"]
    for data in report["pairs"].values():
        assert [(d["start"], d["end"]) for d in data["days"]] == [week.day_window(k) for k in range(7)]
        assert set(data) >= {"days", "summary"}


@pytest.mark.parametrize("k", range(7))
def test_every_baseline_number_of_each_xdgusd_day_matches_the_script(report, week, k):
    assert_day(report["pairs"]["XDGUSD"]["days"][k], expected_xdg_day(week, k))


@pytest.mark.parametrize("k", [0, 3, 6])
def test_every_baseline_number_of_the_steady_second_pair_matches_the_script(report, week, k):
    assert_day(report["pairs"]["XBTUSD"]["days"][k], expected_xbt_day(week, k))


def test_the_scripted_events_show_where_the_script_put_them(report):
    days = report["pairs"]["XDGUSD"]["days"]
    assert [d["partial_cancel_events"] for d in days] == [1, 0, 0, 0, 0, 0, 0]
    assert [d["slots_added"] for d in days] == [0, 0, 0, 0, 2, 1, 0]
    # the cancel's stop to 04:00 (the 00:00 sample belongs to day 0) and the headroom's stop 08:00-12:00
    assert days[1]["seconds_in_band"]["stop"] == (4 * 3600 - STEP) + 4 * 3600
    assert days[2]["seconds_kraken_fallback"] == 3 * 3600 and days[2]["coverage_ratio"] < 1
    assert days[2]["partial_open_events"] == 7  # 8 a day, one lost while the exporter was down; the reset adds none
    assert days[3]["fill_source"] == "histogram" and days[3]["drift_max_abs"] == 12


def test_a_named_pair_without_data_is_listed_with_null_days(report):
    data = report["pairs"]["ETHUSD"]
    for day in data["days"]:
        assert day["coverage_ratio"] == 0
        assert all(day[k] is None for k in day if k not in ("start", "end", "coverage_ratio"))
    assert data["summary"]["days_with_data"] == 0 and data["summary"]["partial_open_events"] is None


def test_the_summary_sums_counts_and_durations_and_keeps_extremes(report, week):
    days = [expected_xdg_day(week, k) for k in range(7)]
    summary = report["pairs"]["XDGUSD"]["summary"]
    assert summary["partial_open_events"] == sum(d["partial_open_events"] for d in days)
    assert summary["slots_added"] == 3 and (summary["slots_start"], summary["slots_end"]) == (10, 12)
    assert summary["seconds_in_band"]["stop"] == sum(d["seconds_in_band"]["stop"] for d in days)
    assert summary["headroom_min"] == 5 and summary["drift_max_abs"] == 12
    assert summary["median_fill_seconds"] == statistics.median(d["median_fill_seconds"] for d in days)


def test_baseline_without_pair_lists_every_pair_prometheus_has(prom, week):
    code, out, _ = run("baseline", "--prometheus", prom.url, "--end", str(week.end), "--days", "1", "--format", "json")
    assert code == 0
    assert sorted(json.loads(out)["pairs"]) == ["SOLUSD", "XBTUSD", "XDGUSD"]


def test_the_table_and_markdown_show_a_row_per_day_and_the_summary(prom, week):
    code, table, _ = run("baseline", "--prometheus", prom.url, "--pair", "XDGUSD", "--end", str(week.end))
    assert code == 0
    lines = table.splitlines()
    assert any(line.startswith("XDGUSD: scrape interval 120 s") for line in lines)
    day_rows = [line for line in lines if line[:4].isdigit()]
    assert len(day_rows) == 7 and "histogram" in day_rows[3] and "10→12" in day_rows[4]
    assert lines[-1].startswith("7 days")
    code, markdown, _ = run("baseline", "--prometheus", prom.url, "--pair", "XDGUSD", "--end", str(week.end),
                            "--format", "markdown")
    assert code == 0
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 7 + 1 and rows[-1].startswith("| **7 days**")


def test_the_plot_is_a_png_of_sensible_size(prom, week, tmp_path):
    path = tmp_path / "baseline.png"
    code, _, err = run("baseline", "--prometheus", prom.url, "--pair", "XDGUSD,XBTUSD", "--end", str(week.end),
                       "--plot", str(path))
    assert code == 0, err
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 800 <= width <= 2000 and 600 <= height <= 3000
    assert 20_000 < len(data) < 2_000_000


def test_the_baseline_holds_a_day_of_samples_at_a_time_not_the_whole_span(prom, week):
    """Each day is reduced as it arrives: the peak memory of reading 7 days is that of reading 1, not 4 times it
    (2 days held against 8), so a fleet scraped every 15 s fits where one scraped every 2 min did."""
    peaks = []
    for days in (1, 7):
        gc.collect()
        tracemalloc.start()
        try:
            read_baseline(PrometheusHistory(prom.url), ["XDGUSD", "XBTUSD"], days, week.end, [])
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_baseline_bad_flags_are_one_line_and_exit_2(prom):
    code, out, err = run("baseline", "--prometheus", prom.url, "--days", "0")
    assert (code, out) == (2, "") and err.count("\n") == 1 and "--days" in err
    code, out, err = run("baseline", "--prometheus", prom.url, "--end", "yesterday", "--format", "json")
    assert code == 2 and "--end" in json.loads(out)["error"] and err.count("\n") == 1
    code, out, err = run("baseline", "--prometheus", prom.url, "--bogus")
    assert code == 2 and err.count("\n") == 1


def test_baseline_on_an_unreachable_prometheus_prints_only_json_and_exits_3():
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run("baseline", "--prometheus", url, "--format", "json")
    assert code == 3
    body = json.loads(out)
    assert body["pairs"] == {} and "Cannot reach Prometheus" in body["error"] and "Cannot reach" in err


# ------------------------------------------------------------------------------------------------- advise

def advise(prom: Prometheus, at: float, pair: str = "XDGUSD", url: str | None = None) -> tuple[int, dict]:
    code, out, err = run("advise", "--prometheus", url or prom.url, "--pair", pair, "--at", str(at), "--format", "json")
    body = json.loads(out)
    assert body["exit_code"] == code
    assert set(body) == {"pair", "at", "decision", "exit_code", "band", "reasons", "stop_last_seen", "normal_since",
                         "wait_seconds", "slots_added_24h", "partial_cancel_24h", "order_rate_peak_1d",
                         "order_rate_threshold", "order_rate_limited_24h"}
    assert body["reasons"] and all(r.endswith(".") for r in body["reasons"])
    return code, body


def last_stop_sample(week: Week, before: float) -> float:
    return max(t for t in week.xdg.times if t <= before and week.xdg_band(t) == 2)


def test_advise_is_frozen_within_24h_of_a_partial_cancel(prom, week):
    at = week.at(0, 10)
    code, body = advise(prom, at)
    assert (code, body["decision"], body["band"], body["partial_cancel_24h"]) == (2, "frozen", "stop", 1)
    assert body["stop_last_seen"] == at and body["wait_seconds"] is None


def test_advise_says_stop_in_the_stop_band_a_day_after_the_cancel(prom, week):
    code, body = advise(prom, week.at(1, 10))
    assert (code, body["decision"], body["band"], body["partial_cancel_24h"]) == (2, "stop", "stop", 0)


def test_advise_waits_in_caution_within_72h_of_a_stop(prom, week):
    at = week.at(1, 14)
    last = last_stop_sample(week, at)
    code, body = advise(prom, at)
    assert (code, body["decision"], body["band"]) == (1, "wait", "caution")
    assert body["stop_last_seen"] == last == week.at(1, 12) - STEP
    assert body["wait_seconds"] == pytest.approx(last + 72 * 3600 - at)


def test_advise_waits_just_before_the_72h_rule_lapses(prom, week):
    last = last_stop_sample(week, week.at(4, 0))
    code, body = advise(prom, last + 72 * 3600 - 30)
    assert (code, body["decision"], body["band"]) == (1, "wait", "normal")
    assert body["wait_seconds"] == pytest.approx(30) and body["stop_last_seen"] == last
    assert body["normal_since"] == week.at(1, 16)


def test_advise_adds_a_slot_just_after_the_72h_rule_lapses(prom, week):
    last = last_stop_sample(week, week.at(4, 0))
    code, body = advise(prom, last + 72 * 3600 + 30)
    assert (code, body["decision"], body["band"]) == (0, "add_slot", "normal")
    assert body["stop_last_seen"] is None and body["wait_seconds"] is None
    assert body["normal_since"] == week.at(1, 16)  # the exporter's hour-long gap on day 2 does not end the run


def test_advise_adds_a_slot_in_caution_with_no_slot_in_the_last_24h(prom, week):
    code, body = advise(prom, week.at(4, 14))
    assert (code, body["decision"], body["band"], body["slots_added_24h"]) == (0, "add_slot", "caution", 0)
    assert body["normal_since"] is None


def test_advise_waits_in_caution_after_a_slot_in_the_last_24h(prom, week):
    at = week.at(4, 16)
    code, body = advise(prom, at)
    assert (code, body["decision"], body["band"], body["slots_added_24h"]) == (1, "wait", "caution", 1)
    assert body["wait_seconds"] == pytest.approx(week.at(4, 15) + DAY - at)


def test_advise_adds_a_slot_in_normal_whatever_was_added(prom, week):
    code, body = advise(prom, week.at(6, 8))
    assert (code, body["decision"], body["band"], body["slots_added_24h"]) == (0, "add_slot", "normal", 1)
    assert body["normal_since"] == week.at(5, 6)


def test_advise_is_unknown_without_data_around_the_moment(prom, week):
    code, body = advise(prom, week.at(2, 18, 30))
    assert (code, body["decision"], body["band"]) == (3, "unknown", None)
    assert "No band sample for XDGUSD" in body["reasons"][0]


def test_advise_is_unknown_for_a_pair_prometheus_does_not_have(prom, week):
    code, body = advise(prom, week.at(6, 8), pair="ETHUSD")
    assert (code, body["decision"]) == (3, "unknown") and "XBTUSD, XDGUSD" in body["reasons"][0]


def test_advise_is_unknown_when_prometheus_is_unreachable_or_the_url_is_not_prometheus(prom, week):
    code, body = advise(prom, week.at(6, 8), url=f"http://127.0.0.1:{free_port()}")
    assert (code, body["decision"]) == (3, "unknown") and "Cannot reach Prometheus" in body["reasons"][0]
    code, body = advise(prom, week.at(6, 8), url=prom.url + "/nothing-here")
    assert (code, body["decision"]) == (3, "unknown") and "does not answer like a Prometheus" in body["reasons"][0]


def test_advise_text_names_the_decision_and_the_command_exits_with_its_code(prom, week):
    """Through the installed entry point: `python -m exporter advise`, stdout only JSON with --format json."""
    args = [sys.executable, "-m", "exporter", "advise", "--prometheus", prom.url, "--pair", "XDGUSD",
            "--at", str(week.at(4, 16))]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1 and done.stdout.startswith("XDGUSD at ") and "WAIT (exit 1), band caution" in done.stdout
    done = subprocess.run([*args, "--format", "json"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1 and json.loads(done.stdout)["decision"] == "wait"
    done = subprocess.run([*args[:8], "--format", "json", "--at", "noon"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 2 and "--at" in json.loads(done.stdout)["error"]


# ------------------------------------------------------------------------------------------------- reader, forecast

def test_the_reader_says_which_query_prometheus_rejected(prom):
    with pytest.raises(PrometheusHistoryError, match="rejected 'rate\\(krakenbot_slots'"):
        PrometheusHistory(prom.url).query("rate(krakenbot_slots", time.time())


def test_the_reader_returns_range_queries_per_series(prom, week):
    [series] = PrometheusHistory(prom.url).query_range('krakenbot_slots{pair="XDGUSD"}', week.at(4, 14), week.at(5, 14), 3600)
    assert series.labels["instance"] == "bot-a:9477"
    assert [v for _, v in series.samples] == [week.xdg_slots(week.at(4, 14) + h * 3600) for h in range(25)]


def test_the_forecast_equals_prometheus_predict_linear_on_the_same_samples(prom, week):
    selector = 'krakenbot_open_orders_headroom{pair="SOLUSD"}'
    reader = PrometheusHistory(prom.url)
    [series] = reader.query(f"{selector}[6h]", week.end)  # exactly the samples predict_linear sees
    points = series.samples
    assert len(points) == 6 * 3600 // STEP + 1  # Prometheus 2.x ranges are closed: [end - 6h, end]
    trend = fit_trend(points, week.end)
    assert trend is not None and trend.slope < 0
    for ahead in (0, 3600, 86400):
        [promql] = reader.query(f"predict_linear({selector}[6h], {ahead})", week.end)
        assert trend.predict(ahead) == pytest.approx(promql.samples[0][1], rel=1e-9, abs=1e-9)
    seconds = seconds_to_stop(points, week.end)
    assert seconds is not None and seconds > 0
    [at_stop] = reader.query(f"predict_linear({selector}[6h], {seconds!r})", week.end)
    assert at_stop.samples[0][1] == pytest.approx(STOP_HEADROOM, abs=1e-6)
    history = HeadroomHistory()
    for t in week.sol.times:
        history.record(t, week.sol_headroom(t))
    assert history.seconds_to_stop(week.end) == pytest.approx(seconds, rel=1e-9)
