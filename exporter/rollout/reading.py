"""Reading the store for `baseline` and `advise`: which of the exporter's series, read how.

Every pair is a series of one answer, never a query per pair: the baseline reads each series name a day per query
(so no answer holds more than a day of the fleet), the advisor its one pair's 4 days in one; the day-end fill times
come from one range query per expression, stepping from day end to day end.
Store failures are `PrometheusHistoryError`s, for the command to report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.baseline import DAY_SECONDS, FillTimes, PairHistory, choose_fill, day_windows
from ..core.naming import PREFIX
from ..core.playbook import LOOKBACK_SECONDS, Advice, AdviceInputs, advise, stamp, unknown
from ..core.samples import Sample
from ..sources.prometheus_history import PrometheusHistory, Series

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
}
# The advisor's series: each an AdviceInputs field of the same name, read over LOOKBACK_SECONDS.
ADVICE_SERIES = ("band", "slots", "partial_cancel_total")
FILL_MEDIAN = f"{PREFIX}_fill_duration_median_1d_seconds"
FILL_P95 = f"{PREFIX}_fill_duration_p95_1d_seconds"
FILL_BUCKETS = f"{PREFIX}_fill_duration_seconds_bucket"


@dataclass(frozen=True)
class BaselineData:
    """What the baseline report is made of: the pairs, each one's raw samples, and each day's fill times."""

    pairs: list[str]
    histories: dict[str, PairHistory]
    fills: dict[str, list[FillTimes]]


def read_baseline(prom: PrometheusHistory, pairs: list[str] | None, days: int, end: float,
                  warnings: list[str]) -> BaselineData:
    """The samples of `days` days ending at `end`, for `pairs` (None: every pair with an exporter series then)."""
    start = end - days * DAY_SECONDS
    if pairs is None:
        pairs = prom.label_values("pair", f'{{__name__=~"{PREFIX}_.+"}}', start, end)
        if not pairs:
            warnings.append(f"no {PREFIX}_* series between {stamp(start)} and {stamp(end)}; "
                            f"give --pair to list a pair anyway")
    histories = read_histories(prom, pairs, start - DAY_SECONDS, end, warnings) if pairs else {}
    fills = read_fills(prom, pairs, [e for _, e in day_windows(end, days)], warnings) if pairs else {}
    return BaselineData(pairs, histories, fills)


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


def read_histories(prom: PrometheusHistory, pairs: list[str], start: float, end: float,
                   warnings: list[str]) -> dict[str, PairHistory]:
    samples: dict[str, dict[str, Sequence[Sample]]] = {pair: {} for pair in pairs}
    for field_name, metric in HISTORY_SERIES.items():
        series = prom.raw_samples(metric + _pair_filter(pairs), start, end, chunk=DAY_SECONDS)
        for pair, values in _by_pair(series, metric, warnings).items():
            if pair in samples:
                samples[pair][field_name] = values
    return {pair: PairHistory(**fields) for pair, fields in samples.items()}


def _latest_values(series: list[Series], expr: str, warnings: list[str]) -> dict[str, float]:
    values = {}
    for pair, samples in _by_pair(series, expr, warnings).items():
        if samples and math.isfinite(samples[-1][1]):
            values[pair] = samples[-1][1]
    return values


def _values_at_day_ends(prom: PrometheusHistory, expr: str, day_ends: list[float],
                        warnings: list[str]) -> list[dict[str, float]]:
    """Per day end, what an instant query of `expr` there answers, from one range query with a step of a day
    (its end is padded by half a step so that rounding to milliseconds cannot drop the last day)."""
    per_day: list[list[Series]] = [[] for _ in day_ends]
    for s in prom.query_range(expr, day_ends[0], day_ends[-1] + DAY_SECONDS / 2, DAY_SECONDS):
        for t, v in s.samples:
            per_day[round((t - day_ends[0]) / DAY_SECONDS)].append(Series(s.labels, [(t, v)]))
    return [_latest_values(series, expr, warnings) for series in per_day]


def read_fills(prom: PrometheusHistory, pairs: list[str], day_ends: list[float],
               warnings: list[str]) -> dict[str, list[FillTimes]]:
    """Each day's median/p95 fill time: the exporter's 24h gauges at the day's end (as an instant query sees them,
    so a gauge that went stale is absent), else PromQL's `histogram_quantile` over the day's `increase()` of the
    fill histogram at the day's end. One range query per expression, stepping from day end to day end."""
    selector = _pair_filter(pairs)
    median = _values_at_day_ends(prom, FILL_MEDIAN + selector, day_ends, warnings)
    p95 = _values_at_day_ends(prom, FILL_P95 + selector, day_ends, warnings)
    hist: dict[float, list[dict[str, float]]] = {q: [{} for _ in day_ends] for q in (0.5, 0.95)}
    if any(pair not in m and pair not in p for m, p in zip(median, p95, strict=True) for pair in pairs):
        for q in hist:
            expr = f"histogram_quantile({q}, sum by (pair, le) (increase({FILL_BUCKETS}{selector}[{int(DAY_SECONDS)}s])))"
            hist[q] = _values_at_day_ends(prom, expr, day_ends, warnings)
    return {pair: [choose_fill((median[i].get(pair), p95[i].get(pair)),
                               (hist[0.5][i].get(pair), hist[0.95][i].get(pair))) for i in range(len(day_ends))]
            for pair in pairs}


def read_advice(prom: PrometheusHistory, pair: str, at: float) -> Advice:
    """The playbook's decision for `pair` at `at`; `unknown` when the store has no such pair. Store failures raise."""
    band_metric = HISTORY_SERIES["band"]
    known = prom.label_values("pair", band_metric)
    if pair not in known:
        has = ", ".join(known) if known else "none"
        return unknown(pair, at, f"Prometheus at {prom.display_url} has no {band_metric} series for pair {pair} "
                                 f"(pairs it has: {has}).")
    warnings: list[str] = []
    start = at - LOOKBACK_SECONDS
    series = {name: _by_pair(prom.raw_samples(f'{HISTORY_SERIES[name]}{{pair="{pair}"}}', start, at),
                             HISTORY_SERIES[name], warnings).get(pair, [])
              for name in ADVICE_SERIES}
    advice = advise(pair, AdviceInputs(at=at, **series))
    if warnings:
        advice.reasons.extend(w[0].upper() + w[1:] + "." for w in warnings)
    return advice
