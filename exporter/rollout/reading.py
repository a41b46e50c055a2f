"""Reading the store for `baseline` and `advise`: which of the exporter's series, read how.

Every pair is a series of one answer, never a query per pair. The baseline reads a day at a time, oldest first, and
reduces each day as it arrives (`core.baseline.PairDays`), so that it never holds more than a day of the fleet's
raw samples: first the band of every day (for each pair's scrape interval, counted and not kept), then every
series of each day. The day-end fill times are instant queries at each day end. The advisor reads its one pair's
4 days in one query per series. Store failures are `PrometheusHistoryError`s, for the command to report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.baseline import DAY_SECONDS, FillTimes, PairDays, PairHistory, choose_fill, day_windows
from ..core.naming import PREFIX
from ..core.playbook import LOOKBACK_SECONDS, Advice, AdviceInputs, advise, stamp, unknown
from ..core.samples import Sample, Steps
from ..sources.prometheus_history import PrometheusHistory, Samples, Series

# PairHistory field -> the exporter's series.
HISTORY_SERIES = {
    "band": f"{PREFIX}_status_band",
    "kraken_available": f"{PREFIX}_kraken_data_available",
    "utilization": f"{PREFIX}_open_orders_utilization_ratio",
    "headroom": f"{PREFIX}_open_orders_headroom",
    "slots": f"{PREFIX}_slots",
    "drift": f"{PREFIX}_open_orders_drift",
    "partial_open_total": f"{PREFIX}_partial_fill_open_events_total",
    "partial_cancel_total": f"{PREFIX}_partial_fill_cancel_events_total",
    "rate_peak": f"{PREFIX}_order_rate_peak_1d",
    "rate_threshold": f"{PREFIX}_order_rate_threshold",
    "rate_limited_total": f"{PREFIX}_order_rate_limited_total",
}
# The advisor's series: each an AdviceInputs field of the same name, read over LOOKBACK_SECONDS.
ADVICE_SERIES = ("band", "slots", "partial_cancel_total", "rate_peak", "rate_threshold", "rate_limited_total")
FILL_MEDIAN = f"{PREFIX}_fill_duration_median_1d_seconds"
FILL_P95 = f"{PREFIX}_fill_duration_p95_1d_seconds"
FILL_BUCKETS = f"{PREFIX}_fill_duration_seconds_bucket"
# How far before a day end the fill gauges' value may be, said in the query (Prometheus' default lookback) so that
# every store answers alike: a bare selector's lookback is the store's own (VictoriaMetrics' range queries use
# their step, a day here).
FILL_LOOKBACK_SECONDS = 300


@dataclass(frozen=True)
class BaselineData:
    """What the baseline report is made of: the pairs and each one's `pair_report`; with `keep_band`, each one's
    band samples too (`histories`, for the chart; nothing else is kept)."""

    pairs: list[str]
    reports: dict[str, dict[str, Any]]
    histories: dict[str, PairHistory]


def read_baseline(prom: PrometheusHistory, pairs: list[str] | None, days: int, end: float,
                  warnings: list[str], keep_band: bool = False) -> BaselineData:
    """The report of `days` days ending at `end`, for `pairs` (None: every pair with an exporter series then),
    read from one day before the first, a day at a time."""
    start = end - days * DAY_SECONDS
    if pairs is None:
        pairs = prom.label_values("pair", f'{{__name__=~"{PREFIX}_.+"}}', start, end)
        if not pairs:
            warnings.append(f"no {PREFIX}_* series between {stamp(start)} and {stamp(end)}; "
                            f"give --pair to list a pair anyway")
    if not pairs:
        return BaselineData([], {}, {})
    windows = day_windows(end, days)
    chunks = day_windows(end, days + 1)  # the day before the first, for what counters and slot steps look back at
    fills = read_fills(prom, pairs, [e for _, e in windows], warnings)
    intervals = read_intervals(prom, pairs, chunks, warnings)
    builders = {pair: PairDays(intervals[pair], fills[pair]) for pair in pairs}
    last: dict[str, dict[str, Sample]] = {pair: {} for pair in pairs}  # pair -> field -> its latest sample so far
    bands: dict[str, Samples] = {pair: Samples() for pair in pairs}
    for i, (lo, hi) in enumerate(chunks):
        day = read_day(prom, pairs, lo, hi, warnings)
        for pair in pairs:
            read = day.pop(pair)  # let go of each pair's day once it is reduced
            fields = {name: _led_by(last[pair].get(name), read.get(name)) for name in HISTORY_SERIES}
            if i > 0:
                builders[pair].add(PairHistory(**fields), lo, hi)
            last[pair].update((name, samples[-1]) for name, samples in read.items() if samples)
            if keep_band and "band" in read:
                bands[pair].extend(_samples(read["band"]))
    histories = {pair: PairHistory(band=bands[pair]) for pair in pairs} if keep_band else {}
    return BaselineData(pairs, {pair: builders[pair].report() for pair in pairs}, histories)


def _pair_filter(pairs: Sequence[str]) -> str:
    return f'{{pair=~"{"|".join(pairs)}"}}'


def _by_pair(series: list[Series], name: str, warnings: list[str]) -> dict[str, Sequence[Sample]]:
    """The samples of each pair; with several series for one pair (two jobs?), the fullest one, and a warning."""
    grouped: dict[str, list[Series]] = {}
    for s in series:
        if s.pair is not None:
            grouped.setdefault(s.pair, []).append(s)
    chosen = {}
    for pair, candidates in grouped.items():
        best = max(candidates, key=lambda s: len(s.samples))
        if len(candidates) > 1:
            warnings.append(f"{len(candidates)} series of {name} for pair {pair}; using {best.labels} (most samples)")
        chosen[pair] = best.samples
    return chosen


def _led_by(first: Sample | None, rest: Sequence[Sample] | None) -> Sequence[Sample]:
    """`rest`, led by the sample `first` when there is one."""
    if first is None:
        return rest or ()
    led = Samples([first[0]], [first[1]])
    if rest:
        led.extend(_samples(rest))
    return led


def _samples(values: Sequence[Sample]) -> Samples:
    return values if isinstance(values, Samples) else Samples([t for t, _ in values], [v for _, v in values])


def read_intervals(prom: PrometheusHistory, pairs: list[str], chunks: list[tuple[float, float]],
                   warnings: list[str]) -> dict[str, float | None]:
    """Each pair's scrape interval over the chunks: the median step between its band samples (`Steps`), read a
    chunk per query and counted, not kept."""
    steps = {pair: Steps() for pair in pairs}
    metric = HISTORY_SERIES["band"]
    for lo, hi in chunks:
        for pair, samples in _by_pair(prom.raw_samples(metric + _pair_filter(pairs), lo, hi), metric, warnings).items():
            if pair in steps:
                steps[pair].add(_samples(samples).times)
    return {pair: counted.interval() for pair, counted in steps.items()}


def read_day(prom: PrometheusHistory, pairs: list[str], lo: float, hi: float,
             warnings: list[str]) -> dict[str, dict[str, Sequence[Sample]]]:
    """pair -> PairHistory field -> its samples in (lo, hi]: one query per series, every pair in each answer (of
    several series for one pair, the day's fullest)."""
    day: dict[str, dict[str, Sequence[Sample]]] = {pair: {} for pair in pairs}
    for field_name, metric in HISTORY_SERIES.items():
        for pair, values in _by_pair(prom.raw_samples(metric + _pair_filter(pairs), lo, hi), metric, warnings).items():
            if pair in day:
                day[pair][field_name] = values
    return day


def _latest_values(series: list[Series], expr: str, warnings: list[str]) -> dict[str, float]:
    values = {}
    for pair, samples in _by_pair(series, expr, warnings).items():
        if samples and math.isfinite(samples[-1][1]):
            values[pair] = samples[-1][1]
    return values


def _values_at_day_ends(prom: PrometheusHistory, expr: str, day_ends: Sequence[float],
                        warnings: list[str]) -> list[dict[str, float]]:
    """Per day end, what an instant query of `expr` there answers: one query per day end (a range query may be
    answered at other moments: VictoriaMetrics aligns one of 50 points or more to its step, for its cache)."""
    return [_latest_values(prom.query(expr, t), expr, warnings) for t in day_ends]


def read_fills(prom: PrometheusHistory, pairs: list[str], day_ends: list[float],
               warnings: list[str]) -> dict[str, list[FillTimes]]:
    """Each day's median/p95 fill time: the exporter's 24h gauges at the day's end (their last value in the
    FILL_LOOKBACK_SECONDS before it), else PromQL's `histogram_quantile` over the day's `increase()` of the fill
    histogram at the day's end, asked only at the day ends where some pair has no gauge."""
    selector = _pair_filter(pairs)
    median, p95 = (_values_at_day_ends(prom, f"last_over_time({gauge}{selector}[{FILL_LOOKBACK_SECONDS}s])",
                                       day_ends, warnings) for gauge in (FILL_MEDIAN, FILL_P95))
    lacking = [i for i, (m, p) in enumerate(zip(median, p95, strict=True))
               if any(pair not in m and pair not in p for pair in pairs)]
    hist: dict[float, list[dict[str, float]]] = {q: [{} for _ in day_ends] for q in (0.5, 0.95)}
    for q, per_day in hist.items():
        expr = f"histogram_quantile({q}, sum by (pair, le) (increase({FILL_BUCKETS}{selector}[{int(DAY_SECONDS)}s])))"
        for i, values in zip(lacking, _values_at_day_ends(prom, expr, [day_ends[i] for i in lacking], warnings),
                             strict=True):
            per_day[i] = values
    return {pair: [choose_fill((median[i].get(pair), p95[i].get(pair)),
                               (hist[0.5][i].get(pair), hist[0.95][i].get(pair))) for i in range(len(day_ends))]
            for pair in pairs}


def read_advice(prom: PrometheusHistory, pair: str, at: float) -> Advice:
    """The playbook's decision for `pair` at `at`; `unknown` when the store has no such pair. Store failures raise."""
    band_metric = HISTORY_SERIES["band"]
    start = at - LOOKBACK_SECONDS
    known = prom.label_values("pair", band_metric, start, at)  # a store's default span may be a day only
    if pair not in known:
        has = ", ".join(known) if known else "none"
        return unknown(pair, at, f"Prometheus at {prom.display_url} has no {band_metric} series for pair {pair} "
                                 f"(pairs it has: {has}).")
    warnings: list[str] = []
    series = {name: _by_pair(prom.raw_samples(f'{HISTORY_SERIES[name]}{{pair="{pair}"}}', start, at),
                             HISTORY_SERIES[name], warnings).get(pair, [])
              for name in ADVICE_SERIES}
    advice = advise(pair, AdviceInputs(at=at, **series))
    if warnings:
        advice.reasons.extend(w[0].upper() + w[1:] + "." for w in warnings)
    return advice
